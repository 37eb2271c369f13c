"""The sin -> cos recurrent experiment and the activations-on-moons experiment run in --quick mode
and write what they claim."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")


def _quick(module, tmp_path, *extra):
    result = module.main(["--quick", "--no-progress", "--out", str(tmp_path), *extra])
    assert json.loads((tmp_path / "result.json").read_text())["experiment"] == module.NAME
    return result


def test_rnn_sin_cos_quick(tmp_path):
    import fnn
    from fnn_examples import rnn_sin_cos

    result = _quick(rnn_sin_cos, tmp_path)
    for name in ("rnn", "lstm"):
        mse = result[f"{name}_test_mse"]
        assert math.isfinite(mse) and 0.0 <= mse < 1.0
        assert mse < result[f"{name}_first_epoch_test_mse"]
        assert result[f"{name}_best_test_mse"] <= mse
        assert (tmp_path / f"{name}_best.npz").exists()
    for picture in ("history.png", "predictions.png"):
        assert (tmp_path / picture).read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((tmp_path / "history.json").read_text())
    assert len(rows) == result["epochs"] and "lstm_test_mse" in rows[0] and "rnn_train_loss" in rows[0]
    assert (tmp_path / "history.csv").read_text().startswith("epoch,")
    params = fnn.io.load(tmp_path / "params.npz")
    assert params["lstm"]["lstm_0"]["w_hh"].shape == (result["hidden"], 4 * result["hidden"])


def test_activations_moons_quick(tmp_path):
    from fnn_examples import activations_moons

    result = _quick(activations_moons, tmp_path)
    names = activations_moons.ACTIVATIONS
    assert len(names) == 12
    table = (tmp_path / "activations.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| activation")]
    assert [row.split("|")[1].strip() for row in rows] == names
    for name in names:
        accuracy = result[f"{name}_train_accuracy"]
        assert 0.0 <= accuracy <= 1.0
        gif = tmp_path / f"boundary_{activations_moons._file_name(name)}.gif"
        assert gif.read_bytes()[:3] == b"GIF"
    assert result["relu_train_accuracy"] > 0.8
    assert set(result["fits"]) <= set(names)
    assert (tmp_path / "boundaries.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "history.png").exists() and (tmp_path / "params.npz").exists()
    history = json.loads((tmp_path / "history.json").read_text())
    assert history and "permute_train_accuracy" in history[-1] and "relu_train_loss" in history[-1]


def test_activations_moons_reports_divergence_instead_of_raising():
    import fnn
    from fnn import data
    from fnn_examples import activations_moons

    x, y = data.two_moons(fnn.random.key(0), 64, noise=0.1)
    huge = x * np.float32(1e4)  # exp of these overflows: the loss is not finite at the first step
    with np.errstate(all="ignore"):
        params, rows, frames, diverged_at = activations_moons.train_one(
            "exp", huge, y, huge[:4], epochs=5, lr=0.01, key=fnn.random.key(1), n_frames=2)
    assert diverged_at == 1 and rows == []
    assert all(np.all(np.isfinite(leaf)) for leaf in fnn.tree.leaves(params))
    assert frames  # the boundary before divergence can still be drawn
