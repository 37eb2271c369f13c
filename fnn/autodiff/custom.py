"""User-defined gradients and gradient control: custom_vjp, checkpoint, stop_gradient.

`custom_vjp` and `checkpoint` both record one node for a whole function call, with several inputs
and several outputs (any pytrees). The node's backward is the user's `bwd` for custom_vjp, and a
re-run of the function under `vjp` for checkpoint (so its intermediates are not kept between the
forward and the backward pass).

Nesting note: the node is recorded for the innermost (newest) trace among the arguments; enclosing
traces see the ordinary operations of `fwd` (custom_vjp) or of the function (checkpoint), so
higher-order derivatives stay correct as long as those operations are differentiable.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from fnn import tree
from fnn.autodiff.backward import zeros_like_value
from fnn.autodiff.tracer import Box, Node, box_results, strip

__all__ = ["custom_vjp", "checkpoint", "stop_gradient"]


def stop_gradient(x: Any) -> Any:
    """`x` (any pytree) with every trace removed: no gradient flows back through the result."""
    return tree.map(strip, x)


def _peel_top(leaves: list) -> tuple[int, list, list, list]:
    """Find the newest trace among `leaves` and remove its boxes.

    Returns (trace, unboxed leaves, positions of the removed boxes, their nodes).
    """
    top = 0
    for leaf in leaves:
        if type(leaf) is Box and leaf._trace > top:
            top = leaf._trace
    unboxed, positions, parents = list(leaves), [], []
    if top:
        for i, leaf in enumerate(leaves):
            if type(leaf) is Box and leaf._trace == top:
                unboxed[i] = leaf._value
                positions.append(i)
                parents.append(leaf._node)
    return top, unboxed, positions, parents


def _record(rule: Any, top: int, unboxed: list, positions: list, parents: list, out: Any) -> Any:
    """Record one node from the peeled inputs to the leaves of `out`; return `out`, boxed."""
    out_leaves, out_def = tree.flatten(out)
    rule.out_def = out_def
    node = Node(rule, unboxed, None, tuple(out_leaves), tuple(positions), tuple(parents))
    return tree.unflatten(out_def, list(box_results(out_leaves, top, node)))


def _arg_cotangents(cotangents: Sequence[Any], args_def: Any, inputs: list, who: str) -> list:
    """Flatten per-argument cotangents (None meaning zero) into per-leaf cotangents."""
    args = tree.unflatten(args_def, inputs)
    if not isinstance(cotangents, (tuple, list)) or len(cotangents) != len(args):
        raise TypeError(f"{who}: the backward function must return a tuple with one cotangent per "
                        f"argument ({len(args)}), got {type(cotangents).__name__}"
                        + (f" of length {len(cotangents)}" if isinstance(cotangents, (tuple, list)) else ""))
    leaves = []
    for i, (c, a) in enumerate(zip(cotangents, args)):
        a_leaves, a_def = tree.flatten(a)
        if c is None:
            leaves.extend(zeros_like_value(x) for x in a_leaves)
            continue
        c_leaves, c_def = tree.flatten(c)
        if c_def != a_def:
            raise ValueError(f"{who}: cotangent {i} has structure {c_def}, but argument {i} has {a_def}")
        leaves.extend(c_leaves)
    return leaves


class _CustomRule:
    """The backward of a custom_vjp call: the user's bwd applied to the saved residuals."""

    multiple_results = True

    def __init__(self, name: str, bwd: Callable, residuals: Any, args_def: Any, static: tuple):
        self.name, self.bwd, self.residuals, self.args_def, self.static = name, bwd, residuals, args_def, static
        self.out_def = None

    def backward(self, node: Node, g: Any) -> list:
        cot = tree.unflatten(self.out_def, list(g.to_tuple(node.ans)))
        cotangents = self.bwd(*self.static, self.residuals, cot)
        leaves = _arg_cotangents(cotangents, self.args_def, node.args, f"custom_vjp {self.name}")
        return [leaves[i] for i in node.argnums]


class custom_vjp:
    """A function with a hand-written VJP, as in JAX.

        @fnn.custom_vjp
        def f(x, y): ...
        def f_fwd(x, y): return f(x, y), residuals
        def f_bwd(residuals, g): return (gx, gy)     # one cotangent per argument (None = zero)
        f.defvjp(f_fwd, f_bwd)

    Arguments listed in `nondiff_argnums` are not differentiated and are passed to `bwd` first.
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """Set the forward function (returning output and residuals) and the backward function."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: Any) -> Any:
        name = getattr(self.fun, "__name__", "f")
        if self.fwd is None:
            raise TypeError(f"custom_vjp function {name} has no VJP yet: call {name}.defvjp(fwd, bwd)")
        static = tuple(args[i] for i in self.nondiff_argnums)
        diff_args = tuple(a for i, a in enumerate(args) if i not in self.nondiff_argnums)
        leaves, args_def = tree.flatten(diff_args)
        top, unboxed, positions, parents = _peel_top(leaves)
        if not top:
            return self.fun(*args)
        peeled = iter(tree.unflatten(args_def, unboxed))
        full = [a if i in self.nondiff_argnums else next(peeled) for i, a in enumerate(args)]
        fwd_out = self.fwd(*full)
        if not (isinstance(fwd_out, tuple) and len(fwd_out) == 2):
            raise TypeError(f"custom_vjp {name}: fwd must return a pair (output, residuals)")
        out, residuals = fwd_out
        rule = _CustomRule(name, self.bwd, residuals, args_def, static)
        return _record(rule, top, unboxed, positions, parents, out)


class _Recompute:
    """The backward of a checkpointed call: run the function again under vjp, then apply it."""

    multiple_results = True

    def __init__(self, name: str, fun: Callable, args_def: Any, kwargs: dict):
        self.name, self.fun, self.args_def, self.kwargs = name, fun, args_def, kwargs
        self.out_def = None

    def backward(self, node: Node, g: Any) -> list:
        from fnn.autodiff.transforms import _vjp  # noqa: PLC0415 (transforms import this module)

        cot = tree.unflatten(self.out_def, list(g.to_tuple(node.ans)))
        args = tree.unflatten(self.args_def, node.args)
        fun, kwargs = self.fun, self.kwargs
        _, vjp_fn, _ = _vjp(lambda *a: fun(*a, **kwargs), args, False, retain=False,
                            who=f"fnn.checkpoint({self.name})")
        leaves = tree.leaves(vjp_fn(cot))
        return [leaves[i] for i in node.argnums]


def checkpoint(fun: Callable) -> Callable:
    """`fun`, but its intermediates are recomputed in the backward pass instead of being kept.

    Trades compute for memory (gradient checkpointing / rematerialisation): only the inputs of the
    call are held until the backward pass.
    """
    name = getattr(fun, "__name__", "f")

    @functools.wraps(fun)
    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        leaves, args_def = tree.flatten(args)
        top, unboxed, positions, parents = _peel_top(leaves)
        if not top:
            return fun(*args, **kwargs)
        out = fun(*tree.unflatten(args_def, unboxed), **kwargs)
        return _record(_Recompute(name, fun, args_def, kwargs), top, unboxed, positions, parents, out)

    return checkpointed
