"""PyTorch, eager on the CPU: parameters are leaf tensors (flat dict, dense weights kept (in, out)
so x @ w matches the other stacks), the models use torch.nn.functional (torch.nn.RNN for the
RNN), loss.backward(), and SGD as an in-place `p -= lr * p.grad` under no_grad.

Each workload's pieces are also offered apart (`PARTS`: init(weights, device=None), loss(p, b),
fix(grads)) for benchmarks/gpu.py, which builds its own CUDA step from them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .common import LR, RESNET_WIDTH, resnet_blocks


def flat_grads(grads):
    return {k: v.detach().numpy().copy() for k, v in grads.items()}


def _tensors(weights, device=None):
    return {k: torch.tensor(np.array(v), requires_grad=True, device=device) for k, v in weights.items()}


def _batch(batch):
    return {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}


def _sgd_step(loss_fn, lr, init=_tensors):
    cache = {}

    def step(p, batch):
        b = cache.get(id(batch))
        if b is None:  # the batch is fixed: convert it once
            b = cache[id(batch)] = _batch(batch)
        for t in p.values():
            t.grad = None
        loss = loss_fn(p, b)
        loss.backward()
        with torch.no_grad():
            for t in p.values():
                t -= lr * t.grad
        return p, float(loss), {k: t.grad for k, t in p.items()}

    return init, step


def dense(x, p, name):
    return torch.addmm(p[f"{name}.b"], x, p[f"{name}.w"])


def _same(grads):
    return grads


def mlp_parts():
    def loss(p, b):
        return F.cross_entropy(dense(F.relu(dense(b["x"], p, "fc1")), p, "fc2"), b["y"])
    return _tensors, loss, _same


def mlp(lr=LR["mlp"]):
    return _sgd_step(mlp_parts()[1], lr)


def lenet_parts():
    def loss(p, b):
        h = F.max_pool2d(F.relu(F.conv2d(b["x"], p["conv1.w"], p["conv1.b"], padding=2)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, p["conv2.w"], p["conv2.b"])), 2)
        h = F.relu(dense(h.flatten(1), p, "fc1"))
        h = F.relu(dense(h, p, "fc2"))
        return F.cross_entropy(dense(h, p, "fc3"), b["y"])
    return _tensors, loss, _same


def lenet(lr=LR["lenet"]):
    return _sgd_step(lenet_parts()[1], lr)


def tiny_parts():
    def loss(p, b):
        h = torch.tanh(dense(b["x"], p, "fc1"))
        h = torch.tanh(dense(h, p, "fc2"))
        return F.binary_cross_entropy_with_logits(dense(h, p, "fc3"), b["y"])
    return _tensors, loss, _same


def tiny(lr=LR["tiny"]):
    return _sgd_step(tiny_parts()[1], lr)


def rnn_parts():
    """torch.nn.RNN (its weights (out, in): the transposes of the shared ones) + a readout."""
    names = {"rnn.w_ih": "weight_ih_l0", "rnn.w_hh": "weight_hh_l0", "rnn.b_ih": "bias_ih_l0",
             "rnn.b_hh": "bias_hh_l0"}
    module = torch.nn.RNN(1, 64, batch_first=True)

    def init(weights, device=None):
        module.to(torch.from_numpy(np.asarray(weights["rnn.w_hh"])).dtype)  # float64 for the check
        if device is not None:
            module.to(device)
        with torch.no_grad():
            for k, attr in names.items():
                v = torch.from_numpy(np.array(weights[k]))
                getattr(module, attr).copy_(v.T if v.ndim == 2 else v)
        p = {k: getattr(module, attr) for k, attr in names.items()}
        p["out.w"] = torch.tensor(np.array(weights["out.w"]), requires_grad=True, device=device)
        p["out.b"] = torch.tensor(np.array(weights["out.b"]), requires_grad=True, device=device)
        return p

    def loss(p, b):
        h, _ = module(b["x"])
        return F.mse_loss(h @ p["out.w"] + p["out.b"], b["y"])

    def fix(grads):
        return {k: (g.T if k in ("rnn.w_ih", "rnn.w_hh") else g) for k, g in grads.items()}

    return init, loss, fix


def rnn(lr=LR["rnn"]):
    init, loss, fix = rnn_parts()
    init_, step = _sgd_step(loss, lr, init)

    def step_t(p, batch):
        p, loss_v, grads = step(p, batch)
        return p, loss_v, fix(grads)

    return init_, step_t


def resnet_parts(width=RESNET_WIDTH):
    """ResNet-18 layout for 32x32 inputs (3x3 stem, no stem pool); `width` is the base width."""
    blocks = resnet_blocks(width)
    running = {}

    def bn(x, p, name):
        c = x.shape[1]
        if name not in running:
            running[name] = (torch.zeros(c, dtype=x.dtype, device=x.device),
                             torch.ones(c, dtype=x.dtype, device=x.device))
        mean, var = running[name]
        return F.batch_norm(x, mean, var, p[f"{name}.scale"], p[f"{name}.bias"], training=True,
                            momentum=0.1, eps=1e-5)

    def loss(p, b):
        h = F.relu(bn(F.conv2d(b["x"], p["stem.w"], padding=1), p, "stem_bn"))
        for name, cin, cout, stride in blocks:
            u = F.relu(bn(F.conv2d(h, p[f"{name}.body.conv1.w"], stride=stride, padding=1), p, f"{name}.body.bn1"))
            u = bn(F.conv2d(u, p[f"{name}.body.conv2.w"], padding=1), p, f"{name}.body.bn2")
            if stride != 1 or cin != cout:
                h = bn(F.conv2d(h, p[f"{name}.shortcut.conv.w"], stride=stride), p, f"{name}.shortcut.bn")
            h = F.relu(u + h)
        return F.cross_entropy(dense(h.mean((2, 3)), p, "fc"), b["y"])
    return _tensors, loss, _same


def resnet(lr=LR["resnet"]):
    return _sgd_step(resnet_parts()[1], lr)


WORKLOADS = {"mlp": mlp, "lenet": lenet, "tiny": tiny, "rnn": rnn, "resnet": resnet}
PARTS = {"mlp": mlp_parts, "lenet": lenet_parts, "tiny": tiny_parts, "rnn": rnn_parts,
         "resnet": resnet_parts}
