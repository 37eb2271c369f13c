"""Workload definitions shared by every stack: parameter names and shapes, initial weights, the
fixed batch, learning rates.

Parameter names are dotted paths. They match fnn's parameter trees (`nn.Sequential` children named
explicitly), so `unflatten` turns a flat dict into fnn's nested dict; the other stacks read the flat
dict directly. Dense weights are (in, out), conv weights (out, in, kh, kw), as in fnn and PyTorch.
"""

from __future__ import annotations

import numpy as np

WORKLOADS = ("mlp", "lenet", "tiny", "rnn", "resnet")

LR = {"mlp": 0.1, "lenet": 0.1, "tiny": 0.1, "rnn": 0.01, "resnet": 0.1}

DESCRIPTION = {
    "mlp": "784-1024-10 MLP, ReLU, mean softmax CE, batch 128",
    "lenet": "LeNet-5 (conv 6@5x5 pad 2, pool, conv 16@5x5, pool, 120, 84, 10), batch 64 of 1x28x28",
    "tiny": "2-10-10-1 MLP, tanh, sigmoid BCE from logits, batch 64",
    "rnn": "Elman RNN 1->64, 50 steps, batch 32, linear readout every step, MSE",
    "resnet": "ResNet-18 layout for 32x32, base width 16, BatchNorm (train), batch 32",
}

# ResNet-18 layout: (stage, block, in_channels, out_channels, stride)
RESNET_WIDTH = 16


def resnet_blocks(width: int = RESNET_WIDTH):
    blocks = []
    cin = width
    for s, (mult, stride) in enumerate(zip((1, 2, 4, 8), (1, 2, 2, 2)), start=1):
        cout = width * mult
        for b in (1, 2):
            st = stride if b == 1 else 1
            blocks.append((f"s{s}b{b}", cin, cout, st))
            cin = cout
    return blocks


def param_shapes(workload: str, width: int = RESNET_WIDTH) -> dict:
    """name -> (shape, kind, fan_in); kind is 'w' (uniform +-1/sqrt(fan_in)), 'scale' or 'shift'.
    `width` is the ResNet's base width (the GPU benchmark's full-width ResNet-18 uses 64)."""
    p = {}

    def dense(name, i, o, bias=True):
        p[f"{name}.w"] = ((i, o), "w", i)
        if bias:
            p[f"{name}.b"] = ((o,), "w", i)

    def conv(name, i, o, k, bias=True):
        p[f"{name}.w"] = ((o, i, k, k), "w", i * k * k)
        if bias:
            p[f"{name}.b"] = ((o,), "w", i * k * k)

    def bn(name, c):
        p[f"{name}.scale"] = ((c,), "scale", None)
        p[f"{name}.bias"] = ((c,), "shift", None)

    if workload == "mlp":
        dense("fc1", 784, 1024)
        dense("fc2", 1024, 10)
    elif workload == "lenet":
        conv("conv1", 1, 6, 5)
        conv("conv2", 6, 16, 5)
        dense("fc1", 400, 120)
        dense("fc2", 120, 84)
        dense("fc3", 84, 10)
    elif workload == "tiny":
        dense("fc1", 2, 10)
        dense("fc2", 10, 10)
        dense("fc3", 10, 1)
    elif workload == "rnn":
        h = 64
        p["rnn.w_ih"] = ((1, h), "w", h)
        p["rnn.w_hh"] = ((h, h), "w", h)
        p["rnn.b_ih"] = ((h,), "w", h)
        p["rnn.b_hh"] = ((h,), "w", h)
        dense("out", h, 1)
    elif workload == "resnet":
        w = width
        conv("stem", 3, w, 3, bias=False)
        bn("stem_bn", w)
        for name, cin, cout, stride in resnet_blocks(w):
            conv(f"{name}.body.conv1", cin, cout, 3, bias=False)
            bn(f"{name}.body.bn1", cout)
            conv(f"{name}.body.conv2", cout, cout, 3, bias=False)
            bn(f"{name}.body.bn2", cout)
            if stride != 1 or cin != cout:
                conv(f"{name}.shortcut.conv", cin, cout, 1, bias=False)
                bn(f"{name}.shortcut.bn", cout)
        dense("fc", 8 * w, 10)
    else:
        raise ValueError(f"unknown workload {workload!r}")
    return p


def init_weights(workload: str, seed: int = 0, width: int = RESNET_WIDTH) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, kind, fan_in) in param_shapes(workload, width).items():
        if kind == "w":
            bound = 1.0 / np.sqrt(fan_in)
            out[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
        elif kind == "scale":  # not all ones, so that the scale's gradient path is exercised
            out[name] = rng.uniform(0.8, 1.2, shape).astype(np.float32)
        else:
            out[name] = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
    return out


def make_batch(workload: str, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    if workload == "mlp":
        return {"x": rng.random((128, 784), np.float32), "y": rng.integers(0, 10, 128).astype(np.int64)}
    if workload == "lenet":
        return {"x": rng.random((64, 1, 28, 28), np.float32), "y": rng.integers(0, 10, 64).astype(np.int64)}
    if workload == "tiny":
        x = rng.normal(size=(64, 2)).astype(np.float32)
        y = (x[:, :1] * x[:, 1:] > 0).astype(np.float32)
        return {"x": x, "y": y}
    if workload == "rnn":
        t = np.linspace(0, 4 * np.pi, 50, dtype=np.float32)[None, :]
        phase = rng.uniform(0, 2 * np.pi, (32, 1)).astype(np.float32)
        return {"x": np.sin(t + phase)[..., None].astype(np.float32),
                "y": np.cos(t + phase)[..., None].astype(np.float32)}
    if workload == "resnet":
        return {"x": rng.normal(size=(32, 3, 32, 32)).astype(np.float32),
                "y": rng.integers(0, 10, 32).astype(np.int64)}
    raise ValueError(f"unknown workload {workload!r}")


def unflatten(flat: dict) -> dict:
    out: dict = {}
    for name, v in flat.items():
        *head, last = name.split(".")
        d = out
        for h in head:
            d = d.setdefault(h, {})
        d[last] = v
    return out


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out
