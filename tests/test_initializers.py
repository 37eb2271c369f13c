"""Initializers: shapes, dtypes, determinism, and the variances their names promise."""

import math

import numpy as np
import pytest

import fnn
from fnn.nn import initializers as init

KEY = fnn.random.key(0)


@pytest.mark.parametrize("make,expected_std", [
    (lambda: init.glorot_uniform(), math.sqrt(2 / (400 + 300))),
    (lambda: init.glorot_normal(), math.sqrt(2 / (400 + 300))),
    (lambda: init.he_uniform(), math.sqrt(2 / 400)),
    (lambda: init.he_normal(), math.sqrt(2 / 400)),
    (lambda: init.lecun_uniform(), math.sqrt(1 / 400)),
    (lambda: init.lecun_normal(), math.sqrt(1 / 400)),
    (lambda: init.variance_scaling(2.0, "fan_in", "truncated_normal"), math.sqrt(2 / 400)),
    (lambda: init.torch_default_uniform(400), 1 / math.sqrt(400) / math.sqrt(3)),
])
def test_variance_scaling_family(make, expected_std):
    w = make()(KEY, (400, 300))
    assert w.shape == (400, 300) and w.dtype == np.float32
    assert abs(w.std() / expected_std - 1) < 0.03
    assert abs(w.mean()) < 0.1 * expected_std
    np.testing.assert_array_equal(make()(KEY, (400, 300)), w)


def test_conv_layout_fans():
    assert init.compute_fans((64, 32, 3, 3), in_axis=1, out_axis=0) == (32 * 9, 64 * 9)
    assert init.compute_fans((10, 20)) == (10, 20)
    w = init.he_normal(in_axis=1, out_axis=0)(KEY, (64, 32, 3, 3))
    assert abs(w.std() / math.sqrt(2 / (32 * 9)) - 1) < 0.05


def test_bounds_of_uniform_initializers():
    bound = 1 / math.sqrt(50)
    w = init.torch_default_uniform(50)(KEY, (1000,))
    assert w.min() >= -bound and w.max() <= bound and w.max() > 0.95 * bound
    w = init.glorot_uniform()(KEY, (50, 70))
    assert np.abs(w).max() <= math.sqrt(6 / 120)


def test_constants_and_truncation():
    np.testing.assert_array_equal(init.zeros(KEY, (2, 3)), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(init.ones(KEY, (2,), np.float64), np.ones(2))
    np.testing.assert_array_equal(init.constant(0.5)(KEY, (3,)), np.full(3, 0.5, np.float32))
    t = init.truncated_normal(0.1)(KEY, (5000,))
    assert np.abs(t).max() <= 0.2 + 1e-6


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (8, 2, 3)])
def test_orthogonal(shape):
    q = init.orthogonal(gain=2.0)(KEY, shape).astype(np.float64)
    m = q.reshape(-1, shape[-1])
    if m.shape[0] >= m.shape[1]:
        np.testing.assert_allclose(m.T @ m, 4 * np.eye(m.shape[1]), atol=1e-5)
    else:
        np.testing.assert_allclose(m @ m.T, 4 * np.eye(m.shape[0]), atol=1e-5)
    with pytest.raises(ValueError, match="2 dimensions"):
        init.orthogonal()(KEY, (3,))
