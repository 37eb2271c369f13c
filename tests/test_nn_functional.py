"""Tests for fnn.nn.functional: dense, normalisation, dropout, embedding and attention.

Forward values against direct NumPy formulas written here, gradients against central
differences (second order where the rules are written with fnn.numpy), float32 kept float32,
statistics of dropout, masking semantics of attention, and the error messages. PyTorch, when it
imports, is a second reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp
from fnn.nn.functional.attention import (cached_self_attention, causal_mask, multi_head_attention,
                                         scaled_dot_product_attention)
from fnn.nn.functional.dense import _dense, dense
from fnn.nn.functional.dropout import dropout
from fnn.nn.functional.embedding import embedding
from fnn.nn.functional.normalization import (batch_norm, batch_norm_inference, batch_stats,
                                             group_norm, layer_norm)
from gradcheck import check_grads


def _rng(seed=0):
    return np.random.default_rng(seed)


seeds = st.integers(0, 2**32 - 1)


def _grads32(f, args):
    """Gradients of sum(f(*args)) * fixed weights wrt every argument; also the float64 ones."""
    out = np.asarray(f(*args))
    u = _rng(7).standard_normal(out.shape)
    argnums = tuple(range(len(args)))

    def loss(*a):
        y = f(*a)
        return fnp.sum(y * u.astype(y.dtype))

    g32 = fnn.grad(loss, argnums=argnums)(*[a.astype(np.float32) for a in args])
    g64 = fnn.grad(loss, argnums=argnums)(*[a.astype(np.float64) for a in args])
    return g32, g64


# --------------------------------------------------------------------------------------------
# dense


@st.composite
def dense_case(draw):
    lead = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    n_in, n_out = draw(st.integers(0, 3)), draw(st.integers(0, 3))  # empty feature axes too
    r = _rng(draw(seeds))
    return r.standard_normal(lead + (n_in,)), r.standard_normal((n_in, n_out)), r.standard_normal(n_out)


@settings(max_examples=25)
@given(dense_case())
def test_dense_forward_and_gradients(case):
    x, w, b = case
    np.testing.assert_allclose(dense(x, w, b), x @ w + b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dense(x, w), x @ w, rtol=1e-12, atol=1e-12)
    check_grads(dense, [x, w, b], order=2)
    check_grads(lambda x, w: dense(x, w), [x, w], order=2)


def test_dense_float32_and_residuals():
    x, w, b = _rng().standard_normal((4, 3)), _rng(1).standard_normal((3, 2)), _rng(2).standard_normal(2)
    assert dense(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)).dtype == np.float32
    g32, g64 = _grads32(dense, [x, w, b])
    for a, c in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)
    # what each rule reads: x's needs w, w's needs x, b's needs nothing
    assert _dense.reads[0] == (1,) and _dense.reads[1] == (0,) and _dense.reads[2] == ()


def test_dense_errors():
    with pytest.raises(ValueError, match=r"dense: input has 5 features but the weight expects 4 "
                                         r"\(x shape \(2, 5\), w shape \(4, 3\)\)"):
        dense(np.zeros((2, 5)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"dense: the bias must have shape \(3,\).*b shape \(4,\)"):
        dense(np.zeros((2, 4)), np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"dense: the weight must be 2-D"):
        dense(np.zeros((2, 4)), np.zeros(4))


# --------------------------------------------------------------------------------------------
# batch norm


def _bn_ref(x, scale, bias, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    cs = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale.reshape(cs) + bias.reshape(cs)


@st.composite
def nc_case(draw, min_n=2):
    n = draw(st.integers(min_n, 3))
    c = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    r = _rng(draw(seeds))
    x = r.standard_normal((n, c) + spatial) * 2.0 + 1.0
    return x, r.standard_normal(c), r.standard_normal(c)


@settings(max_examples=15)
@given(nc_case())
def test_batch_norm_forward_and_gradients(case):
    x, scale, bias = case
    np.testing.assert_allclose(batch_norm(x, scale, bias), _bn_ref(x, scale, bias), rtol=1e-10, atol=1e-10)
    check_grads(lambda x, s, b: batch_norm(x, s, b), [x, scale, bias], order=2, atol=1e-5)
    check_grads(lambda x: batch_norm(x, None, None), [x], order=1)


def test_batch_norm_statistics_per_channel():
    x = _rng(3).standard_normal((16, 3, 4, 5)) * np.array([1.0, 10.0, 0.1])[:, None, None] + 5.0
    y = batch_norm(x.astype(np.float32))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-3)
    g32, g64 = _grads32(lambda x, s, b: batch_norm(x, s, b), [x[:4], np.ones(3) * 1.5, np.zeros(3)])
    for a, c in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, c, rtol=1e-3, atol=1e-4)


def test_batch_stats_and_inference():
    r = _rng(4)
    x = r.standard_normal((5, 3, 2)) + np.array([1.0, -2.0, 0.5])[:, None]
    mean, var = batch_stats(x)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)))
    np.testing.assert_allclose(var, x.var(axis=(0, 2)))
    np.testing.assert_allclose(batch_stats(x, ddof=1)[1], x.var(axis=(0, 2), ddof=1))
    assert batch_stats(x.astype(np.float32))[1].dtype == np.float32
    # no gradient flows through batch_stats
    g = fnn.grad(lambda x: fnp.sum(x * 0.0) + fnp.sum(fnp.asarray(batch_stats(x)[0])))(x)
    np.testing.assert_array_equal(g, 0.0)
    scale, bias = r.standard_normal(3), r.standard_normal(3)
    # with the batch's own statistics, inference equals training-mode normalisation
    np.testing.assert_allclose(batch_norm_inference(x, scale, bias, mean, var), batch_norm(x, scale, bias),
                               rtol=1e-10, atol=1e-12)
    m2, v2 = r.standard_normal(3), r.random(3) + 0.5
    expected = (x - m2[:, None]) / np.sqrt(v2[:, None] + 1e-3) * scale[:, None] + bias[:, None]
    np.testing.assert_allclose(batch_norm_inference(x, scale, bias, m2, v2, eps=1e-3), expected, rtol=1e-12)
    check_grads(lambda x, s, b: batch_norm_inference(x, s, b, m2, v2), [x, scale, bias], order=2)
    assert batch_norm_inference(x.astype(np.float32), None, None, m2.astype(np.float32),
                                v2.astype(np.float32)).dtype == np.float32


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"batch_norm: scale has shape \(4,\) but the input has 3 "
                                         r"channels on axis 1 \(x shape \(2, 3, 5\), scale shape \(4,\)\)"):
        batch_norm(np.zeros((2, 3, 5)), np.ones(4), np.zeros(3))
    with pytest.raises(ValueError, match=r"batch_norm: the input must be \(N, C, ...\).*x shape \(5,\)"):
        batch_norm(np.zeros(5), None, None)
    with pytest.raises(ValueError, match=r"batch_norm_inference: var has shape \(2,\).*3 channels"):
        batch_norm_inference(np.zeros((2, 3)), None, None, np.zeros(3), np.ones(2))


# --------------------------------------------------------------------------------------------
# layer norm and group norm


def _ln_ref(x, scale, bias, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def _gn_ref(x, groups, scale, bias, eps=1e-5):
    n, c = x.shape[:2]
    xg = x.reshape(n, groups, -1)
    mean = xg.mean(-1, keepdims=True)
    var = ((xg - mean) ** 2).mean(-1, keepdims=True)
    y = ((xg - mean) / np.sqrt(var + eps)).reshape(x.shape)
    cs = (1, c) + (1,) * (x.ndim - 2)
    return y * scale.reshape(cs) + bias.reshape(cs)


@settings(max_examples=15)
@given(st.lists(st.integers(1, 3), min_size=0, max_size=2), st.integers(2, 4), seeds)
def test_layer_norm_forward_and_gradients(lead, d, seed):
    r = _rng(seed)
    x = r.standard_normal(tuple(lead) + (d,)) * 3.0 - 1.0
    scale, bias = r.standard_normal(d), r.standard_normal(d)
    y = layer_norm(x, scale, bias)
    np.testing.assert_allclose(y, _ln_ref(x, scale, bias), rtol=1e-10, atol=1e-10)
    check_grads(lambda x, s, b: layer_norm(x, s, b), [x, scale, bias], order=2, atol=1e-5)


def test_layer_norm_statistics_and_float32():
    x = (_rng(5).standard_normal((6, 32)) * 7.0 + 3.0).astype(np.float32)
    y = layer_norm(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1.0, rtol=1e-3)
    g32, g64 = _grads32(lambda x, s, b: layer_norm(x, s, b), [x[:2, :5].astype(np.float64), np.ones(5), np.ones(5)])
    for a, c in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, c, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match=r"layer_norm: bias has shape \(3,\) but the input has 32 "
                                         r"features on its last axis \(x shape \(6, 32\)"):
        layer_norm(x, None, np.zeros(3))


@settings(max_examples=15)
@given(st.sampled_from([(2, 1), (2, 2), (4, 2), (3, 3), (4, 1)]),
       st.lists(st.integers(1, 2), max_size=2), seeds)
def test_group_norm_forward_and_gradients(cg, spatial, seed):
    c, groups = cg
    r = _rng(seed)
    x = r.standard_normal((2, c) + tuple(spatial)) * 2.0 + 0.5
    scale, bias = r.standard_normal(c), r.standard_normal(c)
    np.testing.assert_allclose(group_norm(x, groups, scale, bias), _gn_ref(x, groups, scale, bias),
                               rtol=1e-10, atol=1e-10)
    if c * math.prod(spatial) // groups > 1:  # a single element per group has a zero gradient
        check_grads(lambda x, s, b: group_norm(x, groups, s, b), [x, scale, bias], order=2, atol=1e-5)


def test_group_norm_statistics_float32_and_errors():
    x = (_rng(6).standard_normal((3, 6, 4, 4)) * 4.0 + 2.0).astype(np.float32)
    y = group_norm(x, 3)
    assert y.dtype == np.float32
    yg = y.reshape(3, 3, -1)
    np.testing.assert_allclose(yg.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(yg.var(-1), 1.0, rtol=1e-3)
    g = fnn.grad(lambda x, s: fnp.sum(group_norm(x, 3, s, None) * x), argnums=(0, 1))(x, np.ones(6, np.float32))
    assert g[0].dtype == np.float32 and g[1].dtype == np.float32
    with pytest.raises(ValueError, match=r"group_norm: num_groups=4 must be a positive divisor of the "
                                         r"6 channels \(x shape \(3, 6, 4, 4\)\)"):
        group_norm(x, 4)
    with pytest.raises(ValueError, match=r"group_norm: scale has shape \(3,\) but the input has 6"):
        group_norm(x, 3, np.ones(3))


# --------------------------------------------------------------------------------------------
# dropout


def test_dropout_statistics():
    x = np.ones((200, 500), dtype=np.float32)
    for rate in (0.1, 0.5, 0.8):
        y = dropout(x, rate, fnn.random.key(int(rate * 10)))
        assert y.dtype == np.float32
        zeros = np.mean(y == 0)
        # 100000 Bernoulli draws: the standard deviation of the fraction is below 0.0016
        assert abs(zeros - rate) < 0.01, (rate, zeros)
        np.testing.assert_allclose(np.unique(y), [0.0, 1.0 / (1.0 - rate)], rtol=1e-6)
        assert abs(y.mean() - 1.0) < 0.03, (rate, y.mean())  # expectation preserved


def test_dropout_keys_edges_and_gradient():
    x = _rng(8).standard_normal((4, 5))
    k = fnn.random.key(1)
    np.testing.assert_array_equal(dropout(x, 0.5, k), dropout(x, 0.5, k))
    assert not np.array_equal(dropout(x, 0.5, k) == 0, dropout(x, 0.5, fnn.random.key(2)) == 0)
    assert dropout(x, 0.0, k) is x
    assert dropout(x, 0.0, None) is x
    y1 = dropout(x, 1.0, k)
    np.testing.assert_array_equal(y1, np.zeros_like(x))
    np.testing.assert_array_equal(fnn.grad(lambda x: fnp.sum(dropout(x, 1.0, k)))(x), 0.0)
    y = dropout(x, 0.25, k)
    g = fnn.grad(lambda x: fnp.sum(dropout(x, 0.25, k)))(x)
    np.testing.assert_allclose(g, np.where(y != 0, 1 / 0.75, 0.0))
    check_grads(lambda x: dropout(x, 0.3, k), [x])
    with pytest.raises(ValueError, match="dropout: a random key is required"):
        dropout(x, 0.5, None)
    with pytest.raises(ValueError, match=r"dropout: rate .* must lie in \[0, 1\], got 1.5"):
        dropout(x, 1.5, k)


# --------------------------------------------------------------------------------------------
# embedding


def test_embedding_forward_and_repeated_ids_gradient():
    table = _rng(9).standard_normal((5, 3))
    ids = np.array([[0, 2, 2], [4, 0, 2]])
    out = embedding(ids, table)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, table[ids])
    u = _rng(10).standard_normal(out.shape)
    g = fnn.grad(lambda t: fnp.sum(embedding(ids, t) * u))(table)
    expected = np.zeros_like(table)
    for i, row in zip(ids.reshape(-1), u.reshape(-1, 3)):
        expected[i] += row
    np.testing.assert_allclose(g, expected)
    np.testing.assert_array_equal(g[[1, 3]], 0.0)
    check_grads(lambda t: embedding(ids, t), [table], order=2)
    check_grads(lambda t: embedding(np.int64(3), t), [table])  # a scalar id gives one row
    t32 = table.astype(np.float32)
    assert embedding(ids, t32).dtype == np.float32
    assert fnn.grad(lambda t: fnp.sum(embedding(ids, t)))(t32).dtype == np.float32


def test_embedding_errors():
    table = np.zeros((5, 3))
    with pytest.raises(IndexError, match=r"embedding: id 5 is out of range for a table of 5 rows.*"
                                         r"\(ids shape \(2,\), table shape \(5, 3\)\)"):
        embedding(np.array([1, 5]), table)
    with pytest.raises(IndexError, match=r"embedding: id -1 is out of range"):
        embedding(np.array([-1, 2]), table)
    with pytest.raises(TypeError, match=r"embedding: ids must be integers, got dtype float64"):
        embedding(np.array([1.0]), table)


# --------------------------------------------------------------------------------------------
# attention


def _attention_ref(q, k, v, mask=None):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is None:
        mask = np.ones(s.shape, bool)
    mask = np.broadcast_to(mask, s.shape)
    out = np.zeros(s.shape[:-1] + (v.shape[-1],))
    w = np.zeros(s.shape)
    for idx in np.ndindex(s.shape[:-1]):
        allowed = mask[idx]
        if allowed.any():
            e = np.exp(s[idx][allowed] - s[idx][allowed].max())
            w[idx][allowed] = e / e.sum()
    return np.matmul(w, v)


@st.composite
def attention_case(draw):
    batch = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    lq, lk, d, dv = (draw(st.integers(1, 3)) for _ in range(4))
    r = _rng(draw(seeds))
    mask = r.random((lq, lk)) < 0.6 if draw(st.booleans()) else None
    return (r.standard_normal(batch + (lq, d)), r.standard_normal(batch + (lk, d)),
            r.standard_normal(batch + (lk, dv)), mask)


@settings(max_examples=20)
@given(attention_case())
def test_attention_forward_and_gradients(case):
    q, k, v, mask = case
    out = scaled_dot_product_attention(q, k, v, mask)
    np.testing.assert_allclose(out, _attention_ref(q, k, v, mask), rtol=1e-10, atol=1e-12)
    check_grads(lambda q, k, v: scaled_dot_product_attention(q, k, v, mask), [q, k, v], order=2)


def test_attention_masking_semantics():
    r = _rng(11)
    q, k, v = r.standard_normal((2, 4, 3)), r.standard_normal((2, 5, 3)), r.standard_normal((2, 5, 2))
    mask = causal_mask(4, 5)
    np.testing.assert_array_equal(mask, np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0],
                                                  [1, 1, 1, 1, 1]], bool))
    np.testing.assert_array_equal(causal_mask(3), np.tril(np.ones((3, 3), bool)))
    out = scaled_dot_product_attention(q, k, v, mask)
    # values and keys at masked positions have no influence: zero attention weight
    v2, k2 = v.copy(), k.copy()
    v2[:, 4] += 100.0
    k2[:, 4] *= -50.0
    np.testing.assert_allclose(scaled_dot_product_attention(q, k2, v2, mask)[:, :3], out[:, :3], rtol=1e-12)
    gv = fnn.grad(lambda v: fnp.sum(scaled_dot_product_attention(q, k, v, mask)[:, 0]))(v)
    np.testing.assert_array_equal(gv[:, 2:], 0.0)
    # a fully masked row: zeros, and finite (zero) gradients through it
    m = np.ones((4, 5), bool)
    m[2] = False
    out = scaled_dot_product_attention(q, k, v, m)
    np.testing.assert_array_equal(out[:, 2], 0.0)
    assert np.all(np.isfinite(out))
    grads = fnn.grad(lambda q, k, v: fnp.sum(scaled_dot_product_attention(q, k, v, m) ** 2),
                     argnums=(0, 1, 2))(q, k, v)
    assert all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_array_equal(grads[0][:, 2], 0.0)
    empty = scaled_dot_product_attention(q, k, v, np.zeros((4, 5), bool))
    np.testing.assert_array_equal(empty, 0.0)


def test_attention_float32_dropout_and_errors():
    r = _rng(12)
    q, k, v = (r.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(3))
    m = causal_mask(3)
    out = scaled_dot_product_attention(q, k, v, m)
    assert out.dtype == np.float32
    gs = fnn.grad(lambda q, k, v: fnp.sum(scaled_dot_product_attention(q, k, v, m)), argnums=(0, 1, 2))(q, k, v)
    assert all(g.dtype == np.float32 for g in gs)
    key = fnn.random.key(3)
    a = scaled_dot_product_attention(q, k, v, dropout_rate=0.5, key=key)
    np.testing.assert_array_equal(a, scaled_dot_product_attention(q, k, v, dropout_rate=0.5, key=key))
    assert not np.allclose(a, scaled_dot_product_attention(q, k, v))
    with pytest.raises(ValueError, match="dropout: a random key is required"):
        scaled_dot_product_attention(q, k, v, dropout_rate=0.5)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: queries have 4 features but "
                                         r"keys have 5 \(q shape \(2, 3, 4\), k shape \(2, 3, 5\)\)"):
        scaled_dot_product_attention(q, np.zeros((2, 3, 5), np.float32), v)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: there are 3 keys but 2 values"):
        scaled_dot_product_attention(q, k, np.zeros((2, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"the mask of shape \(3, 2\) does not broadcast to the "
                                         r"scores' shape \(2, 3, 3\)"):
        scaled_dot_product_attention(q, k, v, np.ones((3, 2), bool))
    with pytest.raises(TypeError, match="the mask must be boolean"):
        scaled_dot_product_attention(q, k, v, np.ones((3, 3)))


def _mha_ref(xq, xkv, p, h, mask=None):
    def split(x):
        b, l, d = x.shape
        return x.reshape(b, l, h, d // h).transpose(0, 2, 1, 3)
    q, k, v = split(xq @ p["wq"] + p["bq"]), split(xkv @ p["wk"] + p["bk"]), split(xkv @ p["wv"] + p["bv"])
    o = _attention_ref(q, k, v, mask)
    b, _, lq, dh = o.shape
    return o.transpose(0, 2, 1, 3).reshape(b, lq, h * dh) @ p["wo"] + p["bo"]


def test_multi_head_attention():
    r = _rng(13)
    d, h = 6, 3
    p = {n: r.standard_normal((d, d)) * 0.5 for n in ("wq", "wk", "wv", "wo")}
    p.update({n: r.standard_normal(d) * 0.1 for n in ("bq", "bk", "bv", "bo")})
    xq, xkv = r.standard_normal((2, 3, d)), r.standard_normal((2, 4, d))
    mask = causal_mask(3, 4)
    out = multi_head_attention(xq, xkv, p, h, mask)
    np.testing.assert_allclose(out, _mha_ref(xq, xkv, p, h, mask), rtol=1e-10, atol=1e-12)
    # a per-example (B, Lq, Lk) mask applies to every head
    bmask = np.stack([mask, np.ones((3, 4), bool)])
    np.testing.assert_allclose(multi_head_attention(xq, xkv, p, h, bmask),
                               _mha_ref(xq, xkv, p, h, bmask[:, None]), rtol=1e-10, atol=1e-12)
    small = {n: v[:2, :2] if v.ndim == 2 else v[:2] for n, v in p.items()}
    check_grads(lambda x, wq, wo: multi_head_attention(x, x, dict(small, wq=wq, wo=wo), 2),
                [xq[:1, :2, :2], small["wq"], small["wo"]], order=1)
    p32 = {n: v.astype(np.float32) for n, v in p.items()}
    assert multi_head_attention(xq.astype(np.float32), xkv.astype(np.float32), p32, h).dtype == np.float32
    with pytest.raises(ValueError, match=r"multi_head_attention: num_heads=4 must be a positive divisor "
                                         r"of d_model=6"):
        multi_head_attention(xq, xkv, p, 4)


@pytest.mark.parametrize("pieces", [(5,), (2, 3), (1, 1, 1, 1, 1)])
def test_cached_self_attention_equals_causal_attention_in_any_pieces(pieces):
    r = _rng(15)
    d, h = 6, 3
    p = {n: r.standard_normal((d, d)) * 0.5 for n in ("wq", "wk", "wv", "wo")}
    p.update({n: r.standard_normal(d) * 0.1 for n in ("bq", "bk", "bv", "bo")})
    x = r.standard_normal((2, 5, d))
    whole = multi_head_attention(x, x, p, h, causal_mask(5))
    cache, outs, start = None, [], 0
    for n in pieces:
        out, cache = cached_self_attention(x[:, start:start + n], p, h, cache)
        outs.append(out)
        start += n
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, rtol=1e-10, atol=1e-12)
    assert cache["k"].shape == cache["v"].shape == (2, h, 5, d // h)
    with pytest.raises(ValueError, match="does not fit"):
        cached_self_attention(x[:1, :1], p, h, cache)  # a batch of 1 against a cache of 2


# --------------------------------------------------------------------------------------------
# PyTorch as a second reference (optional)


def test_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = _rng(14)
    T = torch.tensor

    x = r.standard_normal((4, 6, 3, 2)) * 2 + 1
    s, b = r.standard_normal(6), r.standard_normal(6)
    xt = T(x, requires_grad=True)
    st_, bt = T(s, requires_grad=True), T(b, requires_grad=True)
    u = r.standard_normal(x.shape)

    def compare(ours, theirs, args):
        y = theirs(xt, st_, bt)
        (y * T(u)).sum().backward()
        np.testing.assert_allclose(ours(x, s, b), y.detach().numpy(), rtol=1e-10, atol=1e-10)
        g = fnn.grad(lambda *a: fnp.sum(ours(*a) * u), argnums=(0, 1, 2))(x, s, b)
        for mine, t in zip(g, (xt, st_, bt)):
            np.testing.assert_allclose(mine, t.grad.numpy(), rtol=1e-8, atol=1e-10)
            t.grad = None

    compare(lambda x, s, b: batch_norm(x, s, b),
            lambda x, s, b: F.batch_norm(x, None, None, s, b, training=True, eps=1e-5), None)
    compare(lambda x, s, b: group_norm(x, 3, s, b), lambda x, s, b: F.group_norm(x, 3, s, b), None)
    x2 = r.standard_normal((3, 5))
    np.testing.assert_allclose(layer_norm(x2, s[:5], b[:5]),
                               F.layer_norm(T(x2), (5,), T(s[:5]), T(b[:5])).numpy(), rtol=1e-10, atol=1e-12)
    running_mean, running_var = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    F.batch_norm(T(x), running_mean, running_var, training=True, momentum=1.0)
    mean, var = batch_stats(x, ddof=1)
    np.testing.assert_allclose(mean, running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(var, running_var.numpy(), rtol=1e-12)

    q, k, v = r.standard_normal((2, 3, 4, 5)), r.standard_normal((2, 3, 6, 5)), r.standard_normal((2, 3, 6, 2))
    mask = r.random((4, 6)) < 0.7
    mask[:, 0] = True  # PyTorch gives NaN for a fully masked row; fnn gives zeros
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v, mask),
                               F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=T(mask)).numpy(),
                               rtol=1e-10, atol=1e-12)
