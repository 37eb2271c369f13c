"""The transforms: vjp, grad, value_and_grad, jvp, jacobian, hessian.

Each starts a new trace, boxes the inputs' leaves, runs the function, and runs the backward pass
from the outputs. Inputs and outputs may be any pytree; gradients come back with the inputs'
structure, dtype and backend.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from fnn import tree
from fnn.autodiff.backward import backward_pass, fit_to, zeros_like_value
from fnn.autodiff.tracer import F32, F64, Box, StartNode, _new, end_trace, new_trace, strip

__all__ = ["vjp", "grad", "value_and_grad", "jvp", "jacobian", "hessian"]


def _is_float_leaf(leaf: Any) -> bool:
    value = strip(leaf)
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        return dtype.kind in "fc"
    return isinstance(value, (float, complex))


def _check_differentiable_inputs(primals: tuple, who: str, argnums: Sequence[int],
                                 leaves: list | None = None) -> None:
    """Raise a TypeError naming the argument and path of any non-floating input leaf."""
    if all(_is_float_leaf(leaf) for leaf in (tree.leaves(primals) if leaves is None else leaves)):
        return
    for pos, arg in zip(argnums, primals):
        for path, leaf in tree.flatten_with_path(arg)[0]:
            if not _is_float_leaf(leaf):
                value = strip(leaf)
                kind = getattr(value, "dtype", None) or type(value).__name__
                raise TypeError(
                    f"{who}: argument {pos}{tree.keystr(path)} is {kind}; only floating-point "
                    "inputs can be differentiated (write 3.0, not 3, or cast with "
                    ".astype(np.float32)), or leave the argument out of argnums"
                )


def _unbox_level(x: Any, trace: int) -> Any:
    """Remove the boxes of `trace` from a pytree's leaves (for outputs and aux data)."""

    def unbox(leaf):
        return leaf._value if type(leaf) is Box and leaf._trace == trace else leaf

    return tree.map(unbox, x)


_ONE_LEAF = tree.structure(0.0)  # the structure of a single-leaf output


def _trace_call(f: Callable, primals: tuple, has_aux: bool, who: str,
                float_argnums: Sequence[int] | None, trace: int, rest: tuple) -> tuple:
    """Run `f(*primals, *rest)` recording on `trace`; return (out, out_def, the outputs' nodes
    and values, aux, the input leaves, their start nodes). See `_vjp`."""
    # One walk over the inputs boxes the floating-point leaves (integer and boolean ones get a
    # zero cotangent) and remembers each leaf with its start node, in flatten's order.
    in_leaves: list = []
    starts: list = []

    def box_leaf(leaf):
        in_leaves.append(leaf)
        dtype = getattr(leaf, "dtype", None) if type(leaf) is not Box else None
        if (dtype is F32 or dtype is F64 or dtype.kind in "fc") if dtype is not None \
                else _is_float_leaf(leaf):
            # start_node() and Box(...) spelled out, slot by slot: no function frames for what
            # every input leaf of every call makes.
            node = _new(StartNode)
            node.cotangent = None
            starts.append(node)
            box = _new(Box)
            box._value = leaf
            box._trace = trace
            box._node = node
            return box
        starts.append(None)
        return leaf

    if len(primals) == 1:  # (the common case, without a comprehension's frame)
        boxed = (tree.map(box_leaf, primals[0]),)
    else:
        boxed = tuple([tree.map(box_leaf, p) for p in primals])  # primals: a tuple, walked here
    if float_argnums is not None and None in starts:
        _check_differentiable_inputs(primals, who, float_argnums, in_leaves)
    result = f(*boxed, *rest) if rest else f(*boxed)
    aux = None
    if has_aux:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"{who} with has_aux=True: the function must return a pair (output, aux), "
                            f"got {type(result).__name__}")
        result, aux = result
        if aux is not None and not (type(aux) is dict and not aux):  # nothing to unbox in {}
            aux = _unbox_level(aux, trace)
    if type(result) is Box and result._trace == trace:  # one traced output (a loss): no walk
        out_def, out_nodes, out_values = _ONE_LEAF, [result._node], [result._value]
        out = result._value
    else:
        out_leaves, out_def = tree.flatten(result)
        out_nodes = []
        out_values = []
        for leaf in out_leaves:
            if type(leaf) is Box and leaf._trace == trace:
                out_nodes.append(leaf._node)
                out_values.append(leaf._value)
            else:
                out_nodes.append(None)
                out_values.append(leaf)
        out = tree.unflatten(out_def, out_values)
        del out_leaves
    del boxed, result
    return out, out_def, out_nodes, out_values, aux, in_leaves, starts


def _vjp(f: Callable, primals: tuple, has_aux: bool, retain: bool, who: str,
         float_argnums: Sequence[int] | None = None, rest: tuple = ()):
    """Run `f(*primals, *rest)` under a new trace; return (out, vjp_fn, aux). `rest` are
    arguments passed after the primals and not differentiated.

    With `float_argnums` (the positions the primals came from), every input leaf must be floating
    point (grad and value_and_grad); otherwise integer and boolean leaves get zero cotangents.
    `vjp_fn(cotangent, checked=False)`: `checked=True` skips validating the cotangent's structure
    (for callers that built it themselves).
    """
    trace = new_trace()
    try:
        out, out_def, out_nodes, out_values, aux, in_leaves, starts = _trace_call(
            f, primals, has_aux, who, float_argnums, trace, rest)
    finally:
        tape = end_trace(trace)

    def vjp_fn(cotangent: Any, checked: bool = False) -> tuple:
        if checked and out_def is _ONE_LEAF:
            cot_leaves = [cotangent]
        else:
            cot_leaves, cot_def = tree.flatten(cotangent)
        if not checked:
            if cot_def != out_def:
                raise ValueError(f"{who}: the cotangent's structure {cot_def} does not match the "
                                 f"output's structure {out_def}")
            for i, (c, o) in enumerate(zip(cot_leaves, out_values)):
                if getattr(c, "shape", ()) != getattr(o, "shape", ()):
                    raise ValueError(f"{who}: cotangent leaf {i} has shape "
                                     f"{getattr(c, 'shape', ())} but the output leaf has shape "
                                     f"{getattr(o, 'shape', ())}")
        roots = [(n, c) for n, c in zip(out_nodes, cot_leaves) if n is not None]
        found = backward_pass(roots, tape, starts, retain) if roots else [None] * len(starts)
        pairs = iter(zip(found, in_leaves))

        def grad_leaf(_):
            g, leaf = next(pairs)
            if g is None:
                return zeros_like_value(leaf)
            try:
                fitted = g.shape == leaf.shape and g.dtype == leaf.dtype
            except AttributeError:  # a Python scalar on either side
                fitted = False
            if not fitted:
                g = fit_to(g, leaf)
            if isinstance(leaf, float) and getattr(g, "shape", None) == () and type(g) is not Box:
                g = g[()] if hasattr(g, "__getitem__") else g
            return g

        if len(primals) == 1:
            return (tree.map(grad_leaf, primals[0]),)
        return tuple([tree.map(grad_leaf, p) for p in primals])  # the inputs' structure and order

    return out, vjp_fn, aux


def vjp(f: Callable, *primals: Any, has_aux: bool = False):
    """Evaluate `f(*primals)` and a function that maps an output cotangent to input cotangents.

    Returns `(out, vjp_fn)` or `(out, vjp_fn, aux)`; `vjp_fn(cotangent)` returns a tuple with
    one entry per primal. `vjp_fn` may be called many times; it holds the residuals until dropped.
    """
    out, vjp_fn, aux = _vjp(f, primals, has_aux, retain=True, who="fnn.vjp")
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _normalize_argnums(argnums: int | Sequence[int], nargs: int, who: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or not -nargs <= n < nargs:
            raise ValueError(f"{who}: argnums={argnums!r} but the function was called with "
                             f"{nargs} positional argument(s)")
    return tuple(n % nargs for n in nums)


def _fix_args(f: Callable, args: tuple, kwargs: dict, nums: tuple[int, ...]) -> Callable:
    """`f` as a function of the arguments at `nums` only, the others held fixed."""

    def partial(*diff_args):
        full = list(args)
        for i, a in zip(nums, diff_args):
            full[i] = a
        return f(*full, **kwargs)

    return partial


def _ones_like_scalar(out: Any, who: str) -> Any:
    kind = type(out)
    if kind is np.float32 or kind is np.float64:  # a NumPy reduction's result: the common case
        return np.array(1, kind)  # (a quarter of np.ones's cost: no Python-level wrapper)
    value = strip(out)
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None and isinstance(value, (float, complex)) and not isinstance(value, bool):
        return type(value)(1)
    if shape is None or dtype is None:
        raise TypeError(f"{who}: the function must return a floating-point scalar, "
                        f"got {type(value).__name__}")
    if shape != ():
        raise TypeError(
            f"{who}: the function must return a scalar (shape ()), but it returned an array of "
            f"shape {shape}; reduce it (e.g. .sum() or .mean()) or use fnn.vjp / fnn.jacobian "
            "for non-scalar outputs"
        )
    if dtype.kind not in "fc":
        raise TypeError(f"{who}: the function must return a floating-point scalar, got dtype {dtype}")
    if type(value) is np.ndarray or isinstance(value, np.generic):
        return np.array(1, dtype)
    return zeros_like_value(value) + 1  # on the value's device


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """A function returning `(f(*args), gradient)`, or `((f(*args), aux), gradient)` with has_aux.

    The gradient is taken with respect to the arguments at `argnums`: the gradient itself for an
    int, a tuple of gradients for a tuple (even a 1-tuple). `f` must return a scalar.
    """
    who = f"fnn.value_and_grad({getattr(f, '__name__', 'f')})"

    nums_by_count: dict[int, tuple] = {}  # argnums checked once per argument count

    @functools.wraps(f)
    def value_and_grad_f(*args, **kwargs):
        nums = nums_by_count.get(len(args))
        if nums is None:
            nums = nums_by_count[len(args)] = _normalize_argnums(argnums, len(args), who)
        if nums == (0,) and not kwargs:  # the usual call: the other arguments follow the primal
            out, vjp_fn, aux = _vjp(f, (args[0],), has_aux, retain=False, who=who,
                                    float_argnums=nums, rest=args[1:])
        else:
            primals = tuple([args[i] for i in nums])
            out, vjp_fn, aux = _vjp(_fix_args(f, args, kwargs, nums), primals, has_aux,
                                    retain=False, who=who, float_argnums=nums)
        grads = vjp_fn(_ones_like_scalar(out, who), checked=True)
        g = grads[0] if isinstance(argnums, int) else grads
        return ((out, aux), g) if has_aux else (out, g)

    return value_and_grad_f


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The gradient of scalar-valued `f` with respect to the arguments at `argnums`.

    Returns `g`, or `(g, aux)` with has_aux. Nest it for higher derivatives: `grad(grad(f))`.
    """
    vg = value_and_grad(f, argnums, has_aux)
    vg.__name__ = getattr(f, "__name__", "f")

    @functools.wraps(f)
    def grad_f(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return grad_f


def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """`(f(*primals), J @ tangents)`: the directional derivative of `f` along `tangents`.

    Computed as the transpose of the (linear) VJP: since vjp_fn(u) = J^T u, the VJP of u -> vjp_fn(u)
    applied to the tangents is J v. It costs two backward passes and needs no forward-mode rules.
    """
    primals, tangents = tuple(primals), tuple(tangents)
    p_def, t_def = tree.structure(primals), tree.structure(tangents)
    if p_def != t_def:
        raise ValueError(f"fnn.jvp: tangents have structure {t_def} but primals have {p_def}")
    for i, (p, t) in enumerate(zip(tree.leaves(primals), tree.leaves(tangents))):
        if getattr(p, "shape", ()) != getattr(t, "shape", ()):
            raise ValueError(f"fnn.jvp: tangent leaf {i} has shape {getattr(t, 'shape', ())} but the "
                             f"primal has shape {getattr(p, 'shape', ())}")
    out, vjp_fn, _ = _vjp(f, primals, False, retain=True, who="fnn.jvp")
    zero_cotangent = tree.map(zeros_like_value, out)
    _, transpose_fn, _ = _vjp(vjp_fn, (zero_cotangent,), False, retain=False, who="fnn.jvp")
    (tangent_out,) = transpose_fn(tangents)
    return out, tangent_out


def jacobian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Jacobian of `f`: for an output leaf of shape S and an input leaf of shape T, an array of
    shape S + T. Built row by row from VJPs (reverse mode)."""
    who = f"fnn.jacobian({getattr(f, '__name__', 'f')})"

    @functools.wraps(f)
    def jacobian_f(*args, **kwargs):
        from fnn import numpy as fnp  # noqa: PLC0415 (assembling results needs the namespace)

        nums = _normalize_argnums(argnums, len(args), who)
        primals = tuple(args[i] for i in nums)
        out, vjp_fn, _ = _vjp(_fix_args(f, args, kwargs, nums), primals, False, retain=True, who=who)
        out_leaves, out_def = tree.flatten(out)
        zeros = [zeros_like_value(o) for o in out_leaves]
        per_output = []
        for j, o in enumerate(out_leaves):
            o_plain = strip(o)
            o_shape = getattr(o_plain, "shape", ())
            n = 1
            for d in o_shape:
                n *= d
            rows = []
            for k in range(n):
                basis = fnp.zeros_like(o_plain, shape=(n,))
                basis[k] = 1
                cot = list(zeros)
                cot[j] = basis.reshape(o_shape)
                rows.append(vjp_fn(tree.unflatten(out_def, cot)))

            def assemble(prim_leaf, *row_leaves):
                if not row_leaves:
                    return fnp.zeros(o_shape + fnp.shape(prim_leaf), dtype=fnp.result_type(prim_leaf))
                return fnp.reshape(fnp.stack(row_leaves), o_shape + fnp.shape(prim_leaf))

            per_output.append(tree.map(assemble, primals, *rows))
        jac = [p[0] if isinstance(argnums, int) else p for p in per_output]
        return tree.unflatten(out_def, jac)

    return jacobian_f


def hessian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Hessian of scalar-valued `f`: the Jacobian of its gradient."""
    return jacobian(grad(f, argnums), argnums)
