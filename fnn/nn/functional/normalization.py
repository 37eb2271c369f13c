"""Normalisation: batch norm (training and inference forms), layer norm and group norm.

batch_norm and layer_norm are one primitive each, with the standard fused backward formula
    dx = (1/N) * inv_std * (N * gs - sum(gs) - xhat * sum(gs * xhat)),   gs = g * scale,
reading the normalised input `xhat` and `inv_std` that the forward pass saves as residuals (so the
tape holds neither the centred input nor the statistics twice). The forward passes and the rules
are written with fnn.numpy, so both can be differentiated again. group_norm reuses layer_norm's
primitive over groups. Scale and bias have shape (C,) and may be None.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

import fnn.numpy as fnp
from fnn.autodiff.tracer import defvjp, is_traced, primitive, strip
from fnn.backend import get_array_module
from fnn.nn.functional._cuda_batch_norm import batch_norm_kernels

__all__ = ["batch_norm", "batch_stats", "running_average", "batch_norm_inference", "layer_norm", "group_norm"]


def _shape(a):
    return tuple(getattr(a, "shape", ()))


def _bn_axes(ndim):
    return (0,) + tuple(range(2, ndim))


def _channel_shape(ndim, c):
    return (1, c) + (1,) * (ndim - 2)


def _check_affine(name, x, scale, bias, axis_text, c):
    for what, p in (("scale", scale), ("bias", bias)):
        if p is not None and _shape(p) != (c,):
            raise ValueError(f"{name}: {what} has shape {_shape(p)} but the input has {c} "
                             f"{axis_text} (x shape {_shape(x)}, {what} shape {_shape(p)}); "
                             f"expected {what} shape ({c},)")


# --- batch norm -------------------------------------------------------------------------------

def _channel_sum(a, b=None):
    """Per-channel sum of a (or of a * b, without the temporary) over every axis but axis 1."""
    xp = get_array_module(a)
    idx = "abcdefghij"[:a.ndim]
    if b is None:
        return xp.einsum(f"{idx}->b", a)
    return xp.einsum(f"{idx},{idx}->b", a, b)


# One-slot memo of the statistics of the last plain batch normalised, so that batch_stats (which
# a BatchNorm layer calls right after batch_norm on the same array) need not pass over it again.
_last_stats: list = [None, None, None]


def _bn_forward(x, scale, bias, eps=1e-5):
    if is_traced(x) or is_traced(scale) or is_traced(bias):
        return _bn_forward_traced(x, scale, bias, eps)
    xp = get_array_module(x)
    nd = x.ndim
    c = x.shape[1]
    n = x.size // c
    cshape = _channel_shape(nd, c)
    kernels = batch_norm_kernels(x, scale, bias)
    if kernels is not None:  # CuPy: one launch
        y, xhat, mean, var, inv_std = kernels.forward(x, scale, bias, eps)
        _last_stats[:] = [weakref.ref(x), mean, var]
        return y, (xhat, inv_std.reshape(cshape), {})
    mean = _channel_sum(x) * (1.0 / n)
    xhat = x - mean.reshape(cshape)
    var = _channel_sum(xhat, xhat) * (1.0 / n)
    try:
        _last_stats[:] = [weakref.ref(x), mean, var]
    except TypeError:  # an array type without weak references
        _last_stats[:] = [None, None, None]
    inv_std = 1.0 / xp.sqrt(var + eps)
    xhat *= inv_std.reshape(cshape)
    if scale is None:
        y = xhat if bias is None else xhat + bias.reshape(cshape)
    else:
        y = xp.multiply(xhat, scale.reshape(cshape))
        if bias is not None:
            y += bias.reshape(cshape)
    return y, (xhat, inv_std.reshape(cshape), {})


def _bn_forward_traced(x, scale, bias, eps=1e-5):
    nd = len(_shape(x))
    axes = _bn_axes(nd)
    mean = fnp.mean(x, axis=axes, keepdims=True)
    xc = x - mean
    var = fnp.mean(xc * xc, axis=axes, keepdims=True)
    inv_std = 1.0 / fnp.sqrt(var + eps)
    xhat = xc * inv_std
    y = xhat
    cshape = _channel_shape(nd, _shape(x)[1])
    if scale is not None:
        y = y * fnp.reshape(scale, cshape)
    if bias is not None:
        y = y + fnp.reshape(bias, cshape)
    return y, (xhat, inv_std, {})


def _bn_fun(x, scale, bias, eps=1e-5):
    return _bn_forward(x, scale, bias, eps)[0]


_batch_norm = primitive(_bn_fun, name="fnn.nn.functional.batch_norm", fwd=_bn_forward)


def _plain(*vals):
    return not any(is_traced(v) for v in vals)


def _bn_sums(g, res, need_gx=True):
    """(sum of g, sum of g * xhat) per channel for this cotangent, computed once for the three
    rules of a node (they run one after another with the same g; the memo lives in res)."""
    xhat, inv_std, memo = res
    if memo.get("g") is not g:
        memo.clear()
        memo["g"] = g
    if "sg" not in memo and batch_norm_kernels(g, xhat) is not None:
        _, sums = batch_norm_kernels(g, xhat).backward(g, xhat, None, inv_std, want_dx=False)
        memo["sg"], memo["sgx"] = sums[0], sums[1]
    if "sg" not in memo:
        memo["sg"] = _channel_sum(g)
    if need_gx and "sgx" not in memo:
        memo["sgx"] = _channel_sum(g, xhat)
    return memo["sg"], memo.get("sgx")


def _bn_x_rule(g, res, x, scale, bias, eps=1e-5):
    xhat, inv_std, _ = res
    gshape = _shape(g)
    nd = len(gshape)
    axes = _bn_axes(nd)
    n = math.prod(gshape[a] for a in axes)
    cshape = _channel_shape(nd, gshape[1])
    if _plain(g, xhat, inv_std, scale):
        kernels = batch_norm_kernels(g, xhat, scale)
        if kernels is not None:  # CuPy: the sums (unless another rule made them) and dx, one launch
            memo = res[2]
            if memo.get("g") is g and "sg" in memo:
                sums = kernels.xp.concatenate([memo["sg"], memo["sgx"]])
                return kernels.backward(g, xhat, scale, inv_std, sums=sums)[0]
            dx, sums = kernels.backward(g, xhat, scale, inv_std)
            memo.clear()
            memo.update(g=g, sg=sums[0], sgx=sums[1])
            return dx
        # dx = k * (g - sum_g / n - xhat * sum_gx / n),  k = scale * inv_std, in three passes
        sg, sgx = _bn_sums(g, res)
        k = inv_std.reshape(-1) if scale is None else scale * inv_std.reshape(-1)
        dx = g * k.reshape(cshape)
        t = xhat * (k * sgx * (1.0 / n)).reshape(cshape)
        dx -= t
        dx -= (k * sg * (1.0 / n)).reshape(cshape)
        return dx
    gs = g if scale is None else g * fnp.reshape(scale, cshape)
    sum_gs = fnp.sum(gs, axis=axes, keepdims=True)
    sum_gsx = fnp.sum(gs * xhat, axis=axes, keepdims=True)
    return (inv_std * (1.0 / n)) * (gs * float(n) - sum_gs - xhat * sum_gsx)


def _bn_scale_rule(g, res, x, scale, bias, eps=1e-5):
    if _plain(g, res[0]):
        return _bn_sums(g, res)[1]
    return fnp.sum(g * res[0], axis=_bn_axes(len(_shape(g))))


def _bn_bias_rule(g, res, x, scale, bias, eps=1e-5):
    if _plain(g):
        return _bn_sums(g, res, need_gx=False)[0]
    return fnp.sum(g, axis=_bn_axes(len(_shape(g))))


defvjp(_batch_norm, _bn_x_rule, _bn_scale_rule, _bn_bias_rule,
       reads=[(1, "ans"), ("ans",), ("ans",)])


def _check_bn_input(name, x, scale, bias):
    xs = _shape(x)
    if len(xs) < 2:
        raise ValueError(f"{name}: the input must be (N, C, ...) with at least 2 axes, got x shape "
                         f"{xs} (scale shape {_shape(scale) if scale is not None else None})")
    _check_affine(name, x, scale, bias, "channels on axis 1", xs[1])


def batch_norm(x, scale=None, bias=None, *, eps=1e-5):
    """Normalise x of shape (N, C, ...) with the statistics of the batch: the mean and the biased
    variance over every axis but axis 1; then `* scale + bias` per channel (each (C,) or None)."""
    _check_bn_input("batch_norm", x, scale, bias)
    return _batch_norm(x, scale, bias, eps=float(eps))


def batch_stats(x, ddof=0):
    """(mean, var), each of shape (C,), of x (N, C, ...) over every axis but axis 1, as plain arrays
    (no gradient flows through them): for running statistics. `ddof=1` gives the unbiased variance
    that PyTorch keeps in its running_var; the default 0 is the variance batch_norm divides by."""
    x = strip(x)
    xs = _shape(x)
    if len(xs) < 2:
        raise ValueError(f"batch_stats: the input must be (N, C, ...) with at least 2 axes, got x "
                         f"shape {xs}")
    last = _last_stats
    if ddof == 0 and last[0] is not None and last[0]() is x:
        return last[1], last[2]
    axes = _bn_axes(len(xs))
    mean = np.mean(x, axis=axes)
    n = math.prod(xs[a] for a in axes)
    centred = x - np.reshape(mean, _channel_shape(len(xs), xs[1]))
    var = np.sum(centred * centred, axis=axes) / max(n - ddof, 1)
    return mean, var.astype(mean.dtype, copy=False)


def running_average(old_mean, old_var, mean, var, count: int, momentum: float) -> tuple:
    """The running statistics a BatchNorm layer keeps, as PyTorch updates them:
    `(1 - momentum) * old + momentum * new`, with the batch variance made unbiased
    (`count / (count - 1)`); each result in its old value's dtype. Plain arrays (no gradient)."""
    correction = count / max(count - 1, 1)
    kernels = batch_norm_kernels(old_mean, old_var, mean, var)
    if kernels is not None:  # CuPy: one launch for both
        both = kernels.running_average(old_mean, old_var, mean, var, momentum, correction)
        if both is not None:
            return both
    new_mean = ((1.0 - momentum) * old_mean + momentum * mean).astype(old_mean.dtype, copy=False)
    new_var = ((1.0 - momentum) * old_var + momentum * (var * correction)).astype(old_var.dtype, copy=False)
    return new_mean, new_var


def batch_norm_inference(x, scale, bias, mean, var, *, eps=1e-5):
    """Normalise x (N, C, ...) with given per-channel statistics `mean` and `var` (each (C,)):
    (x - mean) / sqrt(var + eps) * scale + bias. Differentiable in x, scale and bias."""
    _check_bn_input("batch_norm_inference", x, scale, bias)
    c = _shape(x)[1]
    for what, p in (("mean", mean), ("var", var)):
        if _shape(p) != (c,):
            raise ValueError(f"batch_norm_inference: {what} has shape {_shape(p)} but the input has "
                             f"{c} channels on axis 1 (x shape {_shape(x)}, {what} shape {_shape(p)})")
    a = 1.0 / fnp.sqrt(var + float(eps))
    if scale is not None:
        a = a * scale
    b = -(mean * a)
    if bias is not None:
        b = b + bias
    cshape = _channel_shape(len(_shape(x)), c)
    return x * fnp.reshape(a, cshape) + fnp.reshape(b, cshape)


# --- layer norm -------------------------------------------------------------------------------

def _ln_forward_plain(x, scale, bias, eps):
    """_ln_forward on plain arrays: x-hat built in one fresh array, the output in another."""
    xp = get_array_module(x)
    xhat = x - x.mean(axis=-1, keepdims=True)
    var = xp.einsum("...i,...i->...", xhat, xhat)[..., None]
    var *= 1.0 / x.shape[-1]
    var += eps
    inv_std = xp.sqrt(var, out=var)
    xp.divide(1.0, inv_std, out=inv_std)
    xhat *= inv_std
    y = xhat * scale if scale is not None else xhat.copy()
    if bias is not None:
        y += bias
    return y, (xhat, inv_std)


def _ln_forward(x, scale, bias, eps=1e-5):
    if not (is_traced(x) or is_traced(scale) or is_traced(bias)) and getattr(x, "ndim", 0) \
            and x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        return _ln_forward_plain(x, scale, bias, eps)
    mean = fnp.mean(x, axis=-1, keepdims=True)
    xc = x - mean
    var = fnp.mean(xc * xc, axis=-1, keepdims=True)
    inv_std = 1.0 / fnp.sqrt(var + eps)
    xhat = xc * inv_std
    y = xhat
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y, (xhat, inv_std)


def _ln_fun(x, scale, bias, eps=1e-5):
    return _ln_forward(x, scale, bias, eps)[0]


_layer_norm = primitive(_ln_fun, name="fnn.nn.functional.layer_norm", fwd=_ln_forward)


def _ln_x_rule(g, res, x, scale, bias, eps=1e-5):
    xhat, inv_std = res
    d = _shape(g)[-1]
    if not (is_traced(g) or is_traced(xhat) or is_traced(scale)):
        # (inv_std / d) * (d gs - sum(gs) - xhat * sum(gs * xhat)), in one fresh array
        xp = get_array_module(g)
        out = g * scale if scale is not None else g.copy()
        sum_gs = out.sum(axis=-1, keepdims=True)
        sum_gsx = xp.einsum("...i,...i->...", out, xhat)[..., None]
        out *= float(d)
        out -= sum_gs
        out -= xhat * sum_gsx
        out *= inv_std * (1.0 / d)
        return out
    gs = g if scale is None else g * scale
    sum_gs = fnp.sum(gs, axis=-1, keepdims=True)
    sum_gsx = fnp.sum(gs * xhat, axis=-1, keepdims=True)
    return (inv_std * (1.0 / d)) * (gs * float(d) - sum_gs - xhat * sum_gsx)


def _lead_sum(v):
    """Sum over every axis but the last: the cotangent of a (D,) parameter broadcast over v."""
    return fnp.sum(v, axis=tuple(range(len(_shape(v)) - 1)))


defvjp(_layer_norm,
       _ln_x_rule,
       lambda g, res, x, scale, bias, eps=1e-5: _lead_sum(g * res[0]),
       lambda g, res, x, scale, bias, eps=1e-5: _lead_sum(g),
       reads=[(1, "ans"), ("ans",), ()])


def layer_norm(x, scale=None, bias=None, *, eps=1e-5):
    """Normalise x over its last axis (mean 0, biased variance 1), then `* scale + bias`
    (each of shape (D,), D = x.shape[-1], or None)."""
    xs = _shape(x)
    if len(xs) < 1:
        raise ValueError(f"layer_norm: the input must have at least 1 axis, got x shape {xs}")
    _check_affine("layer_norm", x, scale, bias, "features on its last axis", xs[-1])
    return _layer_norm(x, scale, bias, eps=float(eps))


# --- group norm -------------------------------------------------------------------------------

def group_norm(x, num_groups, scale=None, bias=None, *, eps=1e-5):
    """Normalise x (N, C, ...) over each group of C // num_groups channels together with the
    spatial axes (as PyTorch's GroupNorm), then `* scale + bias` per channel (each (C,) or None)."""
    xs = _shape(x)
    if len(xs) < 2:
        raise ValueError(f"group_norm: the input must be (N, C, ...) with at least 2 axes, got x "
                         f"shape {xs}")
    c = xs[1]
    if not isinstance(num_groups, (int, np.integer)) or num_groups < 1 or c % num_groups:
        raise ValueError(f"group_norm: num_groups={num_groups!r} must be a positive divisor of the "
                         f"{c} channels (x shape {xs})")
    _check_affine("group_norm", x, scale, bias, "channels on axis 1", c)
    n = xs[0]
    grouped = fnp.reshape(x, (n, int(num_groups), math.prod(xs[1:]) // int(num_groups)))
    y = fnp.reshape(_layer_norm(grouped, None, None, eps=float(eps)), xs)
    cshape = _channel_shape(len(xs), c)
    if scale is not None:
        y = y * fnp.reshape(scale, cshape)
    if bias is not None:
        y = y + fnp.reshape(bias, cshape)
    return y
