"""fnn: models from fnn.nn layers (children named to match common.py's parameter names), losses
from fnn.losses, gradients from fnn.value_and_grad, SGD from fnn.optim (see `sgd`)."""

from __future__ import annotations

import numpy as np

import fnn
import fnn.numpy as fnp
from fnn import losses, nn, optim

from .common import LR, RESNET_WIDTH, flatten, make_batch, resnet_blocks, unflatten


def sgd(lr):
    """(init, apply) of plain SGD with fnn.optim: `optim.sgd(lr)`'s updates, applied with
    `donate=True` (the old parameters are given up, so each one is updated in place, as the other
    stacks' `p -= lr * g` does)."""
    opt = optim.sgd(lr)

    def apply(params, opt_state, grads):
        updates, opt_state = opt.update(grads, opt_state, params)
        return optim.apply_updates(params, updates, donate=True), opt_state

    return opt.init, apply


def flat_grads(grads):
    return {k: np.asarray(v) for k, v in flatten(grads).items()}


def _model_step(model, loss_of, lr, x_spec):
    """(init, step) for `model` trained by SGD; loss_of(out, batch) -> scalar."""
    _, state0 = model.init(fnn.random.key(0), nn.ShapeDtype(x_spec.shape, x_spec.dtype))

    def loss_fn(params, state, batch):
        out, state = model.apply(params, state, batch["x"], train=True)
        return loss_of(out, batch), state

    vg = fnn.value_and_grad(loss_fn, has_aux=True)
    opt_init, opt_apply = sgd(lr)

    def init(weights):
        params = unflatten({k: np.array(v) for k, v in weights.items()})
        return {"params": params, "state": state0, "opt": opt_init(params)}

    def step(p, batch):
        (loss, state), grads = vg(p["params"], p["state"], batch)
        params, opt_state = opt_apply(p["params"], p["opt"], grads)
        return {"params": params, "state": state, "opt": opt_state}, loss, grads

    return init, step


def _ce(out, batch):
    return losses.softmax_cross_entropy(out, batch["y"])


def mlp(lr=LR["mlp"]):
    model = nn.Sequential([nn.Dense(1024, name="fc1"), nn.ReLU(), nn.Dense(10, name="fc2")])
    return _model_step(model, _ce, lr, make_batch("mlp")["x"])


def lenet(lr=LR["lenet"]):
    model = nn.Sequential([
        nn.Conv2d(6, 5, padding=2, name="conv1"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 5, name="conv2"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dense(120, name="fc1"), nn.ReLU(), nn.Dense(84, name="fc2"), nn.ReLU(),
        nn.Dense(10, name="fc3"),
    ])
    return _model_step(model, _ce, lr, make_batch("lenet")["x"])


def tiny(lr=LR["tiny"]):
    model = nn.Sequential([nn.Dense(10, name="fc1"), nn.Tanh(), nn.Dense(10, name="fc2"), nn.Tanh(),
                           nn.Dense(1, name="fc3")])
    return _model_step(model, lambda out, b: losses.binary_cross_entropy_with_logits(out, b["y"]),
                       lr, make_batch("tiny")["x"])


def rnn(lr=LR["rnn"]):
    """Elman RNN as the nn.RNN layer plus a Dense readout."""
    model = nn.Sequential([nn.RNN(64, name="rnn"), nn.Dense(1, name="out")])
    return _model_step(model, lambda out, b: losses.mse(out, b["y"]), lr, make_batch("rnn")["x"])


def rnn_loop(lr=LR["rnn"]):
    """Elman RNN as a Python loop over time steps written with fnn.numpy; like the hand-written
    reference, the input projection of all steps is one product before the loop."""

    def loss_fn(p, batch):
        x, y = batch["x"], batch["y"]
        r = p["rnn"]
        xp = x @ r["w_ih"] + (r["b_ih"] + r["b_hh"])  # every step's input projection at once
        h = fnp.zeros((x.shape[0], r["w_hh"].shape[0]), dtype=x.dtype, like=x)  # on x's device
        outs = []
        for t in range(x.shape[1]):
            h = fnp.tanh(xp[:, t] + h @ r["w_hh"])
            outs.append(h)
        hs = fnp.stack(outs, axis=1)
        pred = hs @ p["out"]["w"] + p["out"]["b"]
        return fnp.mean((pred - y) ** 2)

    vg = fnn.value_and_grad(loss_fn)
    opt_init, opt_apply = sgd(lr)

    def init(weights):
        params = unflatten({k: np.array(v) for k, v in weights.items()})
        return {"params": params, "opt": opt_init(params)}

    def step(p, batch):
        loss, grads = vg(p["params"], batch)
        params, opt_state = opt_apply(p["params"], p["opt"], grads)
        return {"params": params, "opt": opt_state}, loss, grads

    return init, step


def resnet(lr=LR["resnet"], width=RESNET_WIDTH):
    """ResNet-18 layout for 32x32 inputs (3x3 stem, no stem pool); `width` is the base width."""
    layers = [nn.Conv2d(width, 3, padding=1, use_bias=False, name="stem"), nn.BatchNorm(name="stem_bn"),
              nn.ReLU()]
    for name, cin, cout, stride in resnet_blocks(width):
        body = nn.Sequential([
            nn.Conv2d(cout, 3, stride=stride, padding=1, use_bias=False, name="conv1"), nn.BatchNorm(name="bn1"),
            nn.ReLU(),
            nn.Conv2d(cout, 3, padding=1, use_bias=False, name="conv2"), nn.BatchNorm(name="bn2"),
        ])
        short = None
        if stride != 1 or cin != cout:
            short = nn.Sequential([nn.Conv2d(cout, 1, stride=stride, use_bias=False, name="conv"),
                                   nn.BatchNorm(name="bn")])
        layers += [nn.Residual(body, short, name=name), nn.ReLU()]
    layers += [nn.GlobalAvgPool(), nn.Dense(10, name="fc")]
    return _model_step(nn.Sequential(layers), _ce, lr, make_batch("resnet")["x"])


WORKLOADS = {"mlp": mlp, "lenet": lenet, "tiny": tiny, "rnn": rnn, "resnet": resnet}
LOOP_WORKLOADS = {"rnn": rnn_loop}
