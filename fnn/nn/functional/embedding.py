"""Embedding lookup: rows of a (vocab, dim) table picked by integer ids of any shape."""

from __future__ import annotations


from fnn.autodiff.backward import zeros_like_value
from fnn.autodiff.tracer import defvjp, primitive, strip
from fnn.backend import checks_values, get_array_module
from fnn.numpy.indexing import index_add
import fnn.numpy as fnp

__all__ = ["embedding"]


def _lookup(ids, table):
    return get_array_module(table).take(table, ids, axis=0)


_embedding = primitive(_lookup, name="fnn.nn.functional.embedding")


def _table_rule(g, ans, ids, table):
    """Scatter-add of the rows' cotangents into a zero table: repeated ids add up."""
    dim = tuple(getattr(g, "shape", ()))[-1]
    flat_ids = ids.reshape(-1)
    return index_add(zeros_like_value(table), flat_ids, fnp.reshape(g, (-1, dim)))


defvjp(_embedding, None, _table_rule, reads=[None, (0,)])


def embedding(ids, table):
    """table[ids]: ids an integer array of any shape, table (vocab, dim) -> (*ids.shape, dim).

    The gradient with respect to the table is a scatter-add of the output's cotangent (an id used
    several times receives the sum of its rows' cotangents); ids get no gradient.
    """
    ids = strip(ids)
    ts = tuple(getattr(table, "shape", ()))
    if len(ts) != 2:
        raise ValueError(f"embedding: the table must be 2-D (vocab, dim), got table shape {ts}")
    xp = get_array_module(table)
    if not hasattr(ids, "dtype"):
        ids = xp.asarray(ids)
    ids_shape = tuple(ids.shape)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype} (ids shape "
                        f"{ids_shape}, table shape {ts})")
    if ids.size and checks_values(ids):  # (on the GPU only when asked: a synchronisation)
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= ts[0]:
            bad = lo if lo < 0 else hi
            raise IndexError(f"embedding: id {bad} is out of range for a table of {ts[0]} rows; ids "
                             f"must lie in [0, {ts[0]}) (ids shape {ids_shape}, table shape {ts})")
    if get_array_module(ids) is not xp:
        ids = xp.asarray(ids)
    return _embedding(ids, table)
