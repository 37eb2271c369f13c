"""Pooling: against slow loop references, central differences, ties and overlapping windows,
padding semantics, float32 preservation, error messages, and (if installed) PyTorch."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn.nn.functional.pooling import (adaptive_avg_pool2d, avg_pool1d, avg_pool2d,
                                       global_avg_pool, max_pool1d, max_pool2d,
                                       pool_output_shape)
from gradcheck import check_grads


# --- slow references: a loop over output pixels ------------------------------------------------

def ref_pool(x, k, s, p, op, count_include_pad=True):
    n_, c, h, w = x.shape
    oh = (h + 2 * p[0] - k[0]) // s[0] + 1
    ow = (w + 2 * p[1] - k[1]) // s[1] + 1
    out = np.zeros((n_, c, oh, ow))
    for n in range(n_):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    vals = []
                    for a in range(k[0]):
                        for b in range(k[1]):
                            r, q = i * s[0] + a - p[0], j * s[1] + b - p[1]
                            inside = 0 <= r < h and 0 <= q < w
                            if inside:
                                vals.append(x[n, ch, r, q])
                            elif op == "avg" and count_include_pad:
                                vals.append(0.0)
                    out[n, ch, i, j] = max(vals) if op == "max" else sum(vals) / len(vals)
    return out


def ref_adaptive(x, oh, ow):
    n_, c, h, w = x.shape
    out = np.zeros((n_, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, he = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
            ws, we = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            out[:, :, i, j] = x[:, :, hs:he, ws:we].mean(axis=(2, 3))
    return out


@st.composite
def pool_cases(draw, max_side=7, max_nc=2):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h = draw(st.integers(max(1, k[0] - 2 * p[0]), max_side))
    w = draw(st.integers(max(1, k[1] - 2 * p[1]), max_side))
    shape = (draw(st.integers(1, max_nc)), draw(st.integers(1, max_nc)), h, w)
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape)
    args = {}
    args["kernel_size"] = k if k[0] != k[1] or draw(st.booleans()) else k[0]
    if s != k or draw(st.booleans()):
        args["stride"] = s
    else:
        s = k  # stride left out: defaults to the kernel size
    if p != (0, 0) or draw(st.booleans()):
        args["padding"] = p
    return x, args, (k, s, p)


@given(pool_cases())
@settings(max_examples=50)
def test_max_pool2d_matches_loop_reference(case):
    x, args, (k, s, p) = case
    np.testing.assert_array_equal(max_pool2d(x, **args), ref_pool(x, k, s, p, "max"))


@given(pool_cases(), st.booleans())
@settings(max_examples=50)
def test_avg_pool2d_matches_loop_reference(case, include):
    x, args, (k, s, p) = case
    np.testing.assert_allclose(avg_pool2d(x, **args, count_include_pad=include),
                               ref_pool(x, k, s, p, "avg", include), rtol=1e-12, atol=1e-12)


def test_avg_pool_counts_padded_cells_by_default():
    x = np.ones((1, 1, 2, 2))
    y = avg_pool2d(x, 3, stride=1, padding=1)
    np.testing.assert_allclose(y[0, 0], np.full((2, 2), 4 / 9))
    np.testing.assert_allclose(avg_pool2d(x, 3, 1, 1, count_include_pad=False)[0, 0], np.ones((2, 2)))


@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 5), st.integers(1, 5),
       st.integers(0, 2**32 - 1))
@settings(max_examples=40)
def test_adaptive_avg_pool2d_matches_loop_reference(h, w, oh, ow, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2, h, w))
    np.testing.assert_allclose(adaptive_avg_pool2d(x, (oh, ow)), ref_adaptive(x, oh, ow),
                               rtol=1e-12, atol=1e-12)


def test_adaptive_and_global():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 4))
    np.testing.assert_allclose(adaptive_avg_pool2d(x, 1)[:, :, 0, 0], x.mean(axis=(2, 3)))
    np.testing.assert_allclose(adaptive_avg_pool2d(x, (None, 2)), ref_adaptive(x, 6, 2))
    np.testing.assert_allclose(global_avg_pool(x), x.mean(axis=(2, 3)))
    assert global_avg_pool(np.ones((2, 3, 4))).shape == (2, 3)
    assert global_avg_pool(np.ones((2, 3, 2, 2, 2))).shape == (2, 3)


def test_1d_pools():
    x = np.random.default_rng(1).standard_normal((2, 3, 9))
    np.testing.assert_array_equal(max_pool1d(x, 3, 2, 1), ref_pool(x[:, :, None], (1, 3), (1, 2), (0, 1), "max")[:, :, 0])
    np.testing.assert_allclose(avg_pool1d(x, 3, 2, 1), ref_pool(x[:, :, None], (1, 3), (1, 2), (0, 1), "avg")[:, :, 0])
    assert max_pool1d(x, 2).shape == (2, 3, 4)


# --- gradients ---------------------------------------------------------------------------------

@given(pool_cases(max_side=5, max_nc=2).filter(lambda c: c[0].size <= 50))
@settings(max_examples=15)
def test_pool_gradients(case):
    x, args, _ = case
    check_grads(lambda x_: max_pool2d(x_, **args), [x])
    check_grads(lambda x_: avg_pool2d(x_, **args), [x])
    check_grads(lambda x_: avg_pool2d(x_, **args, count_include_pad=False), [x])


def test_other_gradients():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 5, 4))
    check_grads(lambda x_: adaptive_avg_pool2d(x_, (3, 3)), [x], order=2)
    check_grads(lambda x_: adaptive_avg_pool2d(x_, (5, 2)), [x])
    check_grads(global_avg_pool, [x])
    x1 = rng.standard_normal((2, 2, 6))
    check_grads(lambda x_: max_pool1d(x_, 3, 2, 1), [x1])
    check_grads(lambda x_: avg_pool1d(x_, 3, 2, 1), [x1])
    check_grads(lambda x_: max_pool2d(x_, 3, 1, 1), [x], order=2)
    check_grads(lambda x_: avg_pool2d(x_, 3, 1, 1, count_include_pad=False), [x], order=2)


def test_max_pool_ties_and_overlapping_windows():
    # all equal: each window sends its gradient to its first cell (row-major), as PyTorch does
    x = np.zeros((1, 1, 4, 4))
    g = fnn.grad(lambda x_: max_pool2d(x_, 2).sum())(x)
    np.testing.assert_array_equal(g[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    # overlapping 3x3 windows, stride 1: a single peak is the max of every window containing it
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0
    g = fnn.grad(lambda x_: max_pool2d(x_, 3, stride=1).sum())(x)
    assert g[0, 0, 2, 2] == 9.0 and g.sum() == 9.0
    # with padding the -inf cells never win, even against negative inputs
    x = -np.ones((1, 1, 2, 2)) - np.arange(4.0).reshape(1, 1, 2, 2)
    y = max_pool2d(x, 3, stride=1, padding=1)
    np.testing.assert_array_equal(y[0, 0], [[-1, -1], [-1, -1]])
    g = fnn.grad(lambda x_: max_pool2d(x_, 3, stride=1, padding=1).sum())(x)
    np.testing.assert_array_equal(g[0, 0], [[4, 0], [0, 0]])


def test_float32_stays_float32():
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 5)).astype(np.float32)
    for f in [lambda x_: max_pool2d(x_, 2), lambda x_: avg_pool2d(x_, 3, 1, 1),
              lambda x_: avg_pool2d(x_, 3, 1, 1, count_include_pad=False),
              lambda x_: adaptive_avg_pool2d(x_, (4, 3)), lambda x_: adaptive_avg_pool2d(x_, 1),
              global_avg_pool]:
        assert f(x).dtype == np.float32
        assert fnn.grad(lambda x_: (f(x_) ** 2).sum())(x).dtype == np.float32


def test_error_messages():
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input .*\(2, 3, 4\)"):
        max_pool2d(np.zeros((2, 3, 4)), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: the kernel \(6, 6\) is larger than the padded "
                                         r"input \(input shape \(1, 1, 3, 3\), padding \(1, 1\)\)"):
        avg_pool2d(np.zeros((1, 1, 3, 3)), 6, padding=1)
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be at most half"):
        max_pool2d(np.zeros((1, 1, 6, 6)), 3, padding=2)
    with pytest.raises(ValueError, match=r"max_pool1d: expected a 3-D input"):
        max_pool1d(np.zeros((1, 1, 3, 3)), 2)
    with pytest.raises(ValueError, match=r"global_avg_pool: .*shape \(2, 3\)"):
        global_avg_pool(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected a 4-D input"):
        adaptive_avg_pool2d(np.zeros((2, 3, 4)), 2)


# --- PyTorch cross-check -----------------------------------------------------------------------

@given(pool_cases(), st.booleans(), st.integers(1, 4), st.integers(1, 4))
@settings(max_examples=30)
def test_against_torch(case, include, oh, ow):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, args, _ = case
    tx = torch.tensor(x, requires_grad=True)
    ty = F.max_pool2d(tx, **args)
    y, vjp_fn = fnn.vjp(lambda x_: max_pool2d(x_, **args), x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    u = np.random.default_rng(0).standard_normal(y.shape)
    ty.backward(torch.tensor(u))
    np.testing.assert_allclose(vjp_fn(u)[0], tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    want = F.avg_pool2d(torch.tensor(x), **args, count_include_pad=include).numpy()
    np.testing.assert_allclose(avg_pool2d(x, **args, count_include_pad=include), want,
                               rtol=1e-12, atol=1e-12)
    want = F.adaptive_avg_pool2d(torch.tensor(x), (oh, ow)).numpy()
    np.testing.assert_allclose(adaptive_avg_pool2d(x, (oh, ow)), want, rtol=1e-12, atol=1e-12)


# --- ceil_mode ---------------------------------------------------------------------------------

def ref_out(n, k, s, p, ceil):
    """PyTorch's output size: rounded up with ceil_mode, the last window starting inside the
    input or the left padding."""
    out = (-(-(n + 2 * p - k) // s) if ceil else (n + 2 * p - k) // s) + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def ref_pool_ceil(x, k, s, p, op, count_include_pad=True):
    """A loop over output pixels with PyTorch's ceil_mode windows and avg divisor (the window
    clipped to the padded input counts with count_include_pad, the real cells without)."""
    n_, c, h, w = x.shape
    oh, ow = ref_out(h, k[0], s[0], p[0], True), ref_out(w, k[1], s[1], p[1], True)
    out = np.zeros((n_, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, q0 = i * s[0] - p[0], j * s[1] - p[1]
            r1, q1 = min(r0 + k[0], h + p[0]), min(q0 + k[1], w + p[1])
            size = (r1 - r0) * (q1 - q0)
            win = x[:, :, max(r0, 0):min(r1, h), max(q0, 0):min(q1, w)]
            if op == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                out[:, :, i, j] = win.sum(axis=(2, 3)) / (size if count_include_pad else win[0, 0].size)
    return out


@given(pool_cases(), st.booleans())
@settings(max_examples=50)
def test_ceil_mode_matches_loop_reference(case, include):
    x, args, (k, s, p) = case
    np.testing.assert_array_equal(max_pool2d(x, **args, ceil_mode=True),
                                  ref_pool_ceil(x, k, s, p, "max"))
    np.testing.assert_allclose(avg_pool2d(x, **args, count_include_pad=include, ceil_mode=True),
                               ref_pool_ceil(x, k, s, p, "avg", include), rtol=1e-12, atol=1e-12)
    want = x.shape[:2] + (ref_out(x.shape[2], k[0], s[0], p[0], True),
                          ref_out(x.shape[3], k[1], s[1], p[1], True))
    assert pool_output_shape(x, **args, ceil_mode=True) == want
    assert fnn.nn.MaxPool2d(**args, ceil_mode=True).output_spec(x).shape == want
    assert fnn.nn.AvgPool2d(**args, ceil_mode=True).output_spec(x).shape == want


def test_ceil_mode_examples():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    assert max_pool2d(x, 2).shape == (1, 1, 2, 2)
    y = max_pool2d(x, 2, ceil_mode=True)
    np.testing.assert_array_equal(y[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    # the last window of avg pooling averages its real cells only (no padding here)
    np.testing.assert_allclose(avg_pool2d(x, 2, ceil_mode=True)[0, 0, 2, 2], 24.0)
    np.testing.assert_allclose(avg_pool2d(x, 2, ceil_mode=True)[0, 0, 0, 2], (4 + 9) / 2)
    # PyTorch's rule: no window may start in the right padding (n=4, k=2, s=2, p=1: 3, not 4)
    assert max_pool2d(np.ones((1, 1, 4, 4)), 2, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    # GoogLeNet's sizes: 112 -> 56 -> 28 with 3x3 stride-2 pools (floor mode gives 55 and 27)
    assert pool_output_shape(fnn.nn.ShapeDtype((1, 64, 112, 112)), 3, 2, ceil_mode=True) == (1, 64, 56, 56)
    assert pool_output_shape(fnn.nn.ShapeDtype((1, 64, 112, 112)), 3, 2) == (1, 64, 55, 55)
    assert max_pool1d(np.ones((1, 1, 5)), 2, ceil_mode=True).shape == (1, 1, 3)
    np.testing.assert_allclose(avg_pool1d(np.arange(5.0)[None, None], 2, ceil_mode=True)[0, 0],
                               [0.5, 2.5, 4.0])


@given(pool_cases(max_side=5, max_nc=2).filter(lambda c: c[0].size <= 50))
@settings(max_examples=15)
def test_ceil_mode_gradients(case):
    x, args, _ = case
    check_grads(lambda x_: max_pool2d(x_, **args, ceil_mode=True), [x])
    check_grads(lambda x_: avg_pool2d(x_, **args, ceil_mode=True), [x], order=2)
    check_grads(lambda x_: avg_pool2d(x_, **args, count_include_pad=False, ceil_mode=True), [x])


def test_ceil_mode_float32():
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 5)).astype(np.float32)
    for f in [lambda x_: max_pool2d(x_, 2, ceil_mode=True),
              lambda x_: avg_pool2d(x_, 3, 2, 1, ceil_mode=True),
              lambda x_: avg_pool2d(x_, 2, count_include_pad=False, ceil_mode=True)]:
        assert f(x).dtype == np.float32
        assert fnn.grad(lambda x_: (f(x_) ** 2).sum())(x).dtype == np.float32


@given(pool_cases(), st.booleans())
@settings(max_examples=30)
def test_ceil_mode_against_torch(case, include):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, args, _ = case
    tx = torch.tensor(x, requires_grad=True)
    ty = F.max_pool2d(tx, **args, ceil_mode=True)
    y, vjp_fn = fnn.vjp(lambda x_: max_pool2d(x_, **args, ceil_mode=True), x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    u = np.random.default_rng(0).standard_normal(y.shape)
    ty.backward(torch.tensor(u))
    np.testing.assert_allclose(vjp_fn(u)[0], tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    tx.grad = None
    ty = F.avg_pool2d(tx, **args, count_include_pad=include, ceil_mode=True)
    y, vjp_fn = fnn.vjp(lambda x_: avg_pool2d(x_, **args, count_include_pad=include, ceil_mode=True), x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    ty.backward(torch.tensor(u))
    np.testing.assert_allclose(vjp_fn(u)[0], tx.grad.numpy(), rtol=1e-12, atol=1e-12)
