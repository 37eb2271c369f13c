"""HIPS autograd: the models written with autograd.numpy over flat parameter dicts, gradients
from autograd.value_and_grad, SGD as a dict comprehension. Convolution is an im2col written in
autograd.numpy (strided slices stacked over kernel offsets, then one batched matmul); max pooling
is a max over a reshaped window axis."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np

from .common import LR, resnet_blocks


def flat_grads(grads):
    return {k: np.asarray(v) for k, v in grads.items()}


def _sgd_step(loss_fn, lr):
    vg = autograd.value_and_grad(loss_fn)

    def init(weights):
        return {k: np.array(v) for k, v in weights.items()}

    def step(p, batch):
        loss, grads = vg(p, batch)
        return {k: p[k] - lr * grads[k] for k in p}, loss, grads

    return init, step


def softmax_ce(z, y):
    z = z - anp.max(z, axis=1, keepdims=True)
    logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
    return -anp.mean(logp[np.arange(z.shape[0]), y])


def dense(x, p, name):
    return anp.dot(x, p[f"{name}.w"]) + p[f"{name}.b"]


def conv2d(x, w, b=None, stride=1, pad=0):
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    if pad:
        x = anp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    oh = (h + 2 * pad - k) // stride + 1
    ow = (wd + 2 * pad - k) // stride + 1
    slices = [x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] for i in range(k) for j in range(k)]
    cols = anp.reshape(anp.stack(slices, axis=2), (n, c * k * k, oh * ow))
    y = anp.reshape(anp.matmul(anp.reshape(w, (o, c * k * k)), cols), (n, o, oh, ow))
    if b is not None:
        y = y + anp.reshape(b, (1, o, 1, 1))
    return y


def maxpool2(x):
    n, c, h, w = x.shape
    return anp.max(anp.max(anp.reshape(x, (n, c, h // 2, 2, w // 2, 2)), axis=5), axis=3)


def relu(x):
    return anp.maximum(x, 0.0)


def batch_norm(x, scale, bias, eps=1e-5):
    mean = anp.mean(x, axis=(0, 2, 3), keepdims=True)
    xc = x - mean
    var = anp.mean(xc * xc, axis=(0, 2, 3), keepdims=True)
    return xc / anp.sqrt(var + eps) * anp.reshape(scale, (1, -1, 1, 1)) + anp.reshape(bias, (1, -1, 1, 1))


def mlp(lr=LR["mlp"]):
    def loss(p, b):
        return softmax_ce(dense(relu(dense(b["x"], p, "fc1")), p, "fc2"), b["y"])
    return _sgd_step(loss, lr)


def lenet(lr=LR["lenet"]):
    def loss(p, b):
        h = maxpool2(relu(conv2d(b["x"], p["conv1.w"], p["conv1.b"], pad=2)))
        h = maxpool2(relu(conv2d(h, p["conv2.w"], p["conv2.b"])))
        h = anp.reshape(h, (h.shape[0], -1))
        h = relu(dense(h, p, "fc1"))
        h = relu(dense(h, p, "fc2"))
        return softmax_ce(dense(h, p, "fc3"), b["y"])
    return _sgd_step(loss, lr)


def tiny(lr=LR["tiny"]):
    def loss(p, b):
        h = anp.tanh(dense(b["x"], p, "fc1"))
        h = anp.tanh(dense(h, p, "fc2"))
        z = dense(h, p, "fc3")
        return anp.mean(anp.maximum(z, 0.0) - z * b["y"] + anp.log1p(anp.exp(-anp.abs(z))))
    return _sgd_step(loss, lr)


def rnn(lr=LR["rnn"]):
    def loss(p, b):
        x, y = b["x"], b["y"]
        h = np.zeros((x.shape[0], p["rnn.w_hh"].shape[0]), x.dtype)
        outs = []
        for t in range(x.shape[1]):
            h = anp.tanh(anp.dot(x[:, t], p["rnn.w_ih"]) + p["rnn.b_ih"] + anp.dot(h, p["rnn.w_hh"]) + p["rnn.b_hh"])
            outs.append(h)
        pred = anp.dot(anp.stack(outs, axis=1), p["out.w"]) + p["out.b"]
        return anp.mean((pred - y) ** 2)
    return _sgd_step(loss, lr)


def resnet(lr=LR["resnet"]):
    blocks = resnet_blocks()

    def bn(x, p, name):
        return batch_norm(x, p[f"{name}.scale"], p[f"{name}.bias"])

    def loss(p, b):
        h = relu(bn(conv2d(b["x"], p["stem.w"], pad=1), p, "stem_bn"))
        for name, cin, cout, stride in blocks:
            u = relu(bn(conv2d(h, p[f"{name}.body.conv1.w"], stride=stride, pad=1), p, f"{name}.body.bn1"))
            u = bn(conv2d(u, p[f"{name}.body.conv2.w"], pad=1), p, f"{name}.body.bn2")
            if stride != 1 or cin != cout:
                h = bn(conv2d(h, p[f"{name}.shortcut.conv.w"], stride=stride), p, f"{name}.shortcut.bn")
            h = relu(u + h)
        return softmax_ce(dense(anp.mean(h, axis=(2, 3)), p, "fc"), b["y"])
    return _sgd_step(loss, lr)


WORKLOADS = {"mlp": mlp, "lenet": lenet, "tiny": tiny, "rnn": rnn, "resnet": resnet}
