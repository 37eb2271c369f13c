"""Property tests for indexing traced values: `x[idx]` through Box.__getitem__ (basic, advanced with
repeated indices, boolean masks, mixed), and the functional updates `fnp.at(x)[idx].set / .add /
.multiply / .get` (and `x.at[idx]` on traced values). Forward results are compared with NumPy's
(plain indexing, `np.add.at`, `np.multiply.at`); gradients with respect to x and v (v broadcast)
pass `check_grads`. Also the errors for in-place assignment and for turning a traced value into a
NumPy array."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp
from gradcheck import check_grads
from strategies import MAX_SIZE, arrays
from strategies import shapes as _shapes



# --------------------------------------------------------------------------------------------
# Strategies and helpers


def shapes(min_dims=0, max_dims=3, min_side=0, max_side=4, max_size=MAX_SIZE):
    return _shapes(min_dims, max_dims, min_side, max_side, max_size)




@st.composite
def int_arrays(draw, n, shape):
    """Integer indices into an axis of size n, negative ones included (repeats are likely)."""
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(-n, n, size=shape)


def component(n):
    """One basic index component for an axis of size n."""
    bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
    step = st.one_of(st.none(), st.sampled_from([-3, -2, -1, 1, 2, 3]))
    sl = st.builds(slice, bound, bound, step)
    if n == 0:
        return sl
    return st.one_of(st.integers(-n, n - 1), st.integers(-n, n - 1).map(np.int64), sl)


@st.composite
def basic_indices(draw, shape):
    """ints, slices (any step, out-of-range bounds), None and at most one Ellipsis."""
    nd = len(shape)
    k = draw(st.integers(0, nd))
    if draw(st.booleans()):  # Ellipsis: j components in front, k - j at the back
        j = draw(st.integers(0, k))
        parts = [draw(component(n)) for n in shape[:j]] + [Ellipsis]
        parts += [draw(component(n)) for n in shape[nd - (k - j):]] if k - j else []
    else:
        parts = [draw(component(n)) for n in shape[:k]]
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), None)
    if len(parts) == 1 and draw(st.booleans()):
        return parts[0]
    return tuple(parts)


@st.composite
def advanced_indices(draw, shape, unique=False):
    """Integer arrays (repeats unless `unique`), lists, boolean masks, and mixes with slices."""
    nd = len(shape)
    kind = draw(st.sampled_from(["one_array", "list", "two_arrays", "two_split", "mask_full",
                                 "mask_lead", "mask_mixed", "scalar_array"]))
    if kind in ("two_arrays", "two_split") and nd < 2 or kind == "two_split" and nd < 3:
        kind = "one_array"
    if kind == "mask_mixed" and nd < 2:
        kind = "mask_full"
    if kind.startswith("mask"):
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        if kind == "mask_full":
            return rng.random(shape) < 0.5
        if kind == "mask_lead":
            return rng.random(shape[:draw(st.integers(1, nd))]) < 0.5
        return (slice(None), rng.random(shape[1:2]) < 0.5)
    axis = draw(st.integers(0, nd - 1))
    n = shape[axis]
    lead = [draw(st.sampled_from([slice(None), slice(None, None, -1), slice(1, None)]))
            for _ in range(axis)]
    if n == 0:
        arr = np.zeros((0,), dtype=np.intp)
    elif unique:
        count = draw(st.integers(0, n))
        arr = np.array(draw(st.permutations(range(n)))[:count], dtype=np.intp)
        arr = arr - n * np.array(draw(st.lists(st.booleans(), min_size=count, max_size=count)), dtype=np.intp)
    else:
        arr = draw(int_arrays(n, draw(st.sampled_from([(3,), (0,), (2, 2), (4,)]))))
    if kind == "scalar_array" and arr.size:
        return tuple(lead) + (np.array(arr.reshape(-1)[0]),)  # a 0-d integer array
    if kind == "list":
        return tuple(lead) + (arr.reshape(-1).tolist(),)
    if kind == "one_array":
        tail = [slice(None)] * draw(st.integers(0, nd - axis - 1))
        if draw(st.booleans()):
            tail = [draw(st.sampled_from([None, Ellipsis]))] + tail
        return tuple(lead) + (arr,) + tuple(tail)
    # two integer arrays that broadcast together, adjacent or separated by a slice
    axis2 = axis + 1 if kind == "two_arrays" or axis + 2 >= nd else axis + 2
    if axis2 >= nd:
        return tuple(lead) + (arr,)
    m = shape[axis2]
    if m == 0 or n == 0:
        return tuple(lead) + (arr,)
    if unique:
        other = np.zeros(arr.shape, dtype=np.intp) + (m - 1)  # pairs stay distinct
    else:
        other = draw(int_arrays(m, arr.shape[-1:] if arr.ndim else ()))
    middle = (slice(None),) if axis2 == axis + 2 else ()
    idx = tuple(lead) + (arr,) + middle + (other,)
    if draw(st.booleans()):  # None and Ellipsis next to advanced indices
        idx = idx + (None, Ellipsis) if draw(st.booleans()) else (None,) + idx
    return idx


def assert_same(actual, expected, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_array_equal(actual, expected, err_msg=what)


def check(f, expected, *args, order=2, exact=True):
    """f on plain and traced arguments against `expected`, then its derivatives."""
    compare = assert_same if exact else (
        lambda a, e, w: np.testing.assert_allclose(np.asarray(a), e, rtol=1e-12, atol=1e-12, err_msg=w))
    compare(f(*args), expected, "forward on plain arrays")
    traced_value, _ = fnn.vjp(f, *args)
    compare(traced_value, expected, "forward on traced values")
    check_grads(f, args, order=order)


@st.composite
def broadcastable_to(draw, shape):
    """A value broadcastable to `shape`: a Python float, a 0-d array, or a shape with some leading
    axes dropped and some axes of size 1."""
    kind = draw(st.sampled_from(["float", "0d", "array"]))
    if kind == "float":
        return float(draw(st.floats(-2, 2)))
    if kind == "0d":
        return draw(arrays(()))
    drop = draw(st.integers(0, len(shape)))
    vshape = tuple(1 if draw(st.booleans()) else n for n in shape[drop:])
    return draw(arrays(vshape))


# --------------------------------------------------------------------------------------------
# getitem


@given(data=st.data(), a=shapes(max_dims=3).flatmap(arrays))
def test_basic_indexing(data, a):
    idx = data.draw(basic_indices(a.shape))
    check(lambda x: x[idx], a[idx], a)


@given(data=st.data(), a=shapes(min_dims=1, max_dims=3).flatmap(arrays))
def test_advanced_indexing(data, a):
    idx = data.draw(advanced_indices(a.shape))
    check(lambda x: x[idx], a[idx], a)


def test_repeated_indices_add_up():
    a = np.arange(5.0)
    idx = np.array([[1, 3], [1, 1]])
    g = fnn.grad(lambda x: fnp.sum(x[idx] * np.array([[1.0, 2.0], [3.0, 4.0]])))(a)
    np.testing.assert_array_equal(g, [0.0, 8.0, 0.0, 2.0, 0.0])
    g = fnn.grad(lambda x: fnp.sum(x[[0, 0, 0, -1]]))(a)
    np.testing.assert_array_equal(g, [3.0, 0.0, 0.0, 0.0, 1.0])


def test_mask_gradient_is_the_mask():
    a = np.array([[1.0, -2.0], [-3.0, 4.0]])
    g = fnn.grad(lambda x: fnp.sum(x[x > 0] ** 2))(a)
    np.testing.assert_array_equal(g, [[2.0, 0.0], [0.0, 8.0]])


def test_empty_list_index():
    a = np.arange(3.0)
    assert_same(fnn.vjp(lambda x: x[[]], a)[0], a[[]])
    check_grads(lambda x: x[[]], [a])


@given(a=shapes(min_dims=1, max_dims=3, min_side=1).flatmap(arrays))
def test_iteration_and_len(a):
    def f(x):
        assert len(x) == a.shape[0]
        return fnp.stack([row * float(i + 1) for i, row in enumerate(x)])

    check(f, np.stack([row * float(i + 1) for i, row in enumerate(a)]), a, exact=False)


# --------------------------------------------------------------------------------------------
# functional updates


def _np_set(a, idx, v):
    out = a.copy()
    out[idx] = v
    return out


def _np_ufunc_at(ufunc, a, idx, v):
    out = a.copy()
    ufunc.at(out, idx, np.broadcast_to(v, a[idx].shape))  # broadcast first: see the test below
    return out


@st.composite
def index_and_value(draw, a, unique=False):
    if draw(st.booleans()):
        idx = draw(basic_indices(a.shape))
    else:
        idx = draw(advanced_indices(a.shape, unique=unique))
    v = draw(broadcastable_to(a[idx].shape))
    return idx, v


@given(data=st.data(), a=shapes(min_dims=1, max_dims=3).flatmap(arrays))
def test_at_set(data, a):
    idx, v = data.draw(index_and_value(a, unique=True))
    before = a.copy()
    check(lambda x, v: fnp.at(x)[idx].set(v), _np_set(a, idx, v), a, v)
    assert_same(a, before, "fnp.at must not modify its argument")


@given(data=st.data(), a=shapes(min_dims=1, max_dims=3).flatmap(arrays))
def test_at_add(data, a):
    idx, v = data.draw(index_and_value(a))  # repeated indices add up
    check(lambda x, v: fnp.at(x)[idx].add(v), _np_ufunc_at(np.add, a, idx, v), a, v, exact=False)


@given(data=st.data(), a=shapes(min_dims=1, max_dims=3).flatmap(arrays))
def test_at_multiply(data, a):
    idx, v = data.draw(index_and_value(a))  # repeated indices multiply up
    check(lambda x, v: fnp.at(x)[idx].multiply(v), _np_ufunc_at(np.multiply, a, idx, v), a, v,
          exact=False)


@given(data=st.data(), a=shapes(min_dims=1, max_dims=3).flatmap(arrays))
def test_at_get(data, a):
    idx, _ = data.draw(index_and_value(a))
    check(lambda x: fnp.at(x)[idx].get(), a[idx], a)


def test_repeated_indices_in_add_and_multiply():
    x = np.array([1.0, 2.0, 3.0])
    idx = np.array([1, 1, 2, 1])
    v = np.array([10.0, 20.0, 30.0, 40.0])
    np.testing.assert_array_equal(fnp.at(x)[idx].add(v), [1.0, 72.0, 33.0])
    gx, gv = fnn.grad(lambda x, v: fnp.sum(fnp.at(x)[idx].add(v) * np.array([1.0, 2.0, 3.0])),
                      argnums=(0, 1))(x, v)
    np.testing.assert_array_equal(gx, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(gv, [2.0, 2.0, 3.0, 2.0])
    v = np.array([2.0, 3.0, 5.0, 7.0])
    np.testing.assert_array_equal(fnp.at(x)[idx].multiply(v), [1.0, 84.0, 15.0])
    gx, gv = fnn.grad(lambda x, v: fnp.sum(fnp.at(x)[idx].multiply(v)), argnums=(0, 1))(x, v)
    np.testing.assert_array_equal(gx, [1.0, 42.0, 5.0])
    # d/dv_k of x[1] * v0 * v1 * v3 is x[1] times the *other* factors at the same position
    np.testing.assert_allclose(gv, [2.0 * 21.0, 2.0 * 14.0, 3.0, 2.0 * 6.0])


@given(data=st.data(), a=shapes(min_dims=1, max_dims=3).flatmap(arrays))
def test_traced_at_property_matches_fnp_at(data, a):
    """`x.at[idx]` on a traced x: same values and cotangents as `fnp.at(x)[idx]`."""
    idx, v = data.draw(index_and_value(a, unique=True))
    u = np.random.default_rng(0).standard_normal(a.shape)
    for op in ("set", "add", "multiply"):
        out_p, fn_p = fnn.vjp(lambda x, v: getattr(x.at[idx], op)(v), a, v)
        out_f, fn_f = fnn.vjp(lambda x, v: getattr(fnp.at(x)[idx], op)(v), a, v)
        assert_same(out_p, out_f, op)
        for c_p, c_f in zip(fn_p(u), fn_f(u)):
            np.testing.assert_allclose(c_p, c_f, rtol=1e-12, atol=1e-12, err_msg=op)
    out, _ = fnn.vjp(lambda x: x.at[idx].get(), a)
    assert_same(out, a[idx], "get")


def test_at_on_plain_arrays_returns_plain_arrays():
    a = np.zeros((2, 3))
    out = fnp.at(a)[0, [0, 2]].set(np.array([1.0, 2.0]))
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, [[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(a, 0.0)


# --------------------------------------------------------------------------------------------
# errors


def test_setitem_on_traced_value_points_to_at():
    def f(x):
        x[0] = 1.0
        return fnp.sum(x)

    with pytest.raises(TypeError) as info:
        fnn.grad(f)(np.arange(3.0))
    assert ".at[" in str(info.value)


def test_np_asarray_of_traced_value_explains_lost_gradient():
    def f(x):
        return np.sum(np.asarray(x))

    with pytest.raises(TypeError) as info:
        fnn.grad(f)(np.arange(3.0))
    message = str(info.value)
    assert "gradient" in message and "lost" in message

    with pytest.raises(TypeError, match="gradient would be lost"):
        fnn.grad(lambda x: np.array(x).sum())(np.arange(3.0))


def test_traced_index_is_refused():
    with pytest.raises(TypeError, match="index"):
        fnn.grad(lambda x: fnp.sum(x[x]))(np.arange(3.0))


def test_values_broadcast_along_a_repeated_index_count_every_time():
    # v (2,) is broadcast over the index's (2, 2) shape: each of its entries lands twice on x[0]
    # (NumPy 2.x's ufunc.at alone applies it once, so fnn broadcasts the values first).
    idx = (np.array([[0, 0], [0, -1]]),)
    v = np.array([1.0, 0.5])
    np.testing.assert_allclose(fnp.at(np.zeros(1))[idx].add(v), [3.0])
    np.testing.assert_allclose(fnp.at(np.ones(1))[idx].multiply(v), [0.25])
    g = fnn.grad(lambda v: fnp.sum(fnp.at(np.zeros(1))[idx].add(v) * 3.0))(v)
    np.testing.assert_allclose(g, [6.0, 6.0])
