"""The example programs run and do what they claim."""

import numpy as np
import pytest

from fnn_examples import linear_regression


def test_linear_regression_recovers_the_true_weights(capsys):
    params, true_w, true_b = linear_regression.train(epochs=150, lr=0.1, seed=1, verbose=False)
    assert params["w"].dtype == np.float32
    np.testing.assert_allclose(params["w"], true_w, atol=5e-3)
    assert abs(float(params["b"]) - true_b) < 5e-3


def test_linear_regression_main_prints_its_result(capsys, tmp_path):
    result = linear_regression.main(["--epochs", "100", "--out", str(tmp_path)])
    assert "learned w" in capsys.readouterr().out
    assert result["max_weight_error"] < 0.05 and (tmp_path / "result.json").exists()


def _needs_mnist():
    from fnn import data

    try:
        data.mnist("test", download=False)
    except (FileNotFoundError, OSError):
        pytest.skip("MNIST files not found (set FNN_DATA_DIR to the folder holding mnist/)")


def _quick(module, tmp_path, *extra):
    result = module.main(["--quick", "--no-progress", "--out", str(tmp_path), *extra])
    assert (tmp_path / "result.json").exists()
    return result


def test_moons_mlp_quick(tmp_path):
    from fnn_examples import moons_mlp

    result = _quick(moons_mlp, tmp_path, "--epochs", "300")
    assert result["test_accuracy"] > 0.8
    assert (tmp_path / "decision_boundary.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "history.csv").exists() and (tmp_path / "params.npz").exists()


def test_mnist_mlp_quick(tmp_path):
    _needs_mnist()
    from fnn_examples import mnist_mlp

    result = _quick(mnist_mlp, tmp_path)
    assert result["test_accuracy"] > 0.7
    assert (tmp_path / "best.npz").exists() and (tmp_path / "history.png").exists()


def test_mnist_lenet_quick(tmp_path):
    _needs_mnist()
    from fnn_examples import mnist_lenet

    result = _quick(mnist_lenet, tmp_path)
    assert 0.0 <= result["test_accuracy"] <= 1.0
    import fnn

    checkpoint = fnn.io.load(tmp_path / "best.npz")
    assert checkpoint["params"]["conv_0"]["w"].shape == (6, 1, 5, 5)
