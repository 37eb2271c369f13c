"""Cotangents kept in pieces during the backward pass and formed once, when they are read.

A loop over time steps makes many small cotangents for the same value; summing each into the
total as it arrives costs one full-size array operation per step. Two kinds are kept instead:

- `Scattered`: the cotangent of a value read in slices (`x[i]`, `x[:, t]`), as (index, values)
  pieces written into one buffer when the value's node is reached;
- `Products`: the cotangent of a matrix used at every step (`h @ w`), as the factors of its
  `a.T @ g` products, multiplied as one product over all their rows when read. At W4's sizes
  one (64 x 1600) @ (1600 x 64) product, with the two concatenations, costs well under the 50
  (64 x 32) @ (32 x 64) products and 49 sums it replaces (`benchmarks/weight_products.py`,
  BENCHMARKS.md). NumPy arrays only: other array types take the product at once.

The backward pass (`fnn.autodiff.backward`) adds pieces of one kind together and forms the value
(`dense()`) when a node reads it, when it meets a cotangent of another kind, and at the inputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fnn.backend import module_for_type
from fnn.autodiff.tracer import ArgSpec, strip

__all__ = ["Scattered", "Products", "KEPT_IN_PIECES", "weight_product", "zeros_like_value"]


def zeros_like_value(x: Any) -> Any:
    """A zero cotangent for `x` (plain, never traced), on x's device and of x's dtype."""
    x = strip(x)
    if type(x) is ArgSpec:
        return module_for_type(x.array_type).zeros(x.shape, x.dtype)
    if isinstance(x, (int, float, complex)):
        return type(x)(0)
    return np.zeros_like(x)  # dispatches to CuPy for CuPy arrays


_FULL = slice(None)
_NDARRAY = np.ndarray


def _array_type(x: Any) -> type:
    return x.array_type if type(x) is ArgSpec else type(x)


class Scattered:
    """A cotangent that is zero except where `pieces` (index, values) say, for a value shaped
    like `like` (an array or ArgSpec); made by the rule of indexing, densified once when read."""

    __slots__ = ("like", "pieces", "add_at")

    def __init__(self, like: Any, idx: Any, values: Any, add_at: Any):
        self.like = like
        self.pieces = [(idx, values)]
        self.add_at = add_at  # add_at(out, idx, values): in-place scatter-add

    def dense(self) -> Any:
        stacked = self._stacked()
        if stacked is not None:
            return stacked
        out = zeros_like_value(self.like)
        for idx, values in self.pieces:
            self.add_at(out, idx, values)
        return out

    def _stacked(self) -> Any:
        """The pieces written into one fresh array when they are `x[:, t]` (or `x[:, :, t]`,
        ...) for every t once (the slices a loop over time reads), else None: one buffer filled
        slice by slice instead of zeros plus T scatter-adds."""
        pieces = self.pieces
        like = self.like
        shape = like.shape
        first = pieces[0][0]
        if (type(first) is not tuple or not first or type(first[-1]) is not int
                or len(first) > len(shape) or len(pieces) != shape[len(first) - 1]):
            return None
        axis = len(first) - 1
        n = len(pieces)
        dtype = like.dtype
        for s in first[:axis]:
            if s != _FULL:
                return None
        seen = bytearray(n)
        k = axis + 1
        prefix = first[:axis]
        for idx, values in pieces:
            if type(idx) is not tuple or len(idx) != k or idx[:axis] != prefix:
                return None
            t = idx[axis]
            if (type(t) is not int or not -n <= t < n or seen[t]
                    or getattr(values, "dtype", None) != dtype):
                return None  # (a slice read twice: the general path adds the pieces)
            seen[t] = 1
        empty = np.empty if type(like) is np.ndarray else module_for_type(_array_type(like)).empty
        out = empty(shape, dtype)
        for idx, values in pieces:
            out[idx] = values  # every element is written: each t once, each slice full
        return out

    def added_to(self, other: Any) -> Any:
        """other + self, for a plain array `other`, in a fresh array."""
        out = other.copy()
        for idx, values in self.pieces:
            self.add_at(out, idx, values)
        return out


class Products:
    """A weight's cotangent `sum_i a_i.T @ g_i` kept as its factors until read: the pieces of a
    matrix used at every step of a loop (`h @ w`), multiplied as one product over all their rows
    instead of one small product and one sum per step (NumPy arrays only, one dtype)."""

    __slots__ = ("a_parts", "g_parts", "held", "partial")

    def __init__(self, a: np.ndarray, g: np.ndarray):
        self.a_parts = [a]
        self.g_parts = [g]
        self.held = a.size + g.size  # elements of factors held
        self.partial = None  # a part of the sum already formed (a cotangent that came in dense)

    def merge(self, other: Products) -> None:
        """Add `other`'s pieces to these (both made by the same pass, for the same matrix)."""
        self.a_parts += other.a_parts
        self.g_parts += other.g_parts
        self.held += other.held
        if other.partial is not None:
            self.add_dense(other.partial)
        if self.held > _PRODUCTS_HELD:  # a long loop: multiply what is held out now
            self.add_dense(self._product())
            self.a_parts, self.g_parts, self.held = [], [], 0

    def add_dense(self, x: np.ndarray) -> None:
        """Add a formed cotangent of the same matrix (same shape and dtype)."""
        self.partial = x if self.partial is None else self.partial + x

    def _product(self) -> np.ndarray:
        """sum_i a_i.T @ g_i over the pieces held, as one product over all their rows."""
        a_parts, g_parts = self.a_parts, self.g_parts
        if len(a_parts) == 1:
            return a_parts[0].T @ g_parts[0]
        return np.concatenate(a_parts).T @ np.concatenate(g_parts)

    def dense(self) -> np.ndarray:
        """The cotangent as one array (a new one, or the one formed part alone)."""
        if not self.a_parts:
            return self.partial
        out = self._product()
        if self.partial is not None:
            out += self.partial  # out is new: the product's own array
        return out


# The kinds above: a cotangent of one of them is read through its `dense()`.
KEPT_IN_PIECES = frozenset((Scattered, Products))

# A Products holds about this many elements of factors at most before it multiplies them out into
# its formed part; a factor larger than _PRODUCT_PIECE is multiplied at once (its product gains
# nothing from being joined to others).
_PRODUCTS_HELD = 2 ** 20
_PRODUCT_PIECE = 2 ** 14


def weight_product(a: Any, g: Any, b: Any) -> Any:
    """`a.T @ g` summed over a's leading axes, the cotangent of the matrix `b` (an array or
    ArgSpec) in `a @ b`: as a Products when the factors are small NumPy matrices of b's dtype (a
    loop's step), else formed now."""
    if a.ndim > 2:  # (row counts spelled out: reshape(-1, 0) of an empty array is ambiguous)
        rows = math.prod(a.shape[:-1])
        a = a.reshape(rows, a.shape[-1])
        g = g.reshape(rows, g.shape[-1])
    if (type(a) is _NDARRAY and type(g) is _NDARRAY and 0 < a.size <= _PRODUCT_PIECE
            and g.size <= _PRODUCT_PIECE and (b.array_type if type(b) is ArgSpec else type(b)) is _NDARRAY
            and a.dtype == b.dtype == g.dtype):
        return Products(a, g)
    return a.T @ g
