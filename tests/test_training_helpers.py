"""Training helpers: the epoch runner, evaluation, history files and plots, and checkpoints."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fnn import training


def test_run_epoch_threads_the_carry_and_weights_means_by_batch_size():
    batches = [(np.ones((4, 2)), np.zeros(4)), (np.ones((2, 2)), np.zeros(2))]

    def step(carry, batch):
        x, _ = batch
        return carry + 1, {"loss": float(x.shape[0])}  # loss = batch size

    carry, metrics = training.run_epoch(step, 0, batches, progress=False)
    assert carry == 2
    assert metrics["loss"] == pytest.approx((4 * 4 + 2 * 2) / 6)
    assert metrics["seconds"] >= 0


def test_run_epoch_with_a_progress_bar(capsys):
    pytest.importorskip("tqdm")
    carry, metrics = training.run_epoch(lambda c, b: (c, {"acc": 1.0}), None, [np.ones((3, 1))] * 3,
                                        total=3, desc="epoch 1")
    assert metrics["acc"] == 1.0
    assert "epoch 1" in capsys.readouterr().err


def test_evaluate_weights_by_batch_size():
    batches = [np.zeros((3, 1)), np.ones((1, 1))]
    result = training.evaluate(lambda b: {"mean": float(b.mean())}, batches)
    assert result["mean"] == pytest.approx(0.25)


def test_history_json_csv_and_best(tmp_path):
    history = training.History()
    history.record(1, train_loss=1.0, test_error=0.3)
    history.record(2, train_loss=0.5, test_error=0.1)
    history.record(3, train_loss=0.4, test_error=0.2)
    assert history.best("test_error")["epoch"] == 2
    assert history.best("train_loss", mode="min")["epoch"] == 3
    history.to_json(tmp_path / "h.json")
    history.to_csv(tmp_path / "h.csv")
    assert json.loads((tmp_path / "h.json").read_text()) == history.rows
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert [float(r["test_error"]) for r in rows] == [0.3, 0.1, 0.2]
    assert training.History.from_json(tmp_path / "h.json").rows == history.rows
    assert not list(tmp_path.glob(".*.tmp"))


def test_plot_history_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = training.History()
    for e in range(1, 4):
        history.record(e, train_loss=1.0 / e, test_error=0.5 / e)
    training.plot_history(history, tmp_path / "curves.png", title="run")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_on_improvement(tmp_path, monkeypatch):
    saved = []
    import fnn.io

    monkeypatch.setattr(fnn.io, "save", lambda path, tree: saved.append((str(path), tree)))
    keep = training.CheckpointOnImprovement(tmp_path / "best.npz", monitor="test_error")
    assert keep(1, {"test_error": 0.3}, "a")
    assert not keep(2, {"test_error": 0.4}, "b")
    assert keep(3, {"test_error": 0.2}, "c")
    assert [tree for _, tree in saved] == ["a", "c"] and keep.best_epoch == 3
    with pytest.raises(KeyError, match="test_error"):
        keep(4, {"loss": 1.0}, "d")
    with pytest.raises(ValueError, match="mode"):
        training.CheckpointOnImprovement(tmp_path / "x.npz", "acc", mode="up")
