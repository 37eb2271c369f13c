"""Activation functions: each a single primitive with a hand-written rule that reads only what it
needs (relu, sigmoid, tanh, softmax: their output; the others: their input).

The forward passes are plain NumPy (they dispatch to CuPy for CuPy arrays) and keep the input's
floating dtype; scalar options are used as Python floats so that float32 stays float32. The rules
are written with fnn.numpy, so every activation can be differentiated twice.
"""

from __future__ import annotations

import math

import numpy as np

import fnn.numpy as fnp
from fnn.autodiff.tracer import any_traced, defvjp, primitive, strip
from fnn.backend import get_array_module
from fnn.nn.functional._cuda_elementwise import relu_grad as relu_grad_kernel
from fnn.nn.functional._erf import erf, erf_array

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "sigmoid", "tanh",
    "softplus", "softsign", "mish", "hard_sigmoid", "hard_tanh", "hard_swish", "softmax",
    "log_softmax", "erf",
]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _prim(fun):
    return primitive(fun, name=f"fnn.nn.functional.{fun.__name__}")


# --- piecewise linear -------------------------------------------------------------------------

@_prim
def relu(x):
    """max(x, 0)."""
    return np.maximum(x, 0)


def _relu_vjp(g, ans, x):
    y = strip(ans)
    if type(g) is not np.ndarray:  # CuPy arrays: one launch instead of two
        dx = relu_grad_kernel(g, y)
        if dx is not None:
            return dx
    # g * mask, not where(mask, g, 0): NumPy's where with a scalar is several times slower.
    return g * (y > 0)


def _relu_vjp_owned(g, ans, x):
    """_relu_vjp written into g, a NumPy cotangent the backward pass owns (defvjp's `owned`):
    no new array the size of the activation."""
    np.multiply(g, strip(ans) > 0, out=g)
    return g


defvjp(relu, _relu_vjp, reads=[("ans",)], fresh=True, owned=_relu_vjp_owned)


@_prim
def relu6(x):
    """min(max(x, 0), 6)."""
    return np.clip(x, 0, 6)


defvjp(relu6, lambda g, ans, x: fnp.where((strip(x) > 0) & (strip(x) < 6), g, 0.0), reads=[(0,)])


@_prim
def leaky_relu(x, negative_slope=0.01):
    """x where x >= 0, negative_slope * x elsewhere."""
    return np.where(x >= 0, x, x * float(negative_slope))


defvjp(leaky_relu,
       lambda g, ans, x, negative_slope=0.01: fnp.where(strip(x) > 0, g, g * float(negative_slope)),
       reads=[(0,)])


@_prim
def hard_tanh(x, min_val=-1.0, max_val=1.0):
    """x clipped to [min_val, max_val]."""
    return np.clip(x, float(min_val), float(max_val))


defvjp(hard_tanh,
       lambda g, ans, x, min_val=-1.0, max_val=1.0:
           fnp.where((strip(x) > min_val) & (strip(x) < max_val), g, 0.0),
       reads=[(0,)])


@_prim
def hard_sigmoid(x):
    """relu6(x + 3) / 6 (PyTorch's hardsigmoid)."""
    return np.clip(x / 6 + 0.5, 0, 1)


defvjp(hard_sigmoid,
       lambda g, ans, x: fnp.where((strip(x) > -3) & (strip(x) < 3), g / 6.0, 0.0), reads=[(0,)])


@_prim
def hard_swish(x):
    """x * relu6(x + 3) / 6 (PyTorch's hardswish)."""
    return x * np.clip(x / 6 + 0.5, 0, 1)


def _hard_swish_rule(g, ans, x):
    xv = strip(x)
    return fnp.where(xv <= -3, 0.0, fnp.where(xv < 3, g * (x / 3.0 + 0.5), g))


defvjp(hard_swish, _hard_swish_rule, reads=[(0,)])


# --- exponential family -----------------------------------------------------------------------

@_prim
def elu(x, alpha=1.0):
    """x where x > 0, alpha * (exp(x) - 1) elsewhere."""
    return np.where(x > 0, x, float(alpha) * np.expm1(np.minimum(x, 0)))


def _elu_rule(g, ans, x, alpha=1.0):
    pos = strip(x) > 0
    return fnp.where(pos, g, g * (float(alpha) * fnp.exp(fnp.where(pos, 0.0, x))))


defvjp(elu, _elu_rule, reads=[(0,)])


@_prim
def selu(x):
    """SELU_SCALE * elu(x, SELU_ALPHA) (the self-normalising constants)."""
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))


def _selu_rule(g, ans, x):
    pos = strip(x) > 0
    return fnp.where(pos, g * SELU_SCALE, g * (SELU_SCALE * SELU_ALPHA) * fnp.exp(fnp.where(pos, 0.0, x)))


defvjp(selu, _selu_rule, reads=[(0,)])


@_prim
def sigmoid(x):
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


defvjp(sigmoid, lambda g, ans, x: g * (ans * (1.0 - ans)), reads=[("ans",)])


@_prim
def tanh(x):
    """The hyperbolic tangent."""
    return np.tanh(x)


defvjp(tanh, lambda g, ans, x: g * (1.0 - ans * ans), reads=[("ans",)])


@_prim
def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * x)) / beta, computed stably; x itself where beta * x > threshold."""
    beta = float(beta)
    bx = x * beta if beta != 1.0 else x
    smooth = (np.log1p(np.exp(-np.abs(bx))) + np.maximum(bx, 0))
    if beta != 1.0:
        smooth = smooth / beta
    return np.where(bx > float(threshold), x, smooth)


def _softplus_rule(g, ans, x, beta=1.0, threshold=20.0):
    beta = float(beta)
    bx = x * beta if beta != 1.0 else x
    return fnp.where(strip(bx) > float(threshold), g, g * sigmoid(bx))


defvjp(softplus, _softplus_rule, reads=[(0,)])


@_prim
def softsign(x):
    """x / (1 + |x|)."""
    return x / (1 + np.abs(x))


def _softsign_rule(g, ans, x):
    d = 1.0 + fnp.abs(x)
    return g / (d * d)


defvjp(softsign, _softsign_rule, reads=[(0,)])


@_prim
def silu(x):
    """x * sigmoid(x) (also called swish)."""
    return x * sigmoid(x)


def _silu_rule(g, ans, x):
    s = sigmoid(x)
    return g * (s * (1.0 + x * (1.0 - s)))


defvjp(silu, _silu_rule, reads=[(0,)])
swish = silu


@_prim
def mish(x):
    """x * tanh(softplus(x))."""
    return x * np.tanh(softplus(x))


def _mish_rule(g, ans, x):
    t = tanh(softplus(x))
    return g * (t + x * (1.0 - t * t) * sigmoid(x))


defvjp(mish, _mish_rule, reads=[(0,)])


# --- gelu ---------------------------------------------------------------------------------------

@primitive(name="fnn.nn.functional.gelu")
def _gelu_exact(x):
    return x * (0.5 + 0.5 * erf_array(x * _SQRT_HALF))


def _gelu_exact_rule(g, ans, x):
    cdf = 0.5 + 0.5 * erf(x * _SQRT_HALF)
    pdf = fnp.exp(-0.5 * (x * x)) * _INV_SQRT_2PI
    return g * (cdf + x * pdf)


defvjp(_gelu_exact, _gelu_exact_rule, reads=[(0,)])


def _tanh_of_gelu_argument(x, xp):
    """tanh(sqrt(2/pi) (x + 0.044715 x^3)) in one fresh array, built in place (a transformer's
    MLP activations are large: each temporary costs an allocation and a pass)."""
    t = xp.multiply(x, x, out=xp.empty_like(x))  # out=: an array even for 0-d x
    t *= _GELU_C
    t += 1.0
    t *= x
    t *= _SQRT_2_OVER_PI
    return xp.tanh(t, out=t)


@primitive(name="fnn.nn.functional.gelu(approximate='tanh')")
def _gelu_tanh(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x, dtype=float)
    xp = get_array_module(x)
    if x.dtype.kind not in "fc":
        x = x.astype(xp.float64)
    y = _tanh_of_gelu_argument(x, xp)
    y += 1.0
    y *= x
    y *= 0.5
    return y


def _gelu_tanh_rule(g, ans, x):
    """g * (0.5 (1 + t) + 0.5 x (1 - t^2) u'), t = tanh(u), u' = sqrt(2/pi) (1 + 3 0.044715 x^2);
    in place on plain arrays, composed with fnn.numpy when differentiated again."""
    if not any_traced(g, x) and getattr(x, "dtype", np.dtype(int)).kind in "fc":
        xp = get_array_module(x)
        t = _tanh_of_gelu_argument(x, xp)
        half_x_du = xp.multiply(x, x, out=xp.empty_like(x))
        half_x_du *= 3.0 * _GELU_C
        half_x_du += 1.0
        half_x_du *= 0.5 * _SQRT_2_OVER_PI
        half_x_du *= x
        slope = xp.multiply(t, t, out=xp.empty_like(t))
        xp.subtract(1.0, slope, out=slope)
        slope *= half_x_du
        del half_x_du
        t += 1.0
        t *= 0.5
        t += slope
        t *= g
        return t
    x2 = x * x
    t = tanh(_SQRT_2_OVER_PI * (x + _GELU_C * (x2 * x)))
    du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * x2)
    return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


defvjp(_gelu_tanh, _gelu_tanh_rule, reads=[(0,)])


def gelu(x, approximate=False):
    """x * Phi(x), Phi the standard normal CDF (the exact, erf form, as PyTorch's default).

    `approximate='tanh'` (or True) gives the tanh approximation
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3))); False or 'none' the exact form.
    """
    if approximate is False or approximate is None or approximate == "none":
        return _gelu_exact(x)
    if approximate is True or approximate == "tanh":
        return _gelu_tanh(x)
    raise ValueError(f"gelu: approximate must be False/'none' (exact) or 'tanh'/True, "
                     f"got {approximate!r}")


# --- softmax ----------------------------------------------------------------------------------

def _check_axis(name, x, axis):
    nd = len(getattr(x, "shape", ()))
    if not isinstance(axis, (int, np.integer)) or not -nd <= axis < nd:
        raise ValueError(f"{name}: axis {axis!r} is out of range for an input of shape "
                         f"{tuple(getattr(x, 'shape', ()))}")


def _softmax_fun(x, axis=-1):
    e = x - np.max(x, axis=axis, keepdims=True)  # x has an axis (softmax checks): e is an array
    np.exp(e, out=e)  # one fresh array for the whole computation (attention weights are large)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def _log_softmax_fun(x, axis=-1):
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


_softmax = primitive(_softmax_fun, name="fnn.nn.functional.softmax")
_log_softmax = primitive(_log_softmax_fun, name="fnn.nn.functional.log_softmax")

def _softmax_rule(g, ans, x, axis=-1):
    """ans * (g - sum(g * ans)): one fresh array on plain arrays, fnn.numpy when traced."""
    if not any_traced(g, ans) and getattr(ans, "ndim", 0) and getattr(g, "shape", None) == ans.shape:
        t = g * ans
        s = t.sum(axis=axis, keepdims=True)
        get_array_module(t).subtract(g, s, out=t)
        t *= ans
        return t
    return ans * (g - fnp.sum(g * ans, axis=axis, keepdims=True))


defvjp(_softmax, _softmax_rule, reads=[("ans",)])
defvjp(_log_softmax,
       lambda g, ans, x, axis=-1: g - fnp.exp(ans) * fnp.sum(g, axis=axis, keepdims=True),
       reads=[("ans",)])


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum so that it never overflows."""
    _check_axis("softmax", x, axis)
    return _softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along `axis`, computed stably."""
    _check_axis("log_softmax", x, axis)
    return _log_softmax(x, axis=axis)
