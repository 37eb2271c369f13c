"""Parameter initializers: functions `init(key, shape, dtype=float32) -> array`.

The factories (`glorot_uniform()`, `he_normal()`, ...) return such functions, as in JAX. Fans are
read from the layout: for a dense weight (in, out) `in_axis=-2, out_axis=-1`; for a convolution
weight (out, in/groups, kh, kw) `in_axis=1, out_axis=0`, and the other axes are the receptive
field. `torch_default_uniform(fan_in)` is PyTorch's default for Linear and Conv weights and biases.

Inside `shapes_only()`, every initializer returns a `ShapeDtype` instead of an array, so a model
can be "initialised" for its parameter shapes and counts without allocating them
(`Module.init_shapes`): a VGG-16's 138 million parameters are counted in milliseconds.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from typing import Callable, Iterator, Sequence

import numpy as np

from fnn import random
from fnn.nn.module import ShapeDtype

Initializer = Callable[..., np.ndarray]

__all__ = [
    "zeros", "ones", "constant", "normal", "uniform", "truncated_normal", "variance_scaling",
    "glorot_uniform", "glorot_normal", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
    "kaiming_uniform", "kaiming_normal", "lecun_uniform", "lecun_normal", "orthogonal",
    "torch_default_uniform", "compute_fans", "shapes_only",
]

_SHAPES_ONLY = contextvars.ContextVar("fnn_initializers_shapes_only", default=False)


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Within this block, initializers return ShapeDtype(shape, dtype) and allocate nothing."""
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def _shape_aware(init: Callable) -> Callable:
    """`init`, answering with a ShapeDtype inside `shapes_only()`."""
    @functools.wraps(init)
    def wrapped(key, shape, dtype=np.float32):
        if _SHAPES_ONLY.get():
            return ShapeDtype(tuple(shape), dtype)
        return init(key, shape, dtype)
    return wrapped


@_shape_aware
def zeros(key, shape: Sequence[int], dtype=np.float32) -> np.ndarray:
    """All zeros."""
    return np.zeros(tuple(shape), dtype)


@_shape_aware
def ones(key, shape: Sequence[int], dtype=np.float32) -> np.ndarray:
    """All ones."""
    return np.ones(tuple(shape), dtype)


def constant(value: float) -> Initializer:
    """Every entry `value`."""
    @_shape_aware
    def init(key, shape, dtype=np.float32):
        return np.full(tuple(shape), value, dtype)
    return init


def normal(stddev: float = 1e-2, mean: float = 0.0) -> Initializer:
    """N(mean, stddev^2)."""
    @_shape_aware
    def init(key, shape, dtype=np.float32):
        return random.normal(key, tuple(shape), dtype, mean=mean, stddev=stddev)
    return init


def uniform(scale: float = 1e-2, low: float | None = None) -> Initializer:
    """U(low, scale); `low` defaults to 0 as in JAX (pass low=-scale for a symmetric range)."""
    @_shape_aware
    def init(key, shape, dtype=np.float32):
        return random.uniform(key, tuple(shape), dtype, minval=0.0 if low is None else low, maxval=scale)
    return init


def truncated_normal(stddev: float = 1e-2, lower: float = -2.0, upper: float = 2.0) -> Initializer:
    """N(0, stddev^2) truncated to [lower, upper] standard deviations."""
    @_shape_aware
    def init(key, shape, dtype=np.float32):
        return stddev * random.truncated_normal(key, lower, upper, tuple(shape), dtype)
    return init


def compute_fans(shape: Sequence[int], in_axis: int = -2, out_axis: int = -1) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: its in/out axis sizes times the receptive field."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    in_axis, out_axis = in_axis % len(shape), out_axis % len(shape)
    receptive = math.prod(n for i, n in enumerate(shape) if i not in (in_axis, out_axis))
    return shape[in_axis] * receptive, shape[out_axis] * receptive


def variance_scaling(scale: float, mode: str, distribution: str, in_axis: int = -2,
                     out_axis: int = -1) -> Initializer:
    """Variance `scale / fan` (fan by `mode`: fan_in, fan_out or fan_avg), drawn from
    'uniform', 'normal' or 'truncated_normal' (JAX's variance_scaling)."""
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ValueError(f"variance_scaling: mode must be fan_in, fan_out or fan_avg, got {mode!r}")

    @_shape_aware
    def init(key, shape, dtype=np.float32):
        fan_in, fan_out = compute_fans(shape, in_axis, out_axis)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(1.0, fan)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return random.uniform(key, tuple(shape), dtype, minval=-limit, maxval=limit)
        if distribution == "normal":
            return random.normal(key, tuple(shape), dtype, stddev=math.sqrt(variance))
        if distribution == "truncated_normal":
            # stddev of a standard normal truncated to [-2, 2]
            std = math.sqrt(variance) / 0.87962566103423978
            return std * random.truncated_normal(key, -2.0, 2.0, tuple(shape), dtype)
        raise ValueError(f"variance_scaling: unknown distribution {distribution!r}")

    return init


def glorot_uniform(in_axis: int = -2, out_axis: int = -1) -> Initializer:
    """Glorot/Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis)


def glorot_normal(in_axis: int = -2, out_axis: int = -1) -> Initializer:
    """Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out))."""
    return variance_scaling(1.0, "fan_avg", "normal", in_axis, out_axis)


xavier_uniform, xavier_normal = glorot_uniform, glorot_normal


def he_uniform(in_axis: int = -2, out_axis: int = -1, mode: str = "fan_in") -> Initializer:
    """He/Kaiming uniform for ReLU: U(-a, a) with a = sqrt(6 / fan_in)."""
    return variance_scaling(2.0, mode, "uniform", in_axis, out_axis)


def he_normal(in_axis: int = -2, out_axis: int = -1, mode: str = "fan_in") -> Initializer:
    """He/Kaiming normal for ReLU: N(0, 2 / fan_in)."""
    return variance_scaling(2.0, mode, "normal", in_axis, out_axis)


kaiming_uniform, kaiming_normal = he_uniform, he_normal


def lecun_uniform(in_axis: int = -2, out_axis: int = -1) -> Initializer:
    """LeCun uniform: U(-a, a) with a = sqrt(3 / fan_in)."""
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis)


def lecun_normal(in_axis: int = -2, out_axis: int = -1) -> Initializer:
    """LeCun normal: N(0, 1 / fan_in)."""
    return variance_scaling(1.0, "fan_in", "normal", in_axis, out_axis)


def orthogonal(gain: float = 1.0, column_axis: int = -1) -> Initializer:
    """A (semi-)orthogonal matrix (QR of a Gaussian, signs fixed), the other axes flattened."""
    @_shape_aware
    def init(key, shape, dtype=np.float32):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"orthogonal: needs at least 2 dimensions, got shape {shape}")
        axis = column_axis % len(shape)
        cols = shape[axis]
        rows = math.prod(shape) // cols
        a = random.normal(key, (max(rows, cols), min(rows, cols)), np.float64)
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))  # a uniformly distributed orthogonal matrix
        q = q if rows >= cols else q.T  # (rows, cols) either way
        others = tuple(n for i, n in enumerate(shape) if i != axis)
        moved = np.moveaxis(q.reshape(others + (cols,)), -1, axis)
        return (gain * moved).astype(dtype)
    return init


def torch_default_uniform(fan_in: int) -> Initializer:
    """PyTorch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    @_shape_aware
    def init(key, shape, dtype=np.float32):
        return random.uniform(key, tuple(shape), dtype, minval=-bound, maxval=bound)
    return init
