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
