"""Dropout with an explicit random key: `rate` is the probability of DROPPING an element.

The mask is drawn on x's device (by CuPy's generator for a CuPy x), so a training step on the GPU
copies nothing from the host for it.
"""

from __future__ import annotations

import numbers

import fnn.numpy as fnp
from fnn import random as _random
from fnn.backend import device_of

__all__ = ["dropout"]


def dropout(x, rate, key):
    """Zero each element of x with probability `rate` and scale the survivors by 1 / (1 - rate),
    so that the expectation is unchanged (inverted dropout).

    The same key gives the same mask on the same device (the CPU and GPU masks differ, as
    `fnn.random`'s numbers do). `rate=0` returns x itself; `rate=1` returns zeros (with a zero
    gradient). A key is required whenever rate > 0.
    """
    if not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"dropout: rate is the probability of dropping an element and must lie in "
                         f"[0, 1], got {rate!r}")
    rate = float(rate)
    if rate == 0.0:
        return x
    if key is None:
        raise ValueError(f"dropout: a random key is required when rate > 0 (rate={rate}, key=None); "
                         "pass one from fnn.random.key / fnn.random.split")
    dtype = getattr(x, "dtype", None)
    if dtype is None or dtype.kind != "f":
        raise TypeError(f"dropout: the input must be a floating-point array, got "
                        f"{type(x).__name__} of dtype {dtype}")
    if rate == 1.0:
        return fnp.where(False, x, 0.0)
    keep = _random.bernoulli(key, 1.0 - rate, tuple(x.shape), device=device_of(x))
    mask = keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))
    return fnp.multiply(x, mask)
