"""Layers and combinators: the init/apply protocol, names, shapes, state, errors, and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fnn
import fnn.numpy as fnp
from fnn import nn
from gradcheck import check_grads


def key(i=0):
    return fnn.random.key(i)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# --- Dense and Sequential ------------------------------------------------------------------------

def test_dense_init_apply_and_default_init_bounds():
    layer = nn.Dense(7)
    params, state = layer.init(key(), nn.ShapeDtype((4, 300)))
    assert state == {} and params["w"].shape == (300, 7) and params["b"].shape == (7,)
    assert params["w"].dtype == np.float32
    bound = 1 / math.sqrt(300)
    assert np.abs(params["w"]).max() <= bound and np.abs(params["w"]).max() > 0.9 * bound
    x = np.random.default_rng(0).standard_normal((4, 300)).astype(np.float32)
    y, _ = layer.apply(params, state, x)
    np.testing.assert_allclose(y, x @ params["w"] + params["b"], rtol=1e-5, atol=1e-5)
    assert y.dtype == np.float32


def test_wrong_input_shape_names_layer_and_both_shapes():
    model = nn.Sequential([nn.Dense(8), nn.ReLU(), nn.Dense(3)])
    params, state = model.init(key(), nn.ShapeDtype((2, 5)))
    with pytest.raises(nn.ShapeError, match=r"dense_0: Dense: .*6 features.*expects 5.*\(2, 6\).*\(5, 8\)"):
        model.apply(params, state, np.ones((2, 6), np.float32))


def test_sequential_names_params_and_plain_functions():
    model = nn.Sequential([nn.Conv2d(4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                           nn.Dense(10), fnp.tanh])
    params, state = model.init(key(), nn.ShapeDtype((2, 3, 8, 8)))
    assert set(params) == {"conv_0", "dense_4"}
    assert params["conv_0"]["w"].shape == (4, 3, 3, 3)
    assert params["dense_4"]["w"].shape == (4 * 4 * 4, 10)
    y, _ = model.apply(params, state, np.ones((2, 3, 8, 8), np.float32))
    assert y.shape == (2, 10)
    assert model.output_spec(nn.ShapeDtype((5, 3, 8, 8))).shape == (5, 10)


def test_init_is_deterministic_in_the_key():
    model = nn.Sequential([nn.Dense(4), nn.Dense(2)])
    p1, _ = model.init(key(3), nn.ShapeDtype((1, 3)))
    p2, _ = model.init(key(3), nn.ShapeDtype((1, 3)))
    p3, _ = model.init(key(4), nn.ShapeDtype((1, 3)))
    np.testing.assert_array_equal(p1["dense_0"]["w"], p2["dense_0"]["w"])
    assert not np.array_equal(p1["dense_0"]["w"], p3["dense_0"]["w"])
    assert not np.array_equal(p1["dense_0"]["w"][:, :2], p1["dense_1"]["w"][:3])


def test_gradient_of_a_small_network_matches_central_differences():
    model = nn.Sequential([nn.Dense(5), nn.Tanh(), nn.Dense(2)])
    params, state = model.init(key(), nn.ShapeDtype((3, 4), np.float64))
    x = np.random.default_rng(1).standard_normal((3, 4))

    def loss(w0, b1):
        p = {"dense_0": {**params["dense_0"], "w": w0}, "dense_2": {**params["dense_2"], "b": b1}}
        y, _ = model.apply(p, state, x)
        return fnp.sum(y ** 2)

    check_grads(loss, [params["dense_0"]["w"], params["dense_2"]["b"]])


# --- combinators ---------------------------------------------------------------------------------

def test_residual_with_and_without_projection():
    block = nn.Residual(nn.Sequential([nn.Dense(3), nn.ReLU()]))
    params, state = block.init(key(), nn.ShapeDtype((2, 3)))
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    y, _ = block.apply(params, state, x)
    body = params["body"]["dense_0"]
    np.testing.assert_allclose(y, np.maximum(x @ body["w"] + body["b"], 0) + x, rtol=1e-5, atol=1e-6)
    with pytest.raises(nn.ShapeError, match="shortcut"):
        nn.Residual(nn.Dense(4)).init(key(), nn.ShapeDtype((2, 3)))
    projected = nn.Residual(nn.Dense(4), shortcut=nn.Dense(4, use_bias=False))
    params, state = projected.init(key(), nn.ShapeDtype((2, 3)))
    assert set(params) == {"body", "shortcut"}


def test_concat_and_parallel():
    block = nn.Concat([nn.Conv2d(2, 1), nn.Conv2d(3, 3, padding=1)], axis=1)
    params, state = block.init(key(), nn.ShapeDtype((1, 4, 5, 5)))
    y, _ = block.apply(params, state, np.ones((1, 4, 5, 5), np.float32))
    assert y.shape == (1, 5, 5, 5)
    pair = nn.Parallel([nn.Dense(2), nn.Dense(3)])
    params, state = pair.init(key(), nn.ShapeDtype((4, 6)))
    (a, b), _ = pair.apply(params, state, np.ones((4, 6), np.float32))
    assert a.shape == (4, 2) and b.shape == (4, 3)


# --- state, train/eval, randomness ---------------------------------------------------------------

def test_batchnorm_running_statistics_follow_pytorch_and_eval_uses_them():
    layer = nn.BatchNorm(momentum=0.1)
    params, state = layer.init(key(), nn.ShapeDtype((8, 3, 4, 4)))
    np.testing.assert_array_equal(state["mean"], np.zeros(3, np.float32))
    x = (np.random.default_rng(0).standard_normal((8, 3, 4, 4)) * 2 + 1).astype(np.float32)
    y, new_state = layer.apply(params, state, x, train=True)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    n = 8 * 4 * 4
    np.testing.assert_allclose(new_state["mean"], 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state["var"], 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)
    y_eval, same = layer.apply(params, new_state, x, train=False)
    assert same is new_state
    expected = (x - new_state["mean"][:, None, None]) / np.sqrt(new_state["var"][:, None, None] + 1e-5)
    np.testing.assert_allclose(y_eval, expected, rtol=1e-4, atol=1e-5)
    assert state["mean"].sum() == 0  # the old state was not mutated


def test_dropout_needs_a_key_in_training_and_is_identity_in_eval():
    layer = nn.Dropout(0.5)
    x = np.ones((100, 100), np.float32)
    y, _ = layer.apply({}, {}, x)
    assert y is x
    with pytest.raises(ValueError, match="key"):
        layer.apply({}, {}, x, train=True)
    y, _ = layer.apply({}, {}, x, key=key(1), train=True)
    assert 0.45 < np.mean(y == 0) < 0.55 and set(np.unique(y)) <= {0.0, 2.0}
    with pytest.raises(ValueError, match="drop probability"):
        nn.Dropout(1.5)


def test_sequential_passes_distinct_keys_to_each_dropout():
    model = nn.Sequential([nn.Dropout(0.5), nn.Dropout(0.5)])
    x = np.ones((200,), np.float32)
    y, _ = model.apply({}, {}, x, key=key(0), train=True)
    # independent masks keep 1/4 of the elements; one shared mask would keep 1/2
    assert 0.65 < np.mean(y == 0) < 0.85


# --- recurrent layers against step loops written out here -----------------------------------------

def _numpy_rnn(kind, p, x, h0=None, c0=None):
    n, t, _ = x.shape
    hidden = p["w_hh"].shape[0]
    h = np.zeros((n, hidden)) if h0 is None else h0
    c = np.zeros((n, hidden)) if c0 is None else c0
    outs = []
    for step in range(t):
        xw = x[:, step] @ p["w_ih"] + p["b_ih"]
        hw = h @ p["w_hh"] + p["b_hh"]
        if kind == "rnn":
            h = np.tanh(xw + hw)
        elif kind == "lstm":
            i, f, g, o = np.split(xw + hw, 4, axis=-1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        else:
            xr, xz, xn = np.split(xw, 3, axis=-1)
            hr, hz, hn = np.split(hw, 3, axis=-1)
            r, z = sigmoid(xr + hr), sigmoid(xz + hz)
            h = (1 - z) * np.tanh(xn + r * hn) + z * h
        outs.append(h)
    return np.stack(outs, axis=1), h, c


@pytest.mark.parametrize("layer_cls,kind", [(nn.RNN, "rnn"), (nn.LSTM, "lstm"), (nn.GRU, "gru")])
def test_recurrent_layers_match_step_loops(layer_cls, kind):
    layer = layer_cls(5)
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    params, state = layer.init(key(), nn.ShapeDtype(x.shape, np.float64))
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    assert params["w_ih"].shape == (2, 5 * gates) and params["w_hh"].shape == (5, 5 * gates)
    y, _ = layer.apply(params, state, x)
    expected, h, c = _numpy_rnn(kind, params, x)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    with_carry = layer_cls(5, return_carry=True)
    h0 = np.random.default_rng(1).standard_normal((3, 5))
    carry0 = (h0, h0 * 0.5) if kind == "lstm" else h0
    (y, carry), _ = with_carry.apply(params, state, (x, carry0))
    expected, h, c = _numpy_rnn(kind, params, x, h0, h0 * 0.5)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(carry[0] if kind == "lstm" else carry, h, rtol=1e-10, atol=1e-12)


def test_recurrent_gradient_matches_central_differences():
    layer = nn.LSTM(3)
    x = np.random.default_rng(2).standard_normal((2, 3, 2))
    params, state = layer.init(key(), nn.ShapeDtype(x.shape, np.float64))

    def loss(w_hh, x):
        y, _ = layer.apply({**params, "w_hh": w_hh}, state, x)
        return fnp.sum(y ** 2)

    check_grads(loss, [params["w_hh"], x])


# --- attention -----------------------------------------------------------------------------------

def _numpy_mha(p, xq, xkv, heads, mask=None):
    def proj(x, w, b):
        return x @ w + b

    q, k, v = proj(xq, p["wq"], p["bq"]), proj(xkv, p["wk"], p["bk"]), proj(xkv, p["wv"], p["bv"])
    n, lq, d = q.shape
    dh = d // heads

    def heads_of(t):
        return t.reshape(n, -1, heads, dh).transpose(0, 2, 1, 3)

    s = heads_of(q) @ heads_of(k).transpose(0, 1, 3, 2) / math.sqrt(dh)
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    o = (w @ heads_of(v)).transpose(0, 2, 1, 3).reshape(n, lq, d)
    return proj(o, p["wo"], p["bo"])


def test_multi_head_attention_matches_direct_formula_and_causal_mask():
    layer = nn.MultiHeadAttention(2)
    x = np.random.default_rng(0).standard_normal((2, 4, 6))
    params, state = layer.init(key(), nn.ShapeDtype(x.shape, np.float64))
    params = {k: v + 0.1 * np.random.default_rng(1).standard_normal(v.shape) for k, v in params.items()}
    y, _ = layer.apply(params, state, x)
    np.testing.assert_allclose(y, _numpy_mha(params, x, x, 2), rtol=1e-9, atol=1e-10)
    causal = np.tril(np.ones((4, 4), bool))
    y, _ = nn.MultiHeadAttention(2, causal=True).apply(params, state, x)
    np.testing.assert_allclose(y, _numpy_mha(params, x, x, 2, causal), rtol=1e-9, atol=1e-10)
    # the first position attends to itself only: changing later positions does not move it
    x2 = x.copy()
    x2[:, 1:] += 1.0
    y2, _ = nn.MultiHeadAttention(2, causal=True).apply(params, state, x2)
    np.testing.assert_allclose(y2[:, 0], y[:, 0], rtol=1e-9, atol=1e-10)


def test_transformer_encoder_layer_shapes_dropout_and_gradient():
    layer = nn.TransformerEncoderLayer(2, dim_feedforward=8, dropout_rate=0.1)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    params, state = layer.init(key(), x)
    y, _ = layer.apply(params, state, x)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)  # post-norm: the output is layer-normed
    with pytest.raises(ValueError, match="key"):
        layer.apply(params, state, x, train=True)
    y_train, _ = layer.apply(params, state, x, key=key(1), train=True)
    assert not np.allclose(y_train, y)
    g = fnn.grad(lambda p: fnp.sum(layer.apply(p, state, x)[0][:, 0] ** 2))(params)
    assert fnn.tree.structure(g) == fnn.tree.structure(params)
    assert np.abs(g["linear1"]["w"]).sum() > 0


# --- summary -------------------------------------------------------------------------------------

def test_summary_lists_layers_shapes_and_counts():
    model = nn.Sequential([nn.Conv2d(6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                           nn.Dense(10), nn.BatchNorm()])
    text = fnn.summary(model, nn.ShapeDtype((1, 1, 28, 28)))
    assert "conv_0" in text and "(1, 6, 28, 28)" in text
    assert "max_pool_2" in text and "(1, 6, 14, 14)" in text
    assert "dense_4" in text and "(1, 10)" in text
    n_params = 6 * 25 + 6 + 6 * 14 * 14 * 10 + 10 + 2 * 10
    assert f"total parameters: {n_params:,}" in text
    assert "state (not trained): 20" in text


def test_embedding_layer():
    layer = nn.Embedding(10, 4)
    ids = np.array([[1, 2, 2], [9, 0, 1]])
    params, state = layer.init(key(), ids)
    y, _ = layer.apply(params, state, ids)
    np.testing.assert_array_equal(y, params["table"][ids])
    with pytest.raises(nn.ShapeError, match="integer"):
        layer.init(key(), nn.ShapeDtype((2, 3), np.float32))


@pytest.mark.parametrize("layer,shape", [
    (nn.Conv2d(8, 3, stride=2, padding=1), (2, 3, 9, 10)),
    (nn.Conv2d(6, (3, 1), padding="same", dilation=2, groups=3), (1, 3, 7, 7)),
    (nn.Conv1d(4, 5, stride=2, padding=2), (2, 3, 11)),
    (nn.ConvTranspose2d(4, 3, stride=2, padding=1, output_padding=1), (2, 3, 5, 6)),
    (nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 9)),
    (nn.AvgPool2d(2), (2, 3, 8, 7)),
    (nn.GlobalAvgPool(), (2, 3, 5, 5)),
    (nn.AdaptiveAvgPool2d((3, None)), (2, 3, 7, 5)),
])
def test_shape_inference_agrees_with_apply(layer, shape):
    params, state = layer.init(key(), nn.ShapeDtype(shape))
    y, _ = layer.apply(params, state, np.ones(shape, np.float32))
    assert layer.output_spec(nn.ShapeDtype(shape)).shape == y.shape


def test_shape_only_init_of_a_large_input_is_cheap():
    # A 224x224 ImageNet-size input: init reads only the shape (no forward pass is run).
    model = nn.Sequential([nn.Conv2d(64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(128, 3, padding=1), nn.GlobalAvgPool(), nn.Dense(1000)])
    params, _ = model.init(key(), nn.ShapeDtype((256, 3, 224, 224)))
    assert model.output_spec(nn.ShapeDtype((256, 3, 224, 224))).shape == (256, 1000)
    assert nn.count_params(params) == 64 * 27 + 64 + 128 * 64 * 9 + 128 + 128 * 1000 + 1000


def test_conv_layer_errors_name_layer_and_shapes():
    model = nn.Sequential([nn.Conv2d(4, 3)])
    params, state = model.init(key(), nn.ShapeDtype((1, 3, 8, 8)))
    with pytest.raises(nn.ShapeError, match=r"conv_0: Conv2d: input has 2 channels but the weight expects 3"):
        model.apply(params, state, np.ones((1, 2, 8, 8), np.float32))
    with pytest.raises(nn.ShapeError, match=r"Conv2d: .*\(N, C, H, W\).*\(8, 8\)"):
        nn.Conv2d(4, 3).init(key(), nn.ShapeDtype((8, 8)))
    with pytest.raises(nn.ShapeError, match="larger than the padded input"):
        nn.Conv2d(4, 5).init(key(), nn.ShapeDtype((1, 3, 3, 3)))


# --- an empty batch ---------------------------------------------------------------------------

_EMPTY_BATCH_CASES = {
    "Conv1d": (lambda: nn.Conv1d(4, 3, padding=1), (2, 3, 10), (0, 4, 10)),
    "Conv2d": (lambda: nn.Conv2d(4, 3, padding=1), (2, 3, 8, 8), (0, 4, 8, 8)),
    "Conv2d, stride 2, groups": (lambda: nn.Conv2d(6, 3, stride=2, groups=3), (2, 3, 8, 8), (0, 6, 3, 3)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(4, 3, stride=2), (2, 3, 8, 8), (0, 4, 17, 17)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), (2, 3, 8, 8), (0, 3, 4, 4)),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), (2, 3, 8, 8), (0, 3, 4, 4)),
    "GroupNorm": (lambda: nn.GroupNorm(3), (2, 6, 4, 4), (0, 6, 4, 4)),
    "Dense": (lambda: nn.Dense(4), (2, 5), (0, 4)),
    "LSTM": (lambda: nn.LSTM(4), (2, 5, 3), (0, 5, 4)),
    "TransformerEncoderLayer": (lambda: nn.TransformerEncoderLayer(2), (2, 5, 4), (0, 5, 4)),
}


@pytest.mark.parametrize("name", sorted(_EMPTY_BATCH_CASES))
def test_an_empty_batch_gives_empty_outputs_and_zero_gradients(name):
    """As in PyTorch, a batch of no examples goes through (the last batch of a filtered loader
    can be empty): an empty output, and zero parameter gradients of the parameters' shapes."""
    make, shape, out_shape = _EMPTY_BATCH_CASES[name]
    layer = make()
    params, state = layer.init(fnn.random.key(0), nn.ShapeDtype(shape, np.float32))
    x = np.zeros((0,) + shape[1:], np.float32)
    y, _ = layer.apply(params, state, x)
    assert y.shape == out_shape
    grads, gx = fnn.grad(lambda p, x: fnn.numpy.sum(layer.apply(p, state, x)[0]), argnums=(0, 1))(params, x)
    assert gx.shape == x.shape
    for g, p in zip(fnn.tree.leaves(grads), fnn.tree.leaves(params)):
        assert g.shape == p.shape and g.dtype == p.dtype and not np.any(g)
