"""The fast kernels of fnn.nn.functional against plain reference formulations."""

import numpy as np
import pytest

import fnn
import fnn.numpy as fnp
from fnn.nn.functional import _im2col as K
from fnn.nn.functional import normalization as N
from fnn.nn.functional import pooling as P


def _ref_input_grad(g, w, hw, stride, pads, dilation, groups):
    """col2im of w^T g on ordinary (OH, OW) columns."""
    o, cg, kh, kw = w.shape
    n, _, oh, ow = g.shape
    g2 = g.transpose(1, 0, 2, 3).reshape(o, -1)
    dcols = np.concatenate([w[i * (o // groups):(i + 1) * (o // groups)].reshape(o // groups, -1).T
                            @ g2[i * (o // groups):(i + 1) * (o // groups)] for i in range(groups)])
    return K.col2im(dcols.reshape(cg * groups, kh, kw, n, oh, ow), hw, stride, pads, dilation)


@pytest.mark.parametrize("xs, ws, stride, pads, dil, groups", [
    ((2, 3, 7, 8), (5, 3, 2, 3), (1, 2), (0, 1, 1, 0), (1, 2), 1),
    ((2, 4, 9, 11), (6, 2, 3, 2), (1, 3), (1, 0, 2, 2), (2, 1), 2),
    ((3, 2, 6, 6), (4, 2, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
    ((2, 2, 9, 9), (3, 2, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
])
def test_conv_input_grad_matches_col2im(xs, ws, stride, pads, dil, groups):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(ws).astype(np.float32)
    oh = K.out_size(xs[2], ws[2], stride[0], pads[0], pads[1], dil[0])
    ow = K.out_size(xs[3], ws[3], stride[1], pads[2], pads[3], dil[1])
    g = rng.standard_normal((xs[0], ws[0], oh, ow)).astype(np.float32)
    got = K.conv_input_grad(g, w, xs[2:], stride, pads, dil, groups)
    want = _ref_input_grad(g, w, xs[2:], stride, pads, dil, groups)
    # channel-major memory, as the convolution's outputs: (C, N, H, W) contiguous, seen as NCHW
    assert got.dtype == np.float32 and got.transpose(1, 0, 2, 3).flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hw, k, s, p", [((6, 6), (2, 2), (2, 2), (0, 0, 0, 0)),
                                         ((7, 5), (2, 2), (2, 2), (0, 0, 0, 0)),
                                         ((6, 7), (3, 2), (3, 3), (1, 1, 1, 1)),
                                         ((7, 7), (3, 3), (2, 2), (1, 1, 1, 1))])
def test_max_pool_argmax_and_scatter(hw, k, s, p):
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 3, (2, 3) + hw).astype(np.float32)  # many ties
    y, idx = P._max_and_argmax(x, k, s, p)
    xp_ = np.pad(x, ((0, 0), (0, 0), p[:2], p[2:]), constant_values=-np.inf)
    g = rng.standard_normal(y.shape).astype(np.float32)
    want = np.zeros_like(xp_)
    for a in range(y.shape[2]):
        for b in range(y.shape[3]):
            win = xp_[:, :, a * s[0]:a * s[0] + k[0], b * s[1]:b * s[1] + k[1]].reshape(2, 3, -1)
            first = win.argmax(-1)  # first maximum, row-major
            np.testing.assert_array_equal(y[:, :, a, b], win.max(-1))
            np.testing.assert_array_equal(idx[:, :, a, b], first)
            for n in range(2):
                for c in range(3):
                    i, j = divmod(int(first[n, c]), k[1])
                    want[n, c, a * s[0] + i, b * s[1] + j] += g[n, c, a, b]
    got = P._max_scatter(g, idx, hw=hw, kernel=k, stride=s, pads=p)
    np.testing.assert_allclose(got, want[:, :, p[0]:p[0] + hw[0], p[2]:p[2] + hw[1]], atol=1e-6)


def test_batch_norm_fast_rules_match_formula_and_stats_memo():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, 3).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y, vjp = fnn.vjp(lambda x, s, b: N.batch_norm(x, s, b), x, scale, bias)
    dx, ds, db = vjp(g)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    mean = x64.mean((0, 2, 3), keepdims=True)
    inv = 1 / np.sqrt(x64.var((0, 2, 3), keepdims=True) + 1e-5)
    xhat = (x64 - mean) * inv
    np.testing.assert_allclose(y, xhat * scale[:, None, None] + bias[:, None, None], atol=1e-5)
    k = scale[:, None, None] * inv
    sg, sgx = g64.sum((0, 2, 3), keepdims=True), (g64 * xhat).sum((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(dx, k * (g64 - sg / 100 - xhat * sgx / 100), atol=1e-4)
    np.testing.assert_allclose(ds, sgx.ravel(), atol=1e-4)
    np.testing.assert_allclose(db, sg.ravel(), atol=1e-4)
    assert dx.dtype == ds.dtype == db.dtype == y.dtype == np.float32
    N.batch_norm(x, scale, bias)
    m, v = N.batch_stats(x)
    np.testing.assert_allclose(m, x64.mean((0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(v, x64.var((0, 2, 3)), atol=1e-5)
    m1, v1 = N.batch_stats(x.copy(), ddof=1)
    np.testing.assert_allclose(v1, x64.var((0, 2, 3), ddof=1), atol=1e-5)


def test_relu_grad_masks_by_output_sign():
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    g = fnn.grad(lambda x: fnp.sum(fnn.nn.functional.relu(x) * np.float32(3)))(x)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [0.0, 0.0, 3.0])
