"""On a GPU, fnn's own kernels keep the channel-major layout of convolution outputs, so the
convolution's backward GEMMs read their cotangents without a transposing copy; and their values
equal the NumPy path's."""

from __future__ import annotations

import numpy as np

import fnn
from fnn.nn import functional as F
from tests.backends import requires_cupy


def _channel_major(xp, rng, n, c, h, w):
    """An (N, C, H, W) array stored as (C, N, H, W), as the convolutions write their outputs."""
    x = rng.standard_normal((c, n, h, w)).astype(np.float32)
    return xp.ascontiguousarray(xp.asarray(x)).transpose(1, 0, 2, 3)


def _is_channel_major(a):
    return a.strides[1] > a.strides[0] > a.strides[2] > a.strides[3]


@requires_cupy
def test_relu_gradient_keeps_the_layout_and_the_values():
    import cupy as cp

    rng = np.random.default_rng(0)
    x, g = _channel_major(cp, rng, 4, 3, 5, 5), _channel_major(cp, rng, 4, 3, 5, 5)
    _, vjp = fnn.vjp(F.relu, x)
    (dx,) = vjp(g)
    assert isinstance(dx, cp.ndarray) and _is_channel_major(dx)
    _, vjp_host = fnn.vjp(F.relu, cp.asnumpy(x))
    (dx_host,) = vjp_host(cp.asnumpy(g))
    np.testing.assert_array_equal(cp.asnumpy(dx), dx_host)


@requires_cupy
def test_batch_norm_input_gradient_keeps_the_layout():
    import cupy as cp

    rng = np.random.default_rng(1)
    x, g = _channel_major(cp, rng, 4, 3, 5, 5), _channel_major(cp, rng, 4, 3, 5, 5)
    scale = cp.asarray(rng.uniform(0.5, 2, 3).astype(np.float32))
    bias = cp.asarray(rng.standard_normal(3).astype(np.float32))
    _, vjp = fnn.vjp(F.batch_norm, x, scale, bias)
    dx, ds, db = vjp(g)
    assert _is_channel_major(dx)
    _, vjp_host = fnn.vjp(F.batch_norm, *(cp.asnumpy(a) for a in (x, scale, bias)))
    for got, want in zip((dx, ds, db), vjp_host(cp.asnumpy(g))):
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-4, atol=1e-5)


@requires_cupy
def test_cotangents_summed_at_a_fan_out_keep_the_layout():
    import cupy as cp

    from fnn import backend
    from fnn.autodiff.backward import _accumulate

    rng = np.random.default_rng(2)
    a, b = _channel_major(cp, rng, 4, 3, 5, 5), _channel_major(cp, rng, 4, 3, 5, 5)
    for total in (backend.add_keeping_layout(a, b), _accumulate(a, b)):
        assert _is_channel_major(total)
        np.testing.assert_array_equal(cp.asnumpy(total), cp.asnumpy(a) + cp.asnumpy(b))
    c = cp.asarray(rng.standard_normal((4, 3, 5, 5)).astype(np.float32))  # C order stays C order
    assert backend.add_keeping_layout(c, a).flags.c_contiguous
