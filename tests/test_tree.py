"""Tests for fnn.tree: round trips over every node kind, leaf order, structure equality, map over
several trees, mismatch messages with paths, static fields, is_leaf, paths and names."""

import collections
import copy
from typing import Any, NamedTuple

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import tree


# --------------------------------------------------------------------------------------------
# Node kinds used by the tests


class Point(NamedTuple):
    x: Any
    y: Any


@attrs.frozen
class Frozen:
    a: Any
    b: Any
    tag: str = tree.static_field(default="t")


@attrs.define
class Mutable:
    w: Any
    _private: Any  # init argument is `private` (attrs alias)


@attrs.frozen
class WithDerived:
    x: Any
    y: Any = attrs.field(init=False)

    def __attrs_post_init__(self):
        object.__setattr__(self, "y", ("derived", self.x))


class Box:
    """A hand-registered node: children in a list, a label as aux data."""

    def __init__(self, items, label):
        self.items = list(items)
        self.label = label

    def __repr__(self):
        return f"Box({self.items!r}, {self.label!r})"


tree.register(Box, lambda b: (b.items, b.label), lambda label, children: Box(children, label))


class Named:
    """A hand-registered node with named children."""

    def __init__(self, first, second):
        self.first, self.second = first, second


tree.register(
    Named,
    lambda n: ((n.first, n.second), None),
    lambda aux, ch: Named(*ch),
    flatten_with_keys_fn=lambda n: ([(tree.GetAttrKey("first"), n.first), ("second", n.second)], None),
)


class Opaque:
    """Not registered: a leaf."""


# --------------------------------------------------------------------------------------------
# An independent reference: leaves in the expected order, and exact comparison of two trees


def ref_leaves(x):
    if x is None:
        return []
    if type(x) is dict:
        return [leaf for k in sorted(x) for leaf in ref_leaves(x[k])]
    if type(x) is collections.OrderedDict:
        return [leaf for k in x for leaf in ref_leaves(x[k])]
    if type(x) in (list, tuple, Point):
        return [leaf for c in x for leaf in ref_leaves(c)]
    if type(x) is Frozen:
        return ref_leaves(x.a) + ref_leaves(x.b)
    if type(x) is Box:
        return [leaf for c in x.items for leaf in ref_leaves(c)]
    return [x]


def assert_same(a, b, where="root"):
    """Same node types, same keys, same static data, and leaves that are the identical objects."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if a is None:
        return
    if type(a) is dict:
        assert set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif type(a) is collections.OrderedDict:
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif type(a) in (list, tuple, Point):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif type(a) is Frozen:
        assert a.tag == b.tag, where
        assert_same(a.a, b.a, where + ".a")
        assert_same(a.b, b.b, where + ".b")
    elif type(a) is Box:
        assert a.label == b.label, where
        assert len(a.items) == len(b.items), where
        for i, (x, y) in enumerate(zip(a.items, b.items)):
            assert_same(x, y, f"{where}.items[{i}]")
    else:
        assert a is b, f"{where}: leaf {a!r} is not the same object as {b!r}"


# --------------------------------------------------------------------------------------------
# Strategies

leaf_values = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=False, width=32),
    st.text(max_size=3),  # strings are leaves, never sequences
    st.builds(lambda n: np.arange(n, dtype=np.float32), st.integers(0, 3)),
    st.builds(Opaque),
)
dict_keys = st.text(alphabet="abcwxyz_", min_size=1, max_size=3)


def _nodes(children):
    return st.one_of(
        st.dictionaries(dict_keys, children, max_size=4),
        st.dictionaries(dict_keys, children, max_size=4).map(
            lambda d: collections.OrderedDict(reversed(list(d.items())))
        ),
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.builds(Point, children, children),
        st.builds(Frozen, children, children, st.sampled_from(["s", "t"])),
        st.builds(Box, st.lists(children, max_size=3), st.integers(0, 2)),
    )


trees = st.recursive(st.one_of(leaf_values, st.none()), _nodes, max_leaves=16)


# --------------------------------------------------------------------------------------------
# Round trips and leaf order


@given(trees)
def test_flatten_unflatten_round_trip_is_exact(t):
    xs, td = tree.flatten(t)
    assert td.num_leaves == len(xs)
    assert_same(t, tree.unflatten(td, xs))
    assert_same(t, td.unflatten(xs))


@given(trees)
def test_leaf_order_matches_reference(t):
    expected = ref_leaves(t)
    xs = tree.leaves(t)
    assert len(xs) == len(expected)
    assert all(a is b for a, b in zip(xs, expected))
    assert all(a is b for a, b in zip(tree.flatten(t)[0], expected))


@given(trees)
def test_unflatten_accepts_new_leaves_and_keeps_structure(t):
    td = tree.structure(t)
    new = [object() for _ in range(td.num_leaves)]
    rebuilt = tree.unflatten(td, iter(new))  # any iterable
    assert tree.structure(rebuilt) == td
    assert all(a is b for a, b in zip(tree.leaves(rebuilt), new))


@given(trees)
def test_structure_equality_and_hash(t):
    td = tree.structure(t)
    same = tree.structure(tree.map(lambda _: Opaque(), t))
    assert td == same and not (td != same)
    assert hash(td) == hash(same)
    assert {td: 1}[same] == 1
    assert td != tree.structure([t])
    assert td != tree.structure({"extra": 0, "t": t})


def test_dict_children_in_sorted_key_order_and_dict_type_restored():
    t = {"w": 1, "b": 2, "a": {"z": 3, "c": 4}}
    xs, td = tree.flatten(t)
    assert xs == [4, 3, 2, 1]
    out = tree.unflatten(td, xs)
    assert type(out) is dict and out == t
    # insertion order of the input does not change the structure
    assert tree.structure({"b": 0, "w": 0}) == tree.structure({"w": 0, "b": 0})


def test_ordered_dict_keeps_insertion_order():
    t = collections.OrderedDict([("z", 1), ("a", 2)])
    xs, td = tree.flatten(t)
    assert xs == [1, 2]
    out = td.unflatten(["p", "q"])
    assert type(out) is collections.OrderedDict and list(out.items()) == [("z", "p"), ("a", "q")]
    assert td != tree.structure(collections.OrderedDict([("a", 1), ("z", 2)]))
    assert td != tree.structure({"z": 1, "a": 2})


def test_defaultdict_round_trip():
    t = collections.defaultdict(list, {"b": 1, "a": 2})
    xs, td = tree.flatten(t)
    assert xs == [2, 1]
    out = td.unflatten(xs)
    assert type(out) is collections.defaultdict and out.default_factory is list and out == t


def test_none_is_a_node_without_children():
    assert tree.leaves(None) == []
    assert tree.leaves([None, 1, (None,)]) == [1]
    td = tree.structure(None)
    assert td.num_leaves == 0 and td != tree.structure(0)
    assert tree.unflatten(td, []) is None
    assert tree.map(lambda x: x + 1, {"a": None, "b": 1}) == {"a": None, "b": 2}


def test_namedtuple_rebuilt_as_same_class():
    t = Point(1, [2, 3])
    out = tree.map(lambda x: x * 10, t)
    assert type(out) is Point and out == Point(10, [20, 30])
    assert tree.structure(Point(1, 2)) != tree.structure((1, 2))


def test_single_leaf_and_empty_containers():
    arr = np.ones(3)
    xs, td = tree.flatten(arr)
    assert xs[0] is arr and td.num_leaves == 1 and td.is_leaf
    assert tree.unflatten(td, [5]) == 5
    for empty in ({}, [], (), collections.OrderedDict()):
        xs, td = tree.flatten(empty)
        assert xs == [] and type(tree.unflatten(td, [])) is type(empty)
    assert tree.structure({}) != tree.structure([])


def test_strings_and_unregistered_objects_are_leaves():
    o = Opaque()
    assert tree.leaves(["abc", o, b"xy"]) == ["abc", o, b"xy"]


# --------------------------------------------------------------------------------------------
# attrs classes and static fields


def test_static_field_is_in_structure_not_leaves():
    m = Frozen(np.zeros(2), 3, tag="conv")
    xs, td = tree.flatten(m)
    assert len(xs) == 2 and xs[1] == 3
    assert td != tree.structure(Frozen(np.zeros(2), 3, tag="dense"))
    assert td == tree.structure(Frozen(1.0, 2.0, tag="conv"))
    out = tree.map(lambda x: x + 1, m)
    assert type(out) is Frozen and out.tag == "conv" and out.b == 4
    assert attrs.fields(Frozen).tag.metadata["static"] is True
    assert "tag='conv'" in repr(td)


def test_static_field_must_be_hashable():
    with pytest.raises(TypeError, match=r"static field .*Frozen\.tag must be hashable"):
        tree.flatten(Frozen(1, 2, tag=["not", "hashable"]))


def test_attrs_private_field_and_mutable_class():
    m = Mutable(w=1, private=2)
    out = tree.map(lambda x: x * 2, m)
    assert type(out) is Mutable and out.w == 2 and out._private == 4


def test_attrs_init_false_field_is_restored_without_init():
    m = WithDerived(1)
    xs, td = tree.flatten(m)
    assert xs == [1, "derived", 1]
    out = td.unflatten([10, "kept", 11])
    assert type(out) is WithDerived and out.x == 10 and out.y == ("kept", 11)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        out.x = 3  # still frozen


def test_attrs_fields_in_definition_order():
    @attrs.frozen
    class Order:
        z: Any
        a: Any

    assert tree.leaves(Order(1, 2)) == [1, 2]
    assert repr(tree.structure(Order(1, 2))) == "TreeDef(Order(z=*, a=*))"


# --------------------------------------------------------------------------------------------
# map


@given(trees)
def test_map_over_several_trees(t):
    td = tree.structure(t)
    n = td.num_leaves
    a = td.unflatten(list(range(n)))
    b = td.unflatten(list(range(100, 100 + n)))
    c = td.unflatten([1000] * n)
    out = tree.map(lambda x, y, z: x + y + z, a, b, c)
    assert tree.structure(out) == td
    assert tree.leaves(out) == [i + (100 + i) + 1000 for i in range(n)]


def test_map_rest_may_have_subtrees_at_leaves():
    out = tree.map(lambda x, y: (x, y), {"a": 1, "b": 2}, {"a": [3, 4], "b": None})
    assert out == {"a": (1, [3, 4]), "b": (2, None)}


def test_map_with_is_leaf():
    t = {"a": (1, 2), "b": [(3, 4)]}
    out = tree.map(lambda p: p[0] + p[1], t, is_leaf=lambda x: type(x) is tuple)
    assert out == {"a": 3, "b": [7]}


def test_map_with_path():
    t = {"layers": [{"w": 1}, {"w": 2}], "m": Frozen(3, 4)}
    out = tree.map_with_path(lambda p, x, y: f"{tree.path_to_name(p)}={x + y}", t, t)
    assert out["layers"][1]["w"] == "layers.1.w=4"
    assert out["m"].a == "m.a=6"


# --------------------------------------------------------------------------------------------
# Mismatch errors


def _map2(a, b):
    return tree.map(lambda x, y: x, a, b)


def test_mismatch_dict_keys_names_path():
    a = {"layers": [{"w": 0}, {"w": 0}, {"w": {"b": 1, "w": 2}}]}
    b = {"layers": [{"w": 0}, {"w": 0}, {"w": {"w": 2}}]}
    with pytest.raises(ValueError) as e:
        _map2(a, b)
    msg = str(e.value)
    assert "['layers'][2]['w']" in msg
    assert "dict keys ('b', 'w') vs ('w',)" in msg


def test_mismatch_list_vs_tuple():
    with pytest.raises(ValueError) as e:
        _map2({"x": [1, 2, 3]}, {"x": (1, 2, 3)})
    assert "['x']" in str(e.value)
    assert "list of length 3 vs tuple of length 3" in str(e.value)


def test_mismatch_length_and_attribute_path():
    with pytest.raises(ValueError) as e:
        _map2({"m": Frozen([1, 2], 0)}, {"m": Frozen([1], 0)})
    assert "['m'].a" in str(e.value)
    assert "list of length 2 vs list of length 1" in str(e.value)


def test_mismatch_node_vs_leaf_and_at_root():
    with pytest.raises(ValueError) as e:
        _map2([{"w": 1}], [5])
    assert "[0]" in str(e.value) and "a leaf of type int" in str(e.value)
    with pytest.raises(ValueError, match="at the root"):
        _map2([1], {"a": 1})


def test_mismatch_static_field_and_third_tree():
    with pytest.raises(ValueError) as e:
        tree.map(lambda *xs: 0, [Frozen(1, 2, "s")], [Frozen(1, 2, "s")], [Frozen(1, 2, "t")])
    msg = str(e.value)
    assert "[0]" in msg and "static fields (tag='s') vs (tag='t')" in msg and "tree 3" in msg


def test_mismatch_namedtuple_vs_tuple():
    with pytest.raises(ValueError, match=r"\['p'\]: namedtuple Point vs tuple of length 2"):
        _map2({"p": Point(1, 2)}, {"p": (1, 2)})


def test_flatten_up_to():
    td = tree.structure({"a": 0, "b": [0, 0]})
    assert td.flatten_up_to({"a": [1], "b": [2, {"c": 3}]}) == [[1], 2, {"c": 3}]
    with pytest.raises(ValueError, match=r"\['b'\]: list of length 2 vs list of length 3"):
        tree.flatten_up_to(td, {"a": 1, "b": [1, 2, 3]})


# --------------------------------------------------------------------------------------------
# Paths


def test_flatten_with_path_keystr_and_names():
    t = {"layers": [{"w": 1, "b": 2}, Point(3, 4), Frozen(5, 6)], "conv_0": {"w": 7}}
    pairs, td = tree.flatten_with_path(t)
    assert td == tree.structure(t)
    assert [x for _, x in pairs] == tree.leaves(t)
    strs = [tree.keystr(p) for p, _ in pairs]
    names = [tree.path_to_name(p) for p, _ in pairs]
    assert strs == [
        "['conv_0']['w']",
        "['layers'][0]['b']",
        "['layers'][0]['w']",
        "['layers'][1].x",
        "['layers'][1].y",
        "['layers'][2].a",
        "['layers'][2].b",
    ]
    assert names[0] == "conv_0.w" and names[2] == "layers.0.w" and names[4] == "layers.1.y"
    assert tree.path_to_name(pairs[2][0], sep="/") == "layers/0/w"


def test_path_helpers_accept_plain_entries():
    assert tree.keystr(("layers", 2, "w")) == "['layers'][2]['w']"
    assert tree.path_to_name(("layers", 2, "w")) == "layers.2.w"
    assert tree.keystr(()) == ""


def test_custom_node_paths():
    pairs, _ = tree.flatten_with_path(Box([1, 2], "x"))
    assert [tree.keystr(p) for p, _ in pairs] == ["[0]", "[1]"]
    pairs, _ = tree.flatten_with_path({"n": Named(1, 2)})
    assert [tree.keystr(p) for p, _ in pairs] == ["['n'].first", "['n']['second']"]


def test_flatten_with_path_is_leaf():
    pairs, td = tree.flatten_with_path({"a": (1, 2), "b": 3}, is_leaf=lambda x: isinstance(x, tuple))
    assert pairs == [((tree.DictKey("a"),), (1, 2)), ((tree.DictKey("b"),), 3)]
    assert td.num_leaves == 2


# --------------------------------------------------------------------------------------------
# Registration, is_leaf, TreeDef details


def test_custom_registered_node():
    b = Box([1, {"k": 2}], "lbl")
    xs, td = tree.flatten(b)
    assert xs == [1, 2]
    out = td.unflatten([5, 6])
    assert type(out) is Box and out.label == "lbl" and out.items == [5, {"k": 6}]
    assert td != tree.structure(Box([1, {"k": 2}], "other"))
    assert repr(td) == "TreeDef(Box['lbl'](*, {'k': *}))"


def test_register_twice_or_non_class_fails():
    with pytest.raises(ValueError, match="already registered"):
        tree.register(Box, lambda b: ((), None), lambda a, c: None)
    with pytest.raises(ValueError, match="already registered as a pytree node"):
        tree.register(dict, lambda b: ((), None), lambda a, c: None)
    with pytest.raises(ValueError, match="already registered as a leaf"):
        tree.register(np.ndarray, lambda b: ((), None), lambda a, c: None)  # arrays stay leaves
    with pytest.raises(TypeError):
        tree.register("Box", lambda b: ((), None), lambda a, c: None)


def test_is_leaf_stops_descent():
    t = {"a": (1, 2), "b": [3, (4,)]}
    is_tuple = lambda x: type(x) is tuple  # noqa: E731
    xs, td = tree.flatten(t, is_leaf=is_tuple)
    assert xs == [(1, 2), 3, (4,)]
    assert td.unflatten(xs) == t
    assert tree.leaves(t, is_leaf=is_tuple) == xs
    assert tree.structure(t, is_leaf=is_tuple) == td
    assert tree.leaves(t, is_leaf=lambda x: x is t) == [t]


def test_unflatten_wrong_count_names_both_counts():
    td = tree.structure({"a": 1, "b": [2, 3]})
    with pytest.raises(ValueError, match=r"3 leaves but 2 were given"):
        tree.unflatten(td, [1, 2])
    with pytest.raises(ValueError, match=r"3 leaves but 4 were given"):
        td.unflatten([1, 2, 3, 4])


def test_treedef_repr_and_immutability():
    td = tree.structure({"w": np.zeros(2), "b": np.zeros(2)})
    assert repr(td) == "TreeDef({'b': *, 'w': *})"
    assert repr(tree.structure([(1,), None, Point(1, 2)])) == "TreeDef([(*,), None, Point(x=*, y=*)])"
    assert td.num_leaves == 2 and td.node_type is dict and td.node_data == ("b", "w")
    assert len(td.children) == 2
    with pytest.raises(AttributeError):
        td.num_leaves = 3
    with pytest.raises(AttributeError):
        td.node_data = ()
    assert copy.deepcopy(td) is td
    with pytest.raises(TypeError):
        tree.TreeDef()


def test_leaves_inside_arrays_are_not_copied():
    w = np.zeros((2, 2), np.float32)
    out = tree.map(lambda x: x, {"w": w})
    assert out["w"] is w
