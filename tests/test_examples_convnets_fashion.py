"""The MNIST conv-net comparison and the Fashion-MNIST LeNet-5 examples run in their quick mode."""

import json

from example_helpers import is_png, needs


def test_mnist_convnets_quick(tmp_path):
    needs("mnist")
    from fnn_examples import mnist_convnets

    result = mnist_convnets.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "result.json").read_text())["experiment"] == "mnist_convnets"
    table = (tmp_path / "convnets.md").read_text()
    assert is_png(tmp_path / "convnets.png")
    for variant in mnist_convnets.VARIANTS:
        assert f"| {variant} |" in table
        assert 0.0 <= result[f"{variant}_test_accuracy"] <= 1.0
        assert result[f"{variant}_parameters"] > 1000
        assert result[f"{variant}_seconds_per_epoch"] > 0
        for name in ("best.npz", "history.json", "history.csv", "history.png"):
            assert (tmp_path / variant / name).exists()
    # BatchNorm adds a scale and a bias per conv channel (8 + 16 by default).
    assert result["batchnorm_parameters"] == result["maxpool_parameters"] + 2 * (8 + 16)
    assert result["batchnorm_dropout_parameters"] == result["batchnorm_parameters"]
    assert result["test_accuracy"] > 0.2


def test_mnist_convnets_variants_use_train_switch():
    import numpy as np

    import fnn
    from fnn_examples import mnist_convnets

    model = mnist_convnets.convnet("batchnorm_dropout")
    x = fnn.random.normal(fnn.random.key(0), (4, 1, 28, 28))
    params, state = model.init(fnn.random.key(1), x)
    a, _ = model.apply(params, state, x, train=False)
    b, _ = model.apply(params, state, x, train=False)
    np.testing.assert_array_equal(a, b)
    c, new_state = model.apply(params, state, x, key=fnn.random.key(2), train=True)
    assert not np.allclose(a, c)
    assert not np.allclose(fnn.tree.leaves(new_state)[0], fnn.tree.leaves(state)[0])


def test_fashion_mnist_quick(tmp_path):
    needs("fashion_mnist")
    from fnn_examples import fashion_mnist

    result = fashion_mnist.main(["--quick", "--no-progress", "--augment", "--out", str(tmp_path)])
    assert (tmp_path / "result.json").exists() and (tmp_path / "best.npz").exists()
    assert 0.2 < result["test_accuracy"] <= 1.0
    for key in ("macro_precision", "macro_recall", "macro_f1", "mean_average_precision"):
        assert 0.0 <= result[key] <= 1.0
    table = (tmp_path / "per_class.md").read_text()
    for name in fashion_mnist.CLASSES:
        assert f"| {name} |" in table
    assert "macro average" in table
    assert is_png(tmp_path / "confusion_matrix.png") and is_png(tmp_path / "pr_curves.png")
    rows = (tmp_path / "confusion_matrix.csv").read_text().split()
    assert len(rows) == 10 and sum(int(v) for row in rows for v in row.split(",")) == 300
