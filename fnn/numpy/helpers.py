"""Functions whose results carry no gradient: creation, comparisons, tests, indices, rounding.

They accept traced values (reading the arrays inside) and return plain arrays. For rounding and
sign the derivative is zero almost everywhere, so a result without gradient is the right answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fnn.autodiff.tracer import Box
from fnn.numpy._wrapping import nondiff

_NONDIFF_NAMES = [
    # creation
    "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like",
    "arange", "linspace", "logspace", "geomspace", "eye", "identity", "tri", "meshgrid", "indices",
    # comparisons and tests
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "isfinite", "isnan", "isinf", "isposinf", "isneginf", "isclose", "allclose", "array_equal",
    "logical_and", "logical_or", "logical_not", "logical_xor", "all", "any",
    # indices and counting
    "argmax", "argmin", "argsort", "argwhere", "nonzero", "flatnonzero", "searchsorted",
    "digitize", "bincount", "count_nonzero", "unique", "histogram", "nanargmax", "nanargmin",
    # rounding and sign (zero derivative almost everywhere)
    "sign", "floor", "ceil", "round", "around", "rint", "trunc", "fix", "floor_divide", "heaviside",
    # dtypes and shapes
    "result_type", "can_cast", "promote_types", "broadcast_shapes", "iscomplexobj", "isrealobj",
]

_NONDIFF_NAMES = [n for n in _NONDIFF_NAMES if hasattr(np, n)]
for _name in _NONDIFF_NAMES:
    globals()[_name] = nondiff(getattr(np, _name), _name)


def asarray(a: Any, dtype: Any = None, **kwargs: Any) -> Any:
    """`a` as an array; traced values pass through unchanged (cast when a dtype is given)."""
    if type(a) is Box:
        if dtype is None:
            return a
        from fnn.numpy.shape import astype  # noqa: PLC0415

        return astype(a, dtype)
    if isinstance(a, (list, tuple)) and _contains_box(a):
        return array(a, dtype=dtype)
    return np.asarray(a, dtype=dtype, **kwargs)


def array(obj: Any, dtype: Any = None, copy: bool = True, **kwargs: Any) -> Any:
    """An array from `obj`; nested lists of traced values are stacked (with gradient)."""
    if type(obj) is Box:
        return asarray(obj, dtype)
    if isinstance(obj, (list, tuple)) and _contains_box(obj):
        from fnn.numpy.shape import astype, stack  # noqa: PLC0415

        out = stack([array(o) for o in obj])
        return out if dtype is None else astype(out, dtype)
    return np.array(obj, dtype=dtype, copy=copy, **kwargs)


def copy(a: Any, **kwargs: Any) -> Any:
    """A copy of `a` (traced values are immutable, so they are returned as they are)."""
    return a if type(a) is Box else np.copy(a, **kwargs)


def _contains_box(obj: Any) -> bool:
    if type(obj) is Box:
        return True
    if isinstance(obj, (list, tuple)):
        return any(_contains_box(o) for o in obj)
    return False


ascontiguousarray = asarray
asanyarray = asarray
