"""fnn._cublas: the layout arithmetic of the direct cuBLAS GEMM (checked on the host by running the
column-major GEMM it describes in NumPy), and the product itself on a GPU."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import _cublas, backend
from tests.backends import requires_cupy

LAYOUTS = ("C", "F", "strided")


def _matrix(rng, rows, cols, layout, dtype):
    base = rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "C":
        return np.ascontiguousarray(base)
    if layout == "F":
        return np.asfortranarray(base)
    wide = np.zeros((rows, 2 * cols), dtype)
    wide[:, ::2] = base
    return wide[:, ::2]  # neither C- nor F-contiguous (unless it has one column)


def _stored(x, op, rows, cols, ld):
    """The column-major matrix cuBLAS reads from x's memory: op(stored) is (rows, cols)."""
    flat = x.ravel(order="K")  # x's memory in order (x is C- or F-contiguous)
    shape = (rows, cols) if op == _cublas.OP_N else (cols, rows)
    assert shape[0] <= ld and (shape[1] - 1) * ld + shape[0] <= flat.size
    stored = np.lib.stride_tricks.as_strided(flat, shape=shape, strides=(x.itemsize, ld * x.itemsize))
    return stored if op == _cublas.OP_N else stored.T


@given(m=st.integers(0, 5), k=st.integers(0, 5), n=st.integers(0, 5),
       a_layout=st.sampled_from(LAYOUTS), b_layout=st.sampled_from(LAYOUTS),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_gemm_plan_describes_the_row_major_product(m, k, n, a_layout, b_layout, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = _matrix(rng, m, k, a_layout, dtype), _matrix(rng, k, n, b_layout, dtype)
    plan = _cublas.gemm_plan(a.shape, a.strides, b.shape, b.strides, a.itemsize)
    readable = all(x.flags.c_contiguous or x.flags.f_contiguous for x in (a, b))
    if not (m and k and n) or not readable:
        assert plan is None
        return
    assert plan is not None and (plan.m, plan.n, plan.k) == (m, n, k)
    # cuBLAS computes the column-major (n, m) matrix op(B') @ op(A'), stored with ldc = n:
    # read back row-major, that is the (m, n) product.
    c_colmajor = _stored(b, plan.op_b, n, k, plan.ldb) @ _stored(a, plan.op_a, k, m, plan.lda)
    np.testing.assert_allclose(c_colmajor.T, a @ b, rtol=1e-5, atol=1e-6)


def test_gemm_plan_refuses_mismatched_inner_sizes():
    assert _cublas.gemm_plan((2, 3), (12, 4), (4, 2), (8, 4), 4) is None


@requires_cupy
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_layout", LAYOUTS)
@pytest.mark.parametrize("b_layout", LAYOUTS)
def test_products_on_cupy_match_numpy_in_every_layout(dtype, a_layout, b_layout):
    import cupy as cp

    rng = np.random.default_rng(0)
    for m, k, n in [(7, 5, 3), (1, 9, 4), (6, 1, 1), (0, 3, 2), (33, 130, 65)]:
        a, b = _matrix(rng, m, k, a_layout, dtype), _matrix(rng, k, n, b_layout, dtype)
        ga, gb = cp.asarray(a), cp.asarray(b)
        if a_layout == "strided":  # keep the GPU copy non-contiguous too
            ga = cp.zeros((m, 2 * k), dtype)
            ga[:, ::2] = cp.asarray(a)
            ga = ga[:, ::2]
        out = backend.matmul(ga, gb)
        assert isinstance(out, cp.ndarray) and out.dtype == dtype and out.shape == (m, n)
        np.testing.assert_allclose(cp.asnumpy(out), a @ b, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5)


@requires_cupy
def test_mixed_dtype_products_on_cupy_fall_back_to_cupy_dot():
    import cupy as cp

    a = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    b = cp.arange(6, dtype=cp.float64).reshape(3, 2)
    out = backend.matmul(a, b)
    assert out.dtype == np.float64
    np.testing.assert_allclose(cp.asnumpy(out), cp.asnumpy(a).astype(np.float64) @ cp.asnumpy(b))
