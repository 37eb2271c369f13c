"""Tests for the fused recurrences (fnn.nn.functional.rnn_sequence, lstm_sequence, gru_sequence)
and the RNN, LSTM and GRU layers built on them.

Every cotangent of each primitive (projected, the initial carry, w_hh, b_hh) against central
differences in float64 on hypothesis-drawn small shapes (T = 1 included); the layers against a
per-step formulation written here with fnn.numpy (values and gradients); second derivatives
(grad of grad, which takes the differentiable fallback of the hand-written backward) against
central differences of the first gradient; float32 in, float32 out and float32 gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp
from fnn import nn
from fnn.nn.functional import gru_sequence, lstm_sequence, rnn_sequence
from gradcheck import assert_close, check_grads, numerical_vjp

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
seeds = st.integers(0, 2**32 - 1)


def _args(kind, n, t, h, seed, dtype=np.float64):
    """(projected, h0, [c0,] w_hh, b_hh) for `kind`, standard normal (w_hh scaled down)."""
    r = np.random.default_rng(seed)
    g = GATES[kind] * h
    args = [r.standard_normal((n, t, g)), r.standard_normal((n, h))]
    if kind == "lstm":
        args.append(r.standard_normal((n, h)))
    args += [0.7 * r.standard_normal((h, g)), r.standard_normal(g)]
    return [a.astype(dtype) for a in args]


def _sequence(kind, *args):
    """(outputs, final carry as a flat tuple) of the fused primitive for `kind`."""
    if kind == "rnn":
        y, h = rnn_sequence(*args)
        return y, (h,)
    if kind == "lstm":
        y, (h, c) = lstm_sequence(*args)
        return y, (h, c)
    y, h = gru_sequence(*args)
    return y, (h,)


def _flat_outputs(kind):
    """All outputs of the primitive as one vector, so one check covers every output cotangent."""

    def f(*args):
        y, carry = _sequence(kind, *args)
        return fnp.concatenate([fnp.reshape(y, (-1,))] + [fnp.reshape(c, (-1,)) for c in carry])

    return f


@st.composite
def sequence_case(draw, max_h=3):
    return (draw(st.sampled_from(sorted(GATES))), draw(st.integers(1, 3)), draw(st.integers(1, 4)),
            draw(st.integers(1, max_h)), draw(seeds))


@settings(max_examples=20)
@given(sequence_case())
def test_primitive_gradients_match_central_differences(case):
    kind, n, t, h, seed = case
    args = _args(kind, n, t, h, seed)
    # VJP of every argument (the fast raw-array backward), JVP (the differentiable fallback,
    # since fnn.jvp transposes the VJP) and the dot-product law between them.
    check_grads(_flat_outputs(kind), args)


@pytest.mark.parametrize("kind", sorted(GATES))
def test_primitive_second_derivatives_of_every_argument(kind):
    check_grads(_flat_outputs(kind), _args(kind, 2, 3, 2, seed=11), order=2, atol=1e-5)


@settings(max_examples=15)
@given(sequence_case())
def test_grad_of_grad_wrt_w_hh_matches_central_differences(case):
    kind, n, t, h, seed = case
    args = _args(kind, n, t, h, seed)
    wi = len(args) - 2  # position of w_hh
    r = np.random.default_rng(seed + 1)
    y, carry = _sequence(kind, *args)
    u = r.standard_normal(y.shape)
    v = [r.standard_normal(c.shape) for c in carry]
    m = r.standard_normal(args[wi].shape)

    def loss(w):
        y, carry = _sequence(kind, *args[:wi], w, args[wi + 1])
        total = fnp.sum(fnp.tanh(y) * u)
        for c, vk in zip(carry, v):
            total = total + fnp.sum(c * c * vk)
        return total

    def first(w):  # a scalar of the first gradient
        return fnp.sum(fnn.grad(loss)(w) * m)

    second = fnn.grad(first)(args[wi])
    expected = numerical_vjp(first, [args[wi]], 0, np.ones(()), eps=1e-5)
    assert_close(second, expected, "grad of grad wrt w_hh", rtol=1e-4, atol=1e-6)


def test_hessian_through_rnn_layer_is_symmetric_and_matches_differences():
    layer = nn.RNN(2)
    x = np.random.default_rng(3).standard_normal((2, 3, 1))
    params, state = layer.init(fnn.random.key(0), nn.ShapeDtype(x.shape, np.float64))

    def loss(b_hh):
        y, _ = layer.apply({**params, "b_hh": b_hh}, state, x)
        return fnp.sum(y ** 3)

    hess = fnn.hessian(loss)(params["b_hh"])
    np.testing.assert_allclose(hess, hess.T, rtol=1e-10, atol=1e-12)
    grad = fnn.grad(loss)
    expected = np.stack([numerical_vjp(grad, [params["b_hh"]], 0, np.eye(2)[k], eps=1e-5)
                         for k in range(2)])
    np.testing.assert_allclose(hess, expected, rtol=1e-5, atol=1e-7)


# --- the layers against a per-step formulation --------------------------------------------------

def _sig(a):
    return 1.0 / (1.0 + fnp.exp(-a))


def _reference_layer(kind, p, x, carry0):
    """The layer written step by step with fnn.numpy: (outputs, final carry)."""
    h = carry0[0] if kind == "lstm" else carry0
    c = carry0[1] if kind == "lstm" else None
    outs = []
    for t in range(x.shape[1]):
        xw = x[:, t] @ p["w_ih"] + p["b_ih"]
        hw = h @ p["w_hh"] + p["b_hh"]
        if kind == "rnn":
            h = fnp.tanh(xw + hw)
        elif kind == "lstm":
            i, f, g, o = fnp.split(xw + hw, 4, axis=-1)
            c = _sig(f) * c + _sig(i) * fnp.tanh(g)
            h = _sig(o) * fnp.tanh(c)
        else:
            xr, xz, xn = fnp.split(xw, 3, axis=-1)
            hr, hz, hn = fnp.split(hw, 3, axis=-1)
            r, z = _sig(xr + hr), _sig(xz + hz)
            n = fnp.tanh(xn + r * hn)
            h = (1.0 - z) * n + z * h
        outs.append(h)
    return fnp.stack(outs, axis=1), ((h, c) if kind == "lstm" else h)


def _layer_loss(kind, layer, state, x, weights):
    """A scalar of both the outputs and the final carry, for a layer or the reference."""
    def loss(p, x, carry0, use_reference):
        if use_reference:
            y, carry = _reference_layer(kind, p, x, carry0)
        else:
            (y, carry), _ = layer.apply(p, state, (x, carry0))
        total = fnp.sum(y * weights[0])
        for k, c in enumerate(carry if kind == "lstm" else (carry,)):
            total = total + fnp.sum(fnp.sin(c) * weights[k + 1])
        return total

    return loss


@settings(max_examples=15)
@given(st.sampled_from(sorted(GATES)), st.integers(1, 3), st.integers(1, 5), st.integers(1, 3),
       st.integers(1, 4), seeds)
def test_layers_match_per_step_reference(kind, n, t, features, hidden, seed):
    layer = LAYERS[kind](hidden, return_carry=True)
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, t, features))
    params, state = layer.init(fnn.random.key(seed % 1000), nn.ShapeDtype(x.shape, np.float64))
    h0 = r.standard_normal((n, hidden))
    carry0 = (h0, r.standard_normal((n, hidden))) if kind == "lstm" else h0

    (y, carry), _ = layer.apply(params, state, (x, carry0))
    y_ref, carry_ref = _reference_layer(kind, params, x, carry0)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(fnn.tree.leaves(carry), fnn.tree.leaves(carry_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)

    # Without a given carry: zeros, and only the outputs come back.
    y0, _ = LAYERS[kind](hidden).apply(params, state, x)
    zeros = np.zeros((n, hidden))
    y0_ref, _ = _reference_layer(kind, params, x, (zeros, zeros) if kind == "lstm" else zeros)
    np.testing.assert_allclose(y0, y0_ref, rtol=1e-12, atol=1e-12)

    weights = [r.standard_normal(y.shape)] + [r.standard_normal((n, hidden)) for _ in range(2)]
    loss = _layer_loss(kind, layer, state, x, weights)
    grads = fnn.grad(loss, argnums=(0, 1, 2))(params, x, carry0, False)
    grads_ref = fnn.grad(loss, argnums=(0, 1, 2))(params, x, carry0, True)
    for a, b in zip(fnn.tree.leaves(grads), fnn.tree.leaves(grads_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# --- dtypes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(GATES))
def test_float32_stays_float32(kind):
    args32 = _args(kind, 3, 4, 5, seed=2, dtype=np.float32)
    y, carry = _sequence(kind, *args32)
    assert y.dtype == np.float32 and all(c.dtype == np.float32 for c in carry)

    def loss(*args):
        y, carry = _sequence(kind, *args)
        return fnp.sum(y * y) + sum(fnp.sum(c) for c in carry)

    argnums = tuple(range(len(args32)))
    grads32 = fnn.grad(loss, argnums=argnums)(*args32)
    assert all(g.dtype == np.float32 for g in grads32), [g.dtype for g in grads32]
    grads64 = fnn.grad(loss, argnums=argnums)(*[a.astype(np.float64) for a in args32])
    for g32, g64 in zip(grads32, grads64):
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)

    layer = LAYERS[kind](6)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    params, state = layer.init(fnn.random.key(1), nn.ShapeDtype(x.shape, np.float32))
    out, _ = layer.apply(params, state, x)
    assert out.dtype == np.float32
    grads = fnn.grad(lambda p: fnp.mean(layer.apply(p, state, x)[0] ** 2))(params)
    assert all(g.dtype == np.float32 for g in fnn.tree.leaves(grads))


# --- argument checks --------------------------------------------------------------------------

def test_shape_errors_name_the_problem():
    p, h0, w, b = _args("rnn", 2, 3, 4, seed=0)
    with pytest.raises(ValueError, match="at least one time step"):
        rnn_sequence(p[:, :0], h0, w, b)
    with pytest.raises(ValueError, match="h0 must have shape"):
        rnn_sequence(p, h0[:1], w, b)
    with pytest.raises(ValueError, match="b_hh must have shape"):
        rnn_sequence(p, h0, w, b[:2])
    p, h0, c0, w, b = _args("lstm", 2, 3, 4, seed=0)
    with pytest.raises(ValueError, match="w_hh must be"):
        lstm_sequence(p, h0, c0, w[:, :8], b)
    with pytest.raises(ValueError, match="c0 must have shape"):
        lstm_sequence(p, h0, c0[:, :2], w, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", sorted(GATES))
def test_saturated_gates_stay_finite_without_warnings(kind, dtype):
    args = _args(kind, 2, 3, 2, seed=5, dtype=dtype)
    args[0] = (args[0] * 1e4).astype(dtype)  # pre-activations far beyond exp's range
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, carry = _sequence(kind, *args)
        grads = fnn.grad(lambda p: fnp.sum(_sequence(kind, p, *args[1:])[0]))(args[0])
    assert np.all(np.isfinite(y)) and all(np.all(np.isfinite(c)) for c in carry)
    assert np.all(np.isfinite(grads)) and grads.dtype == dtype
    y_ref = _reference_sequence(kind, args)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)


def _reference_sequence(kind, args):
    """The primitive's outputs from the layer reference above (w_ih = identity, b_ih = 0)."""
    projected, h0 = args[0], args[1]
    g = projected.shape[-1]
    p = {"w_ih": np.eye(g, dtype=projected.dtype), "b_ih": np.zeros(g, projected.dtype),
         "w_hh": args[-2], "b_hh": args[-1]}
    carry0 = (h0, args[2]) if kind == "lstm" else h0
    with np.errstate(over="ignore"):  # the reference's exp(-x) may overflow to inf (sigmoid 0)
        return _reference_layer(kind, p, projected, carry0)[0]
