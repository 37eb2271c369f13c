"""2-D products of CuPy arrays as one direct cuBLAS GEMM call.

`cupy.dot` reaches the same GEMM through several layers of argument handling that cost more host
time than the call itself (measured on an H100 host: 23-29 µs per product against 14-18 µs for
the direct call). A network of small layers is host-bound, and pays that on every product of
its forward and backward pass, so fnn calls `cublasSgemm` / `cublasDgemm` itself where the
operands allow it: float32 or float64, each C- or F-contiguous (a transposed view is one), no
zero-sized axis. Everything else, and every product when `CUPY_TF32` asks CuPy for TF32, goes
through `cupy.dot`.

`gemm_plan` is the layout arithmetic (pure, tested on the host); `gemm` makes the call.
"""

from __future__ import annotations

import os
import types
from typing import Any, NamedTuple

import numpy as np

OP_N, OP_T = 0, 1  # cublasOperation_t: as stored, transposed

_ONE = {np.dtype(np.float32): np.ones(1, np.float32), np.dtype(np.float64): np.ones(1, np.float64)}
_ZERO = {np.dtype(np.float32): np.zeros(1, np.float32), np.dtype(np.float64): np.zeros(1, np.float64)}
_POINTERS = {dt: (_ONE[dt].ctypes.data, _ZERO[dt].ctypes.data) for dt in _ONE}


class GemmPlan(NamedTuple):
    """Arguments of a column-major GEMM computing the row-major product a @ b: cuBLAS sees the
    result C (m, n), stored row-major, as the column-major (n, m) matrix C^T = b^T a^T."""
    op_b: int
    op_a: int
    n: int
    m: int
    k: int
    ldb: int
    lda: int


def _operand(rows: int, cols: int, strides: tuple, itemsize: int) -> tuple[int, int] | None:
    """(op, leading dimension) that makes cuBLAS read the row-major (rows, cols) matrix with
    these byte strides as its transpose, or None when it is neither C- nor F-contiguous."""
    s0, s1 = strides
    if (cols == 1 or s1 == itemsize) and (rows == 1 or s0 == cols * itemsize):
        return OP_N, cols       # C order: column-major (cols, rows), leading dimension cols
    if (rows == 1 or s0 == itemsize) and (cols == 1 or s1 == rows * itemsize):
        return OP_T, rows       # F order: column-major (rows, cols), to be transposed
    return None


def gemm_plan(a_shape: tuple, a_strides: tuple, b_shape: tuple, b_strides: tuple,
              itemsize: int) -> GemmPlan | None:
    """The GEMM arguments for a (m, k) @ b (k, n) with the given byte strides, or None when
    cuBLAS cannot read an operand in place (or an axis is empty: `cupy.dot` handles those)."""
    (m, k), (k2, n) = a_shape, b_shape
    if k != k2 or not (m and n and k):
        return None
    a = _operand(m, k, a_strides, itemsize)
    b = _operand(k, n, b_strides, itemsize)
    if a is None or b is None:
        return None
    return GemmPlan(b[0], a[0], n, m, k, b[1], a[1])


_cublas: types.ModuleType | None | bool = False  # False: not looked up yet


def _cublas_module() -> types.ModuleType | None:
    """CuPy's cuBLAS binding, or None (no such module, or TF32 asked of CuPy's products)."""
    global _cublas
    if _cublas is False:
        try:
            from cupy_backends.cuda.libs import cublas  # noqa: PLC0415 - part of CuPy
        except ImportError:
            cublas = None
        if os.environ.get("CUPY_TF32", "0") not in ("", "0"):
            cublas = None
        _cublas = cublas
    return _cublas


def gemm(cp: types.ModuleType, a: Any, b: Any) -> Any:
    """a @ b for 2-D CuPy arrays, by one cuBLAS call where `gemm_plan` allows, else cupy.dot."""
    dtype = a.dtype
    blas = _cublas_module()
    if blas is None or dtype is not b.dtype or dtype not in _POINTERS:
        return cp.dot(a, b)
    plan = gemm_plan(a.shape, a.strides, b.shape, b.strides, dtype.itemsize)
    if plan is None:
        return cp.dot(a, b)
    out = cp.empty((plan.m, plan.n), dtype)
    handle = cp.cuda.device.get_cublas_handle()
    blas.setStream(handle, cp.cuda.get_current_stream().ptr)
    one, zero = _POINTERS[dtype]
    call = blas.sgemm if dtype.itemsize == 4 else blas.dgemm
    call(handle, plan.op_b, plan.op_a, plan.n, plan.m, plan.k, one, b.data.ptr, plan.ldb,
         a.data.ptr, plan.lda, zero, out.data.ptr, plan.n)
    return out
