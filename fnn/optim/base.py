"""The optimizer interface: a `GradientTransformation` is an `(init, update)` pair of pure functions.

    opt_state = opt.init(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = apply_updates(params, updates)

Nothing is mutated: `update` returns new arrays and a new state. Each transformation's state is a
small NamedTuple (a pytree, so it can be saved, moved between devices or mapped over); `chain`'s
state is the tuple of its parts' states.

Conventions every transformation here keeps:

- Hyperparameters are Python floats, so under NumPy 2 they never upcast float32 arrays; step
  counts are Python ints.
- Param-shaped buffers come from `zeros_like`/`full_like` on the params, so CuPy params get CuPy
  buffers.
- Inputs are never written to. In-place arithmetic is used only on arrays the same call has just
  allocated, which keeps each update to the few temporaries it needs.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from fnn import backend, tree
from fnn.autodiff.tracer import Box

__all__ = [
    "GradientTransformation",
    "EmptyState",
    "apply_updates",
    "chain",
    "identity",
    "current_learning_rate",
    "step_count",
]


class GradientTransformation(NamedTuple):
    """`init(params) -> state` and `update(grads, state, params=None) -> (updates, new_state)`."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


class EmptyState(NamedTuple):
    """The state of a transformation that keeps none."""


def _add(p: Any, u: Any) -> Any:
    """p + u in a fresh array of p's dtype."""
    r = p + u
    dtype = getattr(p, "dtype", None)
    if dtype is not None and getattr(r, "dtype", dtype) != dtype:
        r = r.astype(dtype)
    return r


def _add_in_place(p: Any, u: Any) -> Any:
    """p += u where p is a writable array of its own (returned), else `_add`."""
    if type(p) is np.ndarray and type(u) is not Box:  # the common leaf: no flags object made
        try:
            p += u  # NumPy's same-kind casting keeps p's dtype, as _add's astype does
            return p
        except ValueError:
            if p.flags.writeable:  # (a shape mismatch, not a read-only array)
                raise
        return _add(p, u)
    if type(u) is not Box:  # a traced update (differentiating through the step) is added
        try:
            writeable = p.flags.writeable
        except AttributeError:  # a Python number (nothing to update in place) or a CuPy array
            writeable = backend.is_cupy_array(p) and p.dtype == getattr(u, "dtype", None)
        if writeable:
            p += u  # NumPy's same-kind casting keeps p's dtype, as _add's astype does
            return p
    return _add(p, u)


def apply_updates(params: Any, updates: Any, *, donate: bool = False) -> Any:
    """`params + updates`, leaf by leaf; each result keeps its param's dtype.

    `donate=True` gives the old `params` up, as JAX's `donate_argnums` does: each array leaf is
    updated in place and returned, which saves a parameter-sized allocation per leaf and step.
    Afterwards the old tree and the new one share their arrays, so keep only the new one (and
    no `fnn.vjp` function that still holds the old values). Leaves that are not writable arrays
    of the right dtype (Python numbers, read-only views) are added out of place as usual.
    """
    if donate and backend.cupy_loaded():
        from fnn.optim._foreach import add_into_tree  # noqa: PLC0415  (it imports this module's package)

        leaves, treedef = tree.flatten(params)
        if add_into_tree(leaves, treedef.flatten_up_to(updates)):  # CuPy: a few launches in all
            return treedef.unflatten(leaves)
    return tree.map(_add_in_place if donate else _add, params, updates)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply `transforms` one after another; the state is the tuple of their states."""
    transforms = tuple(transforms)

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def refuse(state):
        raise ValueError(
            f"chain: the state has {len(state)} entries but the chain has {len(transforms)} "
            "transformations (was it made by this optimizer's init?)"
        )

    if len(transforms) == 1:  # plain SGD's chain: the same state, without the loop
        only = transforms[0].update

        def update(updates, state, params=None):
            if len(state) != 1:
                refuse(state)
            updates, s = only(updates, state[0], params)
            return updates, (s,)
    else:
        def update(updates, state, params=None):
            if len(state) != len(transforms):
                refuse(state)
            new_state = []
            for t, s in zip(transforms, state):
                updates, s = t.update(updates, s, params)
                new_state.append(s)
            return updates, tuple(new_state)

    return GradientTransformation(init, update)


def identity() -> GradientTransformation:
    """Pass the updates through unchanged."""

    def init(params):
        return EmptyState()

    def update(updates, state, params=None):
        return updates, state

    return GradientTransformation(init, update)


# --------------------------------------------------------------------------------------------
# Reading the state


def _find(state: Any, field: str):
    """Depth-first search through tuples (chains, NamedTuple states) for a state with `field`."""
    if isinstance(state, tuple):
        fields = getattr(type(state), "_fields", None)
        if fields is not None and field in fields:
            return getattr(state, field)
        for s in state:
            if isinstance(s, tuple):
                found = _find(s, field)
                if found is not _MISSING:
                    return found
    return _MISSING


_MISSING = object()


def current_learning_rate(opt_state: Any) -> float:
    """The learning rate in an optimizer's state, however deeply it is chained.

    It is the rate the most recent update applied (before the first update: the rate the first
    update will apply), as a positive Python float. It lives in the state of
    `scale_by_learning_rate`, next to that transformation's step `count`.
    """
    lr = _find(opt_state, "learning_rate")
    if lr is _MISSING:
        raise ValueError(
            "current_learning_rate: no state in this optimizer state has a learning_rate field "
            "(it is kept by scale_by_learning_rate, which every optimizer in fnn.optim ends with)"
        )
    return float(lr)


def step_count(opt_state: Any) -> int:
    """How many updates the optimizer has applied: the first `count` found in the state."""
    count = _find(opt_state, "count")
    if count is _MISSING:
        raise ValueError("step_count: no state in this optimizer state has a count field")
    return int(count)


# --------------------------------------------------------------------------------------------
# Helpers shared by the transformations


def xp_of(x: Any):
    """numpy or cupy, whichever serves `x`."""
    return backend.get_array_module(x)


def as_float(value: Any, name: str) -> float:
    """A hyperparameter as a Python float (a NumPy float64 scalar would upcast float32 arrays)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None


def as_schedule(value: Any, name: str) -> Callable[[int], float]:
    """A number or a callable `step -> value`, as a callable returning Python floats."""
    if callable(value):
        return lambda count: float(value(count))
    v = as_float(value, name)
    return lambda count: v


def zeros_like_tree(params: Any) -> Any:
    return tree.map(np.zeros_like, params)


def mask_leaves(mask: Any, params: Any) -> list[bool]:
    """One bool per leaf of `params`. `mask` is a tree of bools with params' structure (or a prefix
    of it: one bool covers a whole subtree), or a function `params -> such a tree`."""
    if callable(mask):
        mask = mask(params)
    mask_flat, mask_def = tree.flatten(mask)
    subtrees = mask_def.flatten_up_to(params)
    out: list[bool] = []
    for m, sub in zip(mask_flat, subtrees):
        out.extend([bool(m)] * len(tree.leaves(sub)))
    return out

