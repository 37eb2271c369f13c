"""The small part of `cupyx` the fake CuPy beside it needs: scatter_add and allow_synchronize."""

from __future__ import annotations

import contextlib

import numpy as _np

import cupy as _cp


class DeviceSynchronized(RuntimeError):
    """Raised when the device is synchronised inside `allow_synchronize(False)`."""


@contextlib.contextmanager
def allow_synchronize(allow: bool):
    previous = _cp._SyncState.allowed
    _cp._SyncState.allowed = allow
    try:
        yield
    finally:
        _cp._SyncState.allowed = previous


def scatter_add(a, slices, value):
    _np.add.at(a._a, _cp._lenient(slices), _cp._strict(value))
