"""The model-zoo experiments (mnist_zoo, fashion_zoo) run in their quick mode and write what they claim."""

import json

import numpy as np
import pytest

from example_helpers import is_png, needs

pytest.importorskip("matplotlib")

MODELS = ("lenet", "vgg", "resnet18", "vit")


def _check_common(module, result, tmp_path, models):
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["experiment"] == module.NAME and saved["models"] == list(models)
    assert saved["quick"] is True and saved["best_model"] in models
    table = (tmp_path / "zoo.md").read_text()
    assert is_png(tmp_path / "zoo.png")
    for m in models:
        assert f"| {m} |" in table
        assert 0.0 <= result[f"{m}_test_accuracy"] <= result[f"{m}_best_test_accuracy"] <= 1.0
        assert result[f"{m}_test_accuracy"] <= result[f"{m}_test_top5_accuracy"] <= 1.0
        assert result[f"{m}_best_epoch"] == 1 and result[f"{m}_epochs"] == 1
        assert result[f"{m}_parameters"] > 1000 and result[f"{m}_seconds_per_epoch"] > 0
        assert {"model", "optimizer", "peak_lr", "schedule", "epochs"} <= set(saved[f"{m}_config"])
        for name in ("best.npz", "history.json", "history.csv", "history.png"):
            assert (tmp_path / m / name).exists()
        row = json.loads((tmp_path / m / "history.json").read_text())[0]
        for key in ("train_loss", "train_error", "train_top5_error", "test_error", "test_top5_error"):
            assert 0.0 <= row[key] < 10.0
        assert row["train_top5_error"] <= row["train_error"] and row["test_top5_error"] <= row["test_error"]
    assert result["test_accuracy"] == max(result[f"{m}_test_accuracy"] for m in models)
    return saved


def test_mnist_zoo_quick(tmp_path):
    needs("mnist")
    from fnn_examples import mnist_zoo

    result = mnist_zoo.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    saved = _check_common(mnist_zoo, result, tmp_path, MODELS)
    assert result["lenet_parameters"] == 61706  # LeNet-5 at full size even in quick mode
    assert "PyTorch" in saved["vit_reference"] and isinstance(saved["vit_beats_reference"], bool)
    assert "tanh GELU" in saved["vit_config"]["model"]
    assert result["test_accuracy"] > 0.15  # 512 images, one epoch: better than chance


def test_mnist_zoo_models_subset(tmp_path):
    needs("mnist")
    from fnn_examples import mnist_zoo

    result = mnist_zoo.main(["--quick", "--no-progress", "--out", str(tmp_path), "--models", "vit",
                             "--vit-gelu", "exact", "--no-augment"])
    _check_common(mnist_zoo, result, tmp_path, ("vit",))
    assert not (tmp_path / "lenet").exists() and result["augmentation"] == "none"
    assert "exact GELU" in result["vit_config"]["model"]


def test_fashion_zoo_quick(tmp_path):
    needs("fashion_mnist")
    from fnn_examples import fashion_mnist, fashion_zoo

    result = fashion_zoo.main(["--quick", "--no-progress", "--out", str(tmp_path), "--padding", "4"])
    _check_common(fashion_zoo, result, tmp_path, MODELS)
    assert "padding 4" in result["augmentation"] and "flips" in result["augmentation"]
    table = (tmp_path / "zoo.md").read_text()
    assert "macro F1" in table and "mean AP" in table
    for m in MODELS:
        for key in ("macro_precision", "macro_recall", "macro_f1", "mean_average_precision"):
            assert 0.0 <= result[f"{m}_{key}"] <= 1.0
        per_class = (tmp_path / m / "per_class.md").read_text()
        assert all(f"| {name} |" in per_class for name in fashion_mnist.CLASSES)
    assert is_png(tmp_path / "pr_curves.png")


def test_zoo_augmentation_shifts_and_flips_with_explicit_keys():
    import fnn
    from fnn_examples import zoo_common

    x = np.zeros((64, 1, 28, 28), np.float32)
    x[:, :, 10:18, 4:10] = 1.0  # an off-centre block: a flip or a shift moves it
    augment = zoo_common.augmentation(3, flip=True, fill=-0.5)
    a = augment(fnn.random.key(0), x)
    np.testing.assert_array_equal(a, augment(fnn.random.key(0), x))  # same key, same images
    assert a.shape == x.shape and a.dtype == np.float32
    assert not np.array_equal(a, augment(fnn.random.key(1), x))
    assert np.all(a.sum(axis=(1, 2, 3)) <= x[0].sum())  # a shift can push part of the block out
    flipped = np.array([img[0, :, 14:].sum() > img[0, :, :14].sum() for img in a])
    assert 0 < flipped.sum() < len(a)  # some images mirrored, some not
    assert np.any(a == -0.5)  # padding shows the fill value
    shifts_only = zoo_common.augmentation(2, flip=False)(fnn.random.key(2), x)
    assert not np.any([img[0, :, 14:].sum() > img[0, :, :14].sum() for img in shifts_only])
