"""The cotangent of a matrix used at every step of a loop (`h @ w`) is kept as its factors and
formed as one product when read (fnn.autodiff.pieces's `Products`): the gradients must be those
of one product per use, whatever else meets them (dense uses, slices, a node between the weight
and its uses, higher orders, float32, the bound on what is held)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp
from fnn.autodiff import pieces

from gradcheck import check_grads


def _loop(other_use, through_node, three_d):
    """A loss that multiplies by w at several steps, and maybe uses w in another way too."""

    def f(xs, w):
        m = w * 2.0 if through_node else w  # the products then meet at a node, not at the input
        h = xs[:, 0]
        total = 0.0
        for t in range(1, xs.shape[1]):
            a = fnp.stack([h, xs[:, t]]) if three_d else h  # (2, N, K) @ (K, K): a batch of rows
            out = fnp.tanh(a @ m)
            h = out[0] if three_d else out
            total = total + fnp.sum(out * (t + 0.5))
        if other_use == "dense":
            total = total + fnp.sum(w * w)
        elif other_use == "slice":
            total = total + fnp.sum(fnp.sin(w[1]))
        elif other_use == "transposed":
            total = total + fnp.sum(xs[:, 0] @ w.T)
        return total

    return f


uses = st.sampled_from(["none", "dense", "slice", "transposed"])


@settings(deadline=None)
@given(st.integers(1, 4), st.integers(2, 5), st.integers(2, 4), uses, st.booleans(), st.booleans())
def test_loop_products_match_numerical(n, steps, k, other_use, through_node, three_d):
    rng = np.random.default_rng(n * 100 + steps * 10 + k)
    xs, w = rng.normal(size=(n, steps, k)), rng.normal(size=(k, k)) * 0.5
    check_grads(_loop(other_use, through_node, three_d), (xs, w), order=1)


@settings(deadline=None)
@given(st.integers(1, 4), st.integers(2, 6), uses, st.booleans(), st.integers(1, 200))
def test_bounded_products_equal_one_product_per_step(n, steps, other_use, through_node, held):
    # The same gradients with every product formed at once (no factors kept), and with the
    # factors multiplied out whenever `held` elements are pending.
    rng = np.random.default_rng(steps)
    xs, w = rng.normal(size=(n, steps, 3)), rng.normal(size=(3, 3)) * 0.5
    grad = fnn.grad(_loop(other_use, through_node, False), argnums=(0, 1))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pieces, "_PRODUCT_PIECE", -1)
        eager = grad(xs, w)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pieces, "_PRODUCTS_HELD", held)
        bounded = grad(xs, w)
    kept = grad(xs, w)
    for a, b, c in zip(eager, bounded, kept):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)


def test_products_are_made_for_a_loop_and_not_for_large_or_mixed_factors(monkeypatch):
    made = []
    real = pieces.Products.__init__

    def counting(self, a, g):
        made.append(a.shape)
        real(self, a, g)

    monkeypatch.setattr(pieces.Products, "__init__", counting)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 4))
    fnn.grad(lambda w: fnp.sum(fnp.tanh(fnp.tanh(np.ones((2, 4)) @ w) @ w)))(w)
    assert made == [(2, 4), (2, 4)]  # (the loss's two uses of w: two pieces, one product)
    made.clear()
    big = np.ones((pieces._PRODUCT_PIECE // 4 + 1, 4))
    fnn.grad(lambda w: fnp.sum(big @ w))(w)
    fnn.grad(lambda w: fnp.sum(np.ones((2, 4), np.float32) @ w))(w)  # a float32, w float64
    assert made == []


def test_second_order_through_a_loop_of_products():
    rng = np.random.default_rng(4)
    xs, w = rng.normal(size=(2, 4, 3)), rng.normal(size=(3, 3)) * 0.5
    check_grads(_loop("dense", False, False), (xs, w), order=2)


def test_float32_loop_keeps_float32_and_agrees_with_float64():
    rng = np.random.default_rng(5)
    xs, w = rng.normal(size=(3, 6, 4)), rng.normal(size=(4, 4)) * 0.5
    f = _loop("dense", True, False)
    g32 = fnn.grad(f, argnums=1)(xs.astype(np.float32), w.astype(np.float32))
    g64 = fnn.grad(f, argnums=1)(xs, w)
    assert g32.dtype == np.float32 and g32.shape == w.shape
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


def test_a_vjp_function_run_twice_gives_the_same_products():
    rng = np.random.default_rng(6)
    xs, w = rng.normal(size=(2, 5, 3)), rng.normal(size=(3, 3))
    _, vjp_fn = fnn.vjp(lambda w: _loop("none", False, False)(xs, w), w)
    first = vjp_fn(1.0)[0]
    second = vjp_fn(1.0)[0]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, fnn.grad(_loop("none", False, False), argnums=1)(xs, w),
                               rtol=1e-12, atol=1e-12)


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["piece", "dense", "merge"]), st.integers(1, 3)), min_size=1,
                max_size=8),
       st.integers(1, 60))
def test_products_sum_whatever_the_order_of_pieces_sums_and_merges(steps, held):
    # Products' own law: dense() is the sum of every a.T @ g and every formed part given to it,
    # through merges of Products that hold formed parts too, and any bound on what is held.
    rng = np.random.default_rng(len(steps) * 61 + held)

    def piece(rows):
        a, g = rng.normal(size=(rows, 3)), rng.normal(size=(rows, 2))
        return pieces.Products(a, g), a.T @ g

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pieces, "_PRODUCTS_HELD", held)
        total, expected = piece(2)
        for kind, rows in steps:
            if kind == "dense":
                x = rng.normal(size=(3, 2))
                total.add_dense(x)
                expected = expected + x
                continue
            other, value = piece(rows)
            if kind == "merge":  # a Products that already holds a formed part and more pieces
                x = rng.normal(size=(3, 2))
                other.add_dense(x)
                more, more_value = piece(rows)
                other.merge(more)
                value = value + x + more_value
            total.merge(other)
            expected = expected + value
        np.testing.assert_allclose(total.dense(), expected, rtol=1e-12, atol=1e-12)
