"""Cotangents of slices are collected as pieces and summed into one buffer (fnn.autodiff.backward's
`Scattered`): the gradients must be those of the dense formulation, for any mix of basic and
advanced indices, repeated indices, dense uses of the same value, and higher orders."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp

from gradcheck import check_grads


def _index(draw, n):
    kind = draw(st.sampled_from(["int", "slice", "array", "tuple"]))
    if kind == "int":
        return draw(st.integers(-n, n - 1))
    if kind == "slice":
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        return slice(a, b)
    if kind == "array":  # advanced index, repeats allowed: they must add up
        return np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5)))
    return (slice(None), draw(st.integers(0, 2)))


@st.composite
def index_lists(draw):
    n = draw(st.integers(1, 4))
    return n, [_index(draw, n) for _ in range(draw(st.integers(1, 6)))]


@settings(deadline=None)
@given(index_lists(), st.booleans())
def test_gradients_of_many_slices_match_numerical(case, dense_use):
    n, indices = case
    x = np.random.default_rng(0).normal(size=(n, 3))

    def f(x):
        total = fnp.sum(x * x) if dense_use else 0.0
        for k, idx in enumerate(indices):
            total = total + fnp.sum(fnp.sin(x[idx]) * (k + 1.0))
        return total

    check_grads(f, (x,), order=1)


def test_loop_over_time_matches_stacked_formulation():
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(4, 7, 3))
    w = rng.normal(size=(3, 3))

    def loop(xs, w):
        h = fnp.zeros((4, 3))
        for t in range(xs.shape[1]):
            h = fnp.tanh(xs[:, t] + h @ w)
        return fnp.sum(h * h)

    def unstacked(xs, w):
        h = fnp.zeros((4, 3))
        for x_t in fnp.unstack(xs, axis=1):
            h = fnp.tanh(x_t + h @ w)
        return fnp.sum(h * h)

    g_loop = fnn.grad(loop, argnums=(0, 1))(xs, w)
    g_ref = fnn.grad(unstacked, argnums=(0, 1))(xs, w)
    for a, b in zip(g_loop, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    check_grads(loop, (xs, w), order=1)


def test_second_order_through_slices():
    x = np.random.default_rng(2).normal(size=(5,))

    def f(x):
        return fnp.sum(x[1:3] ** 3) + x[0] * x[4] + fnp.sum(x[np.array([2, 2])] ** 2)

    h = fnn.hessian(f)(x)
    expected = np.zeros((5, 5))
    expected[1, 1], expected[2, 2] = 6 * x[1], 6 * x[2] + 4.0
    expected[0, 4] = expected[4, 0] = 1.0
    np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-12)


def test_float32_slices_keep_float32():
    x = np.ones((3, 4), np.float32)
    g = fnn.grad(lambda x: fnp.sum(x[0]) + fnp.sum(x[:, 1] * 2.0) + fnp.sum(x))(x)
    assert g.dtype == np.float32
    expected = np.ones((3, 4), np.float32)
    expected[0] += 1
    expected[:, 1] += 2
    np.testing.assert_array_equal(g, expected)


@st.composite
def column_reads(draw):
    """Reads x[:, t] (or x[:, :, t]) of a random array: every t once in any order (written
    negative or not), or a random selection with repeats and gaps."""
    axis = draw(st.integers(1, 2))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=axis + 1, max_size=axis + 2)))
    n = shape[axis]
    if draw(st.booleans()):
        ts = draw(st.permutations(range(n)))
        ts = [t - n if draw(st.booleans()) else t for t in ts]
    else:
        ts = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=2 * n))
    return shape, axis, ts


@settings(deadline=None)
@given(column_reads())
def test_columns_read_once_each_or_not_match_numerical(case):
    # Every column read once is assembled by one stack (Scattered's fast path); repeats, gaps and
    # other index forms take the general scatter-add. Both must give the true gradient.
    shape, axis, ts = case
    x = np.random.default_rng(3).normal(size=shape)

    def f(x):
        total = 0.0
        for k, t in enumerate(ts):
            column = x[(slice(None),) * axis + (t,)]
            total = total + fnp.sum(fnp.sin(column) * (k + 1.0))
        return total

    check_grads(f, (x,), order=1)


def test_columns_of_a_float32_sequence_stay_float32():
    xs = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    g = fnn.grad(lambda xs: sum(fnp.sum(xs[:, t] * (t + 1.0)) for t in range(4)))(xs)
    assert g.dtype == np.float32
    expected = np.broadcast_to(np.arange(1, 5, dtype=np.float32)[None, :, None], xs.shape)
    np.testing.assert_array_equal(g, expected)
