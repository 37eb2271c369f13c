"""fnn.random's samplers on the GPU: numbers made by CuPy on the device, never on the host.

`fnn.random` validates its arguments and calls these with the key's 64 bits when a sampler is
asked for numbers on the GPU. Each call builds a fresh `cupy.random.Generator` over cuRAND's
Philox4x32-10 (`cupy.random.Philox4x3210`) seeded from those 64 bits, so, as on the CPU, the
same key gives the same numbers and nothing is carried from one call to the next. CuPy hashes the
seed through `numpy.random.SeedSequence` (on the host: no device work, no synchronisation) and
hands cuRAND 32 bits of the result, so two keys share a GPU stream with probability about 2**-32.

No function here reads a device value on the host: permutations are an argsort of random keys,
weighted choices a search in the cumulative weights (with replacement) or the top of
Efraimidis-Spirakis keys (without), truncated normals the inverse CDF on the interval.
Argument values that live on the device (a CuPy `p` or CuPy bounds) are therefore not checked
for validity here; host values were checked by the caller.
"""

from __future__ import annotations

import importlib
import operator
from typing import Any

import numpy as np

from fnn.backend import _import_cupy, is_cupy_array

__all__ = ["generator", "normal", "uniform", "truncated_normal", "bernoulli", "randint",
           "permutation", "choice"]


def generator(k64: int):
    """A CuPy Generator over Philox4x32-10 seeded from the 64-bit key `k64`."""
    cp = _import_cupy()
    return cp.random.Generator(cp.random.Philox4x3210(k64))


def _const(xp, v: Any, dtype: np.dtype):
    """`v` as an operand of dtype `dtype`: a NumPy scalar for host scalars (no device copy), a
    device array otherwise."""
    if is_cupy_array(v):
        return v.astype(dtype, copy=False)
    if np.ndim(v) == 0:
        return np.asarray(v, dtype=dtype)[()]
    return xp.asarray(np.asarray(v, dtype=dtype))


def _is_unit(v: Any, unit: float) -> bool:
    return type(v) in (int, float) and v == unit


def normal(k64: int, shape: tuple, dt: np.dtype, draw: np.dtype, mean: Any, stddev: Any):
    xp = _import_cupy()
    x = generator(k64).standard_normal(shape, dtype=draw)
    if not _is_unit(stddev, 1):
        x = x * _const(xp, stddev, draw)
    if not _is_unit(mean, 0):
        x = x + _const(xp, mean, draw)
    return x.astype(dt, copy=False)


def _below(xp, hi, dt: np.dtype):
    """The largest value of dtype `dt` below `hi`."""
    if is_cupy_array(hi):
        return xp.nextafter(hi, xp.full((), -np.inf, dtype=dt))
    return np.nextafter(hi, np.asarray(-np.inf, dtype=dt))


def uniform(k64: int, shape: tuple, dt: np.dtype, draw: np.dtype, minval: Any, maxval: Any):
    xp = _import_cupy()
    u = generator(k64).random(shape, dtype=draw)
    lo, hi = _const(xp, minval, draw), _const(xp, maxval, draw)
    x = (lo + (hi - lo) * u).astype(dt, copy=False)
    lo, hi = _const(xp, minval, dt), _const(xp, maxval, dt)
    return xp.maximum(xp.minimum(x, _below(xp, hi, dt)), lo).astype(dt, copy=False)


def bernoulli(k64: int, p: Any, shape: tuple):
    xp = _import_cupy()
    u = generator(k64).random(shape, dtype=np.float32)
    if isinstance(p, (int, float)):
        return u < p
    return u < _const(xp, p, np.dtype(np.float32))


def _int_bound(v: Any) -> int | None:
    if is_cupy_array(v) or np.ndim(v) != 0:
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def randint(k64: int, shape: tuple, minval: Any, maxval: Any, dt: np.dtype):
    """Integer bounds: CuPy's exact interval sampler. Array bounds: floor of a float64 uniform
    scaled to the range (uniform to within range * 2**-53)."""
    xp = _import_cupy()
    lo, hi = _int_bound(minval), _int_bound(maxval)
    gen = generator(k64)
    if lo is not None and hi is not None:
        try:
            return gen.integers(lo, hi, size=shape, dtype=dt)
        except ValueError as e:
            raise ValueError(f"fnn.random.randint: minval={minval!r}, maxval={maxval!r}: {e}") from None
    lo_a, hi_a = _const(xp, minval, np.dtype(np.int64)), _const(xp, maxval, np.dtype(np.int64))
    u = gen.random(shape, dtype=np.float64)
    span = (hi_a - lo_a).astype(np.float64)
    return (lo_a + xp.floor(u * span).astype(np.int64)).astype(dt, copy=False)


def _argsort_random(gen, n: int):
    """A uniformly random permutation of range(n) (int64): the order of n random float64 keys."""
    xp = _import_cupy()
    return xp.argsort(gen.random((n,), dtype=np.float64))


def permutation(k64: int, x: Any, axis: int, independent: bool):
    xp = _import_cupy()
    gen = generator(k64)
    if isinstance(x, int):
        return _argsort_random(gen, x)
    arr = x if is_cupy_array(x) else xp.asarray(np.asarray(x))
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"fnn.random.permutation: axis {axis} is out of bounds for an array of "
                         f"{arr.ndim} dimensions")
    axis %= arr.ndim
    if independent:
        order = xp.argsort(gen.random(arr.shape, dtype=np.float64), axis=axis)
        return xp.take_along_axis(arr, order, axis=axis)
    return xp.take(arr, _argsort_random(gen, arr.shape[axis]), axis=axis)


def choice(k64: int, pool: Any, n: int, shape: tuple, replace: bool, weights: Any, axis: int):
    """`weights` is None, a host float64 array already checked and normalised, or a CuPy array
    (used as it is). `pool` is an int (sample indices) or an array with n entries along `axis`."""
    xp = _import_cupy()
    gen = generator(k64)
    count = int(np.prod(shape, dtype=np.int64))
    if not replace and count > n:
        raise ValueError(f"fnn.random.choice: cannot take a larger sample ({count}) than the "
                         f"population ({n}) without replacement")
    w = None if weights is None else (weights if is_cupy_array(weights) else xp.asarray(weights))
    if w is not None:
        w = w.astype(np.float64, copy=False)
    if replace and w is None:
        idx = gen.integers(0, n, size=(count,), dtype=np.int64)
    elif replace:
        cdf = xp.cumsum(w)
        total = cdf[-1:]
        v = xp.minimum(gen.random((count,), dtype=np.float64) * total, _below(xp, total, np.dtype(np.float64)))
        idx = xp.searchsorted(cdf, v, side="right")
    elif w is None:
        idx = _argsort_random(gen, n)[:count]
    else:
        u = 1.0 - gen.random((n,), dtype=np.float64)  # in (0, 1]
        keys = xp.where(w > 0, xp.log(u) / xp.where(w > 0, w, 1.0), -np.inf)
        idx = xp.argsort(-keys)[:count]
    idx = idx.reshape(shape)
    if isinstance(pool, int):
        return idx
    arr = pool if is_cupy_array(pool) else xp.asarray(np.asarray(pool))
    return xp.take(arr, idx, axis=axis)


def _full(xp, v: Any, shape: tuple):
    """`v` broadcast to `shape` in float64 on the device (a fill, no copy, for host scalars)."""
    if is_cupy_array(v):
        return xp.broadcast_to(v.astype(np.float64, copy=False), shape)
    if np.ndim(v) == 0:
        return xp.full(shape, float(v), dtype=np.float64)
    return xp.broadcast_to(xp.asarray(np.asarray(v, dtype=np.float64)), shape)


def _neighbour(xp, v: Any, dt: np.dtype, toward: float):
    """The value of dtype `dt` next to `v` (rounded to `dt`) in the direction of `toward`."""
    if is_cupy_array(v):
        return xp.nextafter(v.astype(dt), xp.full((), toward, dtype=dt))
    return _const(xp, np.nextafter(np.asarray(v, dtype=dt), np.asarray(toward, dtype=dt)), dt)


def truncated_normal(k64: int, lower: Any, upper: Any, shape: tuple, dt: np.dtype):
    """Inverse-CDF sampling on (lower, upper) in float64, on the side of zero where the normal
    CDF keeps its relative precision (intervals right of zero are mirrored), then clipped strictly
    inside the bounds in `dt`. Bounds beyond about 37 standard deviations in the same tail
    collapse to the nearer bound."""
    xp = _import_cupy()
    special = importlib.import_module("cupyx.scipy.special")
    lo, hi = _full(xp, lower, shape), _full(xp, upper, shape)
    flip = lo > 0
    a = xp.where(flip, -hi, lo)
    b = xp.where(flip, -lo, hi)
    pa, pb = special.ndtr(a), special.ndtr(b)
    u = generator(k64).random(shape, dtype=np.float64)
    z = special.ndtri(pa + u * (pb - pa))
    z = xp.minimum(xp.maximum(z, xp.nextafter(a, b)), xp.nextafter(b, a))
    x = xp.where(flip, -z, z).astype(dt)
    inside_lo, inside_hi = _neighbour(xp, lower, dt, np.inf), _neighbour(xp, upper, dt, -np.inf)
    return xp.minimum(xp.maximum(x, inside_lo), inside_hi).astype(dt, copy=False)
