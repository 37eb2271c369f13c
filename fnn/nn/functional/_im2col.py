"""Plain-array kernels shared by convolution and pooling (no tracing here).

Chainer's scheme: im2col is a loop over the kh*kw kernel offsets, each one strided slice copy of
the padded input into a column buffer; col2im is the same loop with `+=`. Neither loops over
pixels or over the batch.

Column layout: (C, kh, kw, N, OH, OW), C-contiguous, i.e. a (C*kh*kw, N*OH*OW) matrix. With the
channel axis first, the columns of group g are the contiguous block `cols.reshape(G, K/G, N*P)[g]`,
so a grouped convolution is one batched matmul over groups, and an ungrouped one a single GEMM.

Images are (N, C, H, W) arrays; those made here are channel-major in memory (a (C, N, H, W)
buffer seen transposed), as the GEMMs write them.

`pads` is always (top, bottom, left, right); stride and dilation are pairs.
Every function works on NumPy and CuPy arrays (only slicing, reshape, matmul, zeros/empty_like).
On real CuPy (an array module with kernels, see `_cuda_kernels.kernels_for`) im2col and col2im
are one kernel launch each instead of kh*kw strided copies, with the same results; GEMMs stay
matmuls (cuBLAS).
"""

from __future__ import annotations

from fnn.backend import get_array_module, matmul
from fnn.nn.functional._cuda_kernels import kernels_for

__all__ = ["out_size", "im2col", "col2im", "cols_matmul", "weight_from_cols", "conv_input_grad",
           "window_views", "pool_out_hw", "pad_nchw", "crop_nchw", "channel_major", "compact_crop"]


def out_size(n: int, k: int, s: int, p0: int, p1: int, d: int) -> int:
    """Output length of a window of size k, stride s, dilation d over n cells padded by p0, p1."""
    return (n + p0 + p1 - d * (k - 1) - 1) // s + 1


def _spans(kh, kw, oh, ow, stride, dilation):
    """For each kernel offset (i, j): the row and column slices it reads in the padded input."""
    sh, sw = stride
    dh, dw = dilation
    rows = [slice(i * dh, i * dh + sh * (oh - 1) + 1, sh) for i in range(kh)]
    cols = [slice(j * dw, j * dw + sw * (ow - 1) + 1, sw) for j in range(kw)]
    return rows, cols


def im2col(x, kh: int, kw: int, stride, pads, dilation, out_hw=None):
    """Columns (C, kh, kw, N, OH, OW) of x (N, C, H, W). `out_hw` may ask for fewer output
    positions than fit (the adjoint of a transposed convolution with output_padding)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    pt, pb, pl, pr = pads
    hp, wp = h + pt + pb, w + pl + pr
    oh = out_size(h, kh, stride[0], pt, pb, dilation[0])
    ow = out_size(w, kw, stride[1], pl, pr, dilation[1])
    if out_hw is not None:
        oh, ow = out_hw
    kernels = kernels_for(xp, x)
    if kernels is not None:
        return kernels.im2col(x, kh, kw, stride, pads, dilation, (oh, ow))
    xt = x.transpose(1, 0, 2, 3)
    if pt or pb or pl or pr:
        padded = xp.zeros_like(x, shape=(c, n, hp, wp), order="C")
        padded[:, :, pt:pt + h, pl:pl + w] = xt
    else:
        padded = xt
    cols = xp.empty_like(x, shape=(c, kh, kw, n, oh, ow), order="C")
    rows, colsl = _spans(kh, kw, oh, ow, stride, dilation)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = padded[:, :, rows[i], colsl[j]]
    return cols


def col2im(cols, hw, stride, pads, dilation):
    """The adjoint of im2col: (C, kh, kw, N, OH, OW) -> (N, C, H, W), overlaps summed; channel-major
    in memory, like the convolution outputs (see conv.py's `_finish`)."""
    xp = get_array_module(cols)
    kernels = kernels_for(xp, cols)
    if kernels is not None:
        return kernels.col2im(cols, hw, stride, pads, dilation)
    c, kh, kw, n, oh, ow = cols.shape
    h, w = hw
    pt, pb, pl, pr = pads
    padded = xp.zeros_like(cols, shape=(c, n, h + pt + pb, w + pl + pr), order="C")
    rows, colsl = _spans(kh, kw, oh, ow, stride, dilation)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, rows[i], colsl[j]] += cols[:, i, j]
    return xp.ascontiguousarray(padded[:, :, pt:pt + h, pl:pl + w]).transpose(1, 0, 2, 3)


def _g2(g):
    """Output cotangent (N, O, OH, OW) as an (O, N*OH*OW) matrix (one transposing copy)."""
    n, o, oh, ow = g.shape
    return g.transpose(1, 0, 2, 3).reshape(o, n * oh * ow)


def cols_matmul(w, cols, groups: int):
    """The convolution from columns: w (O, C/G, kh, kw) x cols -> y (N, O, OH, OW), a
    non-contiguous view (O-major memory); callers copy it once, adding the bias on the way."""
    xp = get_array_module(w, cols)
    o, k = w.shape[0], _per_output(w)
    c, kh, kw, n, oh, ow = cols.shape
    npix = n * oh * ow
    if groups == 1:
        y = matmul(w.reshape(o, k), cols.reshape(c * kh * kw, npix))
    else:
        y = xp.matmul(w.reshape(groups, o // groups, k),
                      cols.reshape(groups, c * kh * kw // groups, npix)).reshape(o, npix)
    return y.reshape(o, n, oh, ow).transpose(1, 0, 2, 3)


def weight_from_cols(g, cols, w_shape, groups: int):
    """Weight cotangent: g (N, O, OH, OW) against the columns -> (O, C/G, kh, kw)."""
    xp = get_array_module(g, cols)
    o = w_shape[0]
    g2 = _g2(g)
    npix = g2.shape[1]
    rows = cols.shape[0] * cols.shape[1] * cols.shape[2]
    if groups == 1:
        dw = matmul(g2, cols.reshape(rows, npix).T)
    else:
        dw = xp.matmul(g2.reshape(groups, o // groups, npix),
                       cols.reshape(groups, rows // groups, npix).transpose(0, 2, 1))
    return dw.reshape(w_shape)


def conv_input_grad(g, w, hw, stride, pads, dilation, groups: int):
    """Input cotangent of a convolution (also the transposed convolution of g by w):
    g (N, O, OH, OW), w (O, C/G, kh, kw) -> (N, C, H, W) with (H, W) = hw.

    With vertical stride 1 the col2im runs on "wide" rows: g is widened to (O, N, OH, Wq) with
    zero columns, Wq * sw >= the padded width, so that each kernel offset is one long strided
    slice of the flat padded image (the zero columns add nothing where the rows wrap around).
    NumPy then adds long rows instead of OW-sized pieces: fewer, faster inner loops. The result
    is channel-major in memory, like the convolution outputs it is the cotangent of. With
    kernels (real CuPy) the plain columns go to the col2im kernel, which needs no wide rows."""
    xp = get_array_module(g, w)
    o, cg, kh, kw = w.shape
    n, _, oh, ow = g.shape
    if stride[0] != 1 or kernels_for(xp, g, w) is not None:
        g2 = _g2(g)
        dcols = _dcols(xp, w, g2, groups).reshape(cg * groups, kh, kw, n, oh, ow)
        return col2im(dcols, hw, stride, pads, dilation)
    sw = stride[1]
    dh, dw = dilation
    h, wd = hw
    pt, pb, pl, pr = pads
    hp, wp = h + pt + pb, wd + pl + pr
    wq = -(-wp // sw)  # wide row length in output columns
    wr = wq * sw       # row pitch of the flat padded buffer
    if wq == ow:
        g2 = _g2(g)
    else:
        g2 = xp.zeros_like(g, shape=(o, n, oh, wq), order="C")
        g2[..., :ow] = g.transpose(1, 0, 2, 3)
        g2 = g2.reshape(o, n * oh * wq)
    m = oh * wq
    dcols = _dcols(xp, w, g2, groups).reshape(cg * groups, kh, kw, n, m)
    span = sw * (m - 1) + 1
    length = max((kh - 1) * dh * wr + (kw - 1) * dw + span, hp * wr)
    buf = xp.zeros_like(g, shape=(cg * groups, n, length), order="C")
    for i in range(kh):
        for j in range(kw):
            s0 = i * dh * wr + j * dw
            buf[:, :, s0:s0 + span:sw] += dcols[:, i, j]
    out = buf[:, :, :hp * wr].reshape(cg * groups, n, hp, wr)[:, :, pt:pt + h, pl:pl + wd]
    return xp.ascontiguousarray(out).transpose(1, 0, 2, 3)


def _dcols(xp, w, g2, groups):
    """Column cotangent w^T g2: (C*kh*kw, M) from g2 (O, M), one GEMM (batched over groups)."""
    o, k = w.shape[0], _per_output(w)
    if groups == 1:
        return matmul(w.reshape(o, k).T, g2)
    return xp.matmul(w.reshape(groups, o // groups, k).transpose(0, 2, 1),
                     g2.reshape(groups, o // groups, g2.shape[1]))


def _per_output(w) -> int:
    """Weights per output channel, C/G * kh * kw. (The reshapes here spell every size out:
    NumPy cannot resolve a -1 next to a zero, as in an empty batch.)"""
    return w.shape[1] * w.shape[2] * w.shape[3]


# --- pooling: the same offset loop over (N, C, H, W) directly -------------------------------------

def pool_out_hw(hw, kernel, stride, pads):
    return (out_size(hw[0], kernel[0], stride[0], pads[0], pads[1], 1),
            out_size(hw[1], kernel[1], stride[1], pads[2], pads[3], 1))


def window_views(padded, kernel, stride, out_hw):
    """Yield (k, view) for each kernel offset k = i*kw + j: the strided view of the padded
    (N, C, Hp, Wp) array that this offset reads for every output cell."""
    rows, colsl = _spans(kernel[0], kernel[1], out_hw[0], out_hw[1], stride, (1, 1))
    k = 0
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield k, padded[:, :, rows[i], colsl[j]]
            k += 1


def pad_nchw(x, pads, value):
    """x (N, C, H, W) padded with the constant `value` (x itself when there is no padding)."""
    pt, pb, pl, pr = pads
    if not (pt or pb or pl or pr):
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.full_like(x, value, shape=(n, c, h + pt + pb, w + pl + pr)) if value else \
        xp.zeros_like(x, shape=(n, c, h + pt + pb, w + pl + pr))
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def channel_major(like, shape, zeros: bool = True):
    """A new (N, C, H, W) array of `shape` (zeros, or uninitialized), laid out (C, N, H, W) in
    memory: the layout in which convolutions write their outputs and cotangents (see conv.py's
    `_finish`), so that elementwise work between them runs on matching layouts."""
    xp = get_array_module(like)
    n, c, h, w = shape
    make = xp.zeros_like if zeros else xp.empty_like
    return make(like, shape=(c, n, h, w), order="C").transpose(1, 0, 2, 3)


def compact_crop(padded, hw, pads):
    """The crop of `padded` as an array of its own, in padded's memory order (padded itself when
    nothing is cropped)."""
    if not any(pads):
        return padded
    return crop_nchw(padded, hw, pads).copy(order="K")


def crop_nchw(padded, hw, pads):
    pt, _, pl, _ = pads
    if not any(pads):
        return padded
    return padded[:, :, pt:pt + hw[0], pl:pl + hw[1]]

