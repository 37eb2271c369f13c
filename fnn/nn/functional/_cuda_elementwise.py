"""CuPy kernels for elementwise rules that array operations would split into several launches.

On a GPU a small network is host-bound: each launch costs more host time than the device spends
on it. `relu_grad` is ReLU's backward pass, `g * (y > 0)`, in one launch instead of two (a
comparison, then a product), written in g's memory layout (the channel-major layout of the
convolution outputs stays as it is). It takes PyTorch's convention where y <= 0: the cotangent
there is 0, even where g is not finite.

Each function returns None unless its arguments are real CuPy arrays (see
`fnn.backend.kernel_module`); the caller's array path then serves.
"""

from __future__ import annotations

from typing import Any

from fnn.backend import kernel_module

__all__ = ["relu_grad"]

_kernels: dict = {}


def relu_grad(g: Any, y: Any) -> Any:
    """g where y > 0, else 0, for CuPy arrays of one shape; None otherwise."""
    xp = kernel_module(g, y)
    if xp is None or g.shape != y.shape:
        return None
    kernel = _kernels.get(xp)
    if kernel is None:
        kernel = _kernels[xp] = xp.ElementwiseKernel(
            "X y, T g", "T dx", "dx = y > (X)0 ? g : (T)0", "fnn_relu_grad")
    out = xp.empty_like(g)
    kernel(y, g, out)
    return out
