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
import warnings
from typing import Any, Callable, Sequence

from fnn import tree
from fnn.autodiff.backward import backward_pass, box_input, fit_to, zeros_like_value
from fnn.autodiff.tracer import ArgSpec, Box, Node, Parts, box_results, end_trace, new_trace, strip

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


def _spec(x: Any) -> Any:
    """An array's shape, dtype and array type (an ArgSpec); other values (Python scalars) as they are."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        return x
    return ArgSpec(tuple(x.shape), dtype, type(strip(x)))


def _record(rule: Any, top: int, unboxed: list, positions: list, parents: list, out: Any) -> Any:
    """Record one node from the peeled inputs to the leaves of `out`; return `out`, boxed.

    The node keeps only the outputs' shapes and dtypes (its rules read nothing else of them: they
    are used to make zero cotangents for outputs that received none), so it does not hold the
    outputs themselves alive while the backward pass works on the layers before them.
    """
    out_leaves, out_def = tree.flatten(out)
    rule.out_def = out_def
    node = Node(rule, unboxed, None, tuple(_spec(o) for o in out_leaves), tuple(positions),
                tuple(parents), top)
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
    rules_each = False  # (its `backward` makes the cotangents)

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
        if _leaks(tree.leaves(out), top):
            raise TypeError(
                f"custom_vjp {name}: fwd uses traced values that are not among its arguments (a "
                "closure over values being differentiated?); their gradients would be lost. Pass "
                "them as arguments of the custom_vjp function (or wrap them in fnn.stop_gradient "
                "if no gradient should flow to them).")
        rule = _CustomRule(name, self.bwd, residuals, args_def, static)
        return _record(rule, top, unboxed, positions, parents, out)


class _Recompute:
    """The backward of a checkpointed call: run the function again under a fresh trace, then send
    the cotangent back through that short tape alone.

    Lean on purpose (not `_vjp`): nothing but the recomputed tape holds the recomputed values, and
    the tape drops each node's residuals as the inner backward pass goes, so at most one call's
    intermediates are alive at a time. Only the inputs the outer pass wants are traced.
    """

    multiple_results = True
    rules_each = False  # (its `backward` makes the cotangents)

    def __init__(self, name: str, fun: Callable, in_def: Any):
        self.name, self.fun, self.in_def = name, fun, in_def
        self.out_def = None

    def backward(self, node: Node, g: Any) -> list:
        cot = g.to_tuple(node.ans)
        if type(g) is Parts:
            g.clear()  # consumed: from here on only the inner pass holds the incoming cotangent
        values = node.args
        trace = new_trace()
        try:
            leaves = list(values)
            starts = []
            for i in node.argnums:
                leaves[i] = box_input(values[i], trace)
                starts.append(leaves[i]._node)
            args, kwargs = tree.unflatten(self.in_def, leaves)
            del leaves
            out_leaves, out_def = tree.flatten(self.fun(*args, **kwargs))
            del args, kwargs
        finally:
            tape = end_trace(trace)
        if out_def != self.out_def:
            raise ValueError(f"fnn.checkpoint({self.name}): the recomputation returned structure "
                             f"{out_def}, but the first call returned {self.out_def}; the function "
                             "must be deterministic")
        roots = [(o._node, c) for o, c in zip(out_leaves, cot) if type(o) is Box and o._trace == trace]
        del out_leaves, cot
        found = [None] * len(starts)
        if roots:
            # Handed over as an iterator, so the cotangents are dropped once the pass has used them.
            it = iter(roots)
            del roots
            found = backward_pass(it, tape, starts)
            del it
        del tape
        grads = []
        for i, gi in zip(node.argnums, found):
            grads.append(zeros_like_value(values[i]) if gi is None else fit_to(gi, values[i]))
        return grads


def _leaks(out_leaves: list, top: int) -> bool:
    """Do outputs computed from peeled (untraced) inputs still carry trace `top` or a newer one?
    Then the function used traced values it was not given as arguments (a closure, a global)."""
    return any(type(o) is Box and o._trace >= top for o in out_leaves)


def checkpoint(fun: Callable) -> Callable:
    """`fun`, but its intermediates are recomputed in the backward pass instead of being kept.

    Trades compute for memory (gradient checkpointing / rematerialisation): only the inputs of the
    call (positional and keyword arguments, any pytrees) are held until the backward pass, and
    the call is run again there. Pass everything that is differentiated as an argument:

        block = fnn.checkpoint(lambda p, h: layer.apply(p, {}, h)[0])
        h = block(params, h)

    A function that uses traced values it does not receive as arguments (a closure over the
    parameters being differentiated) cannot be recomputed apart from them: it is then traced as
    usual, with correct gradients but no memory saved, and a warning says so.

    Whether it pays depends on what the tape would keep: fnn's tape keeps only what each rule
    reads, so a single dense layer with tanh (which keep one activation) saves nothing when
    checkpointed alone; checkpoint segments of several layers (see `checkpoint_sequential`-style
    segments of about sqrt(depth) layers in benchmarks/memory.py).
    """
    name = getattr(fun, "__name__", "f")

    @functools.wraps(fun)
    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        leaves, in_def = tree.flatten((args, kwargs))
        top, unboxed, positions, parents = _peel_top(leaves)
        if not top:
            return fun(*args, **kwargs)
        p_args, p_kwargs = tree.unflatten(in_def, unboxed)
        out = fun(*p_args, **p_kwargs)
        if _leaks(tree.leaves(out), top):
            warnings.warn(
                f"fnn.checkpoint({name}): the function uses traced values that are not among its "
                "arguments (a closure over the parameters being differentiated?). It is traced as "
                "usual instead, so nothing is saved; pass those values as arguments, e.g. "
                "fnn.checkpoint(lambda params, x: ...)(params, x).", stacklevel=2)
            del out
            return fun(*args, **kwargs)
        return _record(_Recompute(name, fun, in_def), top, unboxed, positions, parents, out)

    return checkpointed
