"""Indexing: `x[idx]` and its functional updates (`x.at[idx].set(v)`, `.add(v)`, `.multiply(v)`).

Traced arrays are immutable, so `x[idx] = v` is refused with a pointer to `.at`. Getting and
scatter-adding are each other's VJP, which keeps every indexing rule differentiable again.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from fnn.autodiff.tracer import Box, bind2
from fnn.backend import get_array_module, scatter_add, to_numpy
from fnn.numpy._wrapping import prim

_BASIC_TYPES = (int, slice, type(None), type(Ellipsis), np.integer)


def is_basic_index(idx: Any) -> bool:
    """True when `idx` uses only ints, slices, None and Ellipsis (so it selects no element twice)."""
    if isinstance(idx, tuple):
        return all(isinstance(i, _BASIC_TYPES) for i in idx)
    return isinstance(idx, _BASIC_TYPES)


_getitem = operator.getitem  # x[idx], called from C: a Python frame fewer per traced x[idx]


def _selection_shaped(out, idx, v):
    """v broadcast to the shape of out[idx]. NumPy's `ufunc.at` (2.x) applies a value array that
    must be broadcast along the index's leading axes only once (np.add.at(z, [[0, 0], [0, 0]],
    [1., 1.]) adds 2, not 4), so the values are given their full shape first; the shape comes from
    indexing a zero-strided stand-in of `out`, which reads no data."""
    if type(out) is not np.ndarray:
        return v
    stand_in = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=bool), out.shape, (0,) * out.ndim)
    shape = stand_in[idx].shape
    return v if np.shape(v) == shape else np.broadcast_to(v, shape)


def add_at(out, idx, v) -> None:
    """out[idx] += v in place, repeated advanced indices adding up (plain arrays only)."""
    if is_basic_index(idx):
        out[idx] += v
    elif type(out) is np.ndarray:
        np.add.at(out, idx, _selection_shaped(out, idx, v))
    else:  # CuPy's add.at takes no slices in the index; its scatter_add does
        scatter_add(out, idx, v)


def _multiply_at_grouped(out, idx, v) -> None:
    """out[idx] *= v in place with repeated positions multiplying up, for arrays whose module has
    no multiply.at (CuPy): the selected positions are grouped on the host (the index is copied
    there), each group's factors multiplied on the device, and each position scaled once."""
    xp = get_array_module(out)
    positions = np.arange(out.size).reshape(out.shape)[to_numpy(idx)]
    flat = positions.reshape(-1)
    if flat.size == 0:
        return
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    counts = np.diff(np.append(starts, flat.size))
    table = np.full((starts.size, int(counts.max())), flat.size)  # flat.size: the factor 1 below
    table[np.repeat(np.arange(starts.size), counts), np.arange(flat.size) - np.repeat(starts, counts)] = order
    factors = xp.broadcast_to(v, positions.shape).reshape(-1)
    factors = xp.concatenate([factors, xp.ones(1, factors.dtype)])[xp.asarray(table)].prod(axis=1)
    out.reshape(-1)[xp.asarray(ordered[starts])] *= factors.astype(out.dtype, copy=False)


def _index_add(x, idx, v):
    out = x.copy()
    add_at(out, idx, v)
    return out


def _index_set(x, idx, v):
    out = x.copy()
    out[idx] = v
    return out


def _index_multiply(x, idx, v):
    out = x.copy()
    if is_basic_index(idx):
        out[idx] *= v
    elif type(out) is np.ndarray:
        np.multiply.at(out, idx, _selection_shaped(out, idx, v))
    else:
        _multiply_at_grouped(out, idx, v)
    return out


getitem = prim(_getitem, name="getitem")
index_add = prim(_index_add, name="index_add")
index_set = prim(_index_set, name="index_set")
index_multiply = prim(_index_multiply, name="index_multiply")


class _IndexedRef:
    """`x.at[idx]`: the functional updates of the elements of `x` selected by `idx`."""

    __slots__ = ("x", "idx")

    def __init__(self, x: Any, idx: Any):
        self.x, self.idx = x, idx

    def get(self) -> Any:
        """x[idx]."""
        return getitem(self.x, self.idx)

    def set(self, v: Any) -> Any:
        """A copy of x with x[idx] = v."""
        return index_set(self.x, self.idx, v)

    def add(self, v: Any) -> Any:
        """A copy of x with v added at idx (repeated indices add up)."""
        return index_add(self.x, self.idx, v)

    def multiply(self, v: Any) -> Any:
        """A copy of x with x[idx] multiplied by v."""
        return index_multiply(self.x, self.idx, v)


class at:  # noqa: N801 (reads as fnp.at(x)[idx].set(v))
    """Functional updates for any array, traced or not: `fnp.at(x)[idx].set(v)`.

    Traced values also offer the same as `x.at[idx].set(v)`, as in JAX.
    """

    __slots__ = ("x",)

    def __init__(self, x: Any):
        self.x = x

    def __getitem__(self, idx: Any) -> _IndexedRef:
        return _IndexedRef(self.x, _canonical_index(idx))


def _canonical_index(idx: Any) -> Any:
    """Lists used as indices become arrays (NumPy's meaning), so an index is hashable-free and fixed."""
    if isinstance(idx, list):
        return _list_index(idx)
    if isinstance(idx, tuple):
        return tuple(_list_index(i) if isinstance(i, list) else i for i in idx)
    return idx


def _list_index(idx: list) -> Any:
    """A list index as an array; an empty list selects nothing (an empty *integer* array, as in NumPy)."""
    arr = np.asarray(idx)
    return arr.astype(np.intp) if arr.size == 0 else arr


def setitem_error(x: Any, idx: Any, v: Any) -> None:
    raise TypeError(
        "fnn: traced arrays are immutable, so `x[idx] = v` cannot be differentiated. Use the "
        "functional update `x = x.at[idx].set(v)` (or `.add(v)`), or `fnp.at(x)[idx].set(v)` "
        "which also works on plain arrays."
    )


def index(x: Any, idx: Any) -> Any:
    """x[idx] for traced values; booleans and lists are taken as NumPy takes them."""
    # One pass over a tuple index (the common `x[:, t]` of a loop): refuse traced entries, and
    # canonicalize only when a list is there.
    if type(idx) is tuple:
        has_list = False
        for i in idx:
            if type(i) is Box:
                raise TypeError("fnn: an index cannot be a traced (floating-point) value")
            if isinstance(i, list):
                has_list = True
        if has_list:
            idx = _canonical_index(idx)
    elif type(idx) is Box:
        raise TypeError("fnn: an index cannot be a traced (floating-point) value")
    elif isinstance(idx, list):
        idx = _list_index(idx)
    if type(x) is Box:  # the Box method's case: bind at once (the index holds no traced value)
        return bind2(getitem, x._trace, x, idx)
    return getitem(x, idx)
