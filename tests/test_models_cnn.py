"""The classic CNNs of the zoo (lenet5, alexnet, vgg*, nin, googlenet): exact parameter counts at
224x224x3 / 1000 classes by shape-only init, and at small sizes a forward, a gradient, eval-mode
determinism, dropout in training, and init_shapes against a real init."""

import numpy as np
import pytest

import fnn
from fnn import losses, models, nn, random, tree

IMAGENET = nn.ShapeDtype((1, 3, 224, 224))


def n_params(model, spec=IMAGENET):
    return nn.count_params(model.init_shapes(spec)[0])


# --- parameter counts (torchvision's, or the reference's) ---------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("alexnet", 61_100_840),
    ("vgg11", 132_863_336), ("vgg13", 133_047_848), ("vgg16", 138_357_544), ("vgg19", 143_667_240),
    ("vgg11_bn", 132_868_840), ("vgg13_bn", 133_053_736), ("vgg16_bn", 138_365_992),
    ("vgg19_bn", 143_678_248),
    ("googlenet", 6_624_904),
    ("nin", 7_439_608),
])
def test_imagenet_parameter_counts(name, expected):
    model = getattr(models, name)()
    assert n_params(model) == expected
    assert model.output_spec(IMAGENET).shape == (1, 1000)


def test_other_parameter_counts():
    assert n_params(models.lenet5(), nn.ShapeDtype((1, 1, 28, 28))) == 61_706
    assert n_params(models.googlenet(aux_logits=True)) == 13_004_888  # torchvision's, with aux heads
    assert n_params(models.nin(10), nn.ShapeDtype((1, 1, 224, 224))) == 1_992_166  # d2l's Fashion-MNIST NiN
    # BatchNorm's running statistics are state, not params
    params, state = models.vgg16_bn().init_shapes(IMAGENET)
    assert nn.count_params(state) == 2 * 4224 and nn.count_params(params) == 138_365_992


def test_nin_final_relu_option():
    """Without the last block's ReLU the parameters are the same and the logits may be negative;
    with it (d2l's and the paper's NiN) they never are."""
    x = np.random.default_rng(0).standard_normal((8, 1, 28, 28)).astype(np.float32)
    with_relu = models.nin(10, 1, small_input=True, width_multiplier=1 / 8)
    linear = models.nin(10, 1, small_input=True, width_multiplier=1 / 8, final_relu=False)
    params, state = with_relu.init(random.key(3), x)
    linear_params, _ = linear.init(random.key(3), x)
    assert tree.structure(linear_params) == tree.structure(params)
    logits, _ = with_relu.apply(params, state, x)
    linear_logits, _ = linear.apply(params, state, x)
    assert np.all(logits >= 0)
    assert np.any(linear_logits < 0)
    # the same convolutions: averaging after the ReLU gives at least the ReLU of the average
    assert np.all(logits >= np.maximum(linear_logits, 0) - 1e-6)


def test_torchvision_names_and_shapes():
    params, _ = models.alexnet().init_shapes(IMAGENET)
    assert params["features"]["0"]["w"].shape == (64, 3, 11, 11)
    assert params["classifier"]["1"]["w"].shape == (9216, 4096)
    params, _ = models.vgg16().init_shapes(IMAGENET)
    assert sorted(params["features"], key=int) == [str(i) for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21,
                                                                     24, 26, 28)]
    assert params["classifier"]["0"]["w"].shape == (25088, 4096)
    params, state = models.googlenet().init_shapes(IMAGENET)
    assert params["conv1"]["conv"]["w"].shape == (64, 3, 7, 7) and "b" not in params["conv1"]["conv"]
    assert params["inception3a"]["branch3"]["1"]["conv"]["w"].shape == (32, 16, 3, 3)  # the "5x5" is 3x3
    assert set(state["inception3a"]["branch4"]["1"]["bn"]) == {"mean", "var"}
    assert params["fc"]["w"].shape == (1024, 1000)
    # ceil-mode pools: 112 -> 56 -> 28 -> 14 -> 7
    rows, _ = models.googlenet().summary_rows(random.key(0), IMAGENET, "")
    shapes = {path: shape for path, _, shape, _, _ in rows}
    assert [shapes[f"maxpool{i}"][2:] for i in range(1, 5)] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert shapes["inception5b"] == (1, 1024, 7, 7)


def test_width_multiplier_and_options():
    assert n_params(models.vgg11(width_multiplier=0.5)) < n_params(models.vgg11()) / 3
    half = models.googlenet(width_multiplier=0.5).init_shapes(IMAGENET)[0]
    assert half["conv1"]["conv"]["w"].shape == (32, 3, 7, 7)
    assert models.googlenet(10).output_spec(IMAGENET).shape == (1, 10)
    # lenet5's options; the default is the network of fnn_examples/mnist_lenet.py
    from fnn_examples import mnist_lenet
    assert models.lenet5() == mnist_lenet.lenet5()
    tanh_avg = models.lenet5(activation="tanh", pool="avg")
    assert tanh_avg.output_spec(nn.ShapeDtype((2, 1, 28, 28))).shape == (2, 10)
    with pytest.raises(ValueError, match="activation"):
        models.lenet5(activation="sigmoid")
    with pytest.raises(ValueError, match="width_multiplier"):
        models.alexnet(width_multiplier=0)


# --- small inputs: forward, gradient, eval and train modes ---------------------------------------

SMALL = [
    ("lenet5", lambda: models.lenet5(10), (2, 1, 28, 28), False),
    ("lenet5_tanh_avg", lambda: models.lenet5(10, activation="tanh", pool="avg"), (2, 1, 28, 28), False),
    ("alexnet", lambda: models.alexnet(10, small_input=True, width_multiplier=1 / 16), (2, 3, 32, 32), True),
    ("alexnet_28", lambda: models.alexnet(10, 1, small_input=True, width_multiplier=1 / 16), (2, 1, 28, 28),
     True),
    *[(name, (lambda name=name: getattr(models, name)(10, small_input=True, width_multiplier=1 / 16)),
       (2, 3, 32, 32) if i % 2 else (2, 1, 28, 28), True)
      for i, name in enumerate(["vgg11", "vgg13", "vgg16", "vgg19",
                                "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"])],
    ("nin", lambda: models.nin(10, 1, small_input=True, width_multiplier=1 / 8), (2, 1, 28, 28), True),
    ("nin_32", lambda: models.nin(10, small_input=True, width_multiplier=1 / 8), (2, 3, 32, 32), True),
    ("googlenet", lambda: models.googlenet(10, small_input=True, width_multiplier=1 / 8), (2, 3, 32, 32),
     True),
    ("googlenet_28", lambda: models.googlenet(10, 1, small_input=True, width_multiplier=1 / 8),
     (2, 1, 28, 28), True),
]


@pytest.mark.parametrize("name, make, shape, has_dropout", SMALL, ids=[c[0] for c in SMALL])
def test_small_input_forward_grad_and_modes(name, make, shape, has_dropout):
    model = make()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    labels = np.array([1, 7])
    params, state = model.init(random.key(0), x)

    # init_shapes agrees with a real init
    p_spec, s_spec = model.init_shapes(nn.ShapeDtype(shape))
    assert tree.structure(p_spec) == tree.structure(params)
    assert [s.shape for s in tree.leaves(p_spec)] == [p.shape for p in tree.leaves(params)]
    assert [s.shape for s in tree.leaves(s_spec)] == [s.shape for s in tree.leaves(state)]
    assert all(p.dtype == np.float32 for p in tree.leaves(params))

    # eval: the right shape, deterministic, running statistics used and left as they are
    y1, s1 = model.apply(params, state, x)
    y2, _ = model.apply(params, state, x, train=False)
    assert y1.shape == (2, 10) and y1.dtype == np.float32
    assert np.all(np.isfinite(y1))
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(tree.leaves(s1), tree.leaves(state)):
        np.testing.assert_array_equal(a, b)

    # one gradient of a softmax cross-entropy in training mode
    def loss(p):
        logits, new_state = model.apply(p, state, x, key=random.key(1), train=True)
        return losses.softmax_cross_entropy(logits, labels)

    grads = fnn.grad(loss)(params)
    assert tree.structure(grads) == tree.structure(params)
    for g, p in zip(tree.leaves(grads), tree.leaves(params)):
        assert g.shape == p.shape and g.dtype == np.float32 and np.all(np.isfinite(g))
    assert any(np.any(g != 0) for g in tree.leaves(grads))

    # training: dropout (with a key) changes the outputs; BatchNorm updates its running statistics
    y_train, s_train = model.apply(params, state, x, key=random.key(2), train=True)
    assert y_train.shape == (2, 10)
    if has_dropout:
        assert not np.array_equal(y_train, y1)
        y_other, _ = model.apply(params, state, x, key=random.key(3), train=True)
        assert not np.array_equal(y_train, y_other)
    else:
        np.testing.assert_array_equal(y_train, y1)
    if state:
        assert tree.structure(s_train) == tree.structure(state)
        assert any(not np.array_equal(a, b) for a, b in zip(tree.leaves(s_train), tree.leaves(state)))


def test_googlenet_aux_heads():
    model = models.googlenet(10, small_input=True, aux_logits=True, width_multiplier=1 / 8)
    assert isinstance(model, models.GoogLeNetWithAux)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    labels = np.array([0, 3])
    params, state = model.init(random.key(0), x)
    assert {"aux1", "aux2"} <= set(params) and {"aux1", "aux2"} <= set(state)
    p_spec, _ = model.init_shapes(nn.ShapeDtype(x.shape))
    assert [s.shape for s in tree.leaves(p_spec)] == [p.shape for p in tree.leaves(params)]
    # evaluation: logits only, aux state kept
    y, s = model.apply(params, state, x)
    assert y.shape == (2, 10)
    assert tree.structure(s) == tree.structure(state)
    # training: (logits, aux_logits2, aux_logits1), and the aux heads get gradients
    out, s = model.apply(params, state, x, key=random.key(1), train=True)
    assert isinstance(out, models.GoogLeNetOutputs)
    assert [o.shape for o in out] == [(2, 10)] * 3

    def loss(p):
        out, _ = model.apply(p, state, x, key=random.key(1), train=True)
        ce = losses.softmax_cross_entropy
        return ce(out.logits, labels) + 0.3 * (ce(out.aux_logits1, labels) + ce(out.aux_logits2, labels))

    grads = fnn.grad(loss)(params)
    assert tree.structure(grads) == tree.structure(params)
    assert all(np.all(np.isfinite(g)) for g in tree.leaves(grads))
    assert np.any(grads["aux1"]["fc2"]["w"] != 0) and np.any(grads["aux2"]["conv"]["conv"]["w"] != 0)
    assert "aux1" in fnn.summary(model, nn.ShapeDtype(x.shape))


# --- PyTorch cross-checks (torch.nn built here by hand; torchvision is not needed) ---------------

def _torch_basic_conv(torch, p, s, out_c, in_c, k, padding=0):
    tnn = torch.nn
    conv = tnn.Conv2d(in_c, out_c, k, padding=padding, bias=False)
    bn = tnn.BatchNorm2d(out_c, eps=0.001)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(p["conv"]["w"]))
        bn.weight.copy_(torch.tensor(p["bn"]["scale"]))
        bn.bias.copy_(torch.tensor(p["bn"]["bias"]))
        bn.running_mean.copy_(torch.tensor(s["bn"]["mean"]))
        bn.running_var.copy_(torch.tensor(s["bn"]["var"]))
    return tnn.Sequential(conv, bn, tnn.ReLU())


def test_inception_block_against_torch():
    torch = pytest.importorskip("torch")
    from fnn.models.googlenet import inception
    cfg, in_c = (4, 3, 6, 2, 5, 3), 7
    block = inception(*cfg)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, in_c, 7, 7)).astype(np.float32)
    params, state = block.init(random.key(0), x)
    # non-trivial running statistics and BN affine parameters
    state = tree.map(lambda a: (a + rng.uniform(0.1, 0.5, a.shape)).astype(np.float32), state)
    params = tree.map(lambda a: (a + 0.1 * rng.standard_normal(a.shape)).astype(np.float32), params)
    c1, r3, c3, r5, c5, pp = cfg
    p, s = params, state
    b1 = _torch_basic_conv(torch, p["branch1"], s["branch1"], c1, in_c, 1)
    b2 = torch.nn.Sequential(_torch_basic_conv(torch, p["branch2"]["0"], s["branch2"]["0"], r3, in_c, 1),
                             _torch_basic_conv(torch, p["branch2"]["1"], s["branch2"]["1"], c3, r3, 3, 1))
    b3 = torch.nn.Sequential(_torch_basic_conv(torch, p["branch3"]["0"], s["branch3"]["0"], r5, in_c, 1),
                             _torch_basic_conv(torch, p["branch3"]["1"], s["branch3"]["1"], c5, r5, 3, 1))
    b4 = torch.nn.Sequential(torch.nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                             _torch_basic_conv(torch, p["branch4"]["1"], s["branch4"]["1"], pp, in_c, 1))
    tx = torch.tensor(x)
    for b in (b1, b2, b3, b4):
        b.eval()
    with torch.no_grad():
        want = torch.cat([b(tx) for b in (b1, b2, b3, b4)], 1).numpy()
    got, _ = block.apply(params, state, x)
    assert got.shape == (2, c1 + c3 + c5 + pp, 7, 7)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_small_vgg_bn_against_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    model = models.vgg11_bn(10, small_input=True, width_multiplier=1 / 16)
    x = np.random.default_rng(6).standard_normal((2, 3, 28, 28)).astype(np.float32)
    params, state = model.init(random.key(0), x)
    layers, in_c = [], 3
    for name, layer in zip(model.layers[0].names, model.layers[0].layers):
        if isinstance(layer, nn.Conv2d):
            conv = tnn.Conv2d(in_c, layer.out_channels, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.tensor(params["features"][name]["w"]))
                conv.bias.copy_(torch.tensor(params["features"][name]["b"]))
            layers.append(conv)
            in_c = layer.out_channels
        elif isinstance(layer, nn.BatchNorm):
            layers.append(tnn.BatchNorm2d(in_c))
        elif isinstance(layer, nn.MaxPool2d):
            layers.append(tnn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers.append(tnn.ReLU())
    head = []
    for name, layer in zip(model.layers[2].names, model.layers[2].layers):
        if isinstance(layer, nn.Dense):
            w = params["classifier"][name]["w"]
            lin = tnn.Linear(*w.shape)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(w.T))
                lin.bias.copy_(torch.tensor(params["classifier"][name]["b"]))
            head.append(lin)
        elif isinstance(layer, nn.Dropout):
            head.append(tnn.Dropout(0.5))
        else:
            head.append(tnn.ReLU())
    net = tnn.Sequential(*layers, tnn.Flatten(), *head)
    # training mode: batch statistics and the running-statistics update agree (no dropout here)
    model_nd = models.vgg11_bn(10, small_input=True, width_multiplier=1 / 16, dropout=0.0)
    for m in net.modules():
        if isinstance(m, tnn.Dropout):
            m.p = 0.0
    net.train()
    y_train, new_state = model_nd.apply(params, state, x, key=random.key(1), train=True)
    want = net(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(y_train, want, rtol=1e-3, atol=1e-5)
    bns = [m for m in net.modules() if isinstance(m, tnn.BatchNorm2d)]
    features = model.layers[0]
    bn_names = [n for n, layer in zip(features.names, features.layers) if isinstance(layer, nn.BatchNorm)]
    assert len(bns) == len(bn_names) == 8
    for bn, name in zip(bns, bn_names):
        got = new_state["features"][name]
        np.testing.assert_allclose(got["mean"], bn.running_mean.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got["var"], bn.running_var.numpy(), rtol=1e-4, atol=1e-6)
    # evaluation with the updated running statistics
    net.eval()
    y_eval, _ = model.apply(params, new_state, x)
    with torch.no_grad():
        np.testing.assert_allclose(y_eval, net(torch.tensor(x)).numpy(), rtol=1e-3, atol=1e-5)
