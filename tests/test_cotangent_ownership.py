"""The backward pass's cotangent ownership (defvjp's `fresh` and `owned`) and the order it calls a
node's rules in: a rule may write into its cotangent only when nothing else can see that array."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp
from fnn.nn.functional import activations
from fnn.nn.functional.dense import dense


def _pair():
    """Two primitives and a log of the owned rule's calls: `make(x) = 2x`, whose rule returns a new
    array (declared fresh), and `use(x) = 3x`, with an owned rule that scales g in place."""
    calls = []
    make = fnn.primitive(lambda x: 2.0 * x, name="make")
    fnn.defvjp(make, lambda g, ans, x: g * 2.0, reads=[()], fresh=True)
    use = fnn.primitive(lambda x: 3.0 * x, name="use")

    def use_owned(g, ans, x):
        calls.append(g)
        g *= 3.0
        return g

    fnn.defvjp(use, lambda g, ans, x: g * 3.0, reads=[()], owned=use_owned)
    return make, use, calls


def test_owned_rule_runs_on_a_fresh_cotangent():
    make, use, calls = _pair()
    x = np.arange(4.0)
    np.testing.assert_array_equal(fnn.grad(lambda x: fnp.sum(make(use(x))))(x), np.full(4, 6.0))
    assert len(calls) == 1


def test_a_cotangent_that_was_added_to_is_not_handed_over_as_owned():
    make, use, calls = _pair()
    x = np.arange(4.0)

    def fresh_last(x):  # the walk adds make's fresh cotangent to the one already there
        y = use(x)
        return fnp.sum(make(y)) + fnp.sum(y * 5.0)

    def fresh_first(x):  # make's fresh cotangent arrives first, and then is added to
        y = use(x)
        return fnp.sum(y * 5.0) + fnp.sum(make(y))

    for f in (fresh_last, fresh_first):
        np.testing.assert_array_equal(fnn.grad(f)(x), np.full(4, 21.0))  # y's cotangent: 2 + 5
    assert calls == []


def test_a_rule_not_declared_fresh_hands_nothing_over():
    make, use, calls = _pair()
    x = np.arange(4.0)
    np.testing.assert_array_equal(fnn.grad(lambda x: fnp.sum(use(x) * 2.0))(x), np.full(4, 6.0))
    assert calls == []


def test_the_callers_cotangent_is_never_written_into():
    make, use, calls = _pair()
    x = np.arange(4.0)
    # directly, and through add, whose rule hands g itself on (not declared fresh)
    for f in (use, lambda x: use(x) + 1.0):
        _, pullback = fnn.vjp(f, x)
        ct = np.ones(4)
        (gx,) = pullback(ct)
        np.testing.assert_array_equal(gx, np.full(4, 3.0))
        np.testing.assert_array_equal(ct, np.ones(4))
    assert calls == []


def test_a_pullback_run_twice_gives_the_same_cotangents():
    make, use, calls = _pair()
    x = np.arange(4.0)
    _, pullback = fnn.vjp(lambda x: make(use(x)), x)
    ct = np.arange(4.0) + 1.0
    first = pullback(ct)[0].copy()
    np.testing.assert_array_equal(pullback(ct)[0], first)
    np.testing.assert_array_equal(first, 6.0 * ct)
    assert len(calls) == 2


def test_a_traced_cotangent_takes_the_ordinary_rule():
    make, use, calls = _pair()

    def first(x):
        return fnp.sum(fnp.sin(make(use(x))))

    x = np.linspace(-1.0, 1.0, 5)
    second = fnn.grad(lambda x: fnp.sum(fnn.grad(first)(x)))(x)
    np.testing.assert_allclose(second, -36.0 * np.sin(6.0 * x))
    # The inner pass's cotangents are traced values, which no pass owns; only the outer pass,
    # over plain arrays again, hands one over.
    assert [type(g) for g in calls] == [np.ndarray]


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_relu_after_dense_matches_the_hand_written_gradient(n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    x, w, b, c = (rng.standard_normal(s) for s in ((n, d_in), (d_in, d_out), (d_out,), (n, d_out)))

    def loss(w, b):
        return fnp.sum(activations.relu(dense(fnp.tanh(x * 1.0), w, b)) * c)

    def shared_loss(w, b):  # the dense output also used directly: its cotangent is a sum
        a = dense(x, w, b)
        return fnp.sum(activations.relu(a) * c) + fnp.sum(a * a)

    gw, gb = fnn.grad(loss, argnums=(0, 1))(w, b)
    a = np.tanh(x) @ w + b
    ga = c * (a > 0)
    np.testing.assert_allclose(gw, np.tanh(x).T @ ga, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, ga.sum(0), rtol=1e-12, atol=1e-12)

    gw, gb = fnn.grad(shared_loss, argnums=(0, 1))(w, b)
    a = x @ w + b
    ga = c * (a > 0) + 2.0 * a
    np.testing.assert_allclose(gw, x.T @ ga, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, ga.sum(0), rtol=1e-12, atol=1e-12)


def test_relu_after_dense_writes_into_the_dense_cotangent(monkeypatch):
    """The case the mechanism is for (an MLP's hidden layer): ReLU's owned rule is taken."""
    seen = []
    owned = activations.relu.owned_vjps[0]

    def spy(g, ans, x):
        seen.append(g.shape)
        return owned(g, ans, x)

    monkeypatch.setattr(activations.relu, "owned_vjps", {0: spy})
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((3, 8)), rng.standard_normal((8, 2))
    x = rng.standard_normal((5, 3))
    fnn.grad(lambda w1: fnp.sum(dense(activations.relu(dense(x, w1)), w2) ** 2))(w1)
    assert seen == [(5, 8)]


def test_rules_run_from_the_last_traced_argument_to_the_first():
    order = []
    prim = fnn.primitive(lambda a, b, c: a * b * c, name="abc")
    fnn.defvjp(prim, *(lambda g, ans, a, b, c, k=k: order.append(k) or g for k in range(3)))
    ones = np.ones(2)
    fnn.grad(lambda a, b, c: fnp.sum(prim(a, b, c)), argnums=(0, 1, 2))(ones, ones, ones)
    assert order == [2, 1, 0]


def test_defvjp_checks_fresh_and_owned():
    prim = fnn.primitive(lambda a, b: a + b, name="two")
    with pytest.raises(ValueError, match="first argument's rule"):
        fnn.defvjp(prim, lambda g, ans, a, b: g, argnums=(1,), fresh=True)
    with pytest.raises(ValueError, match="one-argument"):
        fnn.defvjp(prim, lambda g, ans, a, b: g, lambda g, ans, a, b: g, owned=lambda g, ans, a, b: g)
