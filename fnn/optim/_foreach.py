"""Elementwise optimizer arithmetic over many arrays in few launches, for CuPy parameter trees.

An optimizer step applies two or three elementwise operations to every parameter; on a GPU each is
a launch whose host cost (15-20 us through CuPy) outweighs the arithmetic for most of a network's
arrays. Here one launch updates up to `_GROUP` arrays of one dtype, as PyTorch's `_foreach` ops do:
`out_k = a * x_k (+ b * y_k)`, computed in double and rounded once. NumPy trees, traced values,
mixed dtypes and non-contiguous arrays take the plain per-leaf operations.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fnn import backend, tree

__all__ = ["scale_tree", "axpby_tree", "add_into_tree", "cuda_sources"]

_GROUP = 16
_SLOTS = ", ".join([f"T* out{k}" for k in range(_GROUP)] + [f"const T* x{k}" for k in range(_GROUP)]
                   + [f"const T* y{k}" for k in range(_GROUP)] + [f"long long n{k}" for k in range(_GROUP)])


_CASES = "\n".join(f"        case {k}: out = out{k}; x = x{k}; y = y{k}; n = n{k}; break;"
                   for k in range(_GROUP))


_SOURCE = r"""
typedef %(T)s T;

extern "C" __global__ void fnn_foreach_axpby(%(slots)s, long long count, double a, double b, int has_y) {
    const long long t = blockIdx.y;
    if (t >= count) return;
    T* out; const T* x; const T* y; long long n;
    switch (t) {  // (not a table indexed by t: that would be a per-thread copy in local memory)
%(cases)s
        default: return;
    }
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double v = a * (double)x[i];
        if (has_y) v += b * (double)y[i];
        out[i] = (T)v;
    }
}
"""

_THREADS = 256
_MAX_BLOCKS = 1024
_kernels: dict = {}


def cuda_sources() -> dict[str, str]:
    """Every CUDA source this module compiles, by variant (for a compile check without a GPU)."""
    return {f"foreach {t}": _SOURCE % {"T": t, "slots": _SLOTS, "cases": _CASES} for t in ("float", "double")}


def _kernel(xp, dtype):
    key = (xp, dtype.char)
    if key not in _kernels:
        source = cuda_sources()[f"foreach {'float' if dtype == np.float32 else 'double'}"]
        _kernels[key] = xp.RawModule(code=source).get_function("fnn_foreach_axpby")
    return _kernels[key]


def _fusable(*leaf_lists: list) -> bool:
    """Every leaf a C-contiguous CuPy float32/float64 array, the lists alike in shapes and dtypes,
    and CuPy compiling kernels."""
    first = leaf_lists[0]
    if not first or backend.kernel_module(first[0]) is None:
        return False
    for leaves in leaf_lists:
        if len(leaves) != len(first):
            return False
        for a, b in zip(leaves, first):
            if not backend.is_cupy_array(a) or a.dtype != b.dtype or a.shape != b.shape \
                    or a.dtype not in (np.float32, np.float64) or not a.flags.c_contiguous:
                return False
    return True


def _launch(outs: list, xs: list, ys: list | None, a: float, b: float) -> None:
    """out_k = a * x_k + b * y_k (or a * x_k) for every k, `_GROUP` arrays per launch and dtype."""
    xp = backend.get_array_module(outs[0])
    by_dtype: dict = {}
    for k, out in enumerate(outs):
        by_dtype.setdefault(out.dtype, []).append(k)
    for dtype, ks in by_dtype.items():
        kernel = _kernel(xp, dtype)
        for start in range(0, len(ks), _GROUP):
            group = ks[start:start + _GROUP]
            pad = _GROUP - len(group)
            o = [outs[k] for k in group] + [outs[group[0]]] * pad
            x = [xs[k] for k in group] + [xs[group[0]]] * pad
            y = ([ys[k] for k in group] if ys is not None else [xs[k] for k in group]) + [x[0]] * pad
            n = [np.int64(outs[k].size) for k in group] + [np.int64(0)] * pad
            largest = max(outs[k].size for k in group)
            blocks = max(1, min(-(-largest // _THREADS), _MAX_BLOCKS))
            kernel((blocks, len(group)), (_THREADS,),
                   (*o, *x, *y, *n, np.int64(len(group)), np.float64(a), np.float64(b),
                    np.int32(ys is not None)))


def scale_tree(updates: Any, factor: float, plain: Callable[[Any], Any]) -> Any:
    """`factor * u` for every leaf, fresh arrays; `plain(u)` per leaf where not fusable."""
    if not backend.cupy_loaded():
        return tree.map(plain, updates)
    leaves, treedef = tree.flatten(updates)
    if not _fusable(leaves):
        return treedef.unflatten([plain(u) for u in leaves])
    xp = backend.get_array_module(leaves[0])
    outs = [xp.empty_like(u) for u in leaves]
    _launch(outs, leaves, None, factor, 0.0)
    return treedef.unflatten(outs)


def axpby_tree(a: float, xs: list, b: float, ys: list) -> list | None:
    """Fresh `a * x + b * y` for the paired leaves, or None where not fusable."""
    if not _fusable(xs, ys):
        return None
    xp = backend.get_array_module(xs[0])
    outs = [xp.empty_like(x) for x in xs]
    _launch(outs, xs, ys, a, b)
    return outs


def add_into_tree(params: list, updates: list) -> bool:
    """`p += u` in place for the paired leaves when fusable (True), else nothing (False)."""
    if not _fusable(params, updates):  # (CuPy arrays are always writable)
        return False
    _launch(params, params, updates, 1.0, 1.0)
    return True
