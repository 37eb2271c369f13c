"""`fnn.numpy.linalg`: norm, inv, det, slogdet, solve with gradients; other NumPy names guarded.

Matrix functions work on stacks of matrices (the last two axes), as NumPy's do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fnn.autodiff.tracer import Box, NoGradientError
from fnn.numpy._wrapping import guarded, prim
from fnn.numpy.elementwise import absolute, power
from fnn.numpy.reductions import max as max_
from fnn.numpy.reductions import min as min_
from fnn.numpy.reductions import sum as sum_


def _norm2(x, axis=None, keepdims=False):
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))


def _solve(a, b):
    return np.linalg.solve(a, b)


norm2 = prim(_norm2, name="linalg.norm")
inv = prim(np.linalg.inv, name="linalg.inv")
det = prim(np.linalg.det, name="linalg.det")
slogdet = prim(lambda a: tuple(np.linalg.slogdet(a)), name="linalg.slogdet", multiple_results=True)
solve = prim(_solve, name="linalg.solve")


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """Vector and matrix norms, as NumPy's `linalg.norm`.

    Differentiable for the 2-norm / Frobenius norm (also where x is 0 inside an unselected
    `where` branch), the 1-, inf-, -inf- and p-norms of vectors, and the 1- and inf-norms of
    matrices. Spectral and nuclear norms have no gradient rule.
    """
    if type(x) is not Box:  # as NumPy: integer (and list) inputs are taken as floats
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.inexact):
            x = x.astype(float)
    nd = len(getattr(x, "shape", np.shape(x)))
    if isinstance(axis, int):
        axis = (axis,)
    vector = (axis is not None and len(axis) == 1) or (axis is None and (nd == 1 or ord is None))
    if ord is None or ord == "fro" or (vector and ord == 2):
        return norm2(x, axis=None if axis is None else tuple(axis), keepdims=keepdims)
    if vector:
        ax = None if axis is None else axis[0]
        if ord == np.inf:
            return max_(absolute(x), axis=ax, keepdims=keepdims)
        if ord == -np.inf:
            return min_(absolute(x), axis=ax, keepdims=keepdims)
        if ord == 1:
            return sum_(absolute(x), axis=ax, keepdims=keepdims)
        if ord == 0:
            return np.sum(np.asarray(_plain(x)) != 0, axis=ax, keepdims=keepdims).astype(_plain(x).dtype)
        return power(sum_(power(absolute(x), ord), axis=ax, keepdims=keepdims), 1.0 / ord)
    row_axis, col_axis = (nd - 2, nd - 1) if axis is None else (axis[0] % nd, axis[1] % nd)
    if ord in (1, -1):
        col_sums = sum_(absolute(x), axis=row_axis, keepdims=True)
        reduce = max_ if ord == 1 else min_
        out = reduce(col_sums, axis=col_axis, keepdims=True)
    elif ord in (np.inf, -np.inf):
        row_sums = sum_(absolute(x), axis=col_axis, keepdims=True)
        reduce = max_ if ord == np.inf else min_
        out = reduce(row_sums, axis=row_axis, keepdims=True)
    else:
        if type(x) is Box:
            raise NoGradientError(f"fnn.numpy.linalg.norm(ord={ord!r}) of a matrix has no gradient rule")
        return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    if keepdims:
        return out
    from fnn.numpy.shape import squeeze  # noqa: PLC0415

    return squeeze(out, axis=(row_axis, col_axis))


def _plain(x: Any) -> Any:
    from fnn.autodiff.tracer import strip  # noqa: PLC0415

    return strip(x)


def __getattr__(name: str) -> Any:
    """Other names of numpy.linalg: usable on plain arrays, a clear error on traced ones."""
    value = getattr(np.linalg, name)
    if callable(value) and not isinstance(value, type):
        return guarded(value, f"numpy.linalg.{name}")
    return value
