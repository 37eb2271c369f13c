"""The backward pass: send cotangents from outputs back to inputs through the recorded nodes.

Also the few primitives the pass itself needs, so that it works (and can be differentiated again,
for higher-order derivatives) without the rest of `fnn.numpy`:

- `sum_to_shape` undoes broadcasting. It is applied once, here, where a cotangent meets its
  argument, so no VJP rule has to undo broadcasting itself.
- `cast` gives every cotangent its argument's dtype (float32 stays float32).
- `add_cotangents` accumulates the cotangents of a value used more than once.

Cotangents of slices (`x[i]`, `x[:, t]` in a loop over time) arrive as `Scattered` pieces rather
than as full arrays of zeros with one slice filled in, and those of a matrix used at every step of
a loop (`h @ w`) as `Products`, the factors of its products: both are kept in pieces and formed
once, when read (`fnn.autodiff.pieces`). A loop of T steps then costs one (N, T, ...) buffer for
its sequence and one product for its weight, instead of T of each.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from fnn.backend import add_keeping_layout
from fnn.autodiff.pieces import KEPT_IN_PIECES, Products, Scattered, zeros_like_value
from fnn.autodiff.tracer import Box, Node, Parts, StartNode, defvjp, primitive, start_node

__all__ = ["backward_pass", "Scattered", "Products", "sum_to_shape", "broadcast_to", "cast",
           "add_cotangents", "zeros_like_value", "shape_of", "dtype_of"]


def shape_of(x: Any) -> tuple:
    """The shape of an array, a traced value or a Python scalar (which is `()`)."""
    return getattr(x, "shape", ())


def dtype_of(x: Any) -> np.dtype | None:
    """The dtype of an array or traced value; None for Python scalars."""
    return getattr(x, "dtype", None)


@primitive
def broadcast_to(x: Any, shape: tuple) -> Any:
    """NumPy's broadcast_to (a read-only view)."""
    if type(x) is np.ndarray:
        view = _broadcast_view(x, tuple(shape))
        if view is not None:
            return view
    return np.broadcast_to(x, shape)


def _broadcast_view(x: np.ndarray, shape: tuple) -> np.ndarray | None:
    """np.broadcast_to(x, shape) made directly by the ndarray constructor: x's memory with zero
    strides on the stretched axes, read-only. np.broadcast_to builds a general iterator for this
    and costs five times more, and the rule of every sum and mean calls it. None where the
    direct way does not apply (the caller then asks NumPy, which also reports a bad shape)."""
    x_shape = x.shape
    lead = len(shape) - len(x_shape)
    if lead < 0:
        return None
    strides = [0] * lead
    for n, m, stride in zip(x_shape, shape[lead:], x.strides):
        if n == m:
            strides.append(stride)
        elif n == 1:
            strides.append(0)
        else:
            return None
    try:  # (should the constructor refuse x as a buffer, NumPy's own way serves)
        view = np.ndarray(shape, x.dtype, x, 0, tuple(strides))
    except (ValueError, TypeError, BufferError):
        return None
    view.flags.writeable = False
    return view


@primitive
def sum_to_shape(x: Any, shape: tuple) -> Any:
    """Sum `x` over the axes that broadcasting added or stretched, so it gets `shape`."""
    x_shape = x.shape
    if x_shape == shape:
        return x
    lead = len(x_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x_shape[lead + i] != 1
    )
    out = x.sum(axis=axes) if axes else x
    return out.reshape(shape)


@primitive
def cast(x: Any, dtype: Any) -> Any:
    """`x` as an array of `dtype` (no copy when it already is one)."""
    if hasattr(x, "astype"):
        return x.astype(dtype, copy=False)
    return np.asarray(x, dtype=dtype)


@primitive
def add_cotangents(a: Any, b: Any) -> Any:
    """a + b, for summing the cotangents of a value that was used more than once."""
    return a + b


# These rules read only shapes, so the tape keeps no array for them.
defvjp(broadcast_to, lambda g, ans, x, shape: g, reads=[()])
defvjp(sum_to_shape, lambda g, ans, x, shape: broadcast_to(g, shape_of(x)), reads=[()])
defvjp(cast, lambda g, ans, x, dtype: g, reads=[()])
defvjp(add_cotangents, lambda g, ans, a, b: g, lambda g, ans, a, b: g, reads=[(), ()])


def fit_to(g: Any, x: Any) -> Any:
    """Give cotangent `g` the shape (undoing broadcasting) and dtype of argument `x`."""
    try:
        if g.shape == x.shape and g.dtype == x.dtype:  # the common case, checked first
            return g
    except AttributeError:  # a Python scalar on either side
        pass
    x_shape = getattr(x, "shape", ())
    if getattr(g, "shape", ()) != x_shape:
        g = sum_to_shape(g, x_shape)
    x_dtype = getattr(x, "dtype", None)
    if x_dtype is not None and getattr(g, "dtype", None) != x_dtype:
        g_dtype = getattr(g, "dtype", None)
        if g_dtype is not None and g_dtype.kind == "c" and x_dtype.kind != "c":
            g = g.real
        g = cast(g, x_dtype)
    return g


_NDARRAY = np.ndarray


def _accumulate(old: Any, new: Any) -> Any:
    """old + new for two cotangents of one value (old is not None), whatever their kinds."""
    kind = type(old)
    if kind is Scattered and type(new) is Scattered:  # a loop's slices, first: the common case
        old.pieces.extend(new.pieces)  # both made by this pass and owned by it
        return old
    if kind is Products or type(new) is Products:
        if kind is not Products:
            old, new = new, old
        if type(new) is Products:
            old.merge(new)
            return old
        if type(new) is _NDARRAY:
            old.add_dense(new)
            return old
        return _accumulate(new, old.dense())
    if kind is Scattered or type(new) is Scattered:  # one scattered and one dense cotangent
        if kind is not Scattered:
            old, new = new, old
        if type(new) is Box:
            return add_cotangents(old.dense(), new)
        return old.added_to(new)
    if kind is Parts:
        return old.merged(new)
    if kind is Box or type(new) is Box:
        return add_cotangents(old, new)  # recorded, for higher-order derivatives
    if kind is np.ndarray:
        return old + new  # both fitted to the same argument: same shape, dtype and device
    return add_keeping_layout(old, new)


def backward_pass(roots: Iterable[tuple[Node | StartNode, Any]], tape: list,
                  starts: Sequence[StartNode | None], retain: bool = False) -> list:
    """Propagate cotangents from `(node, cotangent)` roots back through `tape` (the nodes of one
    trace, oldest first); return the cotangent of each of `starts` (None where none arrived).

    The tape is walked newest first, a topological order: every consumer of a node was made
    after it, so when the walk reaches a node, all its cotangents have arrived in its `cotangent`
    slot. Nodes that received none (not on a path to the roots) are passed over. Unless
    `retain`, each node drops its residuals right after use, so memory is released as the pass
    goes; a pass that may be run again (a `vjp` function) keeps them.
    """
    for node, g in roots:
        old = node.cotangent
        node.cotangent = g if old is None else _accumulate(old, g)
    del roots
    # The pass owns a cotangent that a `fresh` rule made and that went into an empty slot:
    # nothing but that slot holds it. `owner` is that slot's node and `owned` the array; an
    # `owned` rule (ReLU's) may then write into it instead of allocating its own result. Only the
    # latest one is tracked: it is the one the walk usually reaches next (the layer below's).
    owner = owned = None
    try:
        for node in reversed(tape):
            g = node.cotangent
            if g is None:
                continue
            node.cotangent = None
            if type(g) is not _NDARRAY and type(g) in KEPT_IN_PIECES:
                g = g.dense()
            prim = node.prim
            args = node.args
            ans = node.ans
            kwargs = node.kwargs
            argnums = node.argnums
            parents = node.parents
            if prim.rules_each:
                # The common node (one result, a rule per traced argument): its rules are called
                # below, each cotangent handed on as soon as it is made (no list of them).
                vjps = prim.vjps
                grads = None
                fresh = prim.fresh
                if node is owner:
                    if g is owned and prim.owned_vjps is not None and argnums == (0,):
                        vjps = prim.owned_vjps  # the rule that may write into g
                    owner = owned = None
            else:  # several results, a variadic rule for all positions at once, custom rules
                grads = prim.backward(node, g)
                fresh = False
            # Rules run from the last traced argument to the first. By convention a layer's data
            # input comes first and its parameters after (dense(x, w, b), conv, matmul(h, w)),
            # and the data input's cotangent is the one the walk reads next, at the parent node:
            # made last, it is still in cache there. The other order writes it first and then
            # evicts part of it, and of the activation the weight's rule reads, with that rule's
            # product (cache simulation of W1: 0.5 MB more read from memory per step).
            i = len(argnums)
            while i:
                i -= 1
                argnum = argnums[i]
                if grads is not None:
                    pg = grads[i]
                else:
                    rule = vjps.get(argnum)
                    if rule is None:  # variadic primitive: one rule that takes the position
                        pg = prim.argnum_rule(argnum, g, ans, *args, **kwargs)
                    elif kwargs:
                        pg = rule(g, ans, *args, **kwargs)
                    elif len(args) == 2:  # (spelled out: no tuple built from a list per call)
                        pg = rule(g, ans, args[0], args[1])
                    elif len(args) == 1:
                        pg = rule(g, ans, args[0])
                    else:
                        pg = rule(g, ans, *args)  # no empty-dict unpacking: most nodes
                parent = parents[i]
                if type(pg) is _NDARRAY or type(pg) is not Parts and type(pg) not in KEPT_IN_PIECES:
                    arg = args[argnum]
                    try:  # fit_to's common case (shape and dtype already right), without the call
                        if pg.shape != arg.shape or pg.dtype is not arg.dtype:
                            pg = fit_to(pg, arg)
                    except AttributeError:  # a Python scalar on either side
                        pg = fit_to(pg, arg)
                    del arg  # the argument may be a large activation: hold it no longer than this
                old = parent.cotangent
                if old is None:
                    parent.cotangent = pg
                elif type(pg) is _NDARRAY and type(old) is _NDARRAY:  # _accumulate's common case
                    parent.cotangent = old + pg
                else:
                    parent.cotangent = _accumulate(old, pg)
            if fresh and argnum == 0 and old is None and type(pg) is _NDARRAY:
                # The first argument's cotangent, made last above, is a new array in an empty
                # slot (fit_to keeps it the pass's own: it returns pg, a new array, or a view).
                owner, owned = parent, pg
            del g, grads, pg, ans, kwargs  # residuals: held by nothing here from now on
            if not retain:
                node.args = node.kwargs = node.ans = None
    except BaseException:
        for node in tape:  # a failed pass leaves no cotangent behind for the next one
            node.cotangent = None
        _take_cotangents(starts)
        raise
    return _take_cotangents(starts)


def _take_cotangents(starts: Sequence[StartNode | None]) -> list:
    """The cotangents gathered at `starts`, emptying their slots (for the next pass)."""
    out = []
    for node in starts:
        if node is None:
            out.append(None)
            continue
        g = node.cotangent
        if g is not None:
            node.cotangent = None
            if type(g) in KEPT_IN_PIECES:
                g = g.dense()
        out.append(g)
    return out


def box_input(value: Any, trace: int) -> Box:
    """Wrap an input of a differentiated function for trace `trace` (its node: a start node)."""
    return Box(value, trace, start_node())
