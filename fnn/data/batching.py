"""Minibatches and image augmentations, driven by explicit keys.

`batches` is pure given its key: the same key gives the same order, and each epoch visits every
example exactly once. The order is drawn on the host, so the same key gives the same batches
whichever device the data lives on; `device='gpu'` moves each batch there (`prefetch_to_device`
copies the next batch while the current one is in use). The augmentations work on a whole NCHW
batch at once (one gather, no loop over images) and follow the array's backend (NumPy or CuPy);
their random draws come from `fnn.random` on the images' device, fixed by the key (a GPU draw
differs from a CPU draw of the same key, as `fnn.random` documents).
"""

from __future__ import annotations

import collections
import operator
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from fnn import backend, random

__all__ = ["batches", "num_batches", "prefetch_to_device", "random_crop", "random_horizontal_flip",
           "normalize"]


def _positive_int(v, what: str) -> int:
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(v).__name__} {v!r}") from None
    if i < 1:
        raise ValueError(f"{what} must be >= 1, got {i}")
    return i


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches `batches` yields for `n` examples."""
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"num_batches: n must be >= 0, got {n}")
    bs = _positive_int(batch_size, "num_batches: batch_size")
    return n // bs if drop_last else -(-n // bs)


def prefetch_to_device(iterator: Iterable, device: str, size: int = 2) -> Iterator:
    """Yield the items (pytrees of arrays) of `iterator` moved to `device` ('cpu' or 'gpu'),
    keeping `size` moved items ready ahead of the one handed out.

    CuPy queues a host-to-GPU copy on the current stream (through a pinned staging buffer) without
    waiting for the GPU, so the copies of the next batches overlap the work on the current one.
    `size=1` moves each item only when it is asked for.
    """
    if device not in ("cpu", "gpu", "cuda"):
        raise ValueError(f"prefetch_to_device: unknown device {device!r}; expected 'cpu' or 'gpu'")
    size = _positive_int(size, "prefetch_to_device: size")

    def gen():
        ready: collections.deque = collections.deque()
        for item in iterator:
            ready.append(backend.to_device(item, device))
            if len(ready) >= size:
                yield ready.popleft()
        while ready:
            yield ready.popleft()

    return gen()


def batches(key, arrays, batch_size: int, shuffle: bool = True, drop_last: bool = False, *,
            device: str | None = None) -> Iterator:
    """Yield minibatches of `arrays` (one epoch).

    `arrays` is one array (then each batch is one array) or a tuple/list of arrays sharing their
    first dimension (then each batch is a tuple). With ``shuffle=True`` the order is a permutation
    drawn from `key` on the host (the same key, the same order, on every device); with
    ``shuffle=False`` batches are slices in order and `key` may be None. Every example appears
    exactly once, except that ``drop_last=True`` leaves out the final short batch. Arguments are
    checked at the call, not at the first `next`.

    Batches are gathered where the arrays live. `device='gpu'` (or 'cpu') moves each batch there,
    one batch ahead (`prefetch_to_device`); arrays already on the GPU are gathered there with the
    order copied to the device once per epoch.
    """
    single = not isinstance(arrays, (tuple, list))
    arrs = (arrays,) if single else tuple(arrays)
    if not arrs:
        raise ValueError("batches: arrays is empty; pass an array or a tuple of arrays")
    lengths = []
    for i, a in enumerate(arrs):
        shape = getattr(a, "shape", None)
        if shape is None or len(shape) == 0:
            raise TypeError(f"batches: arrays[{i}] must be an array with a leading batch dimension, got {type(a).__name__}")
        lengths.append(shape[0])
    if len(set(lengths)) != 1:
        raise ValueError(f"batches: the arrays must share their first dimension, got lengths {lengths}")
    n = lengths[0]
    bs = _positive_int(batch_size, "batches: batch_size")
    if shuffle:
        if key is None:
            raise ValueError("batches: shuffle=True needs a key (fnn.random.key(seed)); pass shuffle=False for a fixed order")
        order = random.permutation(key, n)
    count = num_batches(n, bs, drop_last)
    if device is not None and device not in ("cpu", "gpu", "cuda"):
        raise ValueError(f"batches: unknown device {device!r}; expected 'cpu', 'gpu' or None")

    def gen():
        orders: dict = {}  # the order on each array module that serves one of `arrays`
        for b in range(count):
            lo, hi = b * bs, min((b + 1) * bs, n)
            out = tuple(a[_order_on(orders, order, a)[lo:hi] if shuffle else slice(lo, hi)] for a in arrs)
            yield out[0] if single else out

    return gen() if device is None else prefetch_to_device(gen(), device)


def _order_on(orders: dict, order: np.ndarray, a: Any):
    """`order` on the device of `a`, copied there the first time it is asked for."""
    xp = backend.get_array_module(a)
    if xp not in orders:
        orders[xp] = order if xp is np else xp.asarray(order)
    return orders[xp]


# --------------------------------------------------------------------------------------------
# Augmentations (NCHW batches)


def _check_nchw(images, fn: str):
    if getattr(images, "ndim", None) != 4:
        raise ValueError(f"{fn}: expected a batch of images of shape (N, C, H, W), got shape {getattr(images, 'shape', None)}")


def _pair(v, what: str) -> tuple[int, int]:
    if isinstance(v, Sequence):
        if len(v) != 2:
            raise ValueError(f"{what} must be an int or a pair (h, w), got {v!r}")
        return _positive_int(v[0], what), _positive_int(v[1], what)
    s = _positive_int(v, what)
    return s, s


def random_crop(key, images, size, padding: int = 0, fill=0, padding_mode: str = "constant"):
    """Pad each image by `padding` on every side, then cut a `size` window at a random offset
    chosen independently per image (torchvision's ``RandomCrop``: offsets uniform over all
    windows that fit, padding_mode 'constant' (with `fill`), 'edge', 'reflect' or 'symmetric').

    `size` is an int or (h, w). Returns an array of shape (N, C, h, w) and the input's dtype."""
    _check_nchw(images, "random_crop")
    h, w = _pair(size, "random_crop: size")
    p = operator.index(padding)
    if p < 0:
        raise ValueError(f"random_crop: padding must be >= 0, got {p}")
    xp = backend.get_array_module(images)
    if p:
        pad = ((0, 0), (0, 0), (p, p), (p, p))
        if padding_mode == "constant":
            images = xp.pad(images, pad, mode="constant", constant_values=fill)
        elif padding_mode in ("edge", "reflect", "symmetric"):
            images = xp.pad(images, pad, mode=padding_mode)
        else:
            raise ValueError(f"random_crop: padding_mode must be 'constant', 'edge', 'reflect' or 'symmetric', got {padding_mode!r}")
    N, C, H, W = images.shape
    if h > H or w > W:
        raise ValueError(f"random_crop: crop size {(h, w)} is larger than the padded image {(H, W)}")
    k_i, k_j = random.split(key)
    device = backend.device_of(images)
    top = random.randint(k_i, (N,), 0, H - h + 1, dtype=np.int64, device=device)
    left = random.randint(k_j, (N,), 0, W - w + 1, dtype=np.int64, device=device)
    rows = top[:, None] + xp.arange(h)  # (N, h)
    cols = left[:, None] + xp.arange(w)  # (N, w)
    n_idx = xp.arange(N)[:, None, None, None]
    c_idx = xp.arange(C)[None, :, None, None]
    return images[n_idx, c_idx, rows[:, None, :, None], cols[:, None, None, :]]


def random_horizontal_flip(key, images, p: float = 0.5):
    """Mirror each image left-right (its last axis) with probability `p`, independently per image."""
    if getattr(images, "ndim", 0) < 2:
        raise ValueError(f"random_horizontal_flip: expected a batch of images, got shape {getattr(images, 'shape', None)}")
    xp = backend.get_array_module(images)
    flip = random.bernoulli(key, p, (images.shape[0],), device=backend.device_of(images))
    return xp.where(flip.reshape((-1,) + (1,) * (images.ndim - 1)), images[..., ::-1], images)


def normalize(images, mean, std):
    """``(images - mean) / std`` per channel (axis 1 of NCHW); `mean` and `std` are scalars or one
    value per channel. Integer images are converted to float32 first; float dtypes are kept."""
    xp = backend.get_array_module(images)
    if images.ndim < 2:
        raise ValueError(f"normalize: expected images of shape (N, C, ...), got shape {images.shape}")
    dt = images.dtype if images.dtype.kind == "f" else np.dtype(np.float32)
    C = images.shape[1]
    shape = (1, C) + (1,) * (images.ndim - 2)
    m = np.asarray(mean, dtype=dt)
    s = np.asarray(std, dtype=dt)
    for name, v in (("mean", m), ("std", s)):
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] not in (1, C)):
            raise ValueError(f"normalize: {name} must be a scalar or have one value per channel ({C}), got shape {v.shape}")
    if np.any(s == 0):
        raise ValueError("normalize: std must be non-zero")
    m = xp.asarray(np.broadcast_to(m.reshape(-1), (C,)).reshape(shape))
    s = xp.asarray(np.broadcast_to(s.reshape(-1), (C,)).reshape(shape))
    return ((images.astype(dt, copy=False) - m) / s).astype(dt, copy=False)
