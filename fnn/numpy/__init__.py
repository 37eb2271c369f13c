"""fnn.numpy: a differentiable NumPy namespace (`import fnn.numpy as fnp`).

Names and signatures follow NumPy's. Differentiable functions are primitives (rules in `vjps.py`)
or compositions of them; gradient-free helpers (creation, comparisons, argmax...) return plain
arrays; any other NumPy name is available for plain arrays and raises a clear error when handed a
traced value. Every function works on NumPy and CuPy arrays alike.
"""

from __future__ import annotations

from typing import Any as _Any

import numpy as _np

from fnn.autodiff.backward import broadcast_to
from fnn.numpy import linalg
from fnn.numpy import vjps as _vjps  # noqa: F401 (registers the rules)
from fnn.numpy.box_methods import _install_methods, register_dispatch
from fnn.numpy.contractions import dot, einsum, inner, matmul, outer, tensordot, vdot
from fnn.numpy.elementwise import *  # noqa: F403
from fnn.numpy.elementwise import abs, safe_divide, where  # noqa: A004
from fnn.numpy.helpers import *  # noqa: F403
from fnn.numpy.helpers import _NONDIFF_NAMES, array, asarray, ascontiguousarray, asanyarray, copy
from fnn.numpy.indexing import at, getitem, index_add, index_multiply, index_set
from fnn.numpy.reductions import (amax, amin, cumprod, cumsum, logsumexp, max, mean, min, prod,
                                  std, sum, var)
from fnn.numpy.shape import *  # noqa: F403
from fnn.numpy.shape import astype, ndim, reshape, shape, size

# Constants and dtypes, so `fnp.float32` and `fnp.pi` read as in NumPy.
pi, e, inf, nan, newaxis = _np.pi, _np.e, _np.inf, _np.nan, _np.newaxis
float16, float32, float64 = _np.float16, _np.float32, _np.float64
int8, int16, int32, int64 = _np.int8, _np.int16, _np.int32, _np.int64
uint8, uint32, bool_, complex64, complex128 = _np.uint8, _np.uint32, _np.bool_, _np.complex64, _np.complex128
ndarray, dtype, finfo, iinfo = _np.ndarray, _np.dtype, _np.finfo, _np.iinfo

_install_methods()
register_dispatch(dict(globals()), {k: getattr(linalg, k) for k in ("norm", "inv", "det", "slogdet", "solve")})


def __getattr__(name: str) -> _Any:
    """Other NumPy names: usable on plain arrays, a clear error naming them on traced values."""
    from fnn.numpy._wrapping import guarded

    value = getattr(_np, name)
    if callable(value) and not isinstance(value, type):
        return guarded(value, f"numpy.{name}")
    return value
