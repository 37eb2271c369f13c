"""Small synthetic data sets, each seeded by an explicit key, and scikit-learn's 8x8 digits."""

from __future__ import annotations

import numpy as np

from fnn import random

__all__ = ["two_moons", "linear_regression_data", "sin_cos_sequences", "digits"]


def _count(n, what: str) -> int:
    n = int(n)
    if n < 0:
        raise ValueError(f"{what}: n must be >= 0, got {n}")
    return n


def two_moons(key, n: int, noise: float = 0.1, shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's ``make_moons`` geometry).

    Returns x float32 (n, 2) and y int64 (n,): ``n // 2`` points of class 0 on the upper moon
    (``cos t, sin t`` for t in [0, pi]) and the rest of class 1 on the lower one
    (``1 - cos t, 0.5 - sin t``), plus Gaussian noise of standard deviation `noise`; shuffled
    unless ``shuffle=False`` (then class 0 comes first)."""
    n = _count(n, "two_moons")
    k_noise, k_perm = random.split(key)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0.0, np.pi, n_out)
    t_in = np.linspace(0.0, np.pi, n_in)
    x = np.concatenate(
        [np.stack([np.cos(t_out), np.sin(t_out)], 1), np.stack([1.0 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)]
    )
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    if noise:
        x = x + float(noise) * random.normal(k_noise, (n, 2), dtype=np.float64)
    if shuffle:
        perm = random.permutation(k_perm, n)
        x, y = x[perm], y[perm]
    return x.astype(np.float32), y


def linear_regression_data(key, n: int, w, b=0.0, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs x ~ N(0, 1) of shape (n, d) and targets ``y = x @ w + b + noise * N(0, 1)``, float32.

    `w` has shape (d,) (then y has shape (n,)) or (d, k) (then y has shape (n, k))."""
    n = _count(n, "linear_regression_data")
    w = np.asarray(w, dtype=np.float32)
    if w.ndim not in (1, 2):
        raise ValueError(f"linear_regression_data: w must have shape (d,) or (d, k), got {w.shape}")
    k_x, k_noise = random.split(key)
    x = random.normal(k_x, (n, w.shape[0]))
    y = x @ w + np.asarray(b, dtype=np.float32)
    if noise:
        y = y + np.float32(noise) * random.normal(k_noise, y.shape)
    return x, y.astype(np.float32)


def sin_cos_sequences(
    key, n: int, length: int, dt: float = 0.1, freq: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of a sine wave as inputs and the matching cosine as targets, float32 (n, length, 1).

    Sequence i samples ``t = phase_i + dt * arange(length)`` with a phase uniform in [0, 2 pi);
    inputs are ``sin(freq * t)`` and targets ``cos(freq * t)`` (a sequence-to-sequence task whose
    answer at each step depends on the past, since sin alone does not fix the sign of cos)."""
    n = _count(n, "sin_cos_sequences")
    length = int(length)
    if length < 1:
        raise ValueError(f"sin_cos_sequences: length must be >= 1, got {length}")
    phase = random.uniform(key, (n, 1), dtype=np.float64, minval=0.0, maxval=2 * np.pi)
    t = freq * (phase + dt * np.arange(length))
    return np.sin(t).astype(np.float32)[..., None], np.cos(t).astype(np.float32)[..., None]


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: images float32 (1797, 1, 8, 8) in [0, 1] and labels int64.

    Needs scikit-learn (the data ships inside it; nothing is downloaded)."""
    try:
        from sklearn.datasets import load_digits  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(
            "fnn.data.digits needs scikit-learn, which bundles the 8x8 digits data set; "
            "install it with: pip install scikit-learn"
        ) from e
    d = load_digits()
    images = (np.asarray(d.images, dtype=np.float32) / np.float32(16.0))[:, None]
    return images, np.asarray(d.target, dtype=np.int64)
