"""Convolutions: conv2d, conv1d and conv_transpose2d, each one primitive with hand-written VJPs.

The three linear maps of a convolution are the partial derivatives of one trilinear form
B(x, w, g) = <conv2d(x, w), g>, so each is the VJP of another, and every rule below is one of
these primitives (which keeps the rules differentiable: `fnn.jvp`, which transposes VJPs, and
second derivatives both work):

    _conv2d_p(x, w, b)      y  = conv(x, w) + b             (forward; saves the im2col columns)
    _conv_t_p(g, w, b)      dx = conv^T(g, w) + b           (input gradient = conv_transpose2d)
    _conv_weight_p(x, g)    dw = <g, im2col(x)>             (weight gradient from scratch)
    _weight_from_cols_p(g, cols), _cols_matmul_p(w, cols)   (the same two maps on saved columns)

Kernels (im2col as a loop over kernel offsets, col2im the same loop with +=, one GEMM per
convolution, or one batched matmul over groups for groups > 1) are in `_im2col.py`.
"""

from __future__ import annotations

from typing import Any

import fnn.numpy as fnp
from fnn.autodiff.tracer import defvjp, is_traced, primitive
from fnn.backend import get_array_module
from fnn.nn.functional import _im2col as K
from fnn.nn.functional._args import ints

__all__ = ["conv2d", "conv1d", "conv_transpose2d"]


# --- argument handling --------------------------------------------------------------------------

def _shape(a: Any) -> tuple:
    return tuple(getattr(a, "shape", ()))


def _check_common(fn, x, w, b, groups, nd, w_desc):
    """Ranks, groups and bias shape; returns nothing, raises ValueError naming fn and shapes."""
    xs, ws = _shape(x), _shape(w)
    both = f"(input shape {xs}, weight shape {ws})"
    layout = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    if len(xs) != nd + 2:
        raise ValueError(f"{fn}: expected a {nd + 2}-D input {layout}, got shape {xs} "
                         f"(weight shape {ws})")
    if len(ws) != nd + 2:
        raise ValueError(f"{fn}: expected a {nd + 2}-D weight {w_desc}, got shape {ws} "
                         f"(input shape {xs})")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r} {both}")
    if b is not None and _shape(b) != (ws[0] if fn != "conv_transpose2d" else ws[1] * groups,):
        expect = ws[0] if fn != "conv_transpose2d" else ws[1] * groups
        raise ValueError(f"{fn}: bias has shape {_shape(b)} but the output has {expect} channels "
                         f"{both}")


def _spatial_params(fn, xs, ws, stride, padding, dilation, nd, both):
    """(stride pair, pads (top, bottom, left, right), dilation pair) as 2-D parameters."""
    st = ints(stride, nd, "stride", fn)
    dil = ints(dilation, nd, "dilation", fn)
    if min(st) < 1 or min(dil) < 1:
        raise ValueError(f"{fn}: stride and dilation must be >= 1, got stride={stride!r}, "
                         f"dilation={dilation!r}")
    ks = ws[2:]
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * nd
        elif padding == "same":
            if max(st) != 1:
                raise ValueError(f"{fn}: padding='same' needs stride 1, got stride={stride!r}")
            # PyTorch/TF: total d*(k-1), the smaller half before, the extra cell after.
            pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(ks, dil)]
        else:
            raise ValueError(f"{fn}: padding must be an int, a tuple, 'same' or 'valid', "
                             f"got {padding!r}")
    else:
        p = ints(padding, nd, "padding", fn)
        if min(p) < 0:
            raise ValueError(f"{fn}: padding must be >= 0, got {padding!r}")
        pads = [(q, q) for q in p]
    for n, k, d, (p0, p1) in zip(xs[2:], ks, dil, pads):
        if d * (k - 1) + 1 > n + p0 + p1:
            raise ValueError(
                f"{fn}: the kernel (size {tuple(ks)}, dilation {dil}, effective "
                f"{tuple(dd * (kk - 1) + 1 for kk, dd in zip(ks, dil))}) is larger than the padded "
                f"input (spatial size {tuple(xs[2:])}, padding {tuple(pads)}) {both}")
    if nd == 1:
        return (1, st[0]), (0, 0) + pads[0], (1, dil[0])
    return st, pads[0] + pads[1], dil


def _conv_setup(fn, x, w, b, stride, padding, dilation, groups, nd):
    xs, ws = _shape(x), _shape(w)
    _check_common(fn, x, w, b, groups, nd, "(out, in/groups, " + ("k)" if nd == 1 else "kh, kw)"))
    c, o = xs[1], ws[0]
    if c % groups:
        raise ValueError(f"{fn}: groups={groups} does not divide the input's {c} channels "
                         f"(input shape {xs}, weight shape {ws})")
    if o % groups:
        raise ValueError(f"{fn}: groups={groups} does not divide the weight's {o} output channels "
                         f"(weight shape {ws}, input shape {xs})")
    if c != ws[1] * groups:
        raise ValueError(f"{fn}: input has {c} channels but the weight expects {ws[1] * groups} "
                         f"(weight shape {ws}, groups={groups})")
    both = f"(input shape {xs}, weight shape {ws})"
    return _spatial_params(fn, xs, ws, stride, padding, dilation, nd, both)


# --- the primitives ----------------------------------------------------------------------------

def _finish(y_view, b):
    """The (N, O, OH, OW) result as the GEMM wrote it, channel-major in memory (a transposed
    view, no copy), with the bias added in place. NumPy's elementwise operations keep that
    layout (batch norm, ReLU and residual sums run on it unchanged), and the next convolution's
    im2col then reads each channel contiguously; `reshape` (Flatten) copies where it must."""
    if b is not None:
        y_view += b.reshape(1, -1, 1, 1)
    return y_view


def _conv2d_fwd(x, w, b, *, stride, pads, dilation, groups, out_hw=None):
    if is_traced(x) or is_traced(w) or is_traced(b):
        # Boxes of an enclosing trace remain: let that trace record its own node, and keep x
        # itself (traced) for the weight rule, which then recomputes the columns differentiably.
        y = _conv2d_p(x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups,
                      out_hw=out_hw)
        return y, ("x", x)
    cols = K.im2col(x, w.shape[2], w.shape[3], stride, pads, dilation, out_hw)
    return _finish(K.cols_matmul(w, cols, groups), b), ("cols", cols)


def _conv2d(x, w, b, *, stride, pads, dilation, groups, out_hw=None):
    cols = K.im2col(x, w.shape[2], w.shape[3], stride, pads, dilation, out_hw)
    return _finish(K.cols_matmul(w, cols, groups), b)


_conv2d_p = primitive(_conv2d, name="conv2d", fwd=_conv2d_fwd)


def _conv_t(g, w, b, *, hw, stride, pads, dilation, groups):
    out = K.conv_input_grad(g, w, hw, stride, pads, dilation, groups)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _conv_t_fwd(g, w, b, **kw):
    # The residual is a memo the two rules share: both need the columns of the same cotangent.
    return _conv_t_p(g, w, b, **kw), {}


_conv_t_p = primitive(_conv_t, name="conv_transpose2d", fwd=_conv_t_fwd)


def _conv_weight(x, g, *, w_shape, stride, pads, dilation, groups):
    cols = K.im2col(x, w_shape[2], w_shape[3], stride, pads, dilation, g.shape[2:])
    return K.weight_from_cols(g, cols, w_shape, groups)


_conv_weight_p = primitive(_conv_weight, name="conv2d_weight_grad")


def _weight_from_cols(g, cols, *, w_shape, groups):
    return K.weight_from_cols(g, cols, w_shape, groups)


_weight_from_cols_p = primitive(_weight_from_cols, name="conv2d_weight_grad_from_columns")


def _cols_matmul(w, cols, *, groups):
    return _finish(K.cols_matmul(w, cols, groups), None)


_cols_matmul_p = primitive(_cols_matmul, name="conv2d_from_columns")


def _bias_grad(g, *_, **__):
    return fnp.sum(g, axis=(0, 2, 3))


# conv2d: y = conv(x, w) + b
def _conv2d_dx(g, res, x, w, b, *, stride, pads, dilation, groups, out_hw=None):
    return _conv_t_p(g, w, None, hw=x.shape[2:], stride=stride, pads=pads, dilation=dilation,
                     groups=groups)


def _conv2d_dw(g, res, x, w, b, *, stride, pads, dilation, groups, out_hw=None):
    kind, saved = res
    if kind == "cols":
        return _weight_from_cols_p(g, saved, w_shape=w.shape, groups=groups)
    return _conv_weight_p(saved, g, w_shape=w.shape, stride=stride, pads=pads, dilation=dilation,
                          groups=groups)


defvjp(_conv2d_p, _conv2d_dx, _conv2d_dw, _bias_grad, reads=[(1,), ("ans",), ()],
       fresh=True)  # the input cotangent is a new array (or a transposed view of one)


# conv_t: dx = conv^T(g, w) + b, linear in g: its VJP in g is the forward convolution.
def _cols_of(memo, gx, w_shape, stride, pads, dilation, out_hw):
    """im2col of the cotangent gx, built once for both rules of a conv_t node."""
    if memo.get("gx") is not gx:
        memo.clear()
        memo["gx"] = gx
        memo["cols"] = K.im2col(gx, w_shape[2], w_shape[3], stride, pads, dilation, out_hw)
    return memo["cols"]


def _conv_t_dg(gx, memo, g, w, b, *, hw, stride, pads, dilation, groups):
    if is_traced(gx) or is_traced(w):
        return _conv2d_p(gx, w, None, stride=stride, pads=pads, dilation=dilation,
                         groups=groups, out_hw=g.shape[2:])
    cols = _cols_of(memo, gx, w.shape, stride, pads, dilation, g.shape[2:])
    return _finish(K.cols_matmul(w, cols, groups), None)


def _conv_t_dw(gx, memo, g, w, b, *, hw, stride, pads, dilation, groups):
    if is_traced(gx) or is_traced(g):
        return _conv_weight_p(gx, g, w_shape=w.shape, stride=stride, pads=pads,
                              dilation=dilation, groups=groups)
    cols = _cols_of(memo, gx, w.shape, stride, pads, dilation, g.shape[2:])
    memo.clear()  # the weight rule runs last
    return K.weight_from_cols(g, cols, w.shape, groups)


defvjp(_conv_t_p, _conv_t_dg, _conv_t_dw, _bias_grad, reads=[(1,), (0,), ()])


def _conv_weight_dx(gw, ans, x, g, *, w_shape, stride, pads, dilation, groups):
    return _conv_t_p(g, gw, None, hw=x.shape[2:], stride=stride, pads=pads, dilation=dilation,
                     groups=groups)


def _conv_weight_dg(gw, ans, x, g, *, w_shape, stride, pads, dilation, groups):
    return _conv2d_p(x, gw, None, stride=stride, pads=pads, dilation=dilation, groups=groups,
                     out_hw=g.shape[2:])


defvjp(_conv_weight_p, _conv_weight_dx, _conv_weight_dg, reads=[(1,), (0,)])

defvjp(_weight_from_cols_p,
       lambda gw, ans, g, cols, *, w_shape, groups: _cols_matmul_p(gw, cols, groups=groups),
       None, reads=[(1,), ()])
defvjp(_cols_matmul_p,
       lambda gy, ans, w, cols, *, groups: _weight_from_cols_p(gy, cols, w_shape=w.shape,
                                                               groups=groups),
       None, reads=[(1,), ()])


# --- public functions --------------------------------------------------------------------------

def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in PyTorch) of x (N, C, H, W) with
    w (O, C/groups, kh, kw), plus b (O,). `padding`: an int, a pair, 'valid', or 'same' (stride
    1; with even kernels the extra cell goes after, as PyTorch and TensorFlow do)."""
    st, pads, dil = _conv_setup("conv2d", x, w, b, stride, padding, dilation, groups, 2)
    return _conv2d_p(x, w, b, stride=st, pads=pads, dilation=dil, groups=groups)


def conv1d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of x (N, C, L) with w (O, C/groups, k): conv2d over a height-1 axis."""
    st, pads, dil = _conv_setup("conv1d", x, w, b, stride, padding, dilation, groups, 1)
    y = _conv2d_p(fnp.expand_dims(x, 2), fnp.expand_dims(w, 2), b, stride=st, pads=pads,
                  dilation=dil, groups=groups)
    return fnp.squeeze(y, 2)


def conv_transpose2d(x, w, b=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                     groups=1):
    """Transposed convolution (PyTorch semantics): x (N, C_in, H, W), w (C_in, O/groups, kh, kw),
    b (O,). Output size (H - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1.
    It is the input-gradient of conv2d with weight w (which maps O channels to C_in)."""
    fn = "conv_transpose2d"
    xs, ws = _shape(x), _shape(w)
    _check_common(fn, x, w, b, groups, 2, "(in, out/groups, kh, kw)")
    both = f"(input shape {xs}, weight shape {ws})"
    if xs[1] % groups:
        raise ValueError(f"{fn}: groups={groups} does not divide the input's {xs[1]} channels {both}")
    if xs[1] != ws[0]:
        raise ValueError(f"{fn}: input has {xs[1]} channels but the weight expects {ws[0]} "
                         f"(weight shape {ws}, groups={groups})")
    st = ints(stride, 2, "stride", fn)
    dil = ints(dilation, 2, "dilation", fn)
    p = ints(padding, 2, "padding", fn)
    op = ints(output_padding, 2, "output_padding", fn)
    if min(st) < 1 or min(dil) < 1 or min(p) < 0 or min(op) < 0:
        raise ValueError(f"{fn}: need stride, dilation >= 1 and padding, output_padding >= 0, got "
                         f"stride={stride!r}, dilation={dilation!r}, padding={padding!r}, "
                         f"output_padding={output_padding!r}")
    for o_, s_, d_ in zip(op, st, dil):
        if o_ >= max(s_, d_):
            raise ValueError(f"{fn}: output_padding {op} must be smaller than the stride {st} or "
                             f"the dilation {dil}")
    hw = tuple((n - 1) * s_ - 2 * p_ + d_ * (k - 1) + o_ + 1
               for n, s_, p_, d_, k, o_ in zip(xs[2:], st, p, dil, ws[2:], op))
    if min(hw) < 1:
        raise ValueError(f"{fn}: the output would have spatial size {hw} {both}, padding={p}")
    return _conv_t_p(x, w, b, hw=hw, stride=st, pads=(p[0], p[0], p[1], p[1]), dilation=dil,
                     groups=groups)


def conv_output_shape(x: Any, w: Any, *, stride=1, padding=0, dilation=1, groups=1) -> tuple:
    """The shape conv1d/conv2d would return for `x` and `w` (arrays or anything with `.shape`),
    checked and computed without running the convolution."""
    nd = len(_shape(x)) - 2
    fn = "conv1d" if nd == 1 else "conv2d"
    st, pads, dil = _conv_setup(fn, x, w, None, stride, padding, dilation, groups, nd)
    xs, ws = _shape(x), _shape(w)
    spatial = xs[2:] if nd == 2 else (1,) + xs[2:]
    kernel = ws[2:] if nd == 2 else (1,) + ws[2:]
    out = tuple((n + p0 + p1 - d * (k - 1) - 1) // s + 1
                for n, k, s, d, (p0, p1) in zip(spatial, kernel, st, dil, (pads[:2], pads[2:])))
    return (xs[0], ws[0]) + (out if nd == 2 else out[1:])


def conv_transpose_output_shape(x: Any, w: Any, *, stride=1, padding=0, output_padding=0,
                                dilation=1, groups=1) -> tuple:
    """The shape conv_transpose2d would return (PyTorch's output size), without running it."""
    xs, ws = _shape(x), _shape(w)
    st, pad, opad, dil = (ints(v, 2, what, "conv_transpose2d") for v, what in
                          ((stride, "stride"), (padding, "padding"), (output_padding, "output_padding"),
                           (dilation, "dilation")))
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                for n, k, s, p, op, d in zip(xs[2:], ws[2:], st, pad, opad, dil))
    return (xs[0], ws[1] * groups) + out
