"""CuPy kernels for softmax cross-entropy with integer labels over (N, K) logits.

With array operations the loss is a dozen launches (max, shift, exp, sums, log, the labels'
entries picked by fancy indexing, the mean) and its gradient five more; on a small network these
launches cost more host time than the rest of the step. Here the forward pass is one launch (one
warp per row: max, log-sum-exp and the label's entry in double, the softmax written for the
backward pass, the mean or sum reduced in a fixed order) and the gradient one more:
`(softmax - eps / K - (1 - eps) * onehot) * g / n`, the array path's formula.

A label outside [0, K) gives a NaN loss for its row (read nothing out of bounds); the range check
itself runs only inside `fnn.backend.device_value_checks()`.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

from fnn.backend import kernel_module

__all__ = ["cross_entropy_kernels", "cuda_sources"]

_FORWARD = r"""
typedef %(T)s T;
typedef %(L)s L;

extern "C" __global__ void fnn_sce_forward(
        const T* z, const L* labels, T* softmax, T* out, double* partials,
        long long N, long long K, double smoothing, double scale, int want_softmax, int reduce) {
    __shared__ double warp_sums[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long warps = blockDim.x >> 5;
    double acc = 0.0;
    for (long long r = blockIdx.x * warps + warp; r < N; r += gridDim.x * warps) {
        const T* row = z + r * K;
        double m = __longlong_as_double(0xfff0000000000000LL);  // -inf
        for (long long j = lane; j < K; j += 32) m = fmax(m, (double)row[j]);
        for (int o = 16; o > 0; o >>= 1) m = fmax(m, __shfl_xor_sync(0xffffffff, m, o));
        double s = 0.0, sz = 0.0;
        for (long long j = lane; j < K; j += 32) { const double d = (double)row[j] - m; s += exp(d); sz += d; }
        for (int o = 16; o > 0; o >>= 1) {
            s += __shfl_xor_sync(0xffffffff, s, o);
            sz += __shfl_xor_sync(0xffffffff, sz, o);
        }
        const double lse = log(s);
        const long long label = (long long)labels[r];
        double loss = (label >= 0 && label < K) ? lse - ((double)row[label] - m)
                                                : __longlong_as_double(0x7ff8000000000000LL);  // NaN
        if (smoothing != 0.0) loss = (1.0 - smoothing) * loss - smoothing * (sz / (double)K - lse);
        if (want_softmax) {
            T* srow = softmax + r * K;
            for (long long j = lane; j < K; j += 32) srow[j] = (T)(exp((double)row[j] - m) / s);
        }
        if (reduce) acc += loss;
        else if (lane == 0) out[r] = (T)loss;
    }
    if (!reduce) return;
    if (lane == 0) warp_sums[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (long long w = 0; w < warps; ++w) total += warp_sums[w];
        if (gridDim.x == 1) out[0] = (T)(total * scale);
        else partials[blockIdx.x] = total;
    }
}
"""

_GRAD_BODY = """
const long long row = i / K;
const long long j = i - row * K;
const long long label = (long long)labels[row];
const double gv = (double)g[per_row ? row : 0] * inv_n;
out = (T)(((double)p - s / (double)K - (j == label ? 1.0 - s : 0.0)) * gv);
"""

def cuda_sources() -> dict[str, str]:
    """Every CUDA source this module compiles, by variant (for a compile check without a GPU)."""
    return {f"cross_entropy {t} {lab}": _FORWARD % {"T": t, "L": lab}
            for t in ("float", "double") for lab in ("int", "long long")}


_THREADS = 256
_ONE_BLOCK_ROWS = 8192  # up to this many rows, one block reduces the loss itself


class CrossEntropyKernels:
    """The forward and gradient kernels for one array module; see the module docstring."""

    def __init__(self, xp: types.ModuleType):
        self.xp = xp
        self._forward: dict = {}
        self._grad = None

    def _forward_kernel(self, dtype, label_dtype):
        key = (dtype.char, label_dtype.char)
        if key not in self._forward:
            source = cuda_sources()[f"cross_entropy {'float' if dtype == np.float32 else 'double'} "
                                    f"{'int' if label_dtype == np.int32 else 'long long'}"]
            self._forward[key] = self.xp.RawModule(code=source).get_function("fnn_sce_forward")
        return self._forward[key]

    def forward(self, logits, labels, smoothing: float, reduction: str, want_softmax: bool):
        """(loss, softmax or None) for C-contiguous (N, K) logits and (N,) integer labels."""
        xp = self.xp
        n, k = logits.shape
        labels = _as_label_array(xp, labels)
        reduce = reduction != "none"
        blocks = 1 if n <= _ONE_BLOCK_ROWS else min(-(-n // (_THREADS // 32)), 1024)
        out = xp.empty(() if reduce else (n,), logits.dtype)
        softmax = xp.empty((n, k), logits.dtype) if want_softmax else out
        partials = xp.empty(blocks, np.float64) if blocks > 1 else out
        scale = 1.0 / n if reduction == "mean" and n else 1.0
        if n == 0:
            out[...] = np.nan if reduction == "mean" else 0
        else:
            self._forward_kernel(logits.dtype, labels.dtype)(
                (blocks,), (_THREADS,),
                (logits, labels, softmax, out, partials, np.int64(n), np.int64(k), np.float64(smoothing),
                 np.float64(scale), np.int32(want_softmax), np.int32(reduce)))
            if reduce and blocks > 1:
                out = (partials.sum() * scale).astype(logits.dtype)
        return out, (softmax if want_softmax else None)

    def grad(self, g, softmax, labels, smoothing: float, reduction: str):
        """(softmax - target) * g / n for (N, K) softmax; g has shape () or, for 'none', (N,)."""
        xp = self.xp
        if self._grad is None:
            self._grad = xp.ElementwiseKernel(
                "T p, raw L labels, raw T g, float64 inv_n, float64 s, int64 K, int32 per_row", "T out",
                _GRAD_BODY, "fnn_sce_grad")
        n, k = softmax.shape
        per_row = reduction == "none"
        inv_n = 1.0 / n if reduction == "mean" and n else 1.0
        g = xp.ascontiguousarray(g, dtype=softmax.dtype)
        return self._grad(softmax, _as_label_array(xp, labels), g, inv_n, float(smoothing), k, int(per_row))


def _as_label_array(xp, labels):
    if labels.dtype in (np.int32, np.int64) and labels.flags.c_contiguous:
        return labels
    return xp.ascontiguousarray(labels, dtype=np.int64)


_instances: dict = {}


def cross_entropy_kernels(logits: Any, labels: Any, axis: int) -> CrossEntropyKernels | None:
    """The kernels when `logits` is a C-contiguous (N, K) CuPy float32/float64 array with the
    classes on axis 1 and `labels` (N,) CuPy integers, and CuPy compiles kernels; None otherwise
    (the array path)."""
    if type(logits) is np.ndarray:  # the host's common case, decided without the general test
        return None
    xp = kernel_module(logits, labels)
    if xp is None or logits.ndim != 2 or axis not in (1, -1) or labels.shape != logits.shape[:1] \
            or logits.dtype not in (np.float32, np.float64) or labels.dtype.kind not in "iu" \
            or not logits.flags.c_contiguous:
        return None
    if xp not in _instances:
        _instances[xp] = CrossEntropyKernels(xp)
    return _instances[xp]
