"""Elementwise functions: NumPy's ufuncs as primitives, plus a few composites.

Rules are in `vjps.py`. Functions whose derivative is zero almost everywhere (sign, floor, ...)
are plain helpers in `helpers.py`: their results carry no gradient, which is the right one.
"""

from __future__ import annotations

import math

import numpy as np

from fnn.backend import get_array_module

from fnn.numpy._wrapping import prim

# Arithmetic.
add = prim(np.add)
subtract = prim(np.subtract)
multiply = prim(np.multiply)
divide = prim(np.divide)
true_divide = divide
negative = prim(np.negative)
positive = prim(np.positive)
power = prim(np.power)
float_power = prim(np.float_power)
reciprocal = prim(np.reciprocal)
square = prim(np.square)
sqrt = prim(np.sqrt)
cbrt = prim(np.cbrt)
absolute = prim(np.absolute, name="abs")
abs = absolute  # noqa: A001 (NumPy's name)
fabs = absolute
mod = prim(np.remainder, name="mod")
remainder = mod
fmod = prim(np.fmod)

# Exponentials and logarithms.
exp = prim(np.exp)
exp2 = prim(np.exp2)
expm1 = prim(np.expm1)
log = prim(np.log)
log2 = prim(np.log2)
log10 = prim(np.log10)
log1p = prim(np.log1p)
logaddexp = prim(np.logaddexp)
logaddexp2 = prim(np.logaddexp2)

# Trigonometric and hyperbolic.
sin = prim(np.sin)
cos = prim(np.cos)
tan = prim(np.tan)
arcsin = prim(np.arcsin)
arccos = prim(np.arccos)
arctan = prim(np.arctan)
arctan2 = prim(np.arctan2)
hypot = prim(np.hypot)
sinh = prim(np.sinh)
cosh = prim(np.cosh)
tanh = prim(np.tanh)
arcsinh = prim(np.arcsinh)
arccosh = prim(np.arccosh)
arctanh = prim(np.arctanh)

# Comparisons that select a value.
maximum = prim(np.maximum)
minimum = prim(np.minimum)
fmax = prim(np.fmax)
fmin = prim(np.fmin)


def _clip(a, a_min=None, a_max=None):
    return np.clip(a, a_min, a_max)


clip = prim(_clip, name="clip")


def _where(condition, x, y):
    return np.where(condition, x, y)


_where3 = prim(_where, name="where")


def where(condition, x=None, y=None):
    """Elements of `x` where `condition`, else of `y`; with one argument, the indices (no gradient)."""
    if x is None and y is None:
        from fnn.numpy.helpers import nonzero  # noqa: PLC0415

        return nonzero(condition)
    return _where3(condition, x, y)


def _safe_divide(g, d):
    """g / d, but 0 where g is 0 (even where d is 0 or inf), and without warnings."""
    xp = get_array_module(g, d)
    if xp is not np:  # CuPy's ufuncs take no where=
        nonzero = g != 0
        return xp.where(nonzero, g / xp.where(nonzero, d, 1), 0).astype(xp.result_type(g, d))
    shape = np.broadcast_shapes(np.shape(g), np.shape(d))
    out = np.zeros_like(g, shape=shape, dtype=np.result_type(g, d))
    return np.divide(g, d, out=out, where=np.not_equal(g, 0))


safe_divide = prim(_safe_divide, name="safe_divide")
safe_divide.__doc__ = (
    "g / d that is 0 wherever g is 0. Rules of log, sqrt and norms divide by it, so a zero "
    "cotangent from an unselected `where` branch stays zero instead of becoming NaN."
)


def deg2rad(x):
    """Degrees to radians."""
    return multiply(x, math.pi / 180.0)


def rad2deg(x):
    """Radians to degrees."""
    return multiply(x, 180.0 / math.pi)


radians = deg2rad
degrees = rad2deg
