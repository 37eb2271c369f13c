"""The pieces compose: models from fnn.nn, losses from fnn.losses and optimizers from fnn.optim
train to high accuracy on small synthetic problems."""

from __future__ import annotations

import numpy as np

import fnn
import fnn.numpy as fnp
from fnn import losses, nn, optim


def two_moons(n, noise, seed):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    labels = rng.integers(0, 2, n)
    x = np.where(labels[:, None] == 0,
                 np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    return (x + noise * rng.standard_normal(x.shape)).astype(np.float32), labels


def bars(n, seed):
    """8x8 images with a horizontal (label 0) or vertical (label 1) bar, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = 0.3 * rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    pos = rng.integers(1, 7, n)
    for i in range(n):
        if labels[i] == 0:
            images[i, 0, pos[i], :] += 1.0
        else:
            images[i, 0, :, pos[i]] += 1.0
    return images, labels


def train(model, opt, x, y, steps, batch, seed, l2=0.0):
    params, state = model.init(fnn.random.key(seed), x[:batch])
    opt_state = opt.init(params)

    def loss_fn(params, state, xb, yb, key):
        logits, state = model.apply(params, state, xb, key=key, train=True)
        return losses.softmax_cross_entropy(logits, yb) + l2 * losses.l2(params), state

    step_grad = fnn.value_and_grad(loss_fn, has_aux=True)
    key = fnn.random.key(seed + 1)
    history = []
    for step in range(steps):
        idx = fnn.random.permutation(fnn.random.fold_in(key, 2 * step), len(x))[:batch]
        (loss, state), grads = step_grad(params, state, x[idx], y[idx], fnn.random.fold_in(key, 2 * step + 1))
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optim.apply_updates(params, updates)
        history.append(float(loss))
    return params, state, opt_state, history


def accuracy(model, params, state, x, y):
    logits, _ = model.apply(params, state, x, train=False)
    return float(np.mean(np.argmax(logits, -1) == y))


def test_mlp_learns_two_moons_with_sgd_momentum_and_a_schedule():
    x, y = two_moons(600, 0.1, seed=0)
    model = nn.Sequential([nn.Dense(32), nn.Tanh(), nn.Dense(32), nn.Tanh(), nn.Dense(2)])
    schedule = optim.warmup_cosine_decay_schedule(0.0, 0.3, 20, 400)
    opt = optim.sgd(schedule, momentum=0.9)
    params, state, opt_state, history = train(model, opt, x, y, steps=400, batch=64, seed=1, l2=1e-4)
    x_test, y_test = two_moons(400, 0.1, seed=2)
    assert accuracy(model, params, state, x_test, y_test) > 0.97
    assert np.mean(history[-20:]) < 0.3 * np.mean(history[:20])
    assert optim.current_learning_rate(opt_state) < 0.01  # the schedule has decayed
    assert all(leaf.dtype == np.float32 for leaf in fnn.tree.leaves(params))


def test_cnn_with_batchnorm_and_dropout_learns_bars_with_adamw():
    x, y = bars(400, seed=0)
    model = nn.Sequential([
        nn.Conv2d(8, 3, padding=1), nn.BatchNorm(), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 3, padding=1), nn.ReLU(), nn.GlobalAvgPool(),
        nn.Dropout(0.2), nn.Dense(2),
    ])
    opt = optim.adamw(3e-2, weight_decay=1e-4)
    params, state, _, history = train(model, opt, x, y, steps=150, batch=32, seed=3)
    x_test, y_test = bars(200, seed=4)
    assert accuracy(model, params, state, x_test, y_test) > 0.9
    assert float(np.abs(state["batch_norm_1"]["mean"]).sum()) > 0  # running statistics moved


def test_gru_learns_to_sum_a_sequence_sign():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 6, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = nn.Sequential([nn.GRU(16), fnn.nn.Lambda(lambda h: h[:, -1]), nn.Dense(2)])
    params, state, _, _ = train(model, optim.adam(3e-2), x, y, steps=150, batch=64, seed=5)
    x_test = rng.standard_normal((256, 6, 1)).astype(np.float32)
    assert accuracy(model, params, state, x_test, (x_test.sum(axis=(1, 2)) > 0)) > 0.9


def test_fnp_model_written_by_hand_trains_too():
    # No layers at all: plain fnn.numpy and a parameter dict.
    x, y = two_moons(400, 0.1, seed=7)
    k1, k2 = fnn.random.split(fnn.random.key(0))
    params = {"w1": 0.5 * fnn.random.normal(k1, (2, 16)), "b1": np.zeros(16, np.float32),
              "w2": 0.5 * fnn.random.normal(k2, (16, 2)), "b2": np.zeros(2, np.float32)}

    def loss(p):
        h = fnp.tanh(x @ p["w1"] + p["b1"])
        return losses.softmax_cross_entropy(h @ p["w2"] + p["b2"], y)

    opt = optim.adam(0.05)
    opt_state = opt.init(params)
    for _ in range(200):
        grads = fnn.grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optim.apply_updates(params, updates)
    assert float(loss(params)) < 0.1
