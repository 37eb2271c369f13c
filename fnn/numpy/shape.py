"""Shape functions: reshape, transpose, concatenate, stack, pad as primitives; the rest composed.

Composites are built from primitives with rules, so they need no rules of their own. Several use
one trick: apply the NumPy function to an array of element *indices*, then gather `x` with the
result (tile, repeat, roll, non-constant pad); the gather's VJP is a scatter-add, which is exactly
the gradient of any function that only copies elements around.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fnn.autodiff.backward import broadcast_to  # noqa: F401 (re-exported)
from fnn.autodiff.backward import cast
from fnn.autodiff.tracer import Box
from fnn.numpy._wrapping import prim
from fnn.numpy.elementwise import where
from fnn.numpy.indexing import getitem


def shape(a: Any) -> tuple:
    """The shape of an array, traced value or scalar."""
    s = getattr(a, "shape", None)
    return tuple(s) if s is not None else np.shape(a)


def ndim(a: Any) -> int:
    """The number of dimensions."""
    return len(shape(a))


def size(a: Any, axis: int | None = None) -> int:
    """The number of elements (along `axis`, if given)."""
    s = shape(a)
    if axis is not None:
        return s[axis]
    n = 1
    for d in s:
        n *= d
    return n


def _reshape(a, shape, order="C"):
    return np.reshape(a, shape, order=order)


def _transpose(a, axes=None):
    return np.transpose(a, axes)


def _concatenate(axis, *arrays):
    return np.concatenate(arrays, axis=axis)


def _stack(axis, *arrays):
    return np.stack(arrays, axis=axis)


def _pad_constant(array, pad_width, constant_values=0):
    return np.pad(array, pad_width, mode="constant", constant_values=constant_values)


_reshape_p = prim(_reshape, name="reshape")
transpose = prim(_transpose, name="transpose")
_concatenate_p = prim(_concatenate, name="concatenate")
_stack_p = prim(_stack, name="stack")
pad_constant = prim(_pad_constant, name="pad")


def reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None) -> Any:
    """`a` with a new shape (one entry may be -1)."""
    return _reshape_p(a, shape if newshape is None else newshape, order)


def astype(x: Any, dtype: Any, copy: bool = True) -> Any:
    """`x` as `dtype`; the gradient is cast back to x's dtype."""
    return cast(x, np.dtype(dtype))


def concatenate(arrays: Sequence[Any], axis: int | None = 0) -> Any:
    """Join arrays along an existing axis (flattened first when `axis` is None)."""
    arrays = list(arrays)
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    return _concatenate_p(axis, *arrays)


def _unstack(x, axis=0):
    return tuple(np.moveaxis(x, axis, 0))


unstack = prim(_unstack, name="unstack", multiple_results=True)
unstack.__doc__ = "The slices of `x` along `axis`, as a tuple (NumPy's unstack); the inverse of stack."


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """Join arrays along a new axis."""
    return _stack_p(axis, *list(arrays))


def ravel(a: Any, order: str = "C") -> Any:
    """`a` flattened to one dimension."""
    return reshape(a, (-1,), order)


def expand_dims(a: Any, axis: int | Sequence[int]) -> Any:
    """`a` with new size-1 axes at `axis`."""
    return reshape(a, np.expand_dims(np.empty(shape(a), dtype=bool), axis).shape)


def squeeze(a: Any, axis: int | Sequence[int] | None = None) -> Any:
    """`a` without its size-1 axes (those at `axis`, if given)."""
    return reshape(a, np.squeeze(np.empty(shape(a), dtype=bool), axis).shape)


def swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    """`a` with two axes exchanged."""
    perm = list(range(ndim(a)))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(a, tuple(perm))


def moveaxis(a: Any, source: int | Sequence[int], destination: int | Sequence[int]) -> Any:
    """`a` with axes moved to new positions (the others keep their order)."""
    n = ndim(a)
    src = [s % n for s in ([source] if isinstance(source, int) else source)]
    dst = [d % n for d in ([destination] if isinstance(destination, int) else destination)]
    rest = [ax for ax in range(n) if ax not in src]
    result = [None] * n
    for s, d in zip(src, dst):
        result[d] = s
    it = iter(rest)
    result = [r if r is not None else next(it) for r in result]
    return transpose(a, tuple(result))


def _each(fun: Any, arys: tuple) -> Any:
    """NumPy's atleast_*d convention: one array for one argument, a tuple for several; plain
    inputs (lists, scalars) come back as arrays."""
    out = [fun(a if type(a) is Box else np.asarray(a)) for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


def atleast_1d(*arys: Any) -> Any:
    """Each array with at least one dimension."""
    return _each(lambda a: a if ndim(a) >= 1 else reshape(a, (1,)), arys)


def atleast_2d(*arys: Any) -> Any:
    """Each array with at least two dimensions (new ones in front)."""
    return _each(lambda a: a if ndim(a) >= 2 else reshape(a, (1,) * (2 - ndim(a)) + shape(a)), arys)


def atleast_3d(*arys: Any) -> Any:
    """Each array with at least three dimensions, placed as NumPy places them."""
    return _each(_atleast_3d, arys)


def _atleast_3d(a: Any) -> Any:
    n = ndim(a)
    if n >= 3:
        return a
    if n == 0:
        return reshape(a, (1, 1, 1))
    if n == 1:
        return reshape(a, (1, shape(a)[0], 1))
    return reshape(a, shape(a) + (1,))


def hstack(arrays: Sequence[Any]) -> Any:
    """Join along the second axis (the first for 1-D arrays)."""
    arrays = [atleast_1d(a) for a in arrays]
    return concatenate(arrays, axis=0 if ndim(arrays[0]) == 1 else 1)


def vstack(arrays: Sequence[Any]) -> Any:
    """Join along the first axis, 1-D arrays becoming rows."""
    return concatenate([atleast_2d(a) for a in arrays], axis=0)


row_stack = vstack


def dstack(arrays: Sequence[Any]) -> Any:
    """Join along the third axis."""
    return concatenate([atleast_3d(a) for a in arrays], axis=2)


def column_stack(arrays: Sequence[Any]) -> Any:
    """1-D arrays as columns of a 2-D array; 2-D arrays joined along the second axis."""
    return concatenate([reshape(a, (-1, 1)) if ndim(a) < 2 else a for a in arrays], axis=1)


def _split_points(n: int, indices_or_sections: Any, even: bool) -> list[int]:
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if even and n % sections:
            raise ValueError("array split does not result in an equal division")
        base, extra = divmod(n, sections)
        sizes = [base + 1] * extra + [base] * (sections - extra)
        return list(np.cumsum([0] + sizes))
    return [0] + [int(i) for i in indices_or_sections] + [n]


def _split(a: Any, indices_or_sections: Any, axis: int, even: bool) -> list:
    axis = axis % ndim(a)
    points = _split_points(shape(a)[axis], indices_or_sections, even)
    lead = (slice(None),) * axis
    # plain slices, as NumPy takes them: negative points count from the end, unordered ones give empty pieces
    return [getitem(a, lead + (slice(lo, hi),)) for lo, hi in zip(points[:-1], points[1:])]


def split(a: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """Split into equal sections (or at the given indices) along `axis`."""
    return _split(a, indices_or_sections, axis, even=True)


def array_split(a: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """Split into nearly equal sections (or at the given indices) along `axis`."""
    return _split(a, indices_or_sections, axis, even=False)


def hsplit(a: Any, indices_or_sections: Any) -> list:
    """Split along the second axis (the first for 1-D arrays)."""
    return split(a, indices_or_sections, axis=0 if ndim(a) == 1 else 1)


def vsplit(a: Any, indices_or_sections: Any) -> list:
    """Split along the first axis."""
    return split(a, indices_or_sections, axis=0)


def _gather_by(a: Any, index_fun: Any) -> Any:
    """Apply a copying NumPy function to `a` through its element indices (see module doc)."""
    flat_index = np.arange(size(a)).reshape(shape(a))
    return getitem(ravel(a), index_fun(flat_index))


def tile(a: Any, reps: Any) -> Any:
    """`a` repeated `reps` times along each axis."""
    return _gather_by(a, lambda i: np.tile(i, reps))


def repeat(a: Any, repeats: Any, axis: int | None = None) -> Any:
    """Each element of `a` repeated (along `axis`, or over the flattened array)."""
    return _gather_by(a, lambda i: np.repeat(i, repeats, axis=axis))


def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """Elements shifted cyclically along `axis` (over the flattened array when None)."""
    return _gather_by(a, lambda i: np.roll(i, shift, axis=axis))


def pad(array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Any:
    """NumPy's pad. Modes that copy elements (edge, reflect, symmetric, wrap) and 'constant' are
    differentiable; the others are not."""
    if mode == "constant":
        return pad_constant(array, pad_width, kwargs.get("constant_values", 0))
    if mode == "empty":  # undefined padding values: zeros are as good as any (and need no gather)
        return pad_constant(array, pad_width, 0)
    if mode in ("edge", "reflect", "symmetric", "wrap"):
        return _gather_by(array, lambda i: np.pad(i, pad_width, mode=mode, **kwargs))
    if type(array) is Box:
        from fnn.autodiff.tracer import NoGradientError  # noqa: PLC0415

        raise NoGradientError(f"fnn.numpy.pad(mode={mode!r}) has no gradient rule")
    return np.pad(array, pad_width, mode=mode, **kwargs)


def flip(m: Any, axis: Any = None) -> Any:
    """Elements in reverse order along `axis` (all axes when None)."""
    n = ndim(m)
    axes = range(n) if axis is None else ([axis] if isinstance(axis, int) else axis)
    axes = {ax % n for ax in axes}
    return getitem(m, tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(n)))


def fliplr(m: Any) -> Any:
    """Reverse the second axis."""
    return flip(m, 1)


def flipud(m: Any) -> Any:
    """Reverse the first axis."""
    return flip(m, 0)


def triu(m: Any, k: int = 0) -> Any:
    """The upper triangle of the last two axes (the rest zeroed)."""
    # shape(m)[-2:] is (n,) for a 1-D m, which np.triu turns into an (n, n) mask, as NumPy does
    return where(np.triu(np.ones(shape(m)[-2:], dtype=bool), k), m, 0.0)


def tril(m: Any, k: int = 0) -> Any:
    """The lower triangle of the last two axes (the rest zeroed)."""
    return where(np.tril(np.ones(shape(m)[-2:], dtype=bool), k), m, 0.0)


def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The diagonal of the (axis1, axis2) planes, as the last axis (NumPy's layout)."""
    moved = moveaxis(a, (axis1, axis2), (-2, -1))
    n, m = shape(moved)[-2:]
    rows = np.arange(max(0, -offset), min(n, m - offset))
    return getitem(moved, (Ellipsis, rows, rows + offset))


def trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The sum along a diagonal."""
    from fnn.numpy.reductions import sum as sum_  # noqa: PLC0415

    return sum_(diagonal(a, offset, axis1, axis2), axis=-1)


def diag(v: Any, k: int = 0) -> Any:
    """The k-th diagonal of a 2-D array, or a 2-D array with 1-D `v` on its k-th diagonal."""
    if ndim(v) == 2:
        return diagonal(v, k)
    if ndim(v) != 1:
        raise ValueError("fnn.numpy.diag: input must be 1-D or 2-D")
    from fnn.numpy.indexing import index_set  # noqa: PLC0415

    n = shape(v)[0] + abs(k)
    rows = np.arange(shape(v)[0]) + max(0, -k)
    zeros = np.zeros_like(_plain(v), shape=(n, n))
    return index_set(zeros, (rows, rows + k), v)


def _plain(x: Any) -> Any:
    from fnn.autodiff.tracer import strip  # noqa: PLC0415

    return strip(x)


def take(a: Any, indices: Any, axis: int | None = None) -> Any:
    """Elements of `a` at `indices` along `axis` (of the flattened array when None)."""
    if isinstance(indices, list):  # an empty list is an empty *integer* index, as in np.take
        indices = np.asarray(indices, dtype=np.intp)
    if axis is None:
        return getitem(ravel(a), indices)
    axis = axis % ndim(a)
    return getitem(a, (slice(None),) * axis + (indices,))


def take_along_axis(arr: Any, indices: Any, axis: int | None = -1) -> Any:
    """Elements picked by an index array aligned with `arr` (argsort's output, say)."""
    if axis is None:
        return getitem(ravel(arr), indices)
    n = ndim(arr)
    axis = axis % n
    index = []
    for d in range(n):
        if d == axis:
            index.append(indices)
        else:
            shape_d = [1] * n
            shape_d[d] = shape(arr)[d]
            index.append(np.arange(shape(arr)[d]).reshape(shape_d))
    return getitem(arr, tuple(index))


def sort(a: Any, axis: int | None = -1, kind: Any = None, order: Any = None) -> Any:
    """Sorted copy; the gradient flows back to each element's original position."""
    if axis is None:
        a, axis = ravel(a), 0
    order_idx = np.argsort(_plain(a), axis=axis, kind=kind)
    return take_along_axis(a, order_idx, axis)
