"""The experiments' `--resume`: a run interrupted mid-epoch and resumed from its last finished
epoch ends with the same parameters and history as a run that was never interrupted."""

from __future__ import annotations

import numpy as np
import pytest

import fnn
from fnn import losses, nn, optim
from fnn_examples import common

EPOCHS = 3


class Interrupted(Exception):
    pass


def _problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    return (x[:64], y[:64]), (x[64:], y[64:])


def _train(out, *, resume=False, stop_at_step=None, epochs=EPOCHS):
    """train_classifier on a small MLP with momentum, a schedule and a random augmentation (so
    the optimizer state, the step count and the key all matter); optionally interrupted."""
    model = nn.Sequential([nn.Dense(16), nn.ReLU(), nn.Dense(4)])
    opt = optim.sgd(optim.cosine_decay_schedule(0.1, epochs * 4), momentum=0.9)
    calls = {"n": 0}

    def augment(key, x):
        calls["n"] += 1
        if stop_at_step is not None and calls["n"] > stop_at_step:
            raise Interrupted
        return x + 0.01 * fnn.random.normal(key, x.shape, x.dtype)

    def loss_fn(logits, labels, params):
        return losses.softmax_cross_entropy(logits, labels)

    train_set, test_set = _problem()
    return common.train_classifier(model, loss_fn, opt, train_set, test_set, epochs=epochs,
                                   batch_size=16, seed=3, out=out, progress=False, augment=augment,
                                   name="resume-test", resume=resume)


def _rows_without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history.rows]


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path):
    whole = _train(tmp_path / "whole")

    out = tmp_path / "interrupted"
    with pytest.raises(Interrupted):
        _train(out, stop_at_step=6)  # 4 steps per epoch: stops in the middle of epoch 2
    with np.load(out / "last.npz") as saved:  # the state after the one finished epoch
        assert int(saved["epoch"]) == 1

    resumed = _train(out, resume=True)
    assert _rows_without_time(resumed["history"]) == _rows_without_time(whole["history"])
    for a, b in zip(fnn.tree.leaves(resumed["params"]), fnn.tree.leaves(whole["params"])):
        np.testing.assert_array_equal(a, b)
    assert resumed["best_epoch"] == whole["best_epoch"]


def test_resume_refuses_a_run_of_another_length(tmp_path):
    with pytest.raises(Interrupted):
        _train(tmp_path, stop_at_step=6)
    with pytest.raises(ValueError, match="saved by a run of 3 epochs"):
        _train(tmp_path, resume=True, epochs=5)


def test_without_resume_a_run_starts_over(tmp_path):
    with pytest.raises(Interrupted):
        _train(tmp_path, stop_at_step=6)
    fresh = _train(tmp_path)  # resume not asked: epoch 1 again, history from scratch
    assert [row["epoch"] for row in fresh["history"].rows] == [1, 2, 3]


def test_resuming_a_finished_run_returns_its_model(tmp_path):
    whole = _train(tmp_path)
    again = _train(tmp_path, resume=True)  # nothing left to train: the saved model comes back
    assert _rows_without_time(again["history"]) == _rows_without_time(whole["history"])
    for a, b in zip(fnn.tree.leaves(again["params"]), fnn.tree.leaves(whole["params"])):
        np.testing.assert_array_equal(a, b)
