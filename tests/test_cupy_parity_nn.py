"""Layers, models, optimizers, losses and metrics on CuPy arrays give what they give on NumPy.

Parameters are initialised on the host from one key, then the same forward pass, gradient and
optimizer steps run on NumPy and on CuPy arrays; outputs, state, gradients and optimizer state must
stay on their device, keep their dtypes and agree. Training steps run with synchronisation
disallowed, so a host round trip inside a step fails the test. Skipped without CuPy and a GPU.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import fnn
import fnn.models
import fnn.losses as L
import fnn.metrics as M
import fnn.nn as nn
import fnn.numpy as fnp
import fnn.optim as optim
from fnn import backend, tree
from fnn.random import key

from backends import (assert_on_backend, assert_same_on_backends, assert_trees_close, requires_cupy,
                      to_backend, to_host)

R = np.random.default_rng(3)


def _x(*shape, dtype=np.float32):
    return R.standard_normal(shape).astype(dtype)


def no_sync():
    """A context in which a device synchronisation raises (CuPy's own check)."""
    import cupyx  # noqa: PLC0415

    return cupyx.allow_synchronize(False)


# --------------------------------------------------------------------------------------------
# Layers: name -> (module, input); every layer class of fnn.nn has an entry

SEQ = _x(2, 5, 6)
IMAGES = _x(2, 3, 8, 8)
LAYERS = {
    "Activation": (nn.Activation(nn.functional.gelu), _x(3, 4)),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d(3), IMAGES),
    "AvgPool2d": (nn.AvgPool2d(3, stride=2, padding=1), IMAGES),
    "BatchNorm": (nn.BatchNorm(), IMAGES),
    "Conv1d": (nn.Conv1d(4, 3, padding=1), _x(2, 3, 9)),
    "Conv2d": (nn.Conv2d(4, 3, stride=2, padding=1), IMAGES),
    "ConvTranspose2d": (nn.ConvTranspose2d(2, 3, stride=2, padding=1, output_padding=1), IMAGES),
    "Dense": (nn.Dense(5), _x(3, 4)),
    "Dropout": (nn.Dropout(0.3), _x(3, 4)),
    "Embedding": (nn.Embedding(7, 4), np.array([[1, 6, 0], [3, 3, 2]])),
    "Flatten": (nn.Flatten(), IMAGES),
    "GRU": (nn.GRU(4), SEQ),
    "GlobalAvgPool": (nn.GlobalAvgPool(), IMAGES),
    "GroupNorm": (nn.GroupNorm(2), _x(2, 4, 3, 3)),
    "LSTM": (nn.LSTM(4, return_carry=True), SEQ),
    "Lambda": (nn.Lambda(lambda x: fnp.tanh(x) * 2), _x(3, 4)),
    "LayerNorm": (nn.LayerNorm(), SEQ),
    "MaxPool2d": (nn.MaxPool2d(2), IMAGES),
    "MultiHeadAttention": (nn.MultiHeadAttention(2, causal=True), SEQ),
    "Parallel": (nn.Parallel([nn.Dense(3), nn.Dense(2)], combine=lambda a, b: fnp.concatenate([a, b], -1)),
                 _x(3, 4)),
    "RNN": (nn.RNN(4), SEQ),
    "Residual": (nn.Residual(nn.Sequential([nn.Dense(4), nn.Activation(nn.functional.relu)])), _x(3, 4)),
    "Sequential": (nn.Sequential([nn.Conv2d(4, 3, padding=1), nn.BatchNorm(), nn.Activation(nn.functional.relu),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Dense(3)]), IMAGES),
    "TransformerEncoderLayer": (nn.TransformerEncoderLayer(2, dim_feedforward=8, dropout_rate=0.0), SEQ),
}


def layer_classes() -> set[str]:
    return {n for n, v in vars(nn).items()
            if inspect.isclass(v) and issubclass(v, nn.Module) and v is not nn.Module}


def test_every_layer_has_a_parity_case():
    assert layer_classes() - set(LAYERS) == set()


def _layer_step(module, params, state, x, u, train):
    """Output, new state and gradients (params, and x where it is floating) of sum(u * out)."""
    float_x = x.dtype.kind == "f"

    def objective(p, xin):
        out, new_state = module.apply(p, state, xin, train=train, key=key(1) if train else None)
        first = out[0] if isinstance(out, tuple) else out
        return fnp.sum(first * u), (out, new_state)

    argnums = (0, 1) if float_x else 0
    (value, (out, new_state)), grads = fnn.value_and_grad(objective, argnums=argnums, has_aux=True)(params, x)
    return value, out, new_state, grads


@requires_cupy
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_layer_on_cupy(name, train):
    module, x = LAYERS[name]
    if name == "Dropout" and train:
        pytest.skip("dropout masks come from the device's generator: see test_dropout_on_cupy")
    params, state = module.init(key(0), nn.ShapeDtype(x.shape, x.dtype))
    out_shape = module.output_spec(nn.ShapeDtype(x.shape, x.dtype)).shape
    u = _x(*out_shape) if not isinstance(out_shape[0], tuple) else _x(*out_shape[0])
    expected = _layer_step(module, params, state, x, u, train)
    with no_sync():
        actual = _layer_step(module, *to_backend((params, state, x, u), "cupy"), train)
    assert_on_backend(actual, "cupy", name)
    assert_trees_close(to_host(actual), expected, name, rtol=2e-4, atol=2e-5)


@requires_cupy
def test_dropout_on_cupy():
    x = to_backend(np.ones((64, 64), np.float32), "cupy")
    layer = nn.Dropout(0.25)
    params, state = layer.init(key(0), nn.ShapeDtype(x.shape, x.dtype))
    with no_sync():
        a, _ = layer.apply(params, state, x, train=True, key=key(5))
        b, _ = layer.apply(params, state, x, train=True, key=key(5))
        c, _ = layer.apply(params, state, x, train=True, key=key(6))
    assert_on_backend((a, c), "cupy")
    a, b, c = to_host((a, b, c))
    np.testing.assert_array_equal(a, b)  # same key, same mask
    assert not np.array_equal(a, c)
    kept = a != 0
    np.testing.assert_allclose(a[kept], 1 / 0.75, rtol=1e-6)
    assert 0.70 < kept.mean() < 0.80


# --------------------------------------------------------------------------------------------
# Models: a whole training step (loss, gradients, SGD update) without a host round trip


def _train_step(model, opt, params, state, opt_state, x, y):
    def loss_fn(p):
        logits, new_state = model.apply(p, state, x, train=True)
        return L.softmax_cross_entropy(logits, y), new_state

    (loss, new_state), grads = fnn.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return loss, optim.apply_updates(params, updates), new_state, opt_state


MODELS = {
    "lenet5": (lambda: fnn.models.lenet5(), (4, 1, 28, 28)),
    "resnet18": (lambda: fnn.models.resnet18(num_classes=10, width_multiplier=0.125, small_input=True), (4, 3, 16, 16)),
    "vit": (lambda: fnn.models.vit(image_size=16, patch_size=4, num_classes=10, dim=16, depth=2, num_heads=2,
                                   mlp_dim=32), (4, 3, 16, 16)),
}


@requires_cupy
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_training_step_on_cupy(name):
    make, shape = MODELS[name]
    model = make()
    x = _x(*shape)
    y = np.arange(shape[0]) % 10
    params, state = model.init(key(0), nn.ShapeDtype(x.shape, x.dtype))
    opt = optim.sgd(0.1, momentum=0.9)
    expected = _train_step(model, opt, params, state, opt.init(params), x, y)
    on_gpu = to_backend((params, state, opt.init(to_backend(params, "cupy")), x, y), "cupy")
    with no_sync():
        actual = _train_step(model, opt, *on_gpu)
    assert_on_backend(actual, "cupy", name)
    assert_trees_close(to_host(actual), expected, name, rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Optimizers: three updates from the same gradients; every optimizer and transformation in the table

OPTIMIZERS = {
    "sgd": optim.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": optim.adam(1e-2, weight_decay=1e-3),
    "adamw": optim.adamw(1e-2),
    "rmsprop": optim.rmsprop(1e-2, momentum=0.5, centered=True),
    "adagrad": optim.adagrad(1e-1),
    "lion": optim.lion(1e-3, weight_decay=0.1),
    "clip": optim.clip(0.5),
    "clip_by_global_norm": optim.clip_by_global_norm(0.5),
    "ema": optim.ema(0.9),
    "multi_steps": optim.multi_steps(optim.adam(1e-2), 2),
    "masked": optim.masked(optim.sgd(0.1), {"w": True, "b": False}),
    "scale_by_stddev": optim.scale_by_stddev(),
    "add_decayed_weights": optim.add_decayed_weights(1e-2),
    "trace": optim.trace(0.9, nesterov=True),
    "scale": optim.scale(-0.1),
    "identity": optim.identity(),
    "chain": optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_adam(), optim.scale(-1e-2)),
    "schedule": optim.sgd(optim.warmup_cosine_decay_schedule(0.0, 0.1, 2, 10)),
}


def test_every_optimizer_has_a_parity_case():
    factories = {n for n in optim.__all__ if callable(getattr(optim, n)) and n in dir(optim.transforms) + dir(optim.optimizers)
                 and inspect.signature(getattr(optim, n)).return_annotation in ("GradientTransformation",)}
    assert factories - set(OPTIMIZERS) - {"scale_by_adam", "scale_by_rms", "scale_by_adagrad", "scale_by_lion",
                                          "scale_by_learning_rate"} == set()


def _run_optimizer(opt, params, grads_seq, donate=False):
    state = opt.init(params)
    for grads in grads_seq:
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates, donate=donate)
    return params, state


@requires_cupy
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_on_cupy(name, dtype):
    params = {"w": _x(3, 4, dtype=dtype), "b": _x(4, dtype=dtype)}
    grads = [{"w": _x(3, 4, dtype=dtype), "b": _x(4, dtype=dtype)} for _ in range(3)]
    expected = _run_optimizer(OPTIMIZERS[name], params, grads)
    with no_sync():
        actual = _run_optimizer(OPTIMIZERS[name], *to_backend((params, grads), "cupy"))
    assert_on_backend(actual, "cupy", name)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert_trees_close(to_host(actual), expected, name, **tol)


@requires_cupy
@pytest.mark.parametrize("name", ["sgd", "adam", "identity"])
def test_donated_updates_on_cupy(name):
    """apply_updates(donate=True) updates the GPU arrays in place and matches NumPy."""
    params = {"w": _x(3, 4), "b": _x(4), "deep": {"v": _x(2, 2, dtype=np.float64)}}
    grads = [tree.map(lambda p: _x(*p.shape, dtype=p.dtype), params) for _ in range(3)]
    expected = _run_optimizer(OPTIMIZERS[name], tree.map(np.copy, params), grads, donate=True)
    gpu_params, gpu_grads = to_backend((params, grads), "cupy")
    with no_sync():
        actual = _run_optimizer(OPTIMIZERS[name], gpu_params, gpu_grads, donate=True)
    assert actual[0]["w"] is gpu_params["w"]  # updated in place
    assert_on_backend(actual, "cupy", name)
    assert_trees_close(to_host(actual), expected, name, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Losses (value and gradient) and metrics (host floats from device arrays)

LOGITS = _x(6, 4, dtype=np.float64)
LABELS = np.array([0, 3, 1, 1, 2, 0])
PRED, TARGET = _x(6, 3, dtype=np.float64), _x(6, 3, dtype=np.float64)
LOSSES = {
    "binary_cross_entropy_with_logits": (L.binary_cross_entropy_with_logits, PRED, (TARGET > 0).astype(float)),
    "cosine_distance": (L.cosine_distance, PRED, TARGET),
    "cosine_similarity": (lambda a, b: fnp.sum(L.cosine_similarity(a, b)), PRED, TARGET),
    "huber": (L.huber, PRED, TARGET),
    "kl_divergence": (lambda a, b: L.kl_divergence(nn.functional.log_softmax(a), b), LOGITS,
                      np.full((6, 4), 0.25)),
    "l2": (lambda a, b: L.l2({"a": a, "b": b}), PRED, TARGET),
    "mae": (L.mae, PRED, TARGET),
    "mse": (L.mse, PRED, TARGET),
    "multiclass_hinge": (L.multiclass_hinge, LOGITS, LABELS),
    "nll": (lambda a, y: L.nll(nn.functional.log_softmax(a), y), LOGITS, LABELS),
    "softmax_cross_entropy": (L.softmax_cross_entropy, LOGITS, LABELS),
    "softmax_cross_entropy_smoothed": (lambda a, y: L.softmax_cross_entropy(a, y, label_smoothing=0.2,
                                                                           reduction="sum"),
                                       LOGITS.astype(np.float32), LABELS.astype(np.int32)),
    "softmax_cross_entropy_per_example": (lambda a, y: fnp.sum(L.softmax_cross_entropy(a, y, reduction="none") ** 2),
                                          LOGITS, LABELS),
}


def test_every_loss_has_a_parity_case():
    assert {n for n in L.__all__ if callable(getattr(L, n))} - set(LOSSES) == set()


@requires_cupy
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_on_cupy(name):
    fun, a, b = LOSSES[name]
    argnums = (0, 1) if b.dtype.kind == "f" else 0

    def value_and_grad(a, b):
        with no_sync():
            return fnn.value_and_grad(fun, argnums=argnums)(a, b)

    tol = dict(rtol=1e-5, atol=1e-6) if a.dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert_same_on_backends(value_and_grad, a, b, **tol)


SCORES = np.random.default_rng(4).standard_normal((40, 5))
CLASSES = np.random.default_rng(5).integers(0, 5, 40)
BINARY = (CLASSES == 2).astype(np.int64)
METRICS = {
    "accuracy": (M.accuracy, SCORES, CLASSES),
    "average_precision": (M.average_precision, SCORES[:, 2], BINARY),
    "confusion_matrix": (M.confusion_matrix, SCORES, CLASSES),
    "mean_average_precision": (M.mean_average_precision, SCORES, CLASSES),
    "pr_curve": (M.pr_curve, SCORES[:, 2], BINARY),
    "pr_curves": (M.pr_curves, SCORES, CLASSES),
    "precision_recall_f1": (M.precision_recall_f1, SCORES, CLASSES),
    "roc_auc": (M.roc_auc, SCORES[:, 2], BINARY),
    "roc_curve": (M.roc_curve, SCORES[:, 2], BINARY),
    "top_k_accuracy": (lambda s, y: M.top_k_accuracy(s, y, k=2), SCORES, CLASSES),
}


def test_every_metric_has_a_parity_case():
    public = {n for n in dir(M) if not n.startswith("_") and inspect.isfunction(getattr(M, n))
              and getattr(M, n).__module__ == M.__name__}
    assert public - set(METRICS) == set()


@requires_cupy
@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_on_cupy(name):
    fun, scores, labels = METRICS[name]
    expected = fun(scores, labels)
    actual = fun(*backend.to_cupy((scores, labels)))
    assert_trees_close(to_host(actual), to_host(expected), name, rtol=1e-12, atol=1e-12)


@requires_cupy
def test_label_range_is_checked_on_the_gpu_only_when_asked():
    # (without the check, test_loss_on_cupy runs these losses with synchronisation disallowed)
    logits, labels = to_backend((LOGITS, np.array([0, 3, 1, 1, 2, 9])), "cupy")
    with backend.device_value_checks(), pytest.raises(ValueError, match="label 9 is out of range"):
        L.softmax_cross_entropy(logits, labels)
