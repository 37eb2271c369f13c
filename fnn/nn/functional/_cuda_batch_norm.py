"""CuPy kernels for batch norm: the forward pass, the backward pass and the running averages in
one launch each.

Written with array operations, a batch norm on the GPU is a dozen launches each way (channel
sums, centring, scaling, the three rules' sums) and CuPy's per-call cost makes it the largest
host cost of a ResNet step. Here one block per channel makes two passes over its channel for the
statistics (mean, then the variance of the centred values, accumulated in double) and a third
that writes `xhat` and `y`; the backward kernel sums `g` and `g * xhat` per channel and writes
`dx = k * (g - sum_g / n - xhat * sum_gx / n)`, `k = scale * inv_std`, the same formula as the
array path. Inputs of shape (N, C, ...) are read in place when each (n, c) slice is contiguous
(NCHW or channel-major memory); the outputs get the input's layout.

`batch_norm_kernels(x)` is the dispatch test: the kernels for a real CuPy float32/float64 array,
None otherwise (NumPy, the NumPy-backed stand-in of the tests), where the array path serves.
"""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np

from fnn.backend import kernel_module

__all__ = ["batch_norm_kernels", "cuda_sources"]

_SOURCE = r"""
typedef %(T)s T;

__device__ double block_sum(double v, double* shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x >> 5) ? shared[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
        if (lane == 0) shared[0] = v;
    }
    __syncthreads();
    return shared[0];
}

// Element k of channel c sits at n * sn + c * sc + m (k = n * M + m): each thread walks its
// elements k = t, t + blockDim, ... keeping (n, m) without a division per element.
#define FOR_CHANNEL(n, m)                                                                  \
    for (long long n = threadIdx.x / M, m = threadIdx.x %% M; n < N;                      \
         m += step_m, n += step_n, (m >= M ? (m -= M, ++n) : 0LL))

extern "C" __global__ void fnn_bn_forward(
        const T* x, const T* scale, const T* bias, T* y, T* xhat, T* stats,
        long long N, long long C, long long M, long long x_sn, long long x_sc,
        long long y_sn, long long y_sc, double eps) {
    __shared__ double shared[32];
    const long long c = blockIdx.x;
    const long long step_n = blockDim.x / M, step_m = blockDim.x %% M;
    const T* xc = x + c * x_sc;
    const double count = (double)(N * M);
    double s = 0.0;
    FOR_CHANNEL(n, m) s += (double)xc[n * x_sn + m];
    const double mean = block_sum(s, shared) / count;
    double v = 0.0;
    FOR_CHANNEL(n, m) { const double d = (double)xc[n * x_sn + m] - mean; v += d * d; }
    const double var = block_sum(v, shared) / count;
    const double inv_std = 1.0 / sqrt(var + eps);
    const double a = scale ? (double)scale[c] : 1.0, b = bias ? (double)bias[c] : 0.0;
    T* yc = y + c * y_sc;
    T* hc = xhat + c * y_sc;
    FOR_CHANNEL(n, m) {
        const T h = (T)(((double)xc[n * x_sn + m] - mean) * inv_std);
        hc[n * y_sn + m] = h;
        yc[n * y_sn + m] = (T)((double)h * a + b);
    }
    if (threadIdx.x == 0) { stats[c] = (T)mean; stats[C + c] = (T)var; stats[2 * C + c] = (T)inv_std; }
}

// mode 0: the sums only; 1: the sums and dx; 2: dx from the sums given in `sums`.
extern "C" __global__ void fnn_bn_backward(
        const T* g, const T* xhat, const T* scale, const T* inv_std, T* dx, T* sums,
        long long N, long long C, long long M, long long g_sn, long long g_sc,
        long long h_sn, long long h_sc, long long d_sn, long long d_sc, int mode) {
    __shared__ double shared[32];
    const long long c = blockIdx.x;
    const long long step_n = blockDim.x / M, step_m = blockDim.x %% M;
    const T* gc = g + c * g_sc;
    const T* hc = xhat + c * h_sc;
    double sg, sgx;
    if (mode == 2) {
        sg = (double)sums[c]; sgx = (double)sums[C + c];
    } else {
        double s1 = 0.0, s2 = 0.0;
        FOR_CHANNEL(n, m) {
            const double gv = (double)gc[n * g_sn + m];
            s1 += gv; s2 += gv * (double)hc[n * h_sn + m];
        }
        sg = block_sum(s1, shared);
        sgx = block_sum(s2, shared);
        if (threadIdx.x == 0) { sums[c] = (T)sg; sums[C + c] = (T)sgx; }
    }
    if (mode == 0) return;
    const double count = (double)(N * M);
    const double k = (scale ? (double)scale[c] : 1.0) * (double)inv_std[c];
    const double mg = sg / count, mgx = sgx / count;
    T* dc = dx + c * d_sc;
    FOR_CHANNEL(n, m) {
        dc[n * d_sn + m] = (T)(k * ((double)gc[n * g_sn + m] - mg - (double)hc[n * h_sn + m] * mgx));
    }
}
"""

_THREADS = 512
_cache: dict = {}


def cuda_sources() -> dict[str, str]:
    """Every CUDA source this module compiles, by variant (for a compile check without a GPU)."""
    return {f"batch_norm {t}": _SOURCE % {"T": t} for t in ("float", "double")}


def _kernel(xp: types.ModuleType, dtype: np.dtype, name: str):
    key = (dtype.char, name)
    if key not in _cache:
        ctype = "float" if dtype == np.float32 else "double"
        module = xp.RawModule(code=cuda_sources()[f"batch_norm {ctype}"])
        _cache[key] = module.get_function(name)
    return _cache[key]


def _slice_strides(a) -> tuple[int, int] | None:
    """(stride of n, stride of c) in elements when every (n, c) slice of `a` is C-contiguous."""
    item = a.itemsize
    expected = item
    for size, stride in zip(reversed(a.shape[2:]), reversed(a.strides[2:])):
        if size != 1 and stride != expected:
            return None
        expected *= size
    return a.strides[0] // item, a.strides[1] // item


def _layout(xp, a):
    """`a` (copied to NCHW order if its (n, c) slices are not contiguous) and its strides."""
    strides = _slice_strides(a)
    if strides is None:
        a = xp.ascontiguousarray(a)
        strides = _slice_strides(a)
    return a, strides


class BatchNormKernels:
    """The two kernels for one array module; see the module docstring."""

    def __init__(self, xp: types.ModuleType):
        self.xp = xp
        self._running = None

    def _dims(self, x):
        n, c = x.shape[0], x.shape[1]
        return n, c, math.prod(x.shape[2:])

    def forward(self, x, scale, bias, eps: float):
        """(y, xhat, mean, var, inv_std): y and xhat in x's layout, the statistics of shape (C,)."""
        xp = self.xp
        x, (x_sn, x_sc) = _layout(xp, x)
        n, c, m = self._dims(x)
        y = xp.empty_like(x)
        xhat = xp.empty_like(x)
        y_sn, y_sc = _slice_strides(y) or (None, None)
        if y_sn is None or _slice_strides(xhat) != (y_sn, y_sc):
            y, xhat = xp.empty(x.shape, x.dtype), xp.empty(x.shape, x.dtype)
            y_sn, y_sc = _slice_strides(y)
        stats = xp.empty(3 * c, x.dtype)
        if x.size:
            _kernel(xp, x.dtype, "fnn_bn_forward")(
                (c,), (_THREADS,),
                (x, _param(xp, scale, x.dtype), _param(xp, bias, x.dtype), y, xhat, stats,
                 np.int64(n), np.int64(c), np.int64(m), np.int64(x_sn), np.int64(x_sc),
                 np.int64(y_sn), np.int64(y_sc), np.float64(eps)))
        return y, xhat, stats[:c], stats[c:2 * c], stats[2 * c:]

    def backward(self, g, xhat, scale, inv_std, sums=None, want_dx: bool = True):
        """(dx or None, sums): sums = (sum of g, sum of g * xhat) per channel, stacked (2, C);
        given `sums`, only dx is computed from them."""
        xp = self.xp
        g, (g_sn, g_sc) = _layout(xp, g)
        xhat, (h_sn, h_sc) = _layout(xp, xhat)
        n, c, m = self._dims(g)
        mode = 2 if sums is not None else (1 if want_dx else 0)
        if sums is None:
            sums = xp.empty(2 * c, g.dtype)
        dx, d_sn, d_sc = None, 0, 0
        if want_dx:
            # dx in g's layout: channel-major like the convolution outputs (whose cotangent it
            # usually is), so the convolution's backward GEMMs read it without a transposing copy
            dx = xp.empty_like(g)
            strides = _slice_strides(dx)
            if strides is None:
                dx = xp.empty(g.shape, g.dtype)
                strides = _slice_strides(dx)
            d_sn, d_sc = strides
        if g.size:
            _kernel(xp, g.dtype, "fnn_bn_backward")(
                (c,), (_THREADS,),
                (g, xhat, _param(xp, scale, g.dtype), inv_std.reshape(-1), dx if dx is not None else g, sums,
                 np.int64(n), np.int64(c), np.int64(m), np.int64(g_sn), np.int64(g_sc),
                 np.int64(h_sn), np.int64(h_sc), np.int64(d_sn), np.int64(d_sc), np.int32(mode)))
        elif mode != 2:
            sums[...] = 0
        return dx, sums.reshape(2, c)


    def running_average(self, old_mean, old_var, mean, var, momentum: float, correction: float):
        """(1 - momentum) * old + momentum * new for the mean and the (corrected) variance, in one
        launch; None where the dtypes differ (the array path then serves)."""
        if not old_mean.dtype == old_var.dtype == mean.dtype == var.dtype:
            return None
        if self._running is None:
            self._running = self.xp.ElementwiseKernel(
                "T old_m, T old_v, T m, T v, float64 mom, float64 corr", "T new_m, T new_v",
                "new_m = (T)((1.0 - mom) * old_m + mom * m); new_v = (T)((1.0 - mom) * old_v + mom * v * corr)",
                "fnn_bn_running_average")
        return self._running(old_mean, old_var, mean, var, float(momentum), float(correction))


def _param(xp, p, dtype):
    """A per-channel parameter as a contiguous array of `dtype`, or a null pointer for None."""
    if p is None:
        return np.uint64(0)
    return xp.ascontiguousarray(p, dtype=dtype)


_instances: dict = {}


def batch_norm_kernels(*arrays: Any) -> BatchNormKernels | None:
    """The kernels when every array (None aside) is a CuPy float32/float64 array and CuPy
    compiles kernels; None otherwise (traced values included: the array path serves)."""
    xp = kernel_module(*arrays)
    if xp is None or any(a is not None and a.dtype not in (np.float32, np.float64) for a in arrays):
        return None
    if xp not in _instances:
        _instances[xp] = BatchNormKernels(xp)
    return _instances[xp]
