"""Explicit, splittable random keys; no global random state.

A key is a NumPy ``uint32`` array of shape (2,), an ordinary pytree leaf that can be saved. The same
key always gives the same numbers: every sampler builds a fresh counter-based generator
(``numpy.random.Philox``) keyed by the key's 64 bits, so nothing is carried from one call to the next.
`split` and `fold_in` derive new keys from Philox streams in separate domains (the second word of the
Philox key), so derived keys never reuse the stream a sampler draws from.

    k = fnn.random.key(0)
    k_init, k_drop = fnn.random.split(k)
    w = fnn.random.normal(k_init, (784, 10))          # float32 unless asked otherwise
    m = fnn.random.bernoulli(k_drop, 0.9, (128, 784), device="gpu")   # made on the GPU

Devices. Keys live on the host: reading one costs nothing, and `split` / `fold_in` are host
arithmetic. Every sampler takes `device=` ('cpu' or 'gpu'): where the numbers are made and the
result lives. `device=None` means the GPU when the key or an array argument (`p`, the array to
permute or choose from, bounds) is a CuPy array, else the CPU. On the GPU the numbers are made by
CuPy's generator (cuRAND's Philox4x32-10, see `fnn._random_gpu`) seeded from the key, never made on
the host and copied. Like PyTorch's CPU and CUDA generators, the two devices give different
numbers for the same key but the same distributions; on either device the same key gives the same
numbers (on the GPU: with the same CuPy version and GPU model). A key that is itself a CuPy array (moved to the
GPU along with a tree) is accepted, but reading it is a device-to-host copy and a synchronisation:
keep keys on the host.
"""

from __future__ import annotations

import hashlib
import operator
from typing import Any, Sequence

import numpy as np
from numpy.random import Generator, Philox
from numpy.random.bit_generator import ISeedSequence
from numpy.typing import ArrayLike, DTypeLike

from fnn import _random_gpu
from fnn.backend import MixedBackendError, is_cupy_array

__all__ = [
    "key",
    "split",
    "fold_in",
    "normal",
    "uniform",
    "truncated_normal",
    "bernoulli",
    "randint",
    "permutation",
    "choice",
]

Key = np.ndarray
Shape = int | Sequence[int] | None

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF

# Domains: the second 64-bit word of the Philox key. Sampling, splitting and folding in draw from
# different Philox keys, hence from unrelated streams.
_SAMPLE, _SPLIT, _FOLD = 0, 1, 2


# --------------------------------------------------------------------------------------------
# Keys and bit generators


class _KeyWords(ISeedSequence):
    """Hands Philox its 128-bit key directly (cheaper than `Philox(key=...)`, which also gathers
    OS entropy for a SeedSequence it then ignores)."""

    __slots__ = ("words",)

    def __init__(self, words: np.ndarray):
        self.words = words

    def generate_state(self, n_words, dtype=np.uint32):
        if n_words != 2 or np.dtype(dtype) != np.uint64:
            raise RuntimeError("unexpected request from numpy.random.Philox")
        return self.words


def _philox_fast(k64: int, domain: int) -> Philox:
    return Philox(_KeyWords(np.array([k64, domain], dtype=np.uint64)))


def _philox_plain(k64: int, domain: int) -> Philox:
    return Philox(key=np.array([k64, domain], dtype=np.uint64))


def _pick_philox():
    # Use the fast path only if this NumPy builds exactly the same generator from it.
    probe = 0x0123456789ABCDEF
    try:
        fast, plain = _philox_fast(probe, 7), _philox_plain(probe, 7)
        same = (
            np.array_equal(fast.state["state"]["key"], plain.state["state"]["key"])
            and np.array_equal(fast.state["state"]["counter"], plain.state["state"]["counter"])
            and np.array_equal(fast.random_raw(4), plain.random_raw(4))
        )
    except Exception:
        same = False
    return _philox_fast if same else _philox_plain


_philox = _pick_philox()


def _int64(value: Any, what: str) -> int:
    """Map any Python integer to 64 bits: two's complement within 64 bits, a hash beyond."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be an integer, got a bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}") from None
    if -(1 << 63) <= v < (1 << 64):
        return v & _MASK64
    nbytes = (v.bit_length() + 8) // 8
    digest = hashlib.blake2b(v.to_bytes(nbytes, "little", signed=True), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _from64(v: int) -> np.ndarray:
    return np.array([v >> 32, v & _MASK32], dtype=np.uint32)


def _k64(k: Any, fn: str) -> int:
    """Validate a key and return its 64 bits."""
    if isinstance(k, np.ndarray) and k.dtype == np.uint32 and k.shape == (2,):
        hi, lo = k.tolist()
        return (hi << 32) | lo
    if not isinstance(k, np.ndarray) and hasattr(k, "__cuda_array_interface__") and hasattr(k, "get"):
        return _k64(k.get(), fn)  # a key that was moved to the GPU along with a tree
    if isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
        raise TypeError(
            f"fnn.random.{fn}: expected a key from fnn.random.key(seed), got the integer {k!r}; "
            f"use fnn.random.key({k!r})"
        )
    if isinstance(k, np.ndarray):
        if k.ndim == 2 and k.shape[1] == 2 and k.dtype == np.uint32:
            raise TypeError(
                f"fnn.random.{fn}: expected a single key of shape (2,), got a batch of keys of shape "
                f"{k.shape} (from split); index it, e.g. keys[0], or unpack: k1, k2 = split(key)"
            )
        raise TypeError(
            f"fnn.random.{fn}: expected a key from fnn.random.key(seed) (uint32 array of shape (2,)), "
            f"got an array of dtype {k.dtype} and shape {k.shape}"
        )
    raise TypeError(f"fnn.random.{fn}: expected a key from fnn.random.key(seed), got {type(k).__name__}")


def _generator(k: Any, fn: str) -> Generator:
    return Generator(_philox(_k64(k, fn), _SAMPLE))


def _shape(shape: Shape, fn: str) -> tuple:
    if shape is None:
        return ()
    try:
        return (operator.index(shape),)
    except TypeError:
        pass
    try:
        return tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"fnn.random.{fn}: shape must be an int or a tuple of ints, got {shape!r}") from None


def _float_dtype(dtype: DTypeLike, fn: str) -> tuple[np.dtype, np.dtype]:
    """The requested float dtype and the one to draw in (float32 or float64)."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"fnn.random.{fn}: dtype must be a floating dtype, got {dt}")
    if dt == np.float32 or dt == np.float64:
        return dt, dt
    return dt, np.dtype(np.float32 if dt.itemsize < 4 else np.float64)


def _device(device: str | None, key: Any, fn: str, **arrays: Any) -> str:
    """'cpu' or 'gpu': where a sampler makes its numbers (see the module docstring)."""
    if device is None:
        on_gpu = is_cupy_array(key) or any(is_cupy_array(a) for a in arrays.values())
        return "gpu" if on_gpu else "cpu"
    if device in ("gpu", "cuda"):
        return "gpu"
    if device != "cpu":
        raise ValueError(f"fnn.random.{fn}: unknown device {device!r}; expected 'cpu', 'gpu' or None")
    for name, a in arrays.items():
        if is_cupy_array(a):
            raise MixedBackendError(
                f"fnn.random.{fn}: device='cpu' but {name} is a CuPy array; pass device='gpu' or "
                f"move it to the host first (fnn.backend.to_numpy)"
            )
    return "cpu"


def key(seed: int) -> Key:
    """A key from an integer seed (any Python int; seeds are taken modulo 2**64, larger ones hashed)."""
    return _from64(_int64(seed, "fnn.random.key: seed"))


def split(key: Key, num: int = 2) -> np.ndarray:
    """`num` new, independent keys derived from `key`, as an array of shape (num, 2)."""
    k = _k64(key, "split")
    n = operator.index(num)
    if n < 0:
        raise ValueError(f"fnn.random.split: num must be >= 0, got {n}")
    raw = _philox(k, _SPLIT).random_raw(n)
    out = np.empty((n, 2), dtype=np.uint32)
    out[:, 0] = raw >> np.uint64(32)
    out[:, 1] = raw & np.uint64(_MASK32)
    return out


def fold_in(key: Key, data: int) -> Key:
    """A new key derived from `key` and the integer `data` (e.g. a step or layer index)."""
    k = _k64(key, "fold_in")
    d = _int64(data, "fnn.random.fold_in: data")
    bg = _philox(k, _FOLD)
    bg.advance(d)  # counter = data: distinct data give distinct Philox blocks
    return _from64(int(bg.random_raw()))


# --------------------------------------------------------------------------------------------
# Samplers


def normal(
    key: Key, shape: Shape = (), dtype: DTypeLike = np.float32, mean: ArrayLike = 0.0, stddev: ArrayLike = 1.0,
    *, device: str | None = None,
) -> Any:
    """Normal samples with the given mean and standard deviation."""
    dt, draw = _float_dtype(dtype, "normal")
    if _device(device, key, "normal", mean=mean, stddev=stddev) == "gpu":
        return _random_gpu.normal(_k64(key, "normal"), _shape(shape, "normal"), dt, draw, mean, stddev)
    x = _generator(key, "normal").standard_normal(_shape(shape, "normal"), dtype=draw)
    if not (type(stddev) in (int, float) and stddev == 1):
        x = x * np.asarray(stddev, dtype=draw)
    if not (type(mean) in (int, float) and mean == 0):
        x = x + np.asarray(mean, dtype=draw)
    return np.asarray(x, dtype=dt)


def uniform(
    key: Key, shape: Shape = (), dtype: DTypeLike = np.float32, minval: ArrayLike = 0.0, maxval: ArrayLike = 1.0,
    *, device: str | None = None,
) -> Any:
    """Uniform samples in [minval, maxval)."""
    dt, draw = _float_dtype(dtype, "uniform")
    if _device(device, key, "uniform", minval=minval, maxval=maxval) == "gpu":
        return _random_gpu.uniform(_k64(key, "uniform"), _shape(shape, "uniform"), dt, draw, minval, maxval)
    u = _generator(key, "uniform").random(_shape(shape, "uniform"), dtype=draw)
    lo = np.asarray(minval, dtype=draw)
    hi = np.asarray(maxval, dtype=draw)
    x = np.asarray(lo + (hi - lo) * u, dtype=dt)
    # Rounding (in the draw dtype or in the cast to `dtype`) can land on maxval: keep it half-open.
    lo, hi = np.asarray(minval, dtype=dt), np.asarray(maxval, dtype=dt)
    below = np.nextafter(hi, np.asarray(-np.inf, dtype=dt))
    return np.asarray(np.maximum(np.minimum(x, below), lo), dtype=dt)


def truncated_normal(
    key: Key, lower: ArrayLike = -2.0, upper: ArrayLike = 2.0, shape: Shape = (), dtype: DTypeLike = np.float32,
    *, device: str | None = None,
) -> Any:
    """Standard normal samples conditioned on lower < x < upper (values strictly inside the bounds).

    On the CPU by exact rejection sampling; on the GPU by the inverse CDF (CuPy bounds are not
    checked there, to avoid a synchronisation)."""
    dt, _ = _float_dtype(dtype, "truncated_normal")
    on_gpu = _device(device, key, "truncated_normal", lower=lower, upper=upper) == "gpu"
    k64 = _k64(key, "truncated_normal")
    shape_t = _shape(shape, "truncated_normal")
    bounds = [np.shape(b) for b in (lower, upper)]
    if shape_t == () and (bounds[0] or bounds[1]):
        shape_t = np.broadcast_shapes(*bounds)
    host_bounds = [np.broadcast_to(np.asarray(b, dtype=np.float64), shape_t).ravel()
                   for b in (lower, upper) if not is_cupy_array(b)]
    if len(host_bounds) == 2:
        lo, hi = host_bounds
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo >= hi):
            raise ValueError("fnn.random.truncated_normal: need lower < upper")
    if on_gpu:
        return _random_gpu.truncated_normal(k64, lower, upper, shape_t, dt)
    gen = Generator(_philox(k64, _SAMPLE))
    x = _truncated_standard_normal(gen, lo, hi).reshape(shape_t)
    # Strictly inside the bounds, also after rounding to `dtype`.
    lo_d = np.asarray(lower, dtype=dt)
    hi_d = np.asarray(upper, dtype=dt)
    inside_lo = np.nextafter(lo_d, np.asarray(np.inf, dtype=dt))
    inside_hi = np.nextafter(hi_d, np.asarray(-np.inf, dtype=dt))
    return np.asarray(np.clip(x.astype(dt), inside_lo, inside_hi), dtype=dt)


def _truncated_standard_normal(gen: Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact rejection sampling of N(0, 1) on (lo, hi), elementwise (flat float64 arrays).

    Intervals are mirrored to lie right of zero unless they contain it. Then each element uses
    whichever proposal accepts often: the normal itself (a wide interval around 0), a uniform on the
    interval (a narrow one), or an exponential shifted to the lower bound (a tail, Robert 1995).
    """
    n = lo.size
    flip = hi <= 0
    a = np.where(flip, -hi, lo)
    b = np.where(flip, -lo, hi)
    straddles = a < 0  # then b > 0 as well
    width = b - a
    use_normal = straddles & (width >= 2.5)
    use_uniform = ~use_normal & np.isfinite(width) & (straddles | (width * np.maximum(a, 1.0) < 1.5))
    use_exp = ~(use_normal | use_uniform)
    m = np.where(straddles, 0.0, a)  # where the density peaks on the interval (uniform proposal)
    a_exp = np.where(use_exp, a, 0.0)
    alpha = (a_exp + np.sqrt(a_exp * a_exp + 4.0)) / 2.0

    out = np.empty(n, dtype=np.float64)
    pending = np.arange(n)
    while pending.size:
        ai, bi = a[pending], b[pending]
        k = pending.size
        x = np.empty(k)
        ok = np.zeros(k, dtype=bool)
        for mask, kind in ((use_normal[pending], 0), (use_uniform[pending], 1), (use_exp[pending], 2)):
            j = np.flatnonzero(mask)
            if j.size == 0:
                continue
            if kind == 0:
                xj = gen.standard_normal(j.size)
                okj = (xj > ai[j]) & (xj < bi[j])
            elif kind == 1:
                xj = ai[j] + (bi[j] - ai[j]) * gen.random(j.size)
                mj = m[pending[j]]
                okj = (gen.random(j.size) <= np.exp((mj * mj - xj * xj) / 2.0)) & (xj > ai[j])
            else:
                al = alpha[pending[j]]
                xj = ai[j] + gen.standard_exponential(j.size) / al
                okj = (xj < bi[j]) & (xj > ai[j]) & (gen.random(j.size) <= np.exp(-((xj - al) ** 2) / 2.0))
            x[j] = xj
            ok[j] = okj
        done = pending[ok]
        out[done] = x[ok]
        pending = pending[~ok]
    return np.where(flip, -out, out)


def bernoulli(key: Key, p: ArrayLike = 0.5, shape: Shape = None, *, device: str | None = None) -> Any:
    """Booleans, True with probability `p` (to within 2**-24, as in JAX); shape defaults to p's shape."""
    shape_t = tuple(getattr(p, "shape", None) or np.shape(p)) if shape is None else _shape(shape, "bernoulli")
    if _device(device, key, "bernoulli", p=p) == "gpu":
        return _random_gpu.bernoulli(_k64(key, "bernoulli"), p, shape_t)
    u = _generator(key, "bernoulli").random(shape_t, dtype=np.float32)
    if isinstance(p, (int, float)):
        return np.asarray(u < p)
    return np.asarray(u < np.asarray(p, dtype=np.float32))


def randint(
    key: Key, shape: Shape, minval: ArrayLike, maxval: ArrayLike, dtype: DTypeLike = np.int32,
    *, device: str | None = None,
) -> Any:
    """Integers uniformly in [minval, maxval)."""
    dt = np.dtype(dtype)
    if dt.kind not in "iu":
        raise TypeError(f"fnn.random.randint: dtype must be an integer dtype, got {dt}")
    if _device(device, key, "randint", minval=minval, maxval=maxval) == "gpu":
        if not (is_cupy_array(minval) or is_cupy_array(maxval)) and np.any(np.asarray(minval) >= np.asarray(maxval)):
            raise ValueError(f"fnn.random.randint: minval={minval!r}, maxval={maxval!r}: need minval < maxval")
        return _random_gpu.randint(_k64(key, "randint"), _shape(shape, "randint"), minval, maxval, dt)
    gen = _generator(key, "randint")
    try:
        x = gen.integers(minval, maxval, size=_shape(shape, "randint"), dtype=dt)
    except ValueError as e:
        raise ValueError(f"fnn.random.randint: minval={minval!r}, maxval={maxval!r}: {e}") from None
    return np.asarray(x, dtype=dt)


def permutation(
    key: Key, x: int | ArrayLike, axis: int = 0, independent: bool = False, *, device: str | None = None
) -> Any:
    """A shuffled `arange(x)` for an int `x`, else a copy of `x` shuffled along `axis`."""
    on_gpu = _device(device, key, "permutation", x=x) == "gpu"
    k64 = _k64(key, "permutation")
    is_int = isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))
    if is_int and x < 0:
        raise ValueError(f"fnn.random.permutation: n must be >= 0, got {x}")
    if not is_int and len(getattr(x, "shape", None) or np.shape(x)) == 0:
        raise TypeError("fnn.random.permutation: x must be an int or an array with at least one dimension")
    if on_gpu:
        return _random_gpu.permutation(k64, int(x) if is_int else x, operator.index(axis), independent)
    gen = Generator(_philox(k64, _SAMPLE))
    if is_int:
        return gen.permutation(int(x))
    arr = np.asarray(x)
    if independent:
        return gen.permuted(arr, axis=axis)
    return gen.permutation(arr, axis=axis)


def choice(
    key: Key,
    a: int | ArrayLike,
    shape: Shape = (),
    replace: bool = True,
    p: ArrayLike | None = None,
    axis: int = 0,
    *,
    device: str | None = None,
) -> Any:
    """Samples from `a` (or `arange(a)` for an int) along `axis`, optionally weighted by `p`.

    On the GPU a CuPy `p` is used as given (normalised, not checked, to avoid a synchronisation)."""
    on_gpu = _device(device, key, "choice", a=a, p=p) == "gpu"
    k64 = _k64(key, "choice")
    shape_t = _shape(shape, "choice")
    if isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)):
        n, pool = int(a), int(a)
        if n <= 0:
            raise ValueError(f"fnn.random.choice: a must be positive, got {n}")
    else:
        pool = a if is_cupy_array(a) else np.asarray(a)
        if pool.ndim == 0:
            raise ValueError("fnn.random.choice: a must be an int or an array with at least one dimension")
        n = pool.shape[axis]
    if on_gpu and is_cupy_array(p):
        if tuple(p.shape) != (n,):
            raise ValueError(f"fnn.random.choice: p must have shape ({n},), got {tuple(p.shape)}")
        return _random_gpu.choice(k64, pool, n, shape_t, replace, p / p.sum(), axis)
    if p is not None:
        w = np.asarray(p, dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"fnn.random.choice: p must have shape ({n},), got {w.shape}")
        if np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("fnn.random.choice: p must be finite, non-negative and not all zero")
        p = w / w.sum()
        if not replace and np.count_nonzero(p) < int(np.prod(shape_t, dtype=np.int64)):
            raise ValueError("fnn.random.choice: fewer non-zero entries in p than the sample size")
    if on_gpu:
        return _random_gpu.choice(k64, pool, n, shape_t, replace, p, axis)
    gen = Generator(_philox(k64, _SAMPLE))
    size = None if shape_t == () else shape_t
    try:
        out = gen.choice(pool, size=size, replace=replace, p=p, axis=axis)
    except ValueError as e:
        raise ValueError(f"fnn.random.choice: {e}") from None
    return np.asarray(out)
