"""The residual and dense networks of the zoo: torchvision's parameter counts at 224x224 (shape-only
init), and at 32x32 a forward pass, a gradient, BatchNorm's running statistics and eval determinism."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import fnn
from fnn import losses, models, nn
from fnn.nn.initializers import shapes_only

IMAGENET = nn.ShapeDtype((1, 3, 224, 224))

# torchvision's counts (sum of p.numel() over model.parameters()) at 1000 classes
COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "wide_resnet50_2": 68_883_240,
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_imagenet_parameter_counts(name):
    model = getattr(models, name)()
    params, state = model.init_shapes(IMAGENET)
    assert nn.count_params(params) == COUNTS[name]
    assert all(isinstance(leaf, nn.ShapeDtype) for leaf in fnn.tree.leaves((params, state)))
    with shapes_only():  # output_spec runs the initializers: keep it from allocating the weights
        assert model.output_spec(IMAGENET).shape == (1, 1000)


def test_counts_follow_num_classes_and_input_channels():
    p, _ = models.resnet18(num_classes=10).init_shapes(IMAGENET)
    assert nn.count_params(p) == COUNTS["resnet18"] - 512 * 990 - 990
    p, _ = models.resnet18(in_channels=1).init_shapes(nn.ShapeDtype((1, 1, 224, 224)))
    assert nn.count_params(p) == COUNTS["resnet18"] - 2 * 64 * 7 * 7


def test_init_shapes_allocates_nothing_large():
    tracemalloc.start()
    try:
        params, _ = models.resnet50().init_shapes(IMAGENET)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert nn.count_params(params) == COUNTS["resnet50"]
    assert peak < 5_000_000, peak  # the arrays would take 102 MB


def test_parameter_names_follow_torchvision():
    p, s = models.resnet50().init_shapes(IMAGENET)
    assert list(p) == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
    block = p["layer2"]["0"]
    assert set(block) == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample"}
    assert block["conv2"]["w"].shape == (128, 128, 3, 3)  # v1.5: the stride sits on the 3x3 conv
    assert block["downsample"]["0"]["w"].shape == (512, 256, 1, 1)
    assert set(block["downsample"]["1"]) == {"scale", "bias"}
    assert set(s["layer2"]["0"]["downsample"]["1"]) == {"mean", "var"}
    assert "downsample" not in p["layer2"]["1"]
    assert p["fc"]["w"].shape == (2048, 1000)

    p, _ = models.densenet121().init_shapes(IMAGENET)
    assert list(p) == ["features", "classifier"]
    f = p["features"]
    assert list(f) == ["conv0", "norm0", "denseblock1", "transition1", "denseblock2", "transition2",
                       "denseblock3", "transition3", "denseblock4", "norm5"]
    assert f["denseblock1"]["denselayer1"]["conv1"]["w"].shape == (128, 64, 1, 1)
    assert f["denseblock1"]["denselayer6"]["norm1"]["scale"].shape == (64 + 5 * 32,)
    assert f["transition1"]["conv"]["w"].shape == (128, 256, 1, 1)
    assert p["classifier"]["w"].shape == (1024, 1000)


def test_summary_totals_match():
    model = models.densenet_small()
    spec = nn.ShapeDtype((2, 3, 32, 32))
    text = fnn.summary(model, spec)
    total = nn.count_params(model.init_shapes(spec)[0])
    assert f"total parameters: {total:,}" in text
    assert "features.denseblock1.denselayer1.concat" in text


SMALL = {
    "resnet18": lambda: models.resnet18(num_classes=10, width_multiplier=0.25, small_input=True),
    "resnet34": lambda: models.resnet34(num_classes=10, width_multiplier=0.125, small_input=True),
    "resnet50": lambda: models.resnet50(num_classes=10, width_multiplier=0.125, small_input=True),
    "resnet18_imagenet_stem": lambda: models.resnet18(num_classes=10, width_multiplier=0.125),
    "densenet_small": lambda: models.densenet_small(num_classes=10),
    "densenet_imagenet_stem": lambda: models.densenet(8, (2, 2, 2, 2), 16, num_classes=10),
    "densenet_no_bottleneck": lambda: models.densenet(8, (2, 2), 16, bn_size=None, num_classes=10,
                                                      small_input=True),
}


def _shapes(tree):
    return fnn.tree.map(lambda a: (tuple(a.shape), np.dtype(a.dtype)), tree)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_models_train_and_eval(name):
    model = SMALL[name]()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    labels = np.array([1, 7])

    params, state = model.init(fnn.random.key(0), x)
    p_shapes, s_shapes = model.init_shapes(nn.ShapeDtype(x.shape))
    assert _shapes(p_shapes) == _shapes(params)
    assert _shapes(s_shapes) == _shapes(state)
    assert all(a.dtype == np.float32 for a in fnn.tree.leaves((params, state)))

    def loss_fn(p, s):
        logits, new_s = model.apply(p, s, x, train=True)
        return losses.softmax_cross_entropy(logits, labels), (logits, new_s)

    grads, (logits, new_state) = fnn.grad(loss_fn, has_aux=True)(params, state)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    assert fnn.tree.structure(grads) == fnn.tree.structure(params)
    for g, p in zip(fnn.tree.leaves(grads), fnn.tree.leaves(params)):
        assert g.shape == p.shape and np.all(np.isfinite(g))
    assert any(np.any(g != 0) for g in fnn.tree.leaves(grads))

    # train mode updates every BatchNorm's running statistics and keeps the state's structure
    assert fnn.tree.structure(new_state) == fnn.tree.structure(state)
    old, new = fnn.tree.leaves(state), fnn.tree.leaves(new_state)
    assert all(not np.array_equal(a, b) for a, b in zip(old, new))

    # eval mode: deterministic, state unchanged
    y1, s1 = model.apply(params, new_state, x, train=False)
    y2, s2 = model.apply(params, new_state, x, train=False)
    assert y1.shape == (2, 10)
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(fnn.tree.leaves(new_state), fnn.tree.leaves(s1)):
        np.testing.assert_array_equal(a, b)
    assert fnn.tree.structure(s2) == fnn.tree.structure(new_state)


def test_small_input_sizes():
    x28 = nn.ShapeDtype((2, 1, 28, 28))
    with shapes_only():
        model = models.resnet18(num_classes=10, in_channels=1, small_input=True)
        assert model.output_spec(x28).shape == (2, 10)
        assert models.densenet_small(in_channels=1).output_spec(x28).shape == (2, 10)
    # the CIFAR stem keeps 32x32 through stage 1 (no stride, no max-pool)
    model = models.resnet18(width_multiplier=0.25, small_input=True)
    assert model.names[:4] == ("conv1", "bn1", "relu", "layer1")
    assert model.layers[3].output_spec(nn.ShapeDtype((2, 16, 32, 32))).shape == (2, 16, 32, 32)


def test_residual_block_rejects_mismatched_shortcut():
    from fnn.models.resnet import ResidualBlock  # noqa: PLC0415

    block = ResidualBlock(nn.Sequential([nn.Conv2d(8, 3, stride=2, padding=1, name="conv1")]))
    with pytest.raises(nn.ShapeError, match="downsample"):
        block.init_shapes(nn.ShapeDtype((1, 4, 8, 8)))
