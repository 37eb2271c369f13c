"""The zoo's Transformers: ViT, BERT (masked LM) and the causal decoder with `generate`.

Reference parameter counts by shape-only init; small configurations for shapes, gradients,
dropout, masks, causality and sampling; the tied MLM decoder's gradient against central
differences; and, where PyTorch is installed, the forward passes against torch's
TransformerEncoderLayer (which computes what torchvision's EncoderBlock and HuggingFace's BertLayer
compute, in evaluation mode).
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest

import fnn
from fnn import models
from fnn.nn import ShapeDtype, count_params
from gradcheck import numerical_vjp


def key(i=0):
    return fnn.random.key(i)


def f64(tree):
    return fnn.tree.map(lambda a: np.asarray(a, np.float64), tree)


def ids_spec(n=1, length=8):
    return ShapeDtype((n, length), np.int64)


def assert_finite_grads_like(grads, params):
    assert fnn.tree.structure(grads) == fnn.tree.structure(params)
    for g, p in zip(fnn.tree.leaves(grads), fnn.tree.leaves(params)):
        assert g.shape == p.shape and g.dtype == p.dtype
        assert np.all(np.isfinite(g))


# --- reference parameter counts (shape-only init: nothing is allocated) -------------------------

@pytest.mark.parametrize("make, expected", [
    (models.vit_b_16, 86_567_656),   # torchvision.models.vit_b_16
    (models.vit_b_32, 88_224_232),   # torchvision.models.vit_b_32
    (models.vit_l_16, 304_326_632),  # torchvision.models.vit_l_16
    (models.vit_tiny, 5_717_416),    # timm vit_tiny_patch16_224
    (models.vit_small, 22_050_664),  # timm vit_small_patch16_224
])
def test_vit_parameter_counts(make, expected):
    params, state = make().init_shapes(ShapeDtype((1, 3, 224, 224)))
    assert count_params(params) == expected and state == {}
    assert all(isinstance(leaf, ShapeDtype) for leaf in fnn.tree.leaves(params))


def test_vit_b_16_parameter_shapes():
    params, _ = models.vit_b_16().init_shapes(ShapeDtype((1, 3, 224, 224)))
    assert params["conv_proj"]["w"].shape == (768, 3, 16, 16)
    assert params["class_token"].shape == (1, 1, 768)
    assert params["pos_embedding"].shape == (1, 197, 768)
    assert len(params["encoder"]) == 12 and params["head"]["w"].shape == (768, 1000)


def test_bert_base_count_is_huggingface_bert_for_masked_lm():
    params, _ = models.bert_base().init_shapes(ids_spec())
    d, f, v = 768, 3072, 30522
    embeddings = v * d + 512 * d + 2 * d + 2 * d
    layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d
    head = d * d + d + 2 * d + v  # dense, LayerNorm, output bias; the decoder is the token table
    assert embeddings + 12 * layer + head == 109_514_298
    assert count_params(params) == 109_514_298
    assert count_params(models.bert_large().init_shapes(ids_spec())[0]) == 335_174_458


def test_gpt2_small_count():
    params, _ = models.gpt2_small().init_shapes(ids_spec())
    assert count_params(params) == 124_439_808
    assert "lm_head" not in params  # tied to the token embedding
    untied = models.causal_transformer(100, 16, 32, 2, 4, tie_embeddings=False)
    assert untied.init_shapes(ids_spec())[0]["lm_head"]["w"].shape == (32, 100)


# --- ViT on MNIST-sized images ------------------------------------------------------------------

def small_vit(**kw):
    return models.vit(image_size=28, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=2,
                      num_heads=4, mlp_dim=64, **kw)


def images(n=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28)).astype(np.float32)


def test_vit_small_forward_grad_and_dropout():
    model = small_vit(dropout_rate=0.2)
    x, labels = images(), np.array([0, 3, 7, 9])
    params, state = model.init(key(), x)
    assert params["pos_embedding"].shape == (1, 17, 32)
    assert not np.any(params["head"]["w"])  # torchvision's zero head
    params["head"]["w"] = 0.1 * np.random.default_rng(1).standard_normal((32, 10)).astype(np.float32)
    y, new_state = model.apply(params, state, x)
    assert y.shape == (4, 10) and y.dtype == np.float32 and new_state == {}
    y2, _ = model.apply(params, state, x)
    np.testing.assert_array_equal(y, y2)  # evaluation: no dropout
    t1, _ = model.apply(params, state, x, key=key(5), train=True)
    t2, _ = model.apply(params, state, x, key=key(5), train=True)
    t3, _ = model.apply(params, state, x, key=key(6), train=True)
    np.testing.assert_array_equal(t1, t2)
    assert not np.allclose(t1, t3) and not np.allclose(t1, y)
    with pytest.raises(ValueError, match="key"):
        model.apply(params, state, x, train=True)

    def loss(p):
        return fnn.losses.softmax_cross_entropy(model.apply(p, state, x, key=key(2), train=True)[0], labels)

    grads = fnn.grad(loss)(params)
    assert_finite_grads_like(grads, params)
    assert np.any(grads["conv_proj"]["w"]) and np.any(grads["class_token"])
    assert np.any(grads["encoder"]["layer_0"]["attention"]["wq"])


def test_vit_rejects_wrong_image_size():
    model = small_vit()
    params, state = model.init(key(), images())
    with pytest.raises(fnn.nn.ShapeError, match="VisionTransformer"):
        model.apply(params, state, np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match="multiple"):
        models.vit(image_size=30, patch_size=7)


# --- BERT ---------------------------------------------------------------------------------------

def small_bert(**kw):
    return models.bert(vocab_size=50, max_len=16, dim=32, depth=2, num_heads=4, mlp_dim=64, **kw)


def token_batch(n=3, length=10, vocab=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab, (n, length)), rng.integers(0, 2, (n, length))


def test_bert_forward_inputs_masks_and_grad():
    model = small_bert()
    ids, segments = token_batch()
    mask = np.ones(ids.shape, bool)
    mask[0, 6:] = False
    params, state = model.init(key(), (ids, segments, mask))
    assert params["embeddings"]["position"]["table"].shape == (16, 32)
    y, _ = model.apply(params, state, ids)
    assert y.shape == (3, 10, 50) and y.dtype == np.float32
    np.testing.assert_array_equal(y, model.apply(params, state, (ids, None))[0])
    y_seg, _ = model.apply(params, state, (ids, segments))
    assert not np.allclose(y, y_seg)  # segment embeddings count
    y_mask, _ = model.apply(params, state, (ids, segments, mask))
    as_dict = {"input_ids": ids, "token_type_ids": segments, "attention_mask": mask.astype(np.int64)}
    np.testing.assert_array_equal(y_mask, model.apply(params, state, as_dict)[0])
    # padded keys are invisible: changing them leaves the real tokens' logits unchanged
    changed = ids.copy()
    changed[0, 6:] = (changed[0, 6:] + 1) % 50
    y_changed, _ = model.apply(params, state, (changed, segments, mask))
    np.testing.assert_allclose(y_changed[0, :6], y_mask[0, :6], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y_changed[1:], y_mask[1:])
    assert not np.allclose(y_mask[0, :6], y_seg[0, :6])
    # dropout only while training
    np.testing.assert_array_equal(y_mask, model.apply(params, state, (ids, segments, mask))[0])
    t1, _ = model.apply(params, state, (ids, segments, mask), key=key(1), train=True)
    assert not np.allclose(t1, y_mask)

    def loss(p):
        logits, _ = model.apply(p, state, (ids, segments, mask), key=key(3), train=True)
        return fnn.losses.softmax_cross_entropy(logits, ids)

    grads = fnn.grad(loss)(params)
    assert_finite_grads_like(grads, params)
    assert np.any(grads["mlm"]["bias"]) and np.any(grads["embeddings"]["segment"]["table"])


def test_bert_rejects_bad_inputs():
    model = small_bert()
    with pytest.raises(fnn.nn.ShapeError, match="max_len"):
        model.init(key(), ids_spec(1, 17))
    with pytest.raises(fnn.nn.ShapeError, match="integer"):
        model.init(key(), ShapeDtype((1, 4)))


def test_bert_tied_decoder_gradient():
    """The token table feeds the embedding and the MLM decoder: its gradient is the sum of both
    uses (checked against an untied copy) and matches central differences in float64."""
    model = small_bert(dropout_rate=0.0)
    ids, segments = token_batch(n=2, length=5, seed=1)
    params, state = model.init(key(4), ids)
    params = f64(params)
    table = params["embeddings"]["token"]["table"]
    labels = ids[:, ::-1].copy()

    def loss_untied(t_in, t_out):
        p_in = {**params, "embeddings": {**params["embeddings"], "token": {"table": t_in}}}
        h = model.encode(p_in, (ids, segments))
        p_out = {**params, "embeddings": {**params["embeddings"], "token": {"table": t_out}}}
        return fnn.losses.softmax_cross_entropy(model.mlm_logits(p_out, h), labels)

    def loss_tied(t):
        return loss_untied(t, t)

    g = fnn.grad(loss_tied)(table)
    g_in, g_out = fnn.grad(loss_untied, argnums=(0, 1))(table, table)
    assert g.dtype == np.float64 and np.any(g_in) and np.any(g_out)
    np.testing.assert_allclose(g, g_in + g_out, rtol=1e-12, atol=1e-14)
    # the full model's gradient (through apply) is the same array
    full = fnn.grad(lambda p: fnn.losses.softmax_cross_entropy(model.apply(p, state, (ids, segments))[0],
                                                               labels))(params)
    np.testing.assert_allclose(full["embeddings"]["token"]["table"], g, rtol=1e-12, atol=1e-14)
    # central differences on a few rows: a used id (embedding + decoder) and an unused one (decoder)
    used, unused = int(ids[0, 0]), next(i for i in range(50) if i not in ids)
    rows = np.zeros_like(table)
    rows[[used, unused]] = 1.0

    def along(s):  # the loss along a direction that moves only those two rows
        return loss_tied(table + s * rows * np.linspace(0.5, 1.5, table.shape[1]))

    numeric = numerical_vjp(along, [np.zeros(())], 0, np.ones(()))
    analytic = np.sum(g * rows * np.linspace(0.5, 1.5, table.shape[1]))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    for r, c in [(used, 0), (used, 7), (unused, 3)]:
        e = np.zeros_like(table)
        e[r, c] = 1e-6
        numeric = (loss_tied(table + e) - loss_tied(table - e)) / 2e-6
        np.testing.assert_allclose(g[r, c], numeric, rtol=1e-5, atol=1e-9)


# --- the causal decoder and generate -------------------------------------------------------------

def small_gpt(**kw):
    return models.gpt(vocab_size=50, max_len=16, dim=32, depth=2, num_heads=4, mlp_dim=64, **kw)


def test_decoder_forward_causality_and_grad():
    model = small_gpt()
    ids, _ = token_batch()
    params, state = model.init(key(), ids)
    logits, _ = model.apply(params, state, ids)
    assert logits.shape == (3, 10, 50) and logits.dtype == np.float32
    changed = ids.copy()
    changed[:, 6] = (changed[:, 6] + 1) % 50
    later, _ = model.apply(params, state, changed)
    np.testing.assert_array_equal(later[:, :6], logits[:, :6])  # earlier positions do not see it
    assert not np.allclose(later[:, 6:], logits[:, 6:])
    np.testing.assert_array_equal(logits, model.apply(params, state, ids)[0])
    t1, _ = model.apply(params, state, ids, key=key(1), train=True)
    assert not np.allclose(t1, logits)

    def loss(p):
        out, _ = model.apply(p, state, ids, key=key(2), train=True)
        return fnn.losses.softmax_cross_entropy(out[:, :-1], ids[:, 1:])

    grads = fnn.grad(loss)(params)
    assert_finite_grads_like(grads, params)
    assert np.any(grads["position_embedding"]["table"][:9]) and not np.any(
        grads["position_embedding"]["table"][10:])
    untied = small_gpt(tie_embeddings=False)
    p_untied, _ = untied.init(key(), ids)
    assert untied.apply(p_untied, {}, ids)[0].shape == (3, 10, 50)


def test_generate():
    model = small_gpt()
    prompt = np.array([1, 2, 3])
    params, state = model.init(key(), prompt[None])
    out = models.generate(model, params, state, prompt, 20, key(7), top_k=5)
    assert out.shape == (23,) and out.dtype == prompt.dtype  # longer than max_len: context cropped
    np.testing.assert_array_equal(out[:3], prompt)
    assert out.min() >= 0 and out.max() < 50
    np.testing.assert_array_equal(out, models.generate(model, params, state, prompt, 20, key(7), top_k=5))
    others = [models.generate(model, params, state, prompt, 20, key(s)) for s in range(8, 11)]
    assert any(not np.array_equal(out, o) for o in others)
    batch = models.generate(model, params, state, np.array([[1, 2], [4, 5]]), 6, key(0),
                            temperature=0.7)
    assert batch.shape == (2, 8)
    greedy = models.generate(model, params, state, prompt, 5, key(0), temperature=0)
    top1 = models.generate(model, params, state, prompt, 5, key(1), top_k=1)
    np.testing.assert_array_equal(greedy, top1)
    logits, _ = model.apply(params, state, prompt[None])
    assert greedy[3] == np.argmax(logits[0, -1])


@pytest.mark.parametrize("pieces", [(10,), (4, 1, 1, 4), (1,) * 10])
def test_decode_in_pieces_gives_the_logits_of_apply(pieces):
    model = small_gpt()
    ids, _ = token_batch()
    params, state = model.init(key(), ids)
    params = fnn.tree.map(lambda a: a.astype(np.float64), params)  # float64: compare tightly
    whole, _ = model.apply(params, state, ids)
    cache, parts, start = None, [], 0
    for n in pieces:
        logits, cache = model.decode(params, ids[:, start:start + n], cache)
        parts.append(logits)
        start += n
    assert cache["length"] == 10 and cache["layer_0"]["k"].shape == (3, 4, 10, 8)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=1e-10, atol=1e-12)


def test_decode_refuses_positions_beyond_max_len_and_non_causal_blocks():
    model = small_gpt()
    ids = np.zeros((1, 12), np.int64)
    params, _ = model.init(key(), ids)
    _, cache = model.decode(params, ids)
    with pytest.raises(ValueError, match="exceed max_len 16"):
        model.decode(params, ids[:, :5], cache)
    block = model.block()
    with pytest.raises(ValueError, match="causal"):
        attrs.evolve(block, causal=False).decode(params["blocks"]["layer_0"], np.zeros((1, 2, 32)))


@pytest.mark.parametrize("temperature, top_k", [(0.0, None), (1.0, 5)])
def test_generate_with_a_cache_samples_what_full_passes_sample(temperature, top_k):
    model = small_gpt(approximate_gelu=True)
    prompt = np.array([[1, 2, 3], [7, 8, 9]])
    params, state = model.init(key(), prompt)
    params = fnn.tree.map(lambda a: a.astype(np.float64), params)
    args = (model, params, state, prompt, 20, key(3), temperature, top_k)  # 23 > max_len 16
    np.testing.assert_array_equal(models.generate(*args), models.generate(*args, use_cache=False))


# --- against PyTorch (optional) ------------------------------------------------------------------

def _torch_layer(torch, block_params, num_heads, norm_first, eps, causal=False):
    """torch.nn.TransformerEncoderLayer (float64, GELU) holding a block's parameters."""
    a = block_params["attention"]
    d, f = a["wq"].shape[0], block_params["linear1"]["w"].shape[1]
    layer = torch.nn.TransformerEncoderLayer(d, num_heads, f, dropout=0.0, activation="gelu",
                                             layer_norm_eps=eps, batch_first=True,
                                             norm_first=norm_first, dtype=torch.float64)
    t = lambda v: torch.tensor(np.asarray(v, np.float64))  # noqa: E731
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(t(np.concatenate([a["wq"], a["wk"], a["wv"]], 1).T))
        layer.self_attn.in_proj_bias.copy_(t(np.concatenate([a["bq"], a["bk"], a["bv"]])))
        layer.self_attn.out_proj.weight.copy_(t(a["wo"].T))
        layer.self_attn.out_proj.bias.copy_(t(a["bo"]))
        for name in ("linear1", "linear2"):
            getattr(layer, name).weight.copy_(t(block_params[name]["w"].T))
            getattr(layer, name).bias.copy_(t(block_params[name]["b"]))
        for name in ("norm1", "norm2"):
            getattr(layer, name).weight.copy_(t(block_params[name]["scale"]))
            getattr(layer, name).bias.copy_(t(block_params[name]["bias"]))
    return layer.eval()


def _randomize(params, seed=0):
    rng = np.random.default_rng(seed)
    return fnn.tree.map(lambda a: a + 0.1 * rng.standard_normal(a.shape), f64(params))


def test_vit_matches_torch():
    torch = pytest.importorskip("torch")
    model = small_vit()
    x = images(2).astype(np.float64)
    params = _randomize(model.init(key(), x)[0])
    y, _ = model.apply(params, {}, x)
    with torch.no_grad():
        conv = params["conv_proj"]
        h = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(conv["w"]), torch.tensor(conv["b"]),
                                       stride=7).flatten(2).transpose(1, 2)
        cls = torch.tensor(params["class_token"]).expand(2, -1, -1)
        h = torch.cat([cls, h], 1) + torch.tensor(params["pos_embedding"])
        for i in range(2):
            h = _torch_layer(torch, params["encoder"][f"layer_{i}"], 4, True, 1e-6)(h)
        h = torch.nn.functional.layer_norm(h, (32,), torch.tensor(params["norm"]["scale"]),
                                           torch.tensor(params["norm"]["bias"]), eps=1e-6)
        ref = h[:, 0] @ torch.tensor(params["head"]["w"]) + torch.tensor(params["head"]["b"])
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-9, atol=1e-9)


def test_bert_matches_torch():
    torch = pytest.importorskip("torch")
    model = small_bert()
    ids, segments = token_batch(2, 7)
    mask = np.ones(ids.shape, bool)
    mask[1, 5:] = False
    params = _randomize(model.init(key(), ids)[0])
    y, _ = model.apply(params, {}, (ids, segments, mask))
    F = torch.nn.functional
    t = torch.tensor
    with torch.no_grad():
        e = params["embeddings"]
        h = (t(e["token"]["table"])[t(ids)] + t(e["position"]["table"])[:7]
             + t(e["segment"]["table"])[t(segments)])
        h = F.layer_norm(h, (32,), t(e["norm"]["scale"]), t(e["norm"]["bias"]), eps=1e-12)
        for i in range(2):
            layer = _torch_layer(torch, params["encoder"][f"layer_{i}"], 4, False, 1e-12)
            h = layer(h, src_key_padding_mask=t(~mask))
        m = params["mlm"]
        z = F.gelu(h @ t(m["dense"]["w"]) + t(m["dense"]["b"]))
        z = F.layer_norm(z, (32,), t(m["norm"]["scale"]), t(m["norm"]["bias"]), eps=1e-12)
        ref = z @ t(e["token"]["table"]).T + t(m["bias"])
    # torch's fast path may zero padded rows' outputs: compare the real tokens
    np.testing.assert_allclose(y[mask], ref.numpy()[mask], rtol=1e-9, atol=1e-9)


def test_decoder_matches_torch():
    torch = pytest.importorskip("torch")
    model = small_gpt()
    ids, _ = token_batch(2, 9)
    params = _randomize(model.init(key(), ids)[0])
    y, _ = model.apply(params, {}, ids)
    t = torch.tensor
    with torch.no_grad():
        table = t(params["token_embedding"]["table"])
        h = table[t(ids)] + t(params["position_embedding"]["table"])[:9]
        causal = torch.nn.Transformer.generate_square_subsequent_mask(9, dtype=torch.float64)
        for i in range(2):
            h = _torch_layer(torch, params["blocks"][f"layer_{i}"], 4, True, 1e-5)(h, src_mask=causal,
                                                                                   is_causal=True)
        h = torch.nn.functional.layer_norm(h, (32,), t(params["norm"]["scale"]), t(params["norm"]["bias"]))
        ref = h @ table.T
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-9, atol=1e-9)


def test_summary_and_shape_only_init_match_init():
    cases = [(small_vit(), images(2)), (small_bert(), token_batch(2, 6)[0]),
             (small_gpt(), token_batch(2, 6)[0])]
    for model, x in cases:
        params, _ = model.init(key(), x)
        shapes, _ = model.init_shapes(x)
        assert fnn.tree.structure(shapes) == fnn.tree.structure(params)
        assert [s.shape for s in fnn.tree.leaves(shapes)] == [p.shape for p in fnn.tree.leaves(params)]
        text = fnn.summary(model, x)
        assert f"total parameters: {count_params(params):,}" in text
    assert "tied" in fnn.summary(small_gpt(), ids_spec())


@pytest.mark.parametrize("make, inputs", [
    (lambda **kw: small_vit(**kw), lambda: images()),
    (lambda **kw: small_bert(**kw), lambda: token_batch()[0]),
    (lambda **kw: models.bert(vocab_size=50, max_len=16, dim=32, depth=0, num_heads=4, **kw),
     lambda: token_batch()[0]),  # the MLM head alone
])
def test_approximate_gelu_switches_only_the_activation(make, inputs):
    exact, approx = make(), make(approximate_gelu=True)
    x = inputs()
    params, state = exact.init(key(), x)
    assert fnn.tree.structure(approx.init(key(), x)[0]) == fnn.tree.structure(params)
    if "head" in params:  # torchvision's zero ViT head would hide any difference
        params["head"]["w"] = np.random.default_rng(1).standard_normal(params["head"]["w"].shape).astype(np.float32)
    y_exact, _ = exact.apply(params, state, x)
    y_approx, _ = approx.apply(params, state, x)
    assert not np.array_equal(y_exact, y_approx)  # the tanh form is in use
    scale = np.abs(y_exact).max()
    np.testing.assert_allclose(y_approx, y_exact, atol=5e-3 * scale)  # and nothing else changed


def test_generate_never_produces_suppressed_ids():
    model = small_gpt()
    prompt = np.array([1, 2, 3])
    params, state = model.init(key(), prompt[None])
    greedy = models.generate(model, params, state, prompt, 12, key(0), temperature=0)
    banned = sorted(set(greedy[3:].tolist()))  # what greedy decoding picked
    again = models.generate(model, params, state, prompt, 12, key(0), temperature=0, suppress_ids=banned)
    assert not set(again[3:].tolist()) & set(banned)
    sampled = models.generate(model, params, state, prompt, 30, key(1), suppress_ids=range(25))
    assert sampled[3:].min() >= 25
    with pytest.raises(ValueError, match="suppress_ids"):
        models.generate(model, params, state, prompt, 2, key(0), suppress_ids=[50])
    with pytest.raises(ValueError, match="no token"):
        models.generate(model, params, state, prompt, 2, key(0), suppress_ids=range(50))
