"""The example programs run and do what they claim."""

import numpy as np

from fnn_examples import linear_regression


def test_linear_regression_recovers_the_true_weights(capsys):
    params, true_w, true_b = linear_regression.train(epochs=150, lr=0.1, seed=1, verbose=False)
    assert params["w"].dtype == np.float32
    np.testing.assert_allclose(params["w"], true_w, atol=5e-3)
    assert abs(float(params["b"]) - true_b) < 5e-3


def test_linear_regression_main_prints_its_result(capsys):
    linear_regression.main(["--epochs", "20"])
    assert "learned w" in capsys.readouterr().out
