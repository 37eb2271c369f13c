"""`cupyx.scipy.special.ndtr` and `ndtri` (the normal CDF and its inverse) on fake CuPy arrays,
computed by SciPy on the host; like CuPy's ufuncs they refuse NumPy arrays."""

from __future__ import annotations

import scipy.special as _special

import cupy as _cp


def ndtr(x):
    return _cp._wrap(_special.ndtr(_cp._strict(x)))


def ndtri(y):
    return _cp._wrap(_special.ndtri(_cp._strict(y)))
