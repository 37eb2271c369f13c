"""The two GPU stacks of benchmarks/gpu.py, built from the CPU suite's builders.

fnn: fnn_impl's models and step (value_and_grad, optim.sgd applied with donation), its parameter,
state and optimizer trees and the batch moved to the GPU with fnn.backend.to_cupy; nothing else
changes, since fnn follows the arrays it is given.

torch: torch_impl's pieces (initial tensors, loss, gradient layout) on a CUDA device, and a step
as PyTorch users write it in eager mode: gradients set to None, loss.backward(), and SGD as one
`torch._foreach_add_` over all parameters (what torch.optim.SGD does on CUDA by default). The loss
stays a tensor on the device: nothing in either step reads a value back to the host.

A Stack holds one live copy of a model: `step()` issues one training step without waiting for
the device, `sync()` waits for it, `enter()` sets whatever global state the stack needs before
its turn (the TF32 settings of the torch stacks), and `check(weights, batch)` does one step from
the given weights on a fresh copy and returns the loss and the gradients on the host (flat dict,
the names of stacks/common.py).
"""

from __future__ import annotations

import warnings

import numpy as np

from .common import LR, RESNET_WIDTH, flatten


def make_fnn_builder(base: str, width: int = RESNET_WIDTH, loop: bool = False):
    """A function lr -> (init, step) from fnn_impl for the CPU suite's workload `base`."""
    from . import fnn_impl

    if loop:
        return lambda lr: fnn_impl.LOOP_WORKLOADS[base](lr=lr)
    if base == "resnet":
        return lambda lr: fnn_impl.resnet(lr=lr, width=width)
    return lambda lr: fnn_impl.WORKLOADS[base](lr=lr)


class FnnStack:
    kind = "fnn"

    def __init__(self, label, builder, lr, weights, batch):
        import cupy

        from fnn import backend

        self.label, self._builder, self.lr = label, builder, lr
        self._cupy, self._backend = cupy, backend
        init, self._step = builder(lr)
        self.params = backend.to_cupy(init(weights))
        self.batch = backend.to_cupy(batch)
        self.loss = None
        self._stream = cupy.cuda.get_current_stream()

    def enter(self):
        pass

    def step(self):
        self.params, self.loss, _ = self._step(self.params, self.batch)

    def sync(self):
        self._stream.synchronize()

    def check(self, weights, batch):
        init, step = self._builder(self.lr)
        _, loss, grads = step(self._backend.to_cupy(init(weights)), self._backend.to_cupy(batch))
        loss = float(np.asarray(self._backend.to_numpy(loss)))
        return loss, {k: np.asarray(v) for k, v in flatten(self._backend.to_numpy(grads)).items()}

    def close(self):
        self.params = self.batch = self.loss = None


# torch's fp32 settings ---------------------------------------------------------------------------

class TorchPrecision:
    """Switches torch between plain float32 (TF32 off for cuDNN and cuBLAS) and its defaults as read
    at start-up (TF32 on for cuDNN convolutions and RNNs, off for matmul).

    It uses the legacy flags, torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.
    allow_tf32: their setters also set the newer per-operator fp32_precision settings, so the two
    stay consistent (recent torch refuses to run a cuDNN op when they disagree, which setting only
    the new conv or rnn setting can cause)."""

    def __init__(self, torch):
        self.torch = torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.defaults = (bool(torch.backends.cudnn.allow_tf32), bool(torch.backends.cuda.matmul.allow_tf32))
        self.current = None

    def set(self, mode):
        b = self.torch.backends
        conv, mm = (False, False) if mode == "ieee" else self.defaults
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b.cudnn.allow_tf32 = conv
            b.cuda.matmul.allow_tf32 = mm
        self.current = mode

    def describe(self, mode):
        """The settings of `mode`, read back from torch (the current mode is restored)."""
        b = self.torch.backends
        previous = self.current
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.set(mode)
            text = f"cudnn.allow_tf32={b.cudnn.allow_tf32}, cuda.matmul.allow_tf32={b.cuda.matmul.allow_tf32}"
            try:
                text += (f" (cudnn.conv/rnn.fp32_precision={b.cudnn.conv.fp32_precision!r}/"
                         f"{b.cudnn.rnn.fp32_precision!r}, cuda.matmul.fp32_precision="
                         f"{b.cuda.matmul.fp32_precision!r})")
            except (AttributeError, RuntimeError):
                pass
        if previous is not None:
            self.set(previous)
        return text


class TorchStack:
    kind = "torch"

    def __init__(self, label, parts, lr, weights, batch, device, precision=None, mode="ieee"):
        import torch

        self.torch, self.label, self._parts, self.lr = torch, label, parts, lr
        self.device, self.precision, self.mode = device, precision, mode
        self.enter()
        init, self._loss, self._fix = parts()
        self.params = init(weights, device)
        self._plist = list(self.params.values())
        self.batch = self._to_device(batch)
        self.loss = None

    def _to_device(self, batch):
        return {k: self.torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in batch.items()}

    def enter(self):
        if self.precision is not None:
            self.precision.set(self.mode)

    def step(self):
        torch = self.torch
        for t in self._plist:
            t.grad = None
        loss = self._loss(self.params, self.batch)
        loss.backward()
        with torch.no_grad():
            torch._foreach_add_(self._plist, [t.grad for t in self._plist], alpha=-self.lr)
        self.loss = loss.detach()

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def check(self, weights, batch):
        self.enter()
        init, loss_fn, fix = self._parts()
        p = init(weights, self.device)
        loss = loss_fn(p, self._to_device(batch))
        loss.backward()
        grads = fix({k: t.grad for k, t in p.items()})
        return float(loss.detach().cpu()), {k: g.detach().cpu().numpy().copy() for k, g in grads.items()}

    def close(self):
        self.params = self.batch = self.loss = self._plist = None


def torch_parts(base: str, width: int = RESNET_WIDTH):
    from . import torch_impl

    if base == "resnet":
        return lambda: torch_impl.resnet_parts(width)
    return torch_impl.PARTS[base]


def lr_of(base: str) -> float:
    return LR[base]
