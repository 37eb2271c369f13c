"""Property tests for the shape functions of fnn.numpy: forward results equal NumPy's (shape, dtype
and values), and gradients pass `check_grads` (VJP and JVP against central differences, the
dot-product law, and second derivatives where cheap). Shapes are drawn by hypothesis and include
size-1 and size-0 axes wherever NumPy allows them; differentiated inputs stay small (<= ~12
elements) because central differences cost one call per element."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp
from gradcheck import check_grads
from strategies import arrays, shapes



# --------------------------------------------------------------------------------------------
# Strategies and helpers




@st.composite
def shape_and_array(draw, **kw):
    shape = draw(shapes(**kw))
    return draw(arrays(shape))


def assert_same(actual, expected, what=""):
    """Same shape, same dtype, same values (shape functions copy values exactly)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_array_equal(actual, expected, err_msg=what)


def check(f, ref, *args, order=1):
    """f (fnn) against ref (NumPy) on plain and on traced inputs, then its derivatives."""
    expected = ref(*args)
    assert_same(f(*args), expected, "forward on plain arrays")
    traced_value, _ = fnn.vjp(f, *args)
    assert_same(traced_value, expected, "forward on traced values")
    check_grads(f, args, order=order)


def check_pieces(f, ref, a):
    """For functions returning a list of arrays (split & co.): each piece equal to NumPy's, and
    the gradient checked through the concatenation of the raveled pieces."""
    expected = ref(a)
    got = f(a)
    assert len(got) == len(expected)
    for k, (p, q) in enumerate(zip(got, expected)):
        assert_same(p, q, f"piece {k}")

    def joined(x):
        pieces = f(x)
        return fnp.concatenate([fnp.ravel(p) * float(k + 1) for k, p in enumerate(pieces)])

    check_grads(joined, [a], order=2)


# --------------------------------------------------------------------------------------------
# reshape, transpose, ravel, expand_dims, squeeze, swapaxes, moveaxis, broadcast_to


def _shapes_of_size(n):
    if n == 0:
        return [(0,), (0, 2), (3, 0), (1, 0), (2, 0, 1), (0, 0)]
    out = [(n,)]
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    out += [(d, n // d) for d in divisors]
    out += [(d, e, n // (d * e)) for d in divisors for e in divisors if (n // d) % e == 0]
    return out


@given(data=st.data(), a=shape_and_array(max_dims=4))
def test_reshape(data, a):
    target = list(data.draw(st.sampled_from(_shapes_of_size(a.size))))
    if a.size and data.draw(st.booleans()):
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    target = tuple(target)
    order = data.draw(st.sampled_from(["C", "F"]))
    check(lambda x: fnp.reshape(x, target, order=order), lambda x: np.reshape(x, target, order=order),
          a, order=2)
    # the method, with the shape given as separate ints and as a tuple
    check(lambda x: fnp.reshape(x, target).reshape(*target), lambda x: x.reshape(target), a)


@given(data=st.data(), a=shape_and_array(max_dims=4))
def test_transpose(data, a):
    nd = a.ndim
    axes = data.draw(st.one_of(st.none(), st.permutations(range(nd)).map(tuple)))
    if axes is not None and data.draw(st.booleans()):
        axes = tuple(ax - nd if data.draw(st.booleans()) else ax for ax in axes)  # negative axes
    check(lambda x: fnp.transpose(x, axes), lambda x: np.transpose(x, axes), a, order=2)
    if axes:
        check(lambda x: fnn.numpy.reshape(x, a.shape).transpose(*axes), lambda x: x.transpose(axes), a)
    check(lambda x: fnp.reshape(x, a.shape).T, lambda x: x.T, a)
    if nd >= 2:
        check(lambda x: fnp.reshape(x, a.shape).mT, lambda x: np.swapaxes(x, -1, -2), a)


@given(a=shape_and_array(max_dims=4), order=st.sampled_from(["C", "F"]))
def test_ravel_and_flatten(a, order):
    check(lambda x: fnp.ravel(x, order), lambda x: np.ravel(x, order), a, order=2)
    check(lambda x: fnp.reshape(x, a.shape).flatten(order), lambda x: x.flatten(order), a)
    check(lambda x: fnp.reshape(x, a.shape).ravel(), lambda x: x.ravel(), a)


@given(data=st.data(), a=shape_and_array(max_dims=3))
def test_expand_dims(data, a):
    nd = a.ndim
    if data.draw(st.booleans()):
        axis = data.draw(st.integers(-nd - 1, nd))
    else:
        k = data.draw(st.integers(1, 2))
        picked = data.draw(st.lists(st.integers(0, nd + k - 1), min_size=k, max_size=k, unique=True))
        axis = tuple(ax - (nd + k) if data.draw(st.booleans()) else ax for ax in picked)
    check(lambda x: fnp.expand_dims(x, axis), lambda x: np.expand_dims(x, axis), a, order=2)


@given(data=st.data(), a=shape_and_array(max_dims=4, max_side=2))
def test_squeeze(data, a):
    ones = [i for i, n in enumerate(a.shape) if n == 1]
    choice = data.draw(st.sampled_from(["none", "one", "some"]) if ones else st.just("none"))
    if choice == "none":
        axis = None
    elif choice == "one":
        axis = data.draw(st.sampled_from(ones))
        axis = axis - a.ndim if data.draw(st.booleans()) else axis
    else:
        axis = tuple(data.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True)))
    check(lambda x: fnp.squeeze(x, axis), lambda x: np.squeeze(x, axis), a, order=2)
    check(lambda x: fnp.reshape(x, a.shape).squeeze(axis), lambda x: x.squeeze(axis), a)


@given(data=st.data(), a=shape_and_array(min_dims=1, max_dims=4))
def test_swapaxes(data, a):
    nd = a.ndim
    ax1, ax2 = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    check(lambda x: fnp.swapaxes(x, ax1, ax2), lambda x: np.swapaxes(x, ax1, ax2), a, order=2)
    check(lambda x: fnp.reshape(x, a.shape).swapaxes(ax1, ax2), lambda x: x.swapaxes(ax1, ax2), a)


@given(data=st.data(), a=shape_and_array(min_dims=1, max_dims=4))
def test_moveaxis(data, a):
    nd = a.ndim
    k = data.draw(st.integers(1, nd))
    src = data.draw(st.lists(st.integers(0, nd - 1), min_size=k, max_size=k, unique=True))
    dst = data.draw(st.lists(st.integers(0, nd - 1), min_size=k, max_size=k, unique=True))
    src = [s - nd if data.draw(st.booleans()) else s for s in src]
    dst = [d - nd if data.draw(st.booleans()) else d for d in dst]
    if k == 1 and data.draw(st.booleans()):
        src, dst = src[0], dst[0]
    check(lambda x: fnp.moveaxis(x, src, dst), lambda x: np.moveaxis(x, src, dst), a, order=2)


@given(data=st.data(), a=shape_and_array(max_dims=3, max_side=2))
def test_broadcast_to(data, a):
    lead = tuple(data.draw(st.lists(st.integers(0, 3), max_size=2)))
    tail = tuple(data.draw(st.integers(0, 3)) if n == 1 and data.draw(st.booleans()) else n
                 for n in a.shape)
    target = lead + tail
    assume(math.prod(target) <= 36)
    check(lambda x: fnp.broadcast_to(x, target), lambda x: np.broadcast_to(x, target), a, order=2)


@given(a=shape_and_array(max_dims=4))
def test_atleast_nd(a):
    check(fnp.atleast_1d, np.atleast_1d, a, order=2)
    check(fnp.atleast_2d, np.atleast_2d, a, order=2)
    check(fnp.atleast_3d, np.atleast_3d, a, order=2)


@pytest.mark.parametrize("name", ["atleast_1d", "atleast_2d", "atleast_3d"])
def test_atleast_nd_several_arguments_and_plain_inputs(name):
    args = (2.0, [1.0, 2.0], np.ones((2, 1)), np.ones((1, 2, 1, 1)))
    got, expected = getattr(fnp, name)(*args), getattr(np, name)(*args)
    assert type(got) is tuple and len(got) == len(expected)
    for g, e in zip(got, expected):
        assert_same(g, e, name)
    assert_same(getattr(fnp, name)([1.0]), getattr(np, name)([1.0]), name)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(()), rng.standard_normal((2, 3))
    check_grads(lambda x, y: fnp.concatenate([fnp.ravel(t) for t in getattr(fnp, name)(x, y)]), [a, b])


# --------------------------------------------------------------------------------------------
# joining and splitting


@given(data=st.data(), base=shapes(min_dims=1, max_dims=3, max_size=6), k=st.integers(1, 3))
def test_concatenate(data, base, k):
    nd = len(base)
    axis = data.draw(st.integers(-nd, nd - 1))
    parts = []
    for _ in range(k):
        s = list(base)
        s[axis] = data.draw(st.integers(0, 3))
        parts.append(data.draw(arrays(tuple(s))))
    check(lambda *xs: fnp.concatenate(xs, axis=axis), lambda *xs: np.concatenate(xs, axis=axis),
          *parts, order=2)


@given(data=st.data(), k=st.integers(1, 3))
def test_concatenate_axis_none(data, k):
    parts = [data.draw(shape_and_array(max_dims=3, max_size=6)) for _ in range(k)]
    check(lambda *xs: fnp.concatenate(xs, axis=None), lambda *xs: np.concatenate(xs, axis=None),
          *parts, order=2)


@given(data=st.data(), shape=shapes(max_dims=3, max_size=6), k=st.integers(1, 3))
def test_stack(data, shape, k):
    nd = len(shape)
    axis = data.draw(st.integers(-nd - 1, nd))
    parts = [data.draw(arrays(shape)) for _ in range(k)]
    check(lambda *xs: fnp.stack(xs, axis=axis), lambda *xs: np.stack(xs, axis=axis), *parts, order=2)
    check(lambda *xs: fnp.array(list(xs)), lambda *xs: np.array(xs), *parts)


@given(data=st.data(), k=st.integers(1, 3), nd=st.integers(0, 3))
def test_hstack(data, k, nd):
    if nd == 0:
        parts = [data.draw(arrays(())) for _ in range(k)]
    elif nd == 1:
        parts = [data.draw(arrays((data.draw(st.integers(0, 4)),))) for _ in range(k)]
    else:
        base = list(data.draw(shapes(min_dims=nd, max_dims=nd, max_size=4)))
        parts = []
        for _ in range(k):
            base[1] = data.draw(st.integers(0, 3))
            parts.append(data.draw(arrays(tuple(base))))
    check(lambda *xs: fnp.hstack(xs), lambda *xs: np.hstack(xs), *parts, order=2)


@given(data=st.data(), k=st.integers(1, 3), n=st.integers(0, 3))
def test_vstack(data, k, n):
    parts = []
    for _ in range(k):
        if data.draw(st.booleans()):
            parts.append(data.draw(arrays((n,))))
        else:
            parts.append(data.draw(arrays((data.draw(st.integers(0, 2)), n))))
    check(lambda *xs: fnp.vstack(xs), lambda *xs: np.vstack(xs), *parts, order=2)


@given(data=st.data(), k=st.integers(1, 3), shape=shapes(max_dims=3, max_size=4))
def test_dstack(data, k, shape):
    parts = [data.draw(arrays(shape)) for _ in range(k)]
    check(lambda *xs: fnp.dstack(xs), lambda *xs: np.dstack(xs), *parts, order=2)


@given(data=st.data(), k=st.integers(1, 3), n=st.integers(0, 3))
def test_column_stack(data, k, n):
    parts = []
    for _ in range(k):
        if data.draw(st.booleans()):
            parts.append(data.draw(arrays((n,))))
        else:
            parts.append(data.draw(arrays((n, data.draw(st.integers(0, 2))))))
    check(lambda *xs: fnp.column_stack(xs), lambda *xs: np.column_stack(xs), *parts, order=2)


def _split_args(data, n, even):
    """Sections (dividing n when `even`) or a list of split points, negative and unordered too."""
    if data.draw(st.booleans()):
        if even:
            divisors = [d for d in range(1, max(n, 1) + 1) if n % d == 0] or [1]
            return data.draw(st.sampled_from(divisors))
        return data.draw(st.integers(1, max(n, 1) + 2))
    return data.draw(st.lists(st.integers(-n - 1, n + 1), max_size=3))


@given(data=st.data(), a=shape_and_array(min_dims=1, max_dims=3, max_size=8))
def test_split_and_array_split(data, a):
    nd = a.ndim
    axis = data.draw(st.integers(-nd, nd - 1))
    n = a.shape[axis]
    s = _split_args(data, n, even=True)
    check_pieces(lambda x: fnp.split(x, s, axis=axis), lambda x: np.split(x, s, axis=axis), a)
    s = _split_args(data, n, even=False)
    check_pieces(lambda x: fnp.array_split(x, s, axis=axis),
                 lambda x: np.array_split(x, s, axis=axis), a)


def test_split_uneven_raises():
    with pytest.raises(ValueError):
        fnp.split(np.zeros(5), 2)


@given(data=st.data(), a=shape_and_array(min_dims=1, max_dims=3, max_size=8))
def test_hsplit_vsplit(data, a):
    n = a.shape[0 if a.ndim == 1 else 1]
    s = _split_args(data, n, even=True)
    check_pieces(lambda x: fnp.hsplit(x, s), lambda x: np.hsplit(x, s), a)
    if a.ndim >= 2:
        s = _split_args(data, a.shape[0], even=True)
        check_pieces(lambda x: fnp.vsplit(x, s), lambda x: np.vsplit(x, s), a)


# --------------------------------------------------------------------------------------------
# pad, tile, repeat


def _pad_widths(data, nd):
    w = st.integers(0, 2)
    form = data.draw(st.sampled_from(["int", "single", "pair", "pair_all", "per_axis", "per_axis_sym"]))
    if form == "int":
        return data.draw(w)
    if form == "single":
        return (data.draw(w),)
    if form == "pair":
        return (data.draw(w), data.draw(w))
    if form == "pair_all":
        return ((data.draw(w), data.draw(w)),)
    if form == "per_axis":
        return tuple((data.draw(w), data.draw(w)) for _ in range(nd))
    return [[data.draw(w)] for _ in range(nd)] if nd != 1 else [[data.draw(w)]]


@given(data=st.data(), a=shape_and_array(min_dims=1, max_dims=3, max_size=6))
def test_pad_constant(data, a):
    pw = _pad_widths(data, a.ndim)
    check(lambda x: fnp.pad(x, pw), lambda x: np.pad(x, pw), a, order=2)
    c = float(data.draw(st.floats(-2, 2)))
    # the gradient with respect to the constant value too
    check(lambda x, c: fnp.pad(x, pw, mode="constant", constant_values=c),
          lambda x, c: np.pad(x, pw, mode="constant", constant_values=c), a, c, order=2)
    check(lambda x, c: fnp.pad(x, pw, constant_values=c),
          lambda x, c: np.pad(x, pw, constant_values=c), a, np.array(c), order=2)


@given(data=st.data(), a=shape_and_array(min_dims=1, max_dims=2, max_size=6))
def test_pad_constant_values_per_axis(data, a):
    pw = _pad_widths(data, a.ndim)
    values = data.draw(arrays((a.ndim, 2)))
    check(lambda x, c: fnp.pad(x, pw, constant_values=c),
          lambda x, c: np.pad(x, pw, constant_values=c), a, values, order=2)


@given(data=st.data(), a=shape_and_array(min_dims=1, max_dims=3, min_side=1, max_size=6),
       mode=st.sampled_from(["edge", "reflect", "symmetric", "wrap"]))
def test_pad_copying_modes(data, a, mode):
    pw = _pad_widths(data, a.ndim)
    check(lambda x: fnp.pad(x, pw, mode=mode), lambda x: np.pad(x, pw, mode=mode), a, order=2)


@given(data=st.data(), a=shape_and_array(min_dims=1, max_dims=3, max_size=6))
def test_pad_empty_mode(data, a):
    """mode='empty' leaves the padding undefined: the shape and the copied interior must match."""
    pw = _pad_widths(data, a.ndim)
    got, expected = fnp.pad(a, pw, mode="empty"), np.pad(a, pw, mode="empty")
    assert got.shape == expected.shape and got.dtype == expected.dtype
    inner = tuple(slice(int(b), int(b) + n)
                  for (b, _), n in zip(np.broadcast_to(np.asarray(pw), (a.ndim, 2)), a.shape))
    assert_same(got[inner], a)
    check_grads(lambda x: fnp.pad(x, pw, mode="empty")[inner], [a])


@given(data=st.data(), a=shape_and_array(max_dims=3, max_size=6))
def test_tile(data, a):
    if data.draw(st.booleans()):
        reps = data.draw(st.integers(0, 3))
    else:
        reps = tuple(data.draw(st.lists(st.integers(0, 2), max_size=4)))
    check(lambda x: fnp.tile(x, reps), lambda x: np.tile(x, reps), a, order=2)


@given(data=st.data(), a=shape_and_array(max_dims=3, max_size=8))
def test_repeat(data, a):
    axis = None if a.ndim == 0 or data.draw(st.booleans()) else data.draw(st.integers(-a.ndim, a.ndim - 1))
    n = a.size if axis is None else a.shape[axis]
    kind = data.draw(st.sampled_from(["int", "array", "one"]))
    if kind == "int":
        repeats = data.draw(st.integers(0, 3))
    elif kind == "one":
        repeats = np.array([data.draw(st.integers(0, 3))])
    else:
        repeats = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=int)
    check(lambda x: fnp.repeat(x, repeats, axis=axis), lambda x: np.repeat(x, repeats, axis=axis),
          a, order=2)
    check(lambda x: fnp.reshape(x, a.shape).repeat(repeats, axis),
          lambda x: x.repeat(repeats, axis), a)


# --------------------------------------------------------------------------------------------
# flips, roll, triangles, diagonals


@given(data=st.data(), a=shape_and_array(max_dims=3))
def test_flip(data, a):
    nd = a.ndim
    if nd == 0 or data.draw(st.booleans()):
        axis = None
    elif data.draw(st.booleans()):
        axis = data.draw(st.integers(-nd, nd - 1))
    else:
        axis = tuple(data.draw(st.lists(st.integers(0, nd - 1), min_size=1, unique=True)))
    check(lambda x: fnp.flip(x, axis), lambda x: np.flip(x, axis), a, order=2)
    if nd >= 1:
        check(fnp.flipud, np.flipud, a, order=2)
    if nd >= 2:
        check(fnp.fliplr, np.fliplr, a, order=2)


@given(data=st.data(), a=shape_and_array(max_dims=3))
def test_roll(data, a):
    nd = a.ndim
    if nd == 0 or data.draw(st.booleans()):
        shift, axis = data.draw(st.integers(-7, 7)), None
    elif data.draw(st.booleans()):
        shift, axis = data.draw(st.integers(-7, 7)), data.draw(st.integers(-nd, nd - 1))
    else:
        axis = tuple(data.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=3)))
        shift = tuple(data.draw(st.integers(-4, 4)) for _ in axis)
    check(lambda x: fnp.roll(x, shift, axis), lambda x: np.roll(x, shift, axis), a, order=2)


@given(a=shape_and_array(min_dims=1, max_dims=4), k=st.integers(-3, 3))
def test_triu_tril(a, k):
    check(lambda x: fnp.triu(x, k), lambda x: np.triu(x, k), a, order=2)
    check(lambda x: fnp.tril(x, k), lambda x: np.tril(x, k), a, order=2)


@given(data=st.data(), a=shape_and_array(min_dims=2, max_dims=4), offset=st.integers(-3, 3))
def test_diagonal_and_trace(data, a, offset):
    nd = a.ndim
    ax1 = data.draw(st.integers(-nd, nd - 1))
    ax2 = data.draw(st.integers(-nd, nd - 1).filter(lambda ax: ax % nd != ax1 % nd))
    check(lambda x: fnp.diagonal(x, offset, ax1, ax2), lambda x: np.diagonal(x, offset, ax1, ax2),
          a, order=2)
    check(lambda x: fnp.reshape(x, a.shape).diagonal(offset, ax1, ax2),
          lambda x: x.diagonal(offset, ax1, ax2), a)
    expected = np.trace(a, offset, ax1, ax2)
    np.testing.assert_allclose(fnp.trace(a, offset, ax1, ax2), expected, rtol=1e-12, atol=1e-12)
    assert np.shape(fnp.trace(a, offset, ax1, ax2)) == expected.shape
    check_grads(lambda x: fnp.trace(x, offset, ax1, ax2), [a], order=2)
    check_grads(lambda x: fnp.reshape(x, a.shape).trace(offset, ax1, ax2), [a])


@given(data=st.data(), k=st.integers(-3, 3))
def test_diag(data, k):
    v = data.draw(shape_and_array(min_dims=1, max_dims=1, max_side=4))
    check(lambda x: fnp.diag(x, k), lambda x: np.diag(x, k), v, order=2)
    m = data.draw(shape_and_array(min_dims=2, max_dims=2, max_side=4))
    check(lambda x: fnp.diag(x, k), lambda x: np.diag(x, k), m, order=2)


# --------------------------------------------------------------------------------------------
# take, take_along_axis, sort, astype


@given(data=st.data(), a=shape_and_array(max_dims=3, max_size=8))
def test_take(data, a):
    nd = a.ndim
    axis = None if nd == 0 or data.draw(st.booleans()) else data.draw(st.integers(-nd, nd - 1))
    n = a.size if axis is None else a.shape[axis]
    assume(n > 0)
    idx = st.integers(-n, n - 1)
    kind = data.draw(st.sampled_from(["array", "list", "scalar", "2d"]))
    if kind == "scalar":
        indices = data.draw(idx)
    elif kind == "list":
        indices = data.draw(st.lists(idx, max_size=4))  # repeated indices likely
    elif kind == "2d":
        indices = np.array(data.draw(st.lists(idx, min_size=2, max_size=2)) * 2).reshape(2, 2)
    else:
        indices = np.array(data.draw(st.lists(idx, max_size=5)), dtype=np.intp)
    check(lambda x: fnp.take(x, indices, axis=axis), lambda x: np.take(x, indices, axis=axis),
          a, order=2)
    check(lambda x: fnp.reshape(x, a.shape).take(indices, axis), lambda x: x.take(indices, axis), a)


def test_take_repeated_indices_add_up():
    a = np.arange(4.0)
    g = fnn.grad(lambda x: fnp.sum(fnp.take(x, [1, 1, 3, 1]) * np.array([1.0, 2.0, 3.0, 4.0])))(a)
    np.testing.assert_array_equal(g, [0.0, 7.0, 0.0, 3.0])


@given(data=st.data(), a=shape_and_array(min_dims=1, max_dims=3, max_size=8))
def test_take_along_axis(data, a):
    nd = a.ndim
    if data.draw(st.booleans()):
        axis = None
        shape = (data.draw(st.integers(0, 4)),)
        n = a.size
    else:
        axis = data.draw(st.integers(-nd, nd - 1))
        shape = list(a.shape)
        shape[axis] = data.draw(st.integers(0, 4))
        shape = tuple(1 if n > 1 and data.draw(st.booleans()) else n for n in shape)  # broadcasts
        n = a.shape[axis]
    assume(n > 0)
    seed = data.draw(st.integers(0, 2**32 - 1))
    indices = np.random.default_rng(seed).integers(-n, n, size=shape)
    check(lambda x: fnp.take_along_axis(x, indices, axis), lambda x: np.take_along_axis(x, indices, axis),
          a, order=2)
    if axis == -1:  # NumPy's default axis
        check(lambda x: fnp.take_along_axis(x, indices), lambda x: np.take_along_axis(x, indices), a)
    if axis is not None:
        order_idx = np.argsort(a, axis=axis)
        check(lambda x: fnp.take_along_axis(x, order_idx, axis),
              lambda x: np.take_along_axis(x, order_idx, axis), a, order=2)


@given(data=st.data(), a=shape_and_array(max_dims=3))
def test_sort(data, a):
    nd = a.ndim
    if nd == 0:
        axis = None
    else:
        axis = data.draw(st.one_of(st.none(), st.integers(-nd, nd - 1)))
    check(lambda x: fnp.sort(x, axis=axis), lambda x: np.sort(x, axis=axis), a, order=2)
    if nd >= 1:
        check(fnp.sort, np.sort, a)


def test_sort_gradient_goes_to_original_positions():
    a = np.array([3.0, 1.0, 2.0])
    g = fnn.grad(lambda x: fnp.sum(fnp.sort(x) * np.array([10.0, 20.0, 30.0])))(a)
    np.testing.assert_array_equal(g, [30.0, 10.0, 20.0])


@given(a=shape_and_array(max_dims=3))
def test_astype_round_trip(a):
    def f(x):
        y = fnp.astype(x, np.float32)
        assert y.dtype == np.float32
        return y.astype(np.float64)

    expected = a.astype(np.float32).astype(np.float64)
    assert_same(f(a), expected, "forward")
    u = np.random.default_rng(1).standard_normal(a.shape)
    value, vjp_fn = fnn.vjp(f, a)
    assert_same(value, expected, "traced forward")
    (ct,) = vjp_fn(u)
    # the cotangent passes through float32 and comes back as float64
    assert ct.dtype == np.float64 and ct.shape == a.shape
    np.testing.assert_array_equal(ct, u.astype(np.float32).astype(np.float64))
    _, tangent = fnn.jvp(f, (a,), (u,))
    np.testing.assert_allclose(tangent, u, rtol=1e-6, atol=1e-7)


def test_astype_float32_input_keeps_float32_gradient():
    a = np.array([1.5, -2.0, 0.25], dtype=np.float32)
    g = fnn.grad(lambda x: fnp.sum(fnp.astype(x, np.float64) ** 2))(a)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * a.astype(np.float64), rtol=1e-6)
