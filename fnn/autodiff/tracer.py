"""Tracing: boxes that carry a value through a differentiated function, and the primitive wrapper.

A transform (grad, vjp, ...) starts a *trace* with a fresh, increasing id and wraps its inputs in
`Box`es of that trace. A primitive called with boxes unwraps the boxes of the newest trace among
its arguments, runs the wrapped function on what is inside (which may still be boxes of older,
enclosing traces, so the call recurses once per level), and wraps the result in a new box whose
`Node` remembers how to send a cotangent back to each boxed argument. Because each level only
peels its own boxes, nested transforms (`grad(grad(f))`, closures over outer traced values) never
confuse one level's perturbation with another's.

The backward pass lives in `backward.py`; the transforms that start traces in `transforms.py`.
"""

from __future__ import annotations

import itertools
import types
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "Box",
    "Node",
    "Primitive",
    "primitive",
    "defvjp",
    "defvjp_argnum",
    "new_trace",
    "end_trace",
    "start_node",
    "StartNode",
    "NoGradientError",
    "is_traced",
    "any_traced",
    "strip",
    "bind",
    "bind1",
    "bind2",
]


class NoGradientError(TypeError):
    """A traced value reached a function (or argument) that has no VJP rule."""


_trace_ids = itertools.count(1)

# The tape of each trace being recorded: its nodes in the order they were made. A node's parents
# are made before it, so the reversed tape is a topological order for the backward pass, which
# walks it instead of searching the graph.
_TAPES: dict[int, list] = {}


class _NoTape:
    """Where nodes go when their trace is not recording (it has ended: a box leaked out of the
    function, e.g. into a global, and is used later). No backward pass will read them."""

    __slots__ = ()

    def append(self, node: "Node") -> None:
        pass


_NO_TAPE = _NoTape()
_new = object.__new__  # for the hot paths that build nodes and boxes slot by slot
# The usual dtypes, compared by identity before the general test `dtype.kind in "fc"` (whose
# one-letter string is made anew at each call): hot paths run it for every node.
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
_NDARRAY = np.ndarray


def new_trace() -> int:
    """Start recording a trace: a fresh id, larger than every id handed out before (inner traces
    are newer), with an empty tape. Every `new_trace` needs its `end_trace`."""
    trace = next(_trace_ids)
    _TAPES[trace] = []
    return trace


def end_trace(trace: int) -> list:
    """Stop recording `trace`; return its tape (the nodes recorded under it, oldest first)."""
    return _TAPES.pop(trace, [])


class Node:
    """One recorded primitive application: what the backward pass needs to reach its inputs.

    `args`, `kwargs` and `ans` are the residuals handed to the VJP rules; the backward pass drops
    them as soon as the node has been processed (unless the caller will run it again). A node
    puts itself on the tape of its trace. `cotangent` is where the backward pass gathers the
    cotangent of the node's output (None: none yet). (`_record` builds nodes slot by slot: a new
    slot goes there too.)
    """

    __slots__ = ("prim", "args", "kwargs", "ans", "argnums", "parents", "cotangent")

    def __init__(self, prim, args, kwargs, ans, argnums, parents, trace):
        self.prim = prim
        self.args = args
        self.kwargs = kwargs
        self.ans = ans
        self.argnums = argnums
        self.parents = parents
        self.cotangent = None
        _TAPES.get(trace, _NO_TAPE).append(self)


class StartNode:
    """Stands for one input of a differentiated function: a parent of the nodes that use it, on
    no tape. The backward pass reads a parent's `cotangent` slot only, so this is all it has; the
    input's cotangent is left there."""

    __slots__ = ("cotangent",)


def start_node() -> StartNode:
    """A fresh StartNode with no cotangent yet."""
    node = _new(StartNode)  # (no __init__ frame: one per input leaf of every call)
    node.cotangent = None
    return node


class ArgSpec:
    """Stands in a node for an argument whose value no rule will read: its shape, dtype and array
    type, which are all the backward pass needs to fit a cotangent to it or make zeros like it."""

    __slots__ = ("shape", "dtype", "array_type")

    def __init__(self, shape: tuple, dtype: Any, array_type: type):
        self.shape = shape
        self.dtype = dtype
        self.array_type = array_type

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"ArgSpec(shape={self.shape}, dtype={self.dtype})"


# (shape, dtype, array type) -> the ArgSpec of that kind of array: a step makes the same few
# specs again and again, so each is made once and shared. Keyed by the type too, so that a NumPy
# and a CuPy array of one shape never share a spec.
_SPECS: dict = {}


def _spec_of(a: Any) -> Any:
    """The shared, immutable ArgSpec of floating-point array `a` (looked up, or made and cached on
    first sight); `a` itself when it is anything else (a Python scalar, an index, a shape, an
    integer array: small, and kept as is)."""
    dtype = getattr(a, "dtype", None)
    if dtype is None or not (dtype is F32 or dtype is F64 or dtype.kind in "fc"):
        return a
    if type(a) is Box:  # (a box of an enclosing trace: its array type is that of its contents)
        return ArgSpec(a.shape, dtype, type(strip(a)))
    key = (a.shape, dtype, type(a))
    spec = _SPECS.get(key)
    if spec is None:
        if len(_SPECS) > 4096:  # many distinct shapes (e.g. variable-length batches): start over
            _SPECS.clear()
        spec = _SPECS[key] = ArgSpec(a.shape, dtype, type(a))
    return spec


class Box:
    """A value being differentiated: the array (or scalar) inside, its trace id and its node.

    Arithmetic, indexing and the NumPy protocols are attached by `fnn.numpy` (see
    `fnn/numpy/box_methods.py`), so a Box behaves like the array it carries.
    """

    __slots__ = ("_value", "_trace", "_node")
    __array_priority__ = 1000.0

    def __init__(self, value: Any, trace: int, node: Node):
        self._value = value
        self._trace = trace
        self._node = node

    def __repr__(self) -> str:
        return f"Traced<{self._value!r}, trace={self._trace}>"

    __hash__ = object.__hash__

    @property
    def shape(self) -> tuple:
        return getattr(self._value, "shape", ())

    @property
    def dtype(self) -> Any:
        dtype = getattr(self._value, "dtype", None)
        if dtype is None:
            import numpy as np  # noqa: PLC0415

            dtype = np.result_type(self._value)
        return dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def is_traced(x: Any) -> bool:
    """True if `x` is a value being differentiated by some enclosing transform."""
    return type(x) is Box


def any_traced(*xs: Any) -> bool:
    """True if any of `xs` is traced. VJP rules use it to pick a plain-array fast path when no
    enclosing transform will differentiate the rule itself (the common, first-order case)."""
    for x in xs:
        if type(x) is Box:
            return True
    return False


def strip(x: Any) -> Any:
    """The plain array inside `x`, with the boxes of every trace removed."""
    while type(x) is Box:
        x = x._value
    return x


def _is_differentiable(value: Any) -> bool:
    """Only floating (and complex) values carry gradients; integers and booleans do not."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        return dtype is F32 or dtype is F64 or dtype.kind in "fc"
    return isinstance(value, (float, complex))


_MISSING = object()


class Primitive:
    """A function with VJP rules, callable on plain arrays and on traced values alike.

    `vjps[i]` is the rule for positional argument i: `rule(g, ans, *args, **kwargs)` returns the
    cotangent for that argument given the output cotangent `g`. A rule may return a cotangent of
    the broadcast shape: the backward pass sums it down to the argument's shape and casts it to the
    argument's dtype in one central place. `vjps[i] = None` marks the argument as not
    differentiable (a traced value there is used as a constant).
    """

    def __init__(self, fun: Callable, name: str | None = None, multiple_results: bool = False,
                 fwd: Callable | None = None):
        self.fun = fun
        self.fwd = fwd
        self.name = name or getattr(fun, "__qualname__", None) or getattr(fun, "__name__", repr(fun))
        self.vjps: dict[int, Callable | None] = {}
        self.argnum_rule: Callable | None = None
        self.argnum_rule_together = False  # see defvjp_argnum
        self.multiple_results = multiple_results
        # Does the backward pass call `vjps` itself, one rule per traced position? (Else it asks
        # `backward` for all the node's cotangents at once.) Every kind of node's prim says.
        self.rules_each = not multiple_results
        # Cotangent ownership (see defvjp's `fresh` and `owned`): does the first argument's rule
        # make a new NumPy array that nothing else holds; and {0: the rule} of a one-argument
        # primitive that may write its result into such an array (None: none), a mapping like
        # `vjps` for the backward pass to call it through.
        self.fresh = False
        self.owned_vjps: dict[int, Callable] | None = None
        # What each rule reads (see defvjp's `reads`); None: everything. Each node's plan,
        # (traced positions, positions to drop, keep ans?), is cached per set of traced
        # arguments: here for `_bind_general`'s nodes, by the traced positions then minus the
        # argument count.
        self.reads: dict[int, tuple] | None = None
        self._plans: dict[tuple, tuple] = {}
        # The same for the nodes of bind1 (entry 0) and bind2 (entry 1: x traced, 2: y, 3:
        # both); None until first needed, () where such a node takes `bind` (see `_fast_plan`).
        self._fast_plans: list = [None] * 4
        # The same for `bind`'s nodes, by traced-position mask plus 1 << argument count.
        self._bind_plans: dict[int, Any] = {}
        self.__doc__ = getattr(fun, "__doc__", None)
        self.__wrapped__ = fun

    def __repr__(self) -> str:
        return f"<fnn primitive {self.name}>"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        """Bind like a function, so a primitive can serve as a method (`Box.__add__`)."""
        return self if obj is None else types.MethodType(self, obj)

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and type(args[0]) is Box:  # a unary op on a traced value
            return bind1(self, args[0])
        top = 0
        for a in args:
            if type(a) is Box and a._trace > top:
                top = a._trace
        if not top:
            try:
                return self.fun(*args, **kwargs)
            except TypeError:
                _explain_mixed_backends(self, args)
                raise
        return bind(self, top, args, kwargs)

    def rule_for(self, argnum: int) -> Any:
        """The VJP rule for `argnum`, None if declared non-differentiable, _MISSING if unknown."""
        rule = self.vjps.get(argnum, _MISSING)
        if rule is _MISSING and self.argnum_rule is not None:
            return self.argnum_rule
        return rule

    def residual_plan(self, argnums: tuple, nargs: int) -> tuple:
        """(positions of the `nargs` arguments to drop from the tape, keep ans?) for a node whose
        traced arguments are `argnums`: everything but the union of what their rules read.
        (`_node_plan` makes the plans that the binders cache.)"""
        keep: set | None = set()
        keep_ans = self.multiple_results
        for i in argnums:
            reads = self.reads.get(i, self.reads.get("*", _READS_ALL))
            for r in reads:
                if r == "ans":
                    keep_ans = True
                elif r == "args":
                    keep = None
                elif keep is not None:
                    keep.add(r)
        drop = () if keep is None else tuple(i for i in range(nargs) if i not in keep)
        return drop, keep_ans

    def backward(self, node: Node, g: Any) -> list:
        """Cotangents for each of `node.argnums`, in order."""
        ans, args, kwargs = node.ans, node.args, node.kwargs
        if self.multiple_results:
            g = g.to_tuple(ans)
        if self.argnum_rule_together:  # a variadic primitive's rule, for all positions at once
            return self.argnum_rule(node.argnums, g, ans, *args, **kwargs)
        out = []
        vjps = self.vjps
        for i in node.argnums:
            rule = vjps.get(i)
            if rule is None:  # variadic primitive: one rule that takes the position
                out.append(self.argnum_rule(i, g, ans, *args, **kwargs))
            else:
                out.append(rule(g, ans, *args, **kwargs))
        return out


def _explain_mixed_backends(prim: Primitive, args: Sequence[Any]) -> None:
    """If a failed call mixed NumPy and CuPy arrays, say so (instead of the backend's TypeError)."""
    from fnn.backend import check_same_backend  # noqa: PLC0415 (only on the error path)

    check_same_backend([a for a in args if hasattr(a, "shape")], prim.name)


def bind(prim: Primitive, top: int, args: tuple, kwargs: dict):
    """Apply `prim` to arguments some of which are boxes of trace `top`, and record the node.

    `top` must be the newest trace among the arguments (`Primitive.__call__` finds it; the Box
    operators know it from their two operands).

    This runs once per traced primitive call (a dense layer, a loss), so the common case is kept
    lean: one pass over the arguments makes a bit mask of the traced positions, under which
    (with the argument count) the node's plan is cached per primitive; see `_bind_plan`. Boxes
    of enclosing traces, and the nodes a plan cannot describe, take `_bind_general`.
    """
    unboxed = list(args)
    parents = []
    mask = 0  # bit i set: argument i is a box of this trace
    bit = 1
    i = 0
    for a in args:
        if type(a) is Box:
            value = a._value
            if a._trace != top or type(value) is Box:  # boxes of enclosing traces remain
                return _bind_general(prim, top, args, kwargs)
            unboxed[i] = value
            parents.append(a._node)
            mask += bit
        bit += bit
        i += 1
    plan = prim._bind_plans.get(mask + bit)  # (bit is now 1 << the argument count)
    if plan is None:
        plan = _bind_plan(prim, mask, i)
    if plan is _GENERAL:
        return _bind_general(prim, top, args, kwargs)
    if prim.fwd is not None:
        # Residual primitive: fwd returns (output, residuals), and the residuals stand in for
        # the output on the tape.
        ans, res = prim.fwd(*unboxed, **kwargs)
        return _record(prim, top, ans, res, unboxed, kwargs, plan, parents)
    try:
        ans = prim.fun(*unboxed, **kwargs) if kwargs else prim.fun(*unboxed)
    except TypeError:
        _explain_mixed_backends(prim, unboxed)
        raise
    return _record(prim, top, ans, None, unboxed, kwargs, plan, parents)


_GENERAL = object()  # a `_bind_plans` entry: the node takes `_bind_general`


def _bind_plan(prim: Primitive, mask: int, nargs: int) -> Any:
    """The plan of a `bind` node of `prim` with `nargs` arguments, traced at the bits of `mask`:
    (traced positions, positions to drop from the tape, keep ans?), made and cached. _GENERAL
    where `_bind_general` must serve: a traced argument without a rule (it raises the error) or
    declared without a gradient (it is a constant there, not a parent), several results."""
    argnums = tuple([i for i in range(nargs) if mask >> i & 1])
    plan: Any = _GENERAL
    rules = [prim.vjps.get(i, _MISSING) for i in argnums]
    if not prim.multiple_results and None not in rules and (
            _MISSING not in rules or prim.argnum_rule is not None):
        plan = _node_plan(prim, argnums, nargs)
    prim._bind_plans[mask + (1 << nargs)] = plan
    return plan


def _node_plan(prim: Primitive, argnums: tuple, nargs: int) -> tuple:
    """(argnums, positions of the `nargs` arguments to drop from the tape, keep ans?) for a node
    of `prim` traced at `argnums`, all with rules; everything is kept when no reads are declared."""
    if prim.reads is None:
        return argnums, (), True
    return (argnums, *prim.residual_plan(argnums, nargs))


def _bind_general(prim: Primitive, top: int, args: tuple, kwargs: dict):
    """`bind` for every node: boxes of several traces among the arguments (this level peels its
    own and the next enclosing trace records its node), arguments without a rule or declared
    without a gradient, several results."""
    unboxed = list(args)
    argnums = []
    parents = []
    nested = False  # do boxes of enclosing traces remain once this level's are peeled?
    vjps = prim.vjps
    i = 0
    for a in args:
        if type(a) is Box:
            if a._trace == top:
                value = unboxed[i] = a._value
                if type(value) is Box:
                    nested = True
                rule = vjps.get(i, _MISSING)
                if rule is not None:
                    if rule is _MISSING and prim.argnum_rule is None:
                        raise NoGradientError(
                            f"no gradient rule (VJP) for argument {i} of {prim.name}: a traced value "
                            f"reached it. Register one with fnn.defvjp({prim.name}, ...), or wrap the "
                            "argument in fnn.stop_gradient if no gradient should flow there."
                        )
                    argnums.append(i)
                    parents.append(a._node)
            else:
                nested = True
        i += 1
    res = None
    if prim.fwd is not None:
        # Residual primitive: fwd returns (output, residuals). Under enclosing traces, fwd's own
        # operations are traced by them (so fwd must then be written with fnn.numpy).
        ans, res = prim.fwd(*unboxed, **kwargs)
    elif nested:
        ans = prim(*unboxed, **kwargs)  # the next enclosing trace records its own node
    else:
        try:
            ans = prim.fun(*unboxed, **kwargs) if kwargs else prim.fun(*unboxed)
        except TypeError:
            _explain_mixed_backends(prim, unboxed)
            raise
    if not argnums:
        return ans
    if prim.multiple_results and res is None:
        return box_results(ans, top, Node(prim, unboxed, kwargs, ans, argnums, parents, top))
    key = (*argnums, -i)  # the traced positions, then minus the argument count
    plan = prim._plans.get(key)
    if plan is None:
        plan = prim._plans[key] = _node_plan(prim, tuple(argnums), i)
    return _record(prim, top, ans, res, unboxed, kwargs, plan, parents)


_NO_KWARGS: dict = {}
# (argument count, traced-position mask) of each `_fast_plans` entry
_FAST_NODES = ((1, 1), (2, 1), (2, 2), (2, 3))


def _fast_plan(prim: Primitive, entry: int) -> tuple:
    """Make and cache `prim._fast_plans[entry]`: `bind`'s plan for such a node, or () where
    the node takes `bind` itself (see `_bind_plan`; and a residual function, whose `fwd`
    only `bind` calls)."""
    nargs, mask = _FAST_NODES[entry]
    plan = _GENERAL if prim.fwd is not None else _bind_plan(prim, mask, nargs)
    plan = prim._fast_plans[entry] = () if plan is _GENERAL else plan
    return plan


def _record(prim: Primitive, top: int, ans: Any, res: Any, values: list, kwargs: dict, plan: tuple,
            parents: Any) -> Any:
    """The tail of bind, bind1 and bind2: box `ans` with a node of `plan` (traced positions,
    positions of `values` to drop, keep ans?), unless `ans` is not differentiable. The values no
    rule reads are replaced by their (shared) ArgSpec; `res`, the residuals of a
    `fwd` primitive, is kept in place of ans (None: none)."""
    try:
        dt = ans.dtype
        if dt is not F32 and dt is not F64 and dt.kind not in "fc":
            return ans
    except AttributeError:  # a Python scalar
        if not _is_differentiable(ans):
            return ans
    argnums, drop, keep_ans = plan
    for j in drop:
        a = values[j]
        spec = _SPECS.get((a.shape, a.dtype, _NDARRAY)) if type(a) is _NDARRAY else None
        values[j] = spec if spec is not None else _spec_of(a)
    # Node(...) and Box(...) spelled out: object creation plus slot stores, without the two
    # __init__ calls (each a Python frame entered from C), which this, the per-node hot path of
    # a loop over time steps, would pay hundreds of times per step.
    node = _new(Node)
    node.prim = prim
    node.args = values
    node.kwargs = kwargs
    node.ans = res if res is not None else ans if keep_ans else None
    node.argnums = argnums
    node.parents = parents
    node.cotangent = None
    _TAPES.get(top, _NO_TAPE).append(node)
    box = _new(Box)
    box._value = ans
    box._trace = top
    box._node = node
    return box


# The unrolled binders below serve the common nodes (one result, no residual function, declared
# reads, first order); anything else takes `bind`.

def bind1(prim: Primitive, x: Box) -> Any:
    """`bind` for one traced argument and no options (tanh(x), -x, ...), unrolled: a fraction of
    a microsecond less per node than the general loop."""
    xv = x._value
    plan = prim._fast_plans[0]
    if not plan or type(xv) is Box:  # (not planned yet, not a common node, or nested)
        if plan is None:
            _fast_plan(prim, 0)
        return bind(prim, x._trace, (x,), _NO_KWARGS)
    return _record(prim, x._trace, prim.fun(xv), None, [xv], _NO_KWARGS, plan, (x._node,))


def bind2(prim: Primitive, top: int, x: Any, y: Any) -> Any:
    """`bind` for two positional arguments, at least one of them traced, and no options (the Box
    operators), unrolled like `bind1`. `top` is the newer trace of the two. The plan is looked
    up by which operands are boxes; a box of an older trace, nesting, or a primitive whose
    nodes the plan cannot describe takes `bind`."""
    if type(x) is Box:
        xv = x._value
        if type(y) is Box:
            yv = y._value
            plan = prim._fast_plans[3]
            if (not plan or x._trace != top or y._trace != top or type(xv) is Box
                    or type(yv) is Box):
                return _bind2_other(prim, top, x, y, 3)
            parents = (x._node, y._node)
        else:
            yv = y
            plan = prim._fast_plans[1]
            if not plan or x._trace != top or type(xv) is Box:
                return _bind2_other(prim, top, x, y, 1)
            parents = (x._node,)
    else:
        xv = x
        if type(y) is not Box:
            return prim(x, y)
        yv = y._value
        plan = prim._fast_plans[2]
        if not plan or y._trace != top or type(yv) is Box:
            return _bind2_other(prim, top, x, y, 2)
        parents = (y._node,)
    try:
        ans = prim.fun(xv, yv)
    except TypeError:
        _explain_mixed_backends(prim, (xv, yv))
        raise
    return _record(prim, top, ans, None, [xv, yv], _NO_KWARGS, plan, parents)


def _bind2_other(prim: Primitive, top: int, x: Any, y: Any, entry: int) -> Any:
    """bind2's way out to `bind`, planning `entry` first if it has no plan yet."""
    if prim._fast_plans[entry] is None:
        _fast_plan(prim, entry)
    return bind(prim, top, (x, y), _NO_KWARGS)


# ---------------------------------------------------------------------------------------------
# Several results from one node: each result gets a small "select" node whose cotangent is a
# `Parts` (index -> cotangent); the parts of all results meet at the shared node.


class Parts(dict):
    """Cotangents for some of a node's several results, keyed by result index."""

    __slots__ = ()

    def merged(self, other: "Parts") -> "Parts":
        out = Parts(self)
        for k, v in other.items():
            out[k] = v if k not in out else out[k] + v
        return out

    def to_tuple(self, results: tuple) -> tuple:
        """One cotangent per result, zeros where none arrived."""
        from fnn.autodiff.backward import zeros_like_value  # noqa: PLC0415 (sibling module)

        return tuple(self[i] if i in self else zeros_like_value(r) for i, r in enumerate(results))


class _Select:
    """The pseudo-primitive of result `index` of a several-result node."""

    __slots__ = ("name",)
    multiple_results = False
    rules_each = False  # (its `backward` makes the cotangent)

    def __init__(self):
        self.name = "select"

    def backward(self, node: Node, g: Any) -> list:
        return [Parts({node.kwargs: g})]


_SELECT = _Select()


def box_results(results, top: int, node: Node) -> tuple:
    """Box each differentiable result of a several-result node, tied to `node` by a select node."""
    out = []
    for i, r in enumerate(results):
        if _is_differentiable(r):
            out.append(Box(r, top, Node(_SELECT, (), i, r, (0,), (node,), top)))
        else:
            out.append(r)
    return tuple(out)


def primitive(fun: Callable | None = None, *, name: str | None = None,
              multiple_results: bool = False, fwd: Callable | None = None) -> Any:
    """Make `fun` a primitive: a function whose gradient comes from rules given by `defvjp`.

    Usable as a decorator. `fun` is called on plain arrays only; a primitive with
    `multiple_results=True` returns a tuple of arrays.

    `fwd(*args, **kwargs) -> (output, residuals)` is optional: when given, it is used instead of
    `fun` while differentiating, and its residuals (anything: saved intermediates such as im2col
    columns or pooling argmaxes) reach the rules in place of `ans`, so the backward pass need not
    recompute them. `fun` alone serves untraced calls (inference), so it computes no residuals.
    """
    if fun is None:
        return lambda f: primitive(f, name=name, multiple_results=multiple_results, fwd=fwd)
    return Primitive(fun, name=name, multiple_results=multiple_results, fwd=fwd)


_READS_ALL = ("args", "ans")


def _check_reads(prim: Primitive, reads: Any) -> tuple:
    reads = _READS_ALL if reads is None else tuple(reads)
    for r in reads:
        if r not in ("ans", "args") and not isinstance(r, int):
            raise ValueError(f"defvjp({prim.name}): reads entries are argument positions, 'ans' or "
                             f"'args', got {r!r}")
    return reads


def defvjp(prim: Primitive, *rules: Callable | None, argnums: tuple[int, ...] | None = None,
           reads: Any = None, fresh: bool = False, owned: Callable | None = None) -> None:
    """Register VJP rules for `prim`, one per positional argument (or for `argnums`).

    Each rule is `rule(g, ans, *args, **kwargs) -> cotangent of that argument`, written with
    `fnn.numpy` so that it can itself be differentiated (higher-order derivatives). Pass None for
    an argument that has no gradient.

    `reads` (optional, one entry per rule) says which values each rule reads: argument positions,
    'ans', or 'args' for every argument. Arguments no rule of a node reads are kept only as their
    shape and dtype (an ArgSpec), and `ans` is None when unread, so the tape holds between the
    forward and the backward pass only what the backward pass needs. E.g. for multiply,
    `reads=[(1,), (0,)]`; for exp, `reads=[("ans",)]`; for add, `reads=[(), ()]`.

    `fresh` and `owned` let the backward pass reuse a cotangent's memory instead of allocating
    another array the size of an activation (dense's input cotangent flowing into ReLU's rule).
    `fresh=True` says that the first argument's rule (the data input's, by convention), given
    NumPy arrays, returns a new array that it keeps no other reference to (`g @ w.T`, not `g` or
    a view of it). `owned`, for a one-argument primitive, is a second rule with the same
    signature that may write its result into `g` and return it; the pass calls it instead of the
    first only when `g` is exactly such a fresh array, alone in its slot (see `backward_pass`).
    """
    if not isinstance(prim, Primitive):
        raise TypeError(f"defvjp expects a primitive made by fnn.primitive, got {prim!r}")
    positions = range(len(rules)) if argnums is None else argnums
    if len(positions) != len(rules):
        raise ValueError(f"defvjp({prim.name}): {len(rules)} rules for argnums {tuple(positions)}")
    if reads is not None and len(reads) != len(rules):
        raise ValueError(f"defvjp({prim.name}): {len(reads)} reads entries for {len(rules)} rules")
    if fresh and 0 not in positions:
        raise ValueError(f"defvjp({prim.name}): fresh=True is about the first argument's rule, "
                         f"and there is none here (rules for {tuple(positions)})")
    if owned is not None and tuple(positions) != (0,):
        raise ValueError(f"defvjp({prim.name}): an `owned` rule is for one-argument primitives "
                         f"(rules here for {tuple(positions)})")
    for k, (i, rule) in enumerate(zip(positions, rules)):
        prim.vjps[i] = rule
        if reads is not None or prim.reads is not None:
            prim.reads = prim.reads or {}
            prim.reads[i] = _check_reads(prim, None if reads is None else reads[k])
    if 0 in positions:
        prim.fresh = bool(fresh)
    prim.owned_vjps = None if owned is None else {0: owned}
    prim._plans.clear()
    prim._fast_plans[:] = [None] * 4
    prim._bind_plans.clear()


def defvjp_argnum(prim: Primitive, rule: Callable, reads: Any = None, together: bool = False) -> None:
    """Register one rule for every argument: `rule(argnum, g, ans, *args, **kwargs)`.

    For variadic primitives such as concatenate and stack. `reads` is what the rule reads, for
    any argnum (one entry of defvjp's `reads`). With `together=True` the rule is called once per
    node for all its traced positions, `rule(argnums, g, ans, *args, **kwargs)`, and returns their
    cotangents in that order: for rules that make them more cheaply together (stack's cotangents
    are the slices of one array, and a loop over time stacks one array per step).
    """
    prim.argnum_rule = rule
    prim.argnum_rule_together = together
    prim.rules_each = not prim.multiple_results and not together
    if reads is not None:
        prim.reads = prim.reads or {}
        prim.reads["*"] = _check_reads(prim, reads)
    prim._plans.clear()
    prim._fast_plans[:] = [None] * 4
    prim._bind_plans.clear()
