"""Reductions and scans: sum, mean, prod, max/min, var/std, cumsum/cumprod, logsumexp.

Each primitive takes NumPy's leading arguments; `out=` is refused on traced values (arrays are
immutable here). Rules are in `vjps.py`.
"""

from __future__ import annotations

import numpy as np

from fnn.numpy._wrapping import prim
from fnn.numpy.elementwise import sqrt, where


def _check_out(out, name):
    if out is not None:
        raise TypeError(f"fnn.numpy.{name}: out= is not supported (fnn arrays are immutable)")


def _sum(a, axis=None, dtype=None, out=None, keepdims=False):
    _check_out(out, "sum")
    if hasattr(a, "sum"):  # the array's own method: one wrapper layer fewer than np.sum
        return a.sum(axis=axis, dtype=dtype, keepdims=keepdims)
    return np.sum(a, axis=axis, dtype=dtype, keepdims=keepdims)


def _mean(a, axis=None, dtype=None, out=None, keepdims=False):
    _check_out(out, "mean")
    a_dtype = getattr(a, "dtype", None)
    if dtype is None and a_dtype is not None and a_dtype.kind == "f" and a_dtype.itemsize >= 4:
        # What np.mean does for float32/float64 (a sum in the input's dtype, then one division),
        # without its Python-level bookkeeping, which dominates for small arrays.
        total = a.sum(axis=axis, keepdims=keepdims)  # raises NumPy's error for a bad axis
        n = 1
        shape = a.shape
        for ax in (range(len(shape)) if axis is None else
                   (axis,) if isinstance(axis, int) else axis):
            n *= shape[ax]
        if n:
            return total / n
    return np.mean(a, axis=axis, dtype=dtype, keepdims=keepdims)


def _prod(a, axis=None, dtype=None, out=None, keepdims=False):
    _check_out(out, "prod")
    return np.prod(a, axis=axis, dtype=dtype, keepdims=keepdims)


def _max(a, axis=None, out=None, keepdims=False):
    _check_out(out, "max")
    return np.max(a, axis=axis, keepdims=keepdims)


def _min(a, axis=None, out=None, keepdims=False):
    _check_out(out, "min")
    return np.min(a, axis=axis, keepdims=keepdims)


def _var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    _check_out(out, "var")
    return np.var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)


def _cumsum(a, axis=None, dtype=None, out=None):
    _check_out(out, "cumsum")
    return np.cumsum(a, axis=axis, dtype=dtype)


def _cumprod(a, axis=None, dtype=None, out=None):
    _check_out(out, "cumprod")
    return np.cumprod(a, axis=axis, dtype=dtype)


def _logsumexp(a, axis=None, keepdims=False):
    """log(sum(exp(a))) over `axis`, computed without overflow."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


sum = prim(_sum, name="sum")  # noqa: A001 (NumPy's name)
mean = prim(_mean, name="mean")
prod = prim(_prod, name="prod")
max = prim(_max, name="max")  # noqa: A001
min = prim(_min, name="min")  # noqa: A001
amax = max
amin = min
var = prim(_var, name="var")
cumsum = prim(_cumsum, name="cumsum")
cumprod = prim(_cumprod, name="cumprod")
logsumexp = prim(_logsumexp, name="logsumexp")


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    """Standard deviation: the square root of `var`.

    Where the variance is exactly 0 (a one-element slice, a constant slice) the gradient is 0, not
    NaN (inf * 0): a one-element std is constant, and 0 is in std's subgradient at a constant slice.
    """
    v = var(a, axis, dtype, out, ddof, keepdims)
    nonzero = v != 0
    return where(nonzero, sqrt(where(nonzero, v, 1.0)), 0.0)
