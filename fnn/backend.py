"""The one place that decides which array module (NumPy or CuPy) serves an array.

Everything else in fnn asks this module instead of importing CuPy: CuPy is imported lazily, only
when a CuPy array is actually seen or a device transfer is asked for, so `import fnn` stays light
and works on machines without CUDA.
"""

from __future__ import annotations

import contextlib
import os
import types
from typing import Any, Iterator

import numpy as np

from fnn import _cublas

__all__ = [
    "get_array_module",
    "add_keeping_layout",
    "module_for_type",
    "is_cupy_array",
    "cupy_available",
    "device_of",
    "check_same_backend",
    "to_numpy",
    "to_cupy",
    "to_device",
    "MixedBackendError",
    "checks_values",
    "scatter_add",
    "cupy_loaded",
    "kernel_module",
    "matmul",
    "device_value_checks",
]

_cupy: types.ModuleType | None = None


class MixedBackendError(TypeError):
    """Raised when one operation is given arrays that live on different devices."""


def _import_cupy() -> types.ModuleType:
    global _cupy
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415  (the only cupy import in fnn)
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise ImportError(
                "CuPy is not installed; install fnn with the 'cuda' extra: pip install 'fnn[cuda]'"
            ) from exc
        _cupy = cupy
    return _cupy


def matmul(a: Any, b: Any) -> Any:
    """`a @ b` for plain arrays. Two 2-D CuPy arrays go to cuBLAS directly (`fnn._cublas`), or
    through `cupy.dot`, at a fraction of `cupy.matmul`'s host cost per call, which a small
    network pays on every layer."""
    if type(a) is not np.ndarray and getattr(a, "ndim", 0) == 2 and getattr(b, "ndim", 0) == 2 \
            and is_cupy_array(a) and is_cupy_array(b):
        cp = kernel_module(a, b)
        if cp is None:  # the tests' NumPy-backed stand-in
            return _import_cupy().dot(a, b)
        return _cublas.gemm(cp, a, b)
    return a @ b


def add_keeping_layout(a: Any, b: Any) -> Any:
    """a + b, for two arrays of one shape and dtype, in a's memory layout. NumPy's elementwise
    results follow their inputs' layout already; CuPy's are C-ordered, which would turn the
    channel-major convolution outputs' cotangents into (N, C, H, W) order where a residual
    connection sums two of them, and cost the convolution's backward pass a transposing copy."""
    if is_cupy_array(a) and is_cupy_array(b) and a.shape == b.shape and a.dtype == b.dtype \
            and not a.flags.c_contiguous:
        cp = _import_cupy()
        return cp.add(a, b, out=cp.empty_like(a))
    return a + b


def scatter_add(out: Any, idx: Any, values: Any) -> None:
    """out[idx] += values in place on a CuPy array, repeated positions adding up (cupyx's
    scatter_add, which, unlike CuPy's add.at, takes slices in the index)."""
    import cupyx  # noqa: PLC0415  (imported only when a CuPy array is already in hand)

    cupyx.scatter_add(out, idx, values)


def kernel_module(*arrays: Any) -> types.ModuleType | None:
    """CuPy, when every array given (None aside) is a CuPy array and CuPy compiles kernels
    (RawModule); None otherwise (NumPy, traced values, the tests' NumPy-backed stand-in), where
    the caller's array-operation path serves. The dispatch test of fnn's own GPU kernels."""
    if not arrays or any(a is not None and not is_cupy_array(a) for a in arrays):
        return None
    try:
        cp = _import_cupy()
    except ImportError:  # an array type that only looks like CuPy's
        return None
    return cp if hasattr(cp, "RawModule") else None


def cupy_loaded() -> bool:
    """True once CuPy has been imported by fnn (a CuPy array was seen or a transfer asked for):
    a free test that lets host-only code skip its GPU paths altogether."""
    return _cupy is not None


def is_cupy_array(x: Any) -> bool:
    """True for a CuPy ndarray, decided without importing CuPy."""
    return type(x).__module__.startswith("cupy")


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        cp = _import_cupy()
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - any failure means "no usable GPU"
        return False


def get_array_module(*arrays: Any) -> types.ModuleType:
    """`numpy` or `cupy`, whichever serves these arrays; NumPy when none is a CuPy array.

    Traced values are looked through to the array they carry.
    """
    if len(arrays) == 1 and type(arrays[0]) is np.ndarray:  # the common call, answered at once
        return np
    found_cupy = False
    found_numpy = False
    for a in arrays:
        a = getattr(a, "_value", a)
        if type(a) is np.ndarray:
            found_numpy = True
        elif is_cupy_array(a):
            found_cupy = True
        elif isinstance(a, np.ndarray):
            found_numpy = True
    if found_cupy and found_numpy:
        raise MixedBackendError(
            "arrays on different devices were mixed in one operation (NumPy and CuPy); "
            "move them to one device first with fnn.backend.to_numpy / fnn.backend.to_cupy"
        )
    return _import_cupy() if found_cupy else np


def module_for_type(array_type: type) -> types.ModuleType:
    """`numpy` or `cupy`, whichever the array type `array_type` belongs to."""
    return _import_cupy() if array_type.__module__.startswith("cupy") else np


def device_of(x: Any) -> str:
    """'cpu' for NumPy arrays and Python scalars, 'gpu' for CuPy arrays."""
    return "gpu" if is_cupy_array(getattr(x, "_value", x)) else "cpu"


def check_same_backend(arrays: Any, where: str) -> None:
    """Raise MixedBackendError naming `where` if `arrays` mix NumPy and CuPy arrays."""
    try:
        get_array_module(*arrays)
    except MixedBackendError as exc:
        devices = [device_of(a) for a in arrays]
        raise MixedBackendError(f"{where}: {exc} (argument devices: {devices})") from None


def _map_leaves(fn, tree: Any) -> Any:
    from fnn import tree as tree_util  # noqa: PLC0415  (tree sits beside backend, not above it)

    return tree_util.map(fn, tree)


def to_numpy(tree: Any) -> Any:
    """Copy every CuPy array in a pytree to host memory; other leaves are left as they are."""

    def move(x: Any) -> Any:
        return x.get() if is_cupy_array(x) else x

    return _map_leaves(move, tree)


def to_cupy(tree: Any) -> Any:
    """Copy every NumPy array in a pytree to the current GPU; other leaves are left as they are."""
    cp = _import_cupy()

    def move(x: Any) -> Any:
        return cp.asarray(x) if isinstance(x, np.ndarray) else x

    return _map_leaves(move, tree)


def to_device(tree: Any, device: str) -> Any:
    """Move a pytree's arrays to 'cpu' (NumPy) or 'gpu' (CuPy)."""
    if device == "cpu":
        return to_numpy(tree)
    if device in ("gpu", "cuda"):
        return to_cupy(tree)
    raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'gpu'")


# Checks of array *values* (class ids in range, say) read the values back to the host. For a CuPy
# array that waits for every queued kernel: a synchronisation in each training step, the end of the
# overlap between Python and the GPU. So they run on the GPU only when asked for (as a debugging
# aid), like PyTorch's device-side asserts they replace; shapes and dtypes are always checked.
_device_value_checks = os.environ.get("FNN_DEVICE_CHECKS", "") not in ("", "0")


def checks_values(x: Any) -> bool:
    """True where a check of x's values may run: always for host data, for CuPy arrays only
    inside `device_value_checks()` or with the environment variable FNN_DEVICE_CHECKS=1."""
    return _device_value_checks or not is_cupy_array(getattr(x, "_value", x))


@contextlib.contextmanager
def device_value_checks(enabled: bool = True) -> Iterator[None]:
    """Within this context, value checks (label and id ranges) also run on GPU arrays, at the
    price of a synchronisation each."""
    global _device_value_checks
    previous, _device_value_checks = _device_value_checks, enabled
    try:
        yield
    finally:
        _device_value_checks = previous
