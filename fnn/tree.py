"""Pytrees: nested containers whose leaves are arrays (or anything that is not a container).

A tree is flattened into a list of leaves and a `TreeDef`, the structure with the leaves taken out;
`unflatten` puts leaves back. `map` applies a function leaf by leaf over one or several trees of the
same structure. This runs on every training step, so the node table is a plain dict from type to
handler, filled lazily for namedtuples and attrs classes the first time each type is seen.

Node kinds out of the box: dict (children in sorted key order), OrderedDict (insertion order), list,
tuple, namedtuples, None (a node without children), attrs classes (fields marked with
`static_field()` are kept in the structure rather than as leaves). Everything else is a leaf.
"""

from __future__ import annotations

import collections
import operator
from typing import Any, Callable, Hashable, Iterable, Sequence

import attrs
import numpy as np

__all__ = [
    "register_leaf",
    "TreeDef",
    "DictKey",
    "SequenceKey",
    "GetAttrKey",
    "flatten",
    "unflatten",
    "leaves",
    "structure",
    "map",
    "map_with_path",
    "flatten_with_path",
    "flatten_up_to",
    "keystr",
    "path_to_name",
    "register",
    "static_field",
]

_new = object.__new__
_oset = object.__setattr__


# --------------------------------------------------------------------------------------------
# Path entries


class DictKey:
    """A path entry for a mapping key; renders as `['key']`."""

    __slots__ = ("key",)

    def __init__(self, key: Hashable):
        _oset(self, "key", key)

    def __setattr__(self, name, value):
        raise AttributeError("DictKey is immutable")

    def __str__(self) -> str:
        return f"[{self.key!r}]"

    def __repr__(self) -> str:
        return f"DictKey(key={self.key!r})"

    def __eq__(self, other):
        return type(other) is DictKey and self.key == other.key

    def __hash__(self):
        return hash((DictKey, self.key))

    @property
    def name(self) -> str:
        return str(self.key)


class SequenceKey:
    """A path entry for a position in a sequence (or a child index); renders as `[2]`."""

    __slots__ = ("idx",)

    def __init__(self, idx: int):
        _oset(self, "idx", idx)

    def __setattr__(self, name, value):
        raise AttributeError("SequenceKey is immutable")

    def __str__(self) -> str:
        return f"[{self.idx!r}]"

    def __repr__(self) -> str:
        return f"SequenceKey(idx={self.idx!r})"

    def __eq__(self, other):
        return type(other) is SequenceKey and self.idx == other.idx

    def __hash__(self):
        return hash((SequenceKey, self.idx))

    @property
    def name(self) -> str:
        return str(self.idx)


class GetAttrKey:
    """A path entry for an attribute (attrs field, namedtuple field); renders as `.name`."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        _oset(self, "name", name)

    def __setattr__(self, name, value):
        raise AttributeError("GetAttrKey is immutable")

    def __str__(self) -> str:
        return f".{self.name}"

    def __repr__(self) -> str:
        return f"GetAttrKey(name={self.name!r})"

    def __eq__(self, other):
        return type(other) is GetAttrKey and self.name == other.name

    def __hash__(self):
        return hash((GetAttrKey, self.name))


_KEY_TYPES = (DictKey, SequenceKey, GetAttrKey)


def _as_key(k: Any):
    """Normalise a user-supplied path entry: ints become SequenceKey, other values DictKey."""
    if isinstance(k, _KEY_TYPES):
        return k
    if isinstance(k, int) and not isinstance(k, bool):
        return SequenceKey(k)
    return DictKey(k)


def keystr(path: Sequence[Any]) -> str:
    """Render a path like `['layers'][2]['w']` (attributes as `.name`)."""
    return "".join([str(_as_key(k)) for k in path])


def path_to_name(path: Sequence[Any], sep: str = ".") -> str:
    """Render a path as a flat name like `layers.2.w`, e.g. for checkpoint keys."""
    return sep.join([_as_key(k).name for k in path])


# --------------------------------------------------------------------------------------------
# The node table


class _Node:
    """How one node type is taken apart and put back together."""

    __slots__ = ("type", "flatten", "unflatten", "flatten_with_keys", "kind", "info")

    def __init__(self, type_, flatten, unflatten, flatten_with_keys, kind, info=None):
        self.type = type_
        self.flatten = flatten  # node -> (children, aux)
        self.unflatten = unflatten  # (aux, children) -> node
        self.flatten_with_keys = flatten_with_keys  # node -> ([(key, child), ...], aux)
        self.kind = kind
        self.info = info


class _Table(dict):
    """type -> _Node, or None for a leaf type; unknown types are classified once and cached."""

    def __missing__(self, t):
        node = _classify(t)
        self[t] = node
        return node


_registry: _Table = _Table()
_explicit: set = set()  # types registered by hand (or built in); not replaced by auto-detection


def _classify(t: type):
    if attrs.has(t):
        return _attrs_node(t)
    if issubclass(t, tuple) and hasattr(t, "_fields"):
        return _namedtuple_node(t)
    return None


def _mixed_order(k):
    return (type(k).__qualname__, repr(k))


def _sorted_keys(d) -> tuple:
    try:
        return tuple(sorted(d))
    except TypeError:  # keys of mixed, unorderable types: still a deterministic order
        return tuple(sorted(d, key=_mixed_order))


def _dict_flatten(d):
    try:
        keys = tuple(sorted(d))
    except TypeError:
        keys = _sorted_keys(d)
    return [d[k] for k in keys], keys


def _dict_unflatten(keys, children):
    return dict(zip(keys, children))


def _dict_keys(d):
    keys = _sorted_keys(d)
    return [(DictKey(k), d[k]) for k in keys], keys


def _odict_flatten(d):
    keys = tuple(d)
    return [d[k] for k in keys], keys


def _odict_unflatten(keys, children):
    return collections.OrderedDict(zip(keys, children))


def _odict_keys(d):
    keys = tuple(d)
    return [(DictKey(k), d[k]) for k in keys], keys


def _ddict_flatten(d):
    keys = _sorted_keys(d)
    return [d[k] for k in keys], (d.default_factory, keys)


def _ddict_unflatten(aux, children):
    return collections.defaultdict(aux[0], zip(aux[1], children))


def _ddict_keys(d):
    keys = _sorted_keys(d)
    return [(DictKey(k), d[k]) for k in keys], (d.default_factory, keys)


def _seq_flatten(x):
    return x, None


def _seq_keys(x):
    return [(SequenceKey(i), c) for i, c in enumerate(x)], None


def _list_unflatten(aux, children):
    return list(children)


def _tuple_unflatten(aux, children):
    return tuple(children)


def _none_flatten(x):
    return (), None


def _none_unflatten(aux, children):
    return None


def _none_keys(x):
    return [], None


def _namedtuple_node(cls) -> _Node:
    fields = cls._fields

    def unflatten(aux, children):
        return cls(*children)

    def flatten_with_keys(x):
        return [(GetAttrKey(f), c) for f, c in zip(fields, x)], None

    return _Node(cls, _seq_flatten, unflatten, flatten_with_keys, "namedtuple", fields)


def _attrs_node(cls) -> _Node:
    fields = attrs.fields(cls)
    dyn = [f for f in fields if not f.metadata.get("static", False)]
    static = [f for f in fields if f.metadata.get("static", False)]
    dyn_names = tuple(f.name for f in dyn)
    static_names = tuple(f.name for f in static)
    n_dyn = len(dyn_names)

    if n_dyn == 0:

        def get_children(x):
            return ()

    elif n_dyn == 1:
        get_one = operator.attrgetter(dyn_names[0])

        def get_children(x):
            return (get_one(x),)

    else:
        get_children = operator.attrgetter(*dyn_names)

    if not static_names:

        def flatten(x):
            return get_children(x), ()

    else:
        get_static = operator.attrgetter(*static_names)
        single_static = len(static_names) == 1

        def flatten(x):
            aux = (get_static(x),) if single_static else get_static(x)
            try:
                hash(aux)
            except TypeError:
                for name, value in zip(static_names, aux):
                    try:
                        hash(value)
                    except TypeError:
                        raise TypeError(
                            f"static field {cls.__qualname__}.{name} must be hashable (it is kept in "
                            f"the tree structure), got {type(value).__name__}"
                        ) from None
                raise
            return get_children(x), aux

    if all(f.init for f in fields):
        dyn_alias = tuple(f.alias for f in dyn)
        static_alias = tuple(f.alias for f in static)

        def unflatten(aux, children):
            kwargs = dict(zip(dyn_alias, children))
            if static_alias:
                kwargs.update(zip(static_alias, aux))
            return cls(**kwargs)

    else:
        # Some fields cannot be passed to __init__: set every field directly (works for frozen
        # and slotted classes alike, since object.__setattr__ bypasses attrs' frozen guard).
        def unflatten(aux, children):
            obj = _new(cls)
            for name, value in zip(dyn_names, children):
                _oset(obj, name, value)
            for name, value in zip(static_names, aux):
                _oset(obj, name, value)
            return obj

    def flatten_with_keys(x):
        children, aux = flatten(x)
        return [(GetAttrKey(n), c) for n, c in zip(dyn_names, children)], aux

    order = tuple((f.name, f.metadata.get("static", False)) for f in fields)
    return _Node(cls, flatten, unflatten, flatten_with_keys, "attrs", (dyn_names, static_names, order))


def _install(cls, flatten, unflatten, keys, kind):
    _registry[cls] = _Node(cls, flatten, unflatten, keys, kind)
    _explicit.add(cls)


_install(dict, _dict_flatten, _dict_unflatten, _dict_keys, "dict")
_install(collections.OrderedDict, _odict_flatten, _odict_unflatten, _odict_keys, "odict")
_install(collections.defaultdict, _ddict_flatten, _ddict_unflatten, _ddict_keys, "ddict")
_install(list, _seq_flatten, _list_unflatten, _seq_keys, "list")
_install(tuple, _seq_flatten, _tuple_unflatten, _seq_keys, "tuple")
_install(type(None), _none_flatten, _none_unflatten, _none_keys, "none")

# NumPy arrays are leaves, fixed as such (no registration may change that): the walkers test for
# them, the usual leaves, before they consult the table.
_NDARRAY = np.ndarray
_registry[_NDARRAY] = None
_explicit.add(_NDARRAY)


def register_leaf(cls: type) -> type:
    """Treat instances of `cls` as leaves, even an attrs class or namedtuple that would otherwise
    be taken apart (e.g. `fnn.nn.ShapeDtype`, which stands in for an array)."""
    if not isinstance(cls, type):
        raise TypeError(f"register_leaf: expected a class, got {cls!r}")
    if cls in _explicit:
        raise ValueError(f"register_leaf: {cls.__qualname__} is already registered")
    _registry[cls] = None
    _explicit.add(cls)
    return cls


def register(
    cls: type,
    flatten_fn: Callable[[Any], tuple[Iterable[Any], Hashable]],
    unflatten_fn: Callable[[Hashable, Sequence[Any]], Any],
    flatten_with_keys_fn: Callable[[Any], tuple[Iterable[tuple[Any, Any]], Hashable]] | None = None,
) -> type:
    """Register `cls` as a pytree node: `flatten_fn(x) -> (children, aux)`, `unflatten_fn(aux, children)`."""
    if not isinstance(cls, type):
        raise TypeError(f"register: expected a class, got {cls!r}")
    if cls in _explicit:
        kind = "a leaf" if _registry.get(cls) is None else "a pytree node"
        raise ValueError(f"register: {cls.__qualname__} is already registered as {kind}")
    if flatten_with_keys_fn is None:

        def keys_fn(x):
            children, aux = flatten_fn(x)
            return [(SequenceKey(i), c) for i, c in enumerate(children)], aux

    else:

        def keys_fn(x):
            pairs, aux = flatten_with_keys_fn(x)
            return [(_as_key(k), c) for k, c in pairs], aux

    _install(cls, flatten_fn, unflatten_fn, keys_fn, "custom")
    return cls


def static_field(**kwargs) -> Any:
    """An `attrs.field` kept in the tree structure (it must be hashable) instead of being a leaf."""
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata["static"] = True
    return attrs.field(metadata=metadata, **kwargs)


# --------------------------------------------------------------------------------------------
# TreeDef


class TreeDef:
    """The structure of a pytree: node types, dict keys and aux data, with the leaves left out.

    Immutable and hashable; `==` compares structure. Built by `flatten` / `structure`.
    """

    # Public attributes are read-only properties over these slots.
    __slots__ = ("_type", "_data", "_children", "_num_leaves", "_node", "_hash")

    def __init__(self, *args, **kwargs):
        raise TypeError("TreeDef is built by fnn.tree.flatten / fnn.tree.structure")

    node_type = property(lambda self: self._type, doc="The node's type (None for a leaf).")
    node_data = property(lambda self: self._data, doc="The node's aux data (dict keys, static fields).")
    children = property(lambda self: self._children, doc="The children's TreeDefs, a tuple.")
    num_leaves = property(lambda self: self._num_leaves, doc="How many leaves the structure holds.")

    def __eq__(self, other):
        if self is other:
            return True
        if type(other) is not TreeDef:
            return NotImplemented
        return (
            self._num_leaves == other._num_leaves
            and self._type is other._type
            and self._data == other._data
            and self._children == other._children
        )

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        try:
            return self._hash
        except AttributeError:
            h = self._hash = hash((self._type, self._data, self._children))
            return h

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return f"TreeDef({_repr(self)})"

    @property
    def is_leaf(self) -> bool:
        """True for the structure of a single leaf."""
        return self._node is None

    def unflatten(self, leaves: Iterable[Any]) -> Any:
        """Build a tree of this structure from `leaves`."""
        return unflatten(self, leaves)

    def flatten_up_to(self, tree: Any) -> list:
        """The subtrees of `tree` sitting where this structure has leaves."""
        return flatten_up_to(self, tree)


def _make(node: _Node, aux, children: tuple, num_leaves: int) -> TreeDef:
    td = _new(TreeDef)
    td._type = node.type
    td._data = aux
    td._children = children
    td._num_leaves = num_leaves
    td._node = node
    return td


_LEAF = _new(TreeDef)
_LEAF._type = None
_LEAF._data = None
_LEAF._children = ()
_LEAF._num_leaves = 1
_LEAF._node = None


def _repr(td: TreeDef) -> str:
    node = td._node
    if node is None:
        return "*"
    ch = [_repr(c) for c in td._children]
    kind, aux, name = node.kind, td._data, node.type.__name__
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(aux, ch)) + "}"
    if kind == "odict":
        return "OrderedDict({" + ", ".join(f"{k!r}: {c}" for k, c in zip(aux, ch)) + "})"
    if kind == "ddict":
        items = ", ".join(f"{k!r}: {c}" for k, c in zip(aux[1], ch))
        return f"defaultdict({aux[0]!r}, {{{items}}})"
    if kind == "list":
        return "[" + ", ".join(ch) + "]"
    if kind == "tuple":
        return "(" + ch[0] + ",)" if len(ch) == 1 else "(" + ", ".join(ch) + ")"
    if kind == "none":
        return "None"
    if kind == "namedtuple":
        return f"{name}(" + ", ".join(f"{f}={c}" for f, c in zip(node.info, ch)) + ")"
    if kind == "attrs":
        dyn_names, static_names, order = node.info
        dyn = dict(zip(dyn_names, ch))
        stat = dict(zip(static_names, aux))
        parts = [f"{f}={stat[f]!r}" if is_static else f"{f}={dyn[f]}" for f, is_static in order]
        return f"{name}(" + ", ".join(parts) + ")"
    head = name if aux is None else f"{name}[{aux!r}]"
    return f"{head}(" + ", ".join(ch) + ")"


# --------------------------------------------------------------------------------------------
# Flatten / unflatten


def _flatten_node(x, node: _Node, out: list) -> TreeDef:
    children, aux = node.flatten(x)
    start = len(out)
    registry, append = _registry, out.append
    defs = []
    add = defs.append
    for c in children:
        cnode = registry[type(c)]
        if cnode is None:
            append(c)
            add(_LEAF)
        else:
            add(_flatten_node(c, cnode, out))
    return _make(node, aux, tuple(defs), len(out) - start)


def _flatten(x, out: list) -> TreeDef:
    node = _registry[type(x)]
    if node is None:
        out.append(x)
        return _LEAF
    return _flatten_node(x, node, out)


def _flatten_is_leaf(x, out: list, is_leaf) -> TreeDef:
    if is_leaf(x):
        out.append(x)
        return _LEAF
    node = _registry[type(x)]
    if node is None:
        out.append(x)
        return _LEAF
    children, aux = node.flatten(x)
    start = len(out)
    defs = tuple([_flatten_is_leaf(c, out, is_leaf) for c in children])
    return _make(node, aux, defs, len(out) - start)


def _leaves_node(x, node: _Node, out: list) -> None:
    registry, append = _registry, out.append
    for c in node.flatten(x)[0]:
        cnode = registry[type(c)]
        if cnode is None:
            append(c)
        else:
            _leaves_node(c, cnode, out)


def _leaves_is_leaf(x, out: list, is_leaf) -> None:
    if is_leaf(x):
        out.append(x)
        return
    node = _registry[type(x)]
    if node is None:
        out.append(x)
        return
    for c in node.flatten(x)[0]:
        _leaves_is_leaf(c, out, is_leaf)


def _build(td: TreeDef, it) -> Any:
    return td._node.unflatten(
        td._data, [next(it) if c is _LEAF else _build(c, it) for c in td._children]
    )


def flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, TreeDef]:
    """Split `tree` into its list of leaves and its structure."""
    out: list = []
    td = _flatten(tree, out) if is_leaf is None else _flatten_is_leaf(tree, out, is_leaf)
    return out, td


def unflatten(treedef: TreeDef, leaves: Iterable[Any]) -> Any:
    """Build a tree of structure `treedef` whose leaves are `leaves` (in flatten's order)."""
    if type(treedef) is not TreeDef:
        raise TypeError(f"unflatten: expected a TreeDef, got {type(treedef).__name__}")
    if not isinstance(leaves, (list, tuple)):
        leaves = list(leaves)
    if len(leaves) != treedef._num_leaves:
        raise ValueError(
            f"unflatten: the structure has {treedef._num_leaves} leaves but {len(leaves)} were given"
        )
    if treedef._node is None:
        return leaves[0]
    return _build(treedef, iter(leaves))


def leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of `tree`, in flatten's order."""
    out: list = []
    if is_leaf is None:
        node = _registry[type(tree)]
        if node is None:
            return [tree]
        _leaves_node(tree, node, out)
    else:
        _leaves_is_leaf(tree, out, is_leaf)
    return out


def structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> TreeDef:
    """The TreeDef of `tree`."""
    return flatten(tree, is_leaf)[1]


def _flatten_path(x, path: tuple, out: list, is_leaf) -> TreeDef:
    if is_leaf is not None and is_leaf(x):
        out.append((path, x))
        return _LEAF
    node = _registry[type(x)]
    if node is None:
        out.append((path, x))
        return _LEAF
    pairs, aux = node.flatten_with_keys(x)
    start = len(out)
    defs = tuple([_flatten_path(c, path + (k,), out, is_leaf) for k, c in pairs])
    return _make(node, aux, defs, len(out) - start)


def flatten_with_path(
    tree: Any, is_leaf: Callable[[Any], bool] | None = None
) -> tuple[list[tuple[tuple, Any]], TreeDef]:
    """Like `flatten`, but each leaf comes with its path (a tuple of key entries)."""
    out: list = []
    td = _flatten_path(tree, (), out, is_leaf)
    return out, td


# --------------------------------------------------------------------------------------------
# Matching one tree against another's structure


class _Mismatch(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what
        self.keys: list = []  # innermost first


def _describe(node: _Node, aux, n: int) -> str:
    kind, name = node.kind, node.type.__name__
    if kind in ("dict", "odict"):
        return f"{name} with keys {aux!r}"
    if kind == "ddict":
        return f"{name} with keys {aux[1]!r}"
    if kind in ("list", "tuple"):
        return f"{name} of length {n}"
    if kind == "none":
        return "None"
    if kind == "namedtuple":
        return f"namedtuple {name}"
    if kind == "attrs":
        return f"{name} (attrs class)"
    return f"{name} with {n} children"


def _describe_static(node: _Node, aux) -> str:
    names = node.info[1]
    return "(" + ", ".join(f"{n}={v!r}" for n, v in zip(names, aux)) + ")"


def _difference(td: TreeDef, x, children, aux) -> str | None:
    """What differs between the node `td` and the value `x`, or None if they match at this level."""
    node = td._node
    if type(x) is not td._type:
        xnode = _registry[type(x)]
        other = (
            f"a leaf of type {type(x).__name__}"
            if xnode is None
            else _describe(xnode, *_aux_and_count(xnode, x))
        )
        return f"{_describe(node, td._data, len(td._children))} vs {other}"
    kind, name = node.kind, node.type.__name__
    if aux != td._data:
        if kind in ("dict", "odict"):
            return f"{name} keys {td._data!r} vs {aux!r}"
        if kind == "ddict":
            if aux[1] != td._data[1]:
                return f"{name} keys {td._data[1]!r} vs {aux[1]!r}"
            return f"{name} default_factory {td._data[0]!r} vs {aux[0]!r}"
        if kind == "attrs":
            return f"{name} static fields {_describe_static(node, td._data)} vs {_describe_static(node, aux)}"
        return f"{name} aux data {td._data!r} vs {aux!r}"
    if len(children) != len(td._children):
        return f"{_describe(node, aux, len(td._children))} vs {_describe(node, aux, len(children))}"
    return None


def _aux_and_count(node: _Node, x):
    children, aux = node.flatten(x)
    return aux, len(children)


def _up_to(td: TreeDef, x, out: list) -> None:
    node = td._node
    if node is None:
        out.append(x)
        return
    if type(x) is not td._type:
        raise _Mismatch(_difference(td, x, None, None))
    children, aux = node.flatten(x)
    if not isinstance(children, (list, tuple)):
        children = list(children)
    defs = td._children
    if aux != td._data or len(children) != len(defs):
        raise _Mismatch(_difference(td, x, children, aux))
    append = out.append
    i = 0
    try:
        for i, cd in enumerate(defs):
            if cd is _LEAF:
                append(children[i])
            else:
                _up_to(cd, children[i], out)
    except _Mismatch as e:
        e.keys.append(node.flatten_with_keys(x)[0][i][0])
        raise


def _mismatch_message(e: _Mismatch, prefix: str) -> str:
    path = keystr(e.keys[::-1])
    where = f"at {path}" if path else "at the root"
    return f"{prefix} {where}: {e.what}"


def flatten_up_to(treedef: TreeDef, tree: Any) -> list:
    """The subtrees of `tree` at the leaf positions of `treedef` (`tree` must match it down to there)."""
    out: list = []
    try:
        _up_to(treedef, tree, out)
    except _Mismatch as e:
        raise ValueError(_mismatch_message(e, "tree structure mismatch")) from None
    return out


def _rest_leaves(td: TreeDef, rest: tuple, who: str) -> list:
    result = []
    for i, r in enumerate(rest):
        out: list = []
        try:
            _up_to(td, r, out)
        except _Mismatch as e:
            msg = _mismatch_message(e, f"{who}: tree {i + 2} differs in structure from the first tree")
            raise ValueError(msg + f" (first tree vs tree {i + 2})") from None
        result.append(out)
    return result


class _NoFastPath(Exception):
    """The trees of a fast `map` differ somewhere; the general path explains where."""


def _map_walk(f: Callable[..., Any], x: Any) -> Any:
    if type(x) is dict:  # the common node, rebuilt without the registry (keys in sorted order)
        try:
            keys = sorted(x)
        except TypeError:
            keys = _sorted_keys(x)
        out = {}
        registry = _registry
        for k in keys:  # leaves (the usual children: arrays) are mapped here, without a call
            v = x[k]
            out[k] = f(v) if type(v) is _NDARRAY or registry[type(v)] is None else _map_walk(f, v)
        return out
    node = _registry[type(x)]
    if node is None:
        return f(x)
    children, aux = node.flatten(x)
    return node.unflatten(aux, [_map_walk(f, c) for c in children])


def _map_walk2(f: Callable[..., Any], x: Any, y: Any) -> Any:
    if type(x) is dict:
        # Same length and every key of x found in y (a KeyError otherwise) means the same keys.
        if type(y) is not dict or len(x) != len(y):
            raise _NoFastPath
        try:
            keys = sorted(x)
        except TypeError:
            keys = _sorted_keys(x)
        out = {}
        registry = _registry
        try:
            for k in keys:
                v = x[k]
                out[k] = (f(v, y[k]) if type(v) is _NDARRAY or registry[type(v)] is None
                          else _map_walk2(f, v, y[k]))
        except KeyError:
            if k in y:  # the KeyError came from f: not a structure mismatch
                raise
            raise _NoFastPath from None
        return out
    node = _registry[type(x)]
    if node is None:
        return f(x, y)
    if type(y) is not node.type:
        raise _NoFastPath
    children, aux = node.flatten(x)
    y_children, y_aux = node.flatten(y)
    if y_aux != aux or len(y_children) != len(children):
        raise _NoFastPath
    return node.unflatten(aux, [_map_walk2(f, c, d) for c, d in zip(children, y_children)])


def _map_walk_n(f: Callable[..., Any], x: Any, others: tuple) -> Any:
    if type(x) is dict:
        for o in others:
            if type(o) is not dict or x.keys() != o.keys():
                raise _NoFastPath
        try:
            keys = sorted(x)
        except TypeError:
            keys = _sorted_keys(x)
        return {k: _map_walk_n(f, x[k], tuple([o[k] for o in others])) for k in keys}
    node = _registry[type(x)]
    if node is None:
        return f(x, *others)
    children, aux = node.flatten(x)
    columns = []
    for o in others:
        if type(o) is not node.type:
            raise _NoFastPath
        o_children, o_aux = node.flatten(o)
        if o_aux != aux or len(o_children) != len(children):
            raise _NoFastPath
        columns.append(o_children)
    return node.unflatten(aux, [_map_walk_n(f, c, tuple([col[i] for col in columns]))
                                for i, c in enumerate(children)])


def map(f: Callable[..., Any], tree: Any, *rest: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Apply `f` leaf by leaf: `f(leaf, *leaves_of_rest)`; `rest` must match `tree`'s structure.

    Without `is_leaf`, the trees are walked together and rebuilt directly (no TreeDef is made:
    optimizer updates call this for every step); if they differ, the flatten-based path below
    raises the error that says where.
    """
    if is_leaf is None:
        if not rest:
            return _map_walk(f, tree)
        try:
            if len(rest) == 1:
                return _map_walk2(f, tree, rest[0])
            return _map_walk_n(f, tree, rest)
        except _NoFastPath:
            pass
    xs, td = flatten(tree, is_leaf)
    if not rest:
        new = [f(x) for x in xs]
    else:
        new = [f(*args) for args in zip(xs, *_rest_leaves(td, rest, "tree.map"))]
    if td._node is None:
        return new[0]
    return _build(td, iter(new))


def map_with_path(
    f: Callable[..., Any], tree: Any, *rest: Any, is_leaf: Callable[[Any], bool] | None = None
) -> Any:
    """Like `map`, but calls `f(path, leaf, *leaves_of_rest)`."""
    pairs, td = flatten_with_path(tree, is_leaf)
    if not rest:
        new = [f(p, x) for p, x in pairs]
    else:
        others = _rest_leaves(td, rest, "tree.map_with_path")
        new = [f(p, x, *o) for (p, x), *o in zip(pairs, *others)]
    if td._node is None:
        return new[0]
    return _build(td, iter(new))
