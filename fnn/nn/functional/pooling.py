"""Pooling: max_pool2d, avg_pool2d, their 1-D forms, global_avg_pool, adaptive_avg_pool2d.

Windows are visited by the loop over kernel offsets of `_im2col.window_views` (kh*kw strided
views of the padded input, no loop over pixels). Max pooling keeps the argmax (the window offset
of the maximum, a small integer array) as its residual; its backward scatters the cotangent to
those positions, offset by offset, so overlapping windows add up. Each linear map has its adjoint
as a primitive (scatter <-> gather, average <-> spread), so the rules differentiate again.
On real CuPy (an array module with kernels, see `_cuda_kernels.kernels_for`) each of these maps
is one kernel launch instead of a loop of kh*kw launches, with the same results.
"""

from __future__ import annotations

from typing import Any

import fnn.numpy as fnp
from fnn.autodiff.tracer import defvjp, is_traced, primitive, strip
from fnn.backend import get_array_module
from fnn.nn.functional import _im2col as K
from fnn.nn.functional._args import ints
from fnn.nn.functional._cuda_kernels import kernels_for

__all__ = ["max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "global_avg_pool",
           "adaptive_avg_pool2d"]


def _pool_setup(fn, x, kernel_size, stride, padding, nd, ceil_mode=False):
    """(kernel, stride, pads (top, bottom, left, right)) as 2-D parameters, after checks. With
    `ceil_mode` the bottom and right pads grow by what the extra last window needs."""
    xs = tuple(getattr(x, "shape", ()))
    layout = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    if len(xs) != nd + 2:
        raise ValueError(f"{fn}: expected a {nd + 2}-D input {layout}, got shape {xs}")
    k = ints(kernel_size, nd, "kernel_size", fn)
    s = k if stride is None else ints(stride, nd, "stride", fn)
    p = ints(padding, nd, "padding", fn)
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise ValueError(f"{fn}: need kernel_size, stride >= 1 and padding >= 0, got "
                         f"kernel_size={kernel_size!r}, stride={stride!r}, padding={padding!r}")
    for kk, pp in zip(k, p):
        if 2 * pp > kk:
            raise ValueError(f"{fn}: padding {p} must be at most half the kernel size {k} "
                             f"(input shape {xs})")
    for n, kk, pp in zip(xs[2:], k, p):
        if kk > n + 2 * pp:
            raise ValueError(f"{fn}: the kernel {k} is larger than the padded input (input shape "
                             f"{xs}, padding {p})")
    extra = tuple(_ceil_extra(n, kk, ss, pp) if ceil_mode else 0
                  for n, kk, ss, pp in zip(xs[2:], k, s, p))
    if nd == 1:
        return (1, k[0]), (1, s[0]), (0, 0, p[0], p[0] + extra[0])
    return k, s, (p[0], p[0] + extra[0], p[1], p[1] + extra[1])


def _ceil_extra(n: int, k: int, s: int, p: int) -> int:
    """The cells past the right padding that ceil_mode's last window reaches (0 if none). As in
    PyTorch, the output size rounds up, but the last window must start inside the input or the
    left padding."""
    out = -(-(n + 2 * p - k) // s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    return max(0, (out - 1) * s + k - (n + 2 * p))


# --- max pooling -------------------------------------------------------------------------------

def _max_and_argmax(x, kernel, stride, pads):
    """The window maxima and argmax offsets (uint8 for windows of up to 256 cells). Masked
    writes (copyto with where=, boolean indexing) are slow in NumPy, so the argmax is kept with
    arithmetic: a strict `>` marks the offsets that beat every earlier one, and since offsets
    increase, the largest marked offset is the first maximum (ties go to it, as in PyTorch)."""
    xp = get_array_module(x)
    out_hw = K.pool_out_hw(x.shape[2:], kernel, stride, pads)
    kernels = kernels_for(xp, x)
    if kernels is not None:
        return kernels.max_pool(x, kernel, stride, pads, out_hw, argmax=True)
    padded = K.pad_nchw(x, pads, -xp.inf)
    best = idx = None
    small = kernel[0] * kernel[1] <= 256
    for k, view in K.window_views(padded, kernel, stride, out_hw):
        if best is None:
            best = view.copy(order="K")  # the input's memory layout (see conv.py's `_finish`)
            idx = xp.zeros_like(best, dtype=xp.uint8 if small else xp.int32)
        else:
            mask = xp.greater(view, best)
            xp.maximum(best, view, out=best)
            mark = mask.view(xp.uint8) if small else mask.astype(xp.int32)
            mark *= k
            xp.maximum(idx, mark, out=idx)
    return best, idx


def _max_pool(x, *, kernel, stride, pads):
    xp = get_array_module(x)
    out_hw = K.pool_out_hw(x.shape[2:], kernel, stride, pads)
    kernels = kernels_for(xp, x)
    if kernels is not None:
        return kernels.max_pool(x, kernel, stride, pads, out_hw, argmax=False)
    padded = K.pad_nchw(x, pads, -xp.inf)
    best = None
    for _, view in K.window_views(padded, kernel, stride, out_hw):
        if best is None:
            best = view.copy(order="K")
        else:
            xp.maximum(best, view, out=best)
    return best


def _max_pool_fwd(x, *, kernel, stride, pads):
    y, idx = _max_and_argmax(strip(x), kernel, stride, pads)
    if is_traced(x):  # an enclosing trace: take the maxima by a differentiable gather
        y = _max_gather_p(x, idx, kernel=kernel, stride=stride, pads=pads)
    return y, idx


_max_pool_p = primitive(_max_pool, name="max_pool2d", fwd=_max_pool_fwd)


def _max_scatter(g, idx, *, hw, kernel, stride, pads):
    """The cotangent g (N, C, OH, OW) sent to the argmax positions of an (N, C, H, W) input.
    Disjoint windows (stride >= kernel) are written, not added; when they tile the padded input
    exactly, nothing needs zeroing first."""
    xp = get_array_module(g)
    kernels = kernels_for(xp, g)
    if kernels is not None:
        return kernels.max_scatter(g, idx, hw, kernel, stride, pads)
    n, c = g.shape[:2]
    shape = (n, c, hw[0] + pads[0] + pads[1], hw[1] + pads[2] + pads[3])
    disjoint = stride[0] >= kernel[0] and stride[1] >= kernel[1]
    tiled = (tuple(stride) == tuple(kernel) and shape[2] == g.shape[2] * kernel[0]
             and shape[3] == g.shape[3] * kernel[1])
    padded = K.channel_major(g, shape, zeros=not tiled)  # the layout of convolution outputs
    for k, view in K.window_views(padded, kernel, stride, g.shape[2:]):
        if disjoint:
            xp.multiply(g, idx == k, out=view)
        else:
            view += g * (idx == k)
    return K.compact_crop(padded, hw, pads)


def _max_gather(x, idx, *, kernel, stride, pads):
    """The values of x (N, C, H, W) at the argmax positions (the adjoint of _max_scatter)."""
    xp = get_array_module(x)
    kernels = kernels_for(xp, x)
    if kernels is not None:
        return kernels.max_gather(x, idx, kernel, stride, pads)
    padded = K.pad_nchw(x, pads, 0)
    out = xp.zeros_like(x, shape=idx.shape)
    for k, view in K.window_views(padded, kernel, stride, idx.shape[2:]):
        xp.copyto(out, view, where=(idx == k))
    return out


_max_scatter_p = primitive(_max_scatter, name="max_pool2d_scatter")
_max_gather_p = primitive(_max_gather, name="max_pool2d_gather")

defvjp(_max_pool_p,
       lambda g, idx, x, *, kernel, stride, pads: _max_scatter_p(
           g, idx, hw=x.shape[2:], kernel=kernel, stride=stride, pads=pads),
       reads=[("ans",)], fresh=True)  # the scatter writes a new array
defvjp(_max_scatter_p,
       lambda gx, ans, g, idx, *, hw, kernel, stride, pads: _max_gather_p(
           gx, idx, kernel=kernel, stride=stride, pads=pads),
       None, reads=[(1,), ()])
defvjp(_max_gather_p,
       lambda gy, ans, x, idx, *, kernel, stride, pads: _max_scatter_p(
           gy, idx, hw=x.shape[2:], kernel=kernel, stride=stride, pads=pads),
       None, reads=[(1,), ()])


# --- average pooling ---------------------------------------------------------------------------

def _divisor(x, hw, kernel, stride, pads, include_pad, extra=(0, 0)):
    """The number each window's sum is divided by: kh*kw, or (OH, OW) counts of the cells that
    count: the real ones, and with include_pad the padding too, but never the `extra` (bottom,
    right) cells that ceil_mode adds (PyTorch's divisor)."""
    if include_pad and not any(extra):
        return kernel[0] * kernel[1]
    xp = get_array_module(x)
    if include_pad:
        real = (pads[0], pads[1] - extra[0], pads[2], pads[3] - extra[1])
        counted = (hw[0] + real[0] + real[1], hw[1] + real[2] + real[3])
        ones = K.pad_nchw(xp.ones_like(x, shape=(1, 1) + counted), (0, extra[0], 0, extra[1]), 0)
    else:
        ones = K.pad_nchw(xp.ones_like(x, shape=(1, 1) + tuple(hw)), pads, 0)
    out_hw = K.pool_out_hw(hw, kernel, stride, pads)
    count = xp.zeros_like(x, shape=(1, 1) + out_hw)
    for _, view in K.window_views(ones, kernel, stride, out_hw):
        count += view
    return count


def _avg_pool(x, *, kernel, stride, pads, include_pad, extra=(0, 0)):
    out_hw = K.pool_out_hw(x.shape[2:], kernel, stride, pads)
    kernels = kernels_for(get_array_module(x), x)
    if kernels is not None:
        return kernels.avg_pool(x, kernel, stride, pads, out_hw, include_pad, extra)
    padded = K.pad_nchw(x, pads, 0)
    total = None
    for _, view in K.window_views(padded, kernel, stride, out_hw):
        if total is None:
            total = view.copy(order="K")
        else:
            total += view
    total /= _divisor(x, x.shape[2:], kernel, stride, pads, include_pad, extra)
    return total


def _avg_spread(g, *, hw, kernel, stride, pads, include_pad, extra=(0, 0)):
    """The adjoint of _avg_pool: each output cotangent spread evenly over its window."""
    xp = get_array_module(g)
    kernels = kernels_for(xp, g)
    if kernels is not None:
        return kernels.avg_spread(g, hw, kernel, stride, pads, include_pad, extra)
    n, c = g.shape[:2]
    g = g / _divisor(g, hw, kernel, stride, pads, include_pad, extra)
    padded = K.channel_major(g, (n, c, hw[0] + pads[0] + pads[1], hw[1] + pads[2] + pads[3]))
    for _, view in K.window_views(padded, kernel, stride, g.shape[2:]):
        view += g
    return K.compact_crop(padded, hw, pads)


_avg_pool_p = primitive(_avg_pool, name="avg_pool2d")
_avg_spread_p = primitive(_avg_spread, name="avg_pool2d_spread")

defvjp(_avg_pool_p,
       lambda g, ans, x, **kw: _avg_spread_p(g, hw=x.shape[2:], **kw), reads=[()])
defvjp(_avg_spread_p, lambda gx, ans, g, *, hw, **kw: _avg_pool_p(gx, **kw), reads=[()])


# --- public functions --------------------------------------------------------------------------

def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over kernel_size windows of x (N, C, H, W); stride defaults to kernel_size, padding
    pads with -inf (at most half the kernel, as in PyTorch); windows may overlap. Ties send the
    gradient to the first maximum in the window (row-major), as PyTorch does. `ceil_mode` rounds
    the output size up (a last, partial window), PyTorch's rule: it must start inside the input
    or the left padding."""
    k, s, p = _pool_setup("max_pool2d", x, kernel_size, stride, padding, 2, ceil_mode)
    return _max_pool_p(x, kernel=k, stride=s, pads=p)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, ceil_mode=False):
    """Mean over kernel_size windows of x (N, C, H, W), zero padding; padded cells count in the
    divisor unless count_include_pad=False (PyTorch's default and option). With `ceil_mode` (as
    max_pool2d's) the cells of a last window past the padding never count (PyTorch's divisor)."""
    k, s, p = _pool_setup("avg_pool2d", x, kernel_size, stride, padding, 2, ceil_mode)
    return _avg_pool_p(x, kernel=k, stride=s, pads=p, include_pad=bool(count_include_pad),
                       **_extra_kw(p))


def max_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """max_pool2d for x (N, C, L), over a height-1 axis."""
    k, s, p = _pool_setup("max_pool1d", x, kernel_size, stride, padding, 1, ceil_mode)
    return fnp.squeeze(_max_pool_p(fnp.expand_dims(x, 2), kernel=k, stride=s, pads=p), 2)


def avg_pool1d(x, kernel_size, stride=None, padding=0, count_include_pad=True, ceil_mode=False):
    """avg_pool2d for x (N, C, L), over a height-1 axis."""
    k, s, p = _pool_setup("avg_pool1d", x, kernel_size, stride, padding, 1, ceil_mode)
    y = _avg_pool_p(fnp.expand_dims(x, 2), kernel=k, stride=s, pads=p,
                    include_pad=bool(count_include_pad), **_extra_kw(p))
    return fnp.squeeze(y, 2)


def _extra_kw(pads) -> dict:
    """{'extra': (bottom, right)} when ceil_mode grew the (symmetric) pads, else {}."""
    extra = (pads[1] - pads[0], pads[3] - pads[2])
    return {"extra": extra} if any(extra) else {}


def global_avg_pool(x):
    """Mean over every axis after the channel axis: (N, C, ...) -> (N, C)."""
    xs = tuple(getattr(x, "shape", ()))
    if len(xs) < 3:
        raise ValueError(f"global_avg_pool: expected an input (N, C, ...) with at least one "
                         f"spatial axis, got shape {xs}")
    return fnp.mean(x, axis=tuple(range(2, len(xs))))


def _adaptive_matrix(like, n_in: int, n_out: int):
    """(n_out, n_in) averaging matrix with PyTorch's windows [floor(i*n/m), ceil((i+1)*n/m))."""
    xp = get_array_module(like)
    a = xp.zeros((n_out, n_in), dtype=like.dtype)
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = -((-(i + 1) * n_in) // n_out)
        a[i, start:end] = 1.0 / (end - start)
    return a


def adaptive_avg_pool2d(x, output_size):
    """Average pooling of x (N, C, H, W) to output_size (an int or a pair; None keeps that axis)
    with PyTorch's windows. When the sizes divide, this is avg_pool2d with kernel = stride =
    H/OH; otherwise, since the windows are rectangles, y = A_h @ x @ A_w^T with small averaging
    matrices (built by a loop over the OH + OW output rows and columns, not over the grid)."""
    xs = tuple(getattr(x, "shape", ()))
    if len(xs) != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected a 4-D input (N, C, H, W), got shape {xs}")
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size, output_size)
    out = tuple(n if o is None else int(o) for n, o in zip(xs[2:], output_size))
    if len(out) != 2 or min(out) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be a positive int or pair, "
                         f"got {output_size!r} (input shape {xs})")
    (h, w), (oh, ow) = xs[2:], out
    if h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        return _avg_pool_p(x, kernel=k, stride=k, pads=(0, 0, 0, 0), include_pad=True)
    plain = strip(x)
    a_h = _adaptive_matrix(plain, h, oh)
    a_wt = _adaptive_matrix(plain, w, ow).T
    return fnp.matmul(fnp.matmul(a_h, x), a_wt)


def pool_output_shape(x: Any, kernel_size, stride=None, padding=0, ceil_mode=False) -> tuple:
    """The shape max_pool2d / avg_pool2d (or the 1-D forms) would return, without running them."""
    xs = tuple(getattr(x, "shape", ()))
    nd = len(xs) - 2
    kernel, st, pads = _pool_setup("max_pool1d" if nd == 1 else "max_pool2d", x, kernel_size, stride,
                                   padding, nd, ceil_mode)
    spatial = xs[2:] if nd == 2 else (1,) + xs[2:]
    out = tuple((n + p0 + p1 - k) // s + 1
                for n, k, s, (p0, p1) in zip(spatial, kernel, st, (pads[:2], pads[2:])))
    return xs[:2] + (out if nd == 2 else out[1:])
