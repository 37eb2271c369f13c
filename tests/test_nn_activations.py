"""Tests for fnn.nn.functional.activations and its private erf.

Every activation is checked against a direct NumPy formula written here, differentiated to second
order against central differences (inputs kept a margin away from kinks), run in float32 (dtype
of the output and of the gradient), and pushed to +-1e4 where overflow would show. PyTorch, when
it imports, is a second reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp
from fnn.nn.functional import activations as A
from fnn.nn.functional._erf import erf, erf_array
from gradcheck import check_grads

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_erf_ref = np.vectorize(math.erf, otypes=[np.float64])


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus_ref(x, beta=1.0, threshold=20.0):
    with np.errstate(over="ignore"):
        return np.where(beta * x > threshold, x, np.log(1.0 + np.exp(beta * x)) / beta)


# name -> (function, reference in float64 NumPy, kink points to stay away from)
CASES = {
    "relu": (A.relu, lambda x: np.maximum(x, 0.0), [0.0]),
    "relu6": (A.relu6, lambda x: np.minimum(np.maximum(x, 0.0), 6.0), [0.0, 6.0]),
    "leaky_relu": (A.leaky_relu, lambda x: np.where(x >= 0, x, 0.01 * x), [0.0]),
    "leaky_relu_0.2": (lambda x: A.leaky_relu(x, 0.2), lambda x: np.where(x >= 0, x, 0.2 * x), [0.0]),
    "elu": (A.elu, lambda x: np.where(x > 0, x, np.exp(x) - 1.0), [0.0]),
    "elu_alpha": (lambda x: A.elu(x, alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1.0)), [0.0]),
    "selu": (A.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1.0)), [0.0]),
    "gelu": (A.gelu, lambda x: 0.5 * x * (1.0 + _erf_ref(x / math.sqrt(2.0))), []),
    "gelu_tanh": (lambda x: A.gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))), []),
    "silu": (A.silu, lambda x: x * _sig(x), []),
    "sigmoid": (A.sigmoid, _sig, []),
    "tanh": (A.tanh, np.tanh, []),
    "softplus": (A.softplus, _softplus_ref, []),
    "softplus_beta": (lambda x: A.softplus(x, beta=2.0, threshold=3.0),
                      lambda x: _softplus_ref(x, 2.0, 3.0), [1.5]),
    "softsign": (A.softsign, lambda x: x / (1.0 + np.abs(x)), [0.0]),
    "mish": (A.mish, lambda x: x * np.tanh(np.log1p(np.exp(x))), []),
    "hard_sigmoid": (A.hard_sigmoid, lambda x: np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0, [-3.0, 3.0]),
    "hard_tanh": (A.hard_tanh, lambda x: np.clip(x, -1.0, 1.0), [-1.0, 1.0]),
    "hard_swish": (A.hard_swish, lambda x: x * np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0, [-3.0, 3.0]),
}


def _softmax_ref(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_ref(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _away_from(x, points, margin=0.05):
    """x with every value closer than `margin` to one of `points` moved to `margin` from it."""
    x = np.array(x, dtype=np.float64)
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = p + np.where(x[near] >= p, margin, -margin)
    return x


@st.composite
def inputs(draw, max_size=8):
    shape = draw(st.lists(st.integers(0, 3), min_size=0, max_size=3).filter(
        lambda s: math.prod(s) <= max_size))
    seed = draw(st.integers(0, 2**32 - 1))
    return 3.0 * np.random.default_rng(seed).standard_normal(tuple(shape))


# --------------------------------------------------------------------------------------------
# erf


def test_erf_matches_math_erf():
    x = np.concatenate([np.linspace(-6.5, 6.5, 26001), np.geomspace(1e-300, 30.0, 2000),
                        [0.0, -0.0, 0.46875, -0.46875, 4.0, -4.0, 5.9, 26.6, -27.0]])
    x = np.concatenate([x, -x])
    expected = _erf_ref(x)
    got = erf_array(x)
    rel = np.abs(got - expected) / np.maximum(np.abs(expected), 1e-300)
    assert rel.max() < 5e-15, (rel.max(), x[rel.argmax()])
    assert np.signbit(erf_array(np.array(-0.0)))  # odd function down to the sign of zero


def test_erf_special_values_and_dtype():
    out = erf_array(np.array([np.inf, -np.inf, np.nan]))
    assert out[0] == 1.0 and out[1] == -1.0 and np.isnan(out[2])
    x32 = np.linspace(-3, 3, 7, dtype=np.float32)
    assert erf_array(x32).dtype == np.float32
    np.testing.assert_allclose(erf_array(x32), _erf_ref(x32.astype(np.float64)), rtol=1e-6)


def test_erf_float32_path_within_a_few_ulps():
    """float32 inputs take a float32-arithmetic path: within 4 float32 ulps of the exact erf,
    odd, saturating at +-1, NaN kept, no warnings for huge arguments."""
    x = np.concatenate([np.linspace(-7, 7, 140001), np.geomspace(1e-30, 1e30, 601),
                        [0.0, 0.49999997, 0.5, np.finfo(np.float32).max]]).astype(np.float32)
    x = np.concatenate([x, -x])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is harmless
        got = erf_array(x)
    assert got.dtype == np.float32
    exact = _erf_ref(x.astype(np.float64)).astype(np.float32)
    ulps = np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(exact))
    assert ulps.max() <= 4, (ulps.max(), x[ulps.argmax()])
    np.testing.assert_array_equal(got, -erf_array(-x))
    assert np.isnan(erf_array(np.array([np.nan], np.float32))[0])
    assert erf_array(np.array([np.inf], np.float32))[0] == 1.0


@settings(max_examples=10)
@given(inputs())
def test_erf_gradient(x):
    check_grads(erf, [x], order=2)


# --------------------------------------------------------------------------------------------
# elementwise activations


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_matches_numpy_formula(name):
    f, ref, _ = CASES[name]
    x = np.concatenate([np.linspace(-8, 8, 161), [-30.0, -19.0, 19.0, 25.0, 0.0]])
    np.testing.assert_allclose(f(x), ref(x), rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=8)
@given(x=inputs())
def test_gradients_second_order(name, x):
    f, _, kinks = CASES[name]
    check_grads(f, [_away_from(x, kinks)], order=2)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_in_float32_out(name):
    f, ref, kinks = CASES[name]
    x = _away_from(np.linspace(-5, 5, 23), kinks).astype(np.float32)
    y = f(x)
    assert y.dtype == np.float32, name
    np.testing.assert_allclose(y, ref(x.astype(np.float64)), rtol=2e-6, atol=2e-6, err_msg=name)
    g = fnn.grad(lambda x: fnp.sum(f(x)))(x)
    assert g.dtype == np.float32, name
    g64 = fnn.grad(lambda x: fnp.sum(f(x)))(x.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "tanh", "silu", "mish", "gelu", "elu",
                                  "selu", "softsign", "gelu_tanh"])
def test_finite_at_extremes(name):
    f, ref, _ = CASES[name]
    x = np.array([-1e4, -500.0, -90.0, 90.0, 500.0, 1e4], dtype=np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = f(x)
        g = fnn.grad(lambda x: fnp.sum(f(x)))(x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g)), (name, y, g)


def test_sigmoid_softplus_limits():
    x = np.array([-1e4, 1e4], dtype=np.float32)
    np.testing.assert_array_equal(A.sigmoid(x), [0.0, 1.0])
    np.testing.assert_array_equal(A.softplus(x), [0.0, 1e4])
    np.testing.assert_array_equal(fnn.grad(lambda x: fnp.sum(A.sigmoid(x)))(x), [0.0, 0.0])
    np.testing.assert_array_equal(fnn.grad(lambda x: fnp.sum(A.softplus(x)))(x), [0.0, 1.0])


def test_gelu_exact_versus_tanh():
    x = np.linspace(-6, 6, 121)
    exact, approx = A.gelu(x), A.gelu(x, approximate="tanh")
    assert np.max(np.abs(exact - approx)) < 1e-3  # the approximation is close...
    assert np.max(np.abs(exact - approx)) > 1e-5  # ...but a different function
    np.testing.assert_array_equal(A.gelu(x, approximate=True), approx)
    np.testing.assert_array_equal(A.gelu(x, approximate="none"), exact)
    with pytest.raises(ValueError, match="gelu: approximate"):
        A.gelu(x, approximate="sigmoid")


def test_swish_is_silu():
    x = np.linspace(-3, 3, 7)
    np.testing.assert_array_equal(A.swish(x), A.silu(x))


def test_rules_read_only_what_they_need():
    """relu, sigmoid and tanh keep only their output on the tape; the others only their input."""
    for f, keeps_ans in [(A.relu, True), (A.sigmoid, True), (A.tanh, True), (A._gelu_exact, False),
                         (A.softplus, False)]:
        reads = f.reads[0]
        assert ("ans" in reads) == keeps_ans and ((0 in reads) != keeps_ans), (f, reads)


# --------------------------------------------------------------------------------------------
# softmax and log_softmax


@st.composite
def matrices_and_axis(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    axis = draw(st.integers(-ndim, ndim - 1))
    seed = draw(st.integers(0, 2**32 - 1))
    return 2.0 * np.random.default_rng(seed).standard_normal(shape), axis


@settings(max_examples=20)
@given(matrices_and_axis())
def test_softmax_forward_and_gradients(data):
    x, axis = data
    np.testing.assert_allclose(A.softmax(x, axis=axis), _softmax_ref(x, axis), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(A.log_softmax(x, axis=axis), _log_softmax_ref(x, axis), rtol=1e-12, atol=1e-12)
    check_grads(lambda x: A.softmax(x, axis=axis), [x], order=2)
    check_grads(lambda x: A.log_softmax(x, axis=axis), [x], order=2)


def test_softmax_stable_float32():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 3.0]], dtype=np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        s, ls = A.softmax(x), A.log_softmax(x)
        gs = fnn.grad(lambda x: fnp.sum(A.softmax(x) * np.arange(3.0, dtype=np.float32)))(x)
        gl = fnn.grad(lambda x: fnp.sum(A.log_softmax(x)[:, 0]))(x)
    for a in (s, ls, gs, gl):
        assert a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(s[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(ls[0], [0.0, -2e4, -1e4])
    np.testing.assert_allclose(s[1], [1 / 3] * 3, rtol=1e-6)


def test_softmax_axis_error():
    with pytest.raises(ValueError, match=r"softmax: axis 2 is out of range for an input of shape \(2, 3\)"):
        A.softmax(np.zeros((2, 3)), axis=2)


# --------------------------------------------------------------------------------------------
# PyTorch as a second reference (optional)


def test_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.linspace(-7, 7, 281)
    x = np.concatenate([x, [-25.0, 25.0]])
    pairs = [
        (A.relu, F.relu), (A.relu6, F.relu6), (lambda x: A.leaky_relu(x, 0.1), lambda t: F.leaky_relu(t, 0.1)),
        (A.elu, F.elu), (lambda x: A.elu(x, 0.7), lambda t: F.elu(t, 0.7)), (A.selu, F.selu),
        (A.gelu, F.gelu), (lambda x: A.gelu(x, "tanh"), lambda t: F.gelu(t, approximate="tanh")),
        (A.silu, F.silu), (A.sigmoid, torch.sigmoid), (A.tanh, torch.tanh), (A.softplus, F.softplus),
        (lambda x: A.softplus(x, 2.0, 5.0), lambda t: F.softplus(t, 2.0, 5.0)), (A.softsign, F.softsign),
        (A.mish, F.mish), (A.hard_sigmoid, F.hardsigmoid), (A.hard_tanh, F.hardtanh),
        (A.hard_swish, F.hardswish),
    ]
    for ours, theirs in pairs:
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        y = theirs(t)
        y.sum().backward()
        np.testing.assert_allclose(ours(x), y.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=str(theirs))
        g = fnn.grad(lambda x: fnp.sum(ours(x)))(x)
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-7, atol=1e-12, err_msg=str(theirs))
    m = np.random.default_rng(1).standard_normal((3, 4, 5))
    np.testing.assert_allclose(A.softmax(m, axis=1), F.softmax(torch.tensor(m), dim=1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(A.log_softmax(m), F.log_softmax(torch.tensor(m), dim=-1).numpy(), rtol=1e-12)
