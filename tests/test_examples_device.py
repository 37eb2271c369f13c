"""The experiments' `--device`: `train_classifier` trains on the chosen device with no host read
inside an epoch, gives the history the CPU gives (for a step without random numbers), resumes
there, and hands the model back on the host; experiments without a GPU path refuse `--device gpu`."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import fnn
from backends import BACKENDS, requires_cupy
from fnn import losses, nn, optim, training
from fnn_examples import common, moons_mlp

DEVICE = {"numpy": "cpu", "cupy": "gpu"}


def _problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    return (x[:64], y[:64]), (x[64:], y[64:])


def _train(out, device, *, dropout=0.0, augment=None, epochs=2, resume=False, seen=None):
    """train_classifier on a small MLP; `seen` collects the device of every step's logits."""
    layers = [nn.Dense(16), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Dense(4)]
    opt = optim.sgd(optim.cosine_decay_schedule(0.1, epochs * 4), momentum=0.9)

    def loss_fn(logits, labels, params):
        if seen is not None:
            seen.append((fnn.backend.device_of(logits), fnn.backend.device_of(labels)))
        return losses.softmax_cross_entropy(logits, labels)

    train_set, test_set = _problem()
    return common.train_classifier(nn.Sequential(layers), loss_fn, opt, train_set, test_set, epochs=epochs,
                                   batch_size=16, seed=3, out=out, progress=False, augment=augment,
                                   name="device-test", resume=resume, device=device)


@contextlib.contextmanager
def _epochs_without_host_reads(backend_name, monkeypatch):
    """Every `training.run_epoch` call refuses device synchronisation (CuPy's own check)."""
    if backend_name == "numpy":
        yield
        return
    import cupyx  # noqa: PLC0415

    run_epoch = training.run_epoch

    def strict(*args, **kwargs):
        with cupyx.allow_synchronize(False):
            return run_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "run_epoch", strict)
    yield


def _rows_without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history.rows]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_training_on_the_device_matches_the_cpu(tmp_path, backend_name, monkeypatch):
    expected = _train(tmp_path / "cpu", "cpu")
    seen = []
    with _epochs_without_host_reads(backend_name, monkeypatch):
        got = _train(tmp_path / backend_name, DEVICE[backend_name], seen=seen)
    assert len(seen) == 8 and set(seen) == {(DEVICE[backend_name],) * 2}  # every step on the device
    for row, want in zip(_rows_without_time(got["history"]), _rows_without_time(expected["history"])):
        assert row.keys() == want.keys()
        for k in row:
            assert row[k] == pytest.approx(want[k], rel=1e-4, abs=1e-5), k
    for leaf in fnn.tree.leaves((got["params"], got["state"])):
        assert isinstance(leaf, np.ndarray)  # handed back on the host
    for a, b in zip(fnn.tree.leaves(got["params"]), fnn.tree.leaves(expected["params"])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_dropout_and_augmentation_run_on_the_device_without_host_reads(tmp_path, backend_name, monkeypatch):
    def augment(key, x):
        return x + 0.01 * fnn.random.normal(key, x.shape, x.dtype, device=fnn.backend.device_of(x))

    with _epochs_without_host_reads(backend_name, monkeypatch):
        result = _train(tmp_path, DEVICE[backend_name], dropout=0.2, augment=augment)
    losses_ = [row["train_loss"] for row in result["history"].rows]
    assert len(losses_) == 2 and all(np.isfinite(losses_))
    again = _train(tmp_path / "again", DEVICE[backend_name], dropout=0.2, augment=augment)
    assert _rows_without_time(again["history"]) == _rows_without_time(result["history"])


class Interrupted(Exception):
    pass


@requires_cupy
def test_an_interrupted_gpu_run_resumes_on_the_gpu(tmp_path):
    def augment_until(stop_at_step):
        calls = {"n": 0}

        def augment(key, x):
            calls["n"] += 1
            if stop_at_step is not None and calls["n"] > stop_at_step:
                raise Interrupted
            return x + 0.01 * fnn.random.normal(key, x.shape, x.dtype, device=fnn.backend.device_of(x))
        return augment

    whole = _train(tmp_path / "whole", "gpu", dropout=0.2, epochs=3, augment=augment_until(None))
    out = tmp_path / "interrupted"
    with pytest.raises(Interrupted):
        _train(out, "gpu", dropout=0.2, epochs=3, augment=augment_until(6))  # stops inside epoch 2
    resumed = _train(out, "gpu", dropout=0.2, epochs=3, augment=augment_until(None), resume=True)
    assert _rows_without_time(resumed["history"]) == _rows_without_time(whole["history"])
    for a, b in zip(fnn.tree.leaves(resumed["params"]), fnn.tree.leaves(whole["params"])):
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b)


def test_device_means_read_once_and_weigh_by_batch_size():
    means = common.DeviceMeans()
    means.add(2, loss=np.float32(1.0), error=np.float64(0.5))
    means.add(6, loss=np.float32(3.0), error=np.float64(0.0))
    assert means.means() == {"loss": pytest.approx(2.5), "error": pytest.approx(0.125)}
    assert means.means() == {}  # cleared


def test_correct_counts_rank_ties_as_the_metrics_do():
    logits = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [0.0, 1.0, 2.0]], np.float32)
    labels = np.array([2, 0, 0])
    top1, top2 = common.correct_counts(logits, labels, 2)
    assert int(top1) == round(fnn.metrics.accuracy(logits, labels) * 3) == 1
    assert int(top2) == round(fnn.metrics.top_k_accuracy(logits, labels, 2) * 3) == 2


def test_experiments_without_a_gpu_path_refuse_device_gpu(capsys):
    with pytest.raises(SystemExit):
        moons_mlp.main(["--quick", "--device", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


def test_train_classifier_refuses_an_unknown_device(tmp_path):
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        _train(tmp_path, "tpu")
