"""CuPy kernels for the convolution and pooling hot paths: im2col, col2im, pooling and adjoints.

On a GPU the offset loops of `_im2col.py` and `pooling.py` would be kh*kw small launches each;
here every one of them is a single `ElementwiseKernel` launch, one thread per output element
(im2col: one thread per output pixel, writing its kh*kw column entries).
Each kernel produces exactly the array that the array-operation path produces: the same layout
and, since the sums run over the kernel offsets in the same order, the same float additions.
col2im and the pooling adjoints are written in gather form (each input pixel sums the window
cells that read it), so there are no atomics and results are deterministic.

`kernels_for(xp, *arrays)` is the one dispatch test: a `KernelSet` for an array module that offers
kernels (real CuPy) and float32/float64 arrays, None otherwise (NumPy, the NumPy-backed stand-in
of the tests, other dtypes), where callers keep their array-operation path.

Every kernel is a `_Spec`: its C body (one thread: `i`, the flat index of its output element in
memory, or of im2col's pixel, is decoded into coordinates, then the formula) and beside it
`emulate`, the same body written with NumPy over all threads at once (integer arrays of thread
indexes, masks for the `if`s). The emulation is what lets the index arithmetic be checked on a
machine without a GPU: `KernelSet(numpy, emulate=True)` runs the same wrappers with the emulated
bodies.

C conventions: `idx_t` is `int` when every array involved has fewer than 2**31 elements and
`long long` otherwise (two compiled variants, chosen per call); a `raw` array is read either at
a flat index (contiguous 1-D arrays only) or at a 4-index `{b, c, y, x}` through its strides, so
inputs of any layout are read in place. Kernels are built lazily, once per (name, index width)
and array module; CuPy compiles and caches each per dtype on first use.
"""

from __future__ import annotations

import types
from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = ["kernels_for", "KernelSet"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INT32_LIMIT = 2**31 - 1


class _Spec(NamedTuple):
    raws: str            # raw input parameters, e.g. "raw T x"
    scalars: tuple       # names of the integer scalar parameters, in call order
    outs: str            # output parameters, e.g. "T y" (one per thread) or "raw T cols"
    body: str            # the C body of one thread
    emulate: Callable    # the same body in NumPy: (i, arrays, p) -> tuple of output values
    threads: Callable | None = None  # raw outputs: scalars -> number of threads


# --- the emulation's two primitives -------------------------------------------------------------

def _read4(a, b, c, y, x, inside):
    """`a[{b, c, y, x}]` for the threads where `inside`; 0 elsewhere (those never read)."""
    clip = [np.clip(v, 0, s - 1) for v, s in zip((b, c, y, x), a.shape)]
    return np.where(inside, a[tuple(clip)], a.dtype.type(0))


def _cmajor_bc(t, p):
    """(b, c) from what is left of the flat index after (oy, ox): channel-major or NCHW memory."""
    if p.cmajor:
        return t % p.nb, t // p.nb
    return t // p.ch, t % p.ch


# --- im2col: cols (C, kh, kw, N, OH, OW) of x (N, C, H, W) ---------------------------------------
# cols[c, ki, kj, b, oy, ox] = x[b, c, oy*sh + ki*dh - pt, ox*sw + kj*dw - pl], 0 outside x.
# One thread per (c, b, oy, ox) writes its kh*kw column entries (cols is a raw flat array).

_IM2COL_C = r"""
idx_t t = i;
const idx_t ox = t % ow; t /= ow;
const idx_t oy = t % oh; t /= oh;
const idx_t b = t % nb;
const idx_t c = t / nb;
const idx_t npix = nb * oh * ow;
const idx_t pix = (b * oh + oy) * ow + ox;
for (idx_t ki = 0; ki < kh; ++ki) {
    const idx_t iy = oy * sh + ki * dh - pt;
    for (idx_t kj = 0; kj < kw; ++kj) {
        const idx_t ix = ox * sw + kj * dw - pl;
        T v = (T)0;
        if (0 <= iy && iy < hh && 0 <= ix && ix < ww) {
            const idx_t at[4] = {b, c, iy, ix};
            v = x[at];
        }
        cols[((c * kh + ki) * kw + kj) * npix + pix] = v;
    }
}
"""


def _im2col_emulate(i, arrays, p):
    x, cols = arrays
    t = i
    ox = t % p.ow; t = t // p.ow
    oy = t % p.oh; t = t // p.oh
    b = t % p.nb
    c = t // p.nb
    npix = p.nb * p.oh * p.ow
    pix = (b * p.oh + oy) * p.ow + ox
    for ki in range(p.kh):
        iy = oy * p.sh + ki * p.dh - p.pt
        for kj in range(p.kw):
            ix = ox * p.sw + kj * p.dw - p.pl
            inside = (0 <= iy) & (iy < p.hh) & (0 <= ix) & (ix < p.ww)
            v = _read4(x, b, c, iy, ix, inside)
            cols[((c * p.kh + ki) * p.kw + kj) * npix + pix] = v
    return ()


_IM2COL = _Spec("raw T x", ("nb", "hh", "ww", "kh", "kw", "oh", "ow", "sh", "sw", "pt", "pl",
                            "dh", "dw"), "raw T cols", _IM2COL_C, _im2col_emulate,
                threads=lambda p: p["ch"] * p["nb"] * p["oh"] * p["ow"])


# --- the windows that read one cell (the gather kernels) -----------------------------------------
# Along an axis, window o (of out) reads padded cell p at offset k (of kk, dilation d) when
# p = o*s + k*d. So e = p - o*s must lie in [0, (kk-1)*d] and be divisible by d: o runs from
# o_hi = min(p / s, out - 1) down to o_lo = ceil((p - (kk-1)*d) / s) (0 if that is <= 0).
# Walking o downwards makes k = e / d ascend: the sums run over the offsets in the array path's
# order.
# (`d == 1 ? e : e / d` only skips a division; p >= 0, so / is floor division here.)

_WINDOWS_C = r"""
#define FNN_O_HI(p, s, out) ((p) / (s) < (out) - 1 ? (p) / (s) : (out) - 1)
#define FNN_O_LO(p, kk, s, d) ((p) - ((kk) - 1) * (d) <= 0 ? 0 : \
                               ((p) - ((kk) - 1) * (d) + (s) - 1) / (s))
"""


def _o_hi(p, s, out):
    """FNN_O_HI."""
    return np.minimum(p // s, out - 1)


def _o_lo(p, kk, s, d):
    """FNN_O_LO."""
    r = p - (kk - 1) * d
    return np.where(r <= 0, 0, (r + s - 1) // s)


# --- col2im (gather): img (C, N, H, W) from cols (C, kh, kw, N, OH, OW), a flat contiguous array --
# img[c, b, y, x] = sum over (ki, kj), in that order, of cols[c, ki, kj, b, oy, ox] for the output
# cells that read (y, x): y + pt = oy*sh + ki*dh and x + pl = ox*sw + kj*dw, with 0 <= oy < OH
# and 0 <= ox < OW.

_COL2IM_C = r"""
idx_t t = i;
const idx_t xx = t % ww; t /= ww;
const idx_t yy = t % hh; t /= hh;
const idx_t b = t % nb;
const idx_t c = t / nb;
const idx_t py = yy + pt;
const idx_t px = xx + pl;
const idx_t oy_lo = FNN_O_LO(py, kh, sh, dh), oy_hi = FNN_O_HI(py, sh, oh);
const idx_t ox_lo = FNN_O_LO(px, kw, sw, dw), ox_hi = FNN_O_HI(px, sw, ow);
T acc = (T)0;
for (idx_t oy = oy_hi; oy >= oy_lo; --oy) {
    const idx_t ey = py - oy * sh;
    if (dh != 1 && ey % dh != 0) continue;
    const idx_t ki = dh == 1 ? ey : ey / dh;
    for (idx_t ox = ox_hi; ox >= ox_lo; --ox) {
        const idx_t ex = px - ox * sw;
        if (dw != 1 && ex % dw != 0) continue;
        const idx_t kj = dw == 1 ? ex : ex / dw;
        acc += cols[((((c * kh + ki) * kw + kj) * nb + b) * oh + oy) * ow + ox];
    }
}
img = acc;
"""


def _col2im_emulate(i, arrays, p):
    (cols,) = arrays
    t = i
    xx = t % p.ww; t = t // p.ww
    yy = t % p.hh; t = t // p.hh
    b = t % p.nb
    c = t // p.nb
    py = yy + p.pt
    px = xx + p.pl
    oy_lo, oy_hi = _o_lo(py, p.kh, p.sh, p.dh), _o_hi(py, p.sh, p.oh)
    ox_lo, ox_hi = _o_lo(px, p.kw, p.sw, p.dw), _o_hi(px, p.sw, p.ow)
    acc = np.zeros(i.shape, cols.dtype)
    for down_y in range(p.oh):                      # oy = oy_hi, oy_hi - 1, ... while >= oy_lo
        oy = oy_hi - down_y
        ey = py - oy * p.sh
        row_ok = (oy >= oy_lo) & (ey % p.dh == 0)
        ki = ey // p.dh
        for down_x in range(p.ow):
            ox = ox_hi - down_x
            ex = px - ox * p.sw
            ok = row_ok & (ox >= ox_lo) & (ex % p.dw == 0)
            kj = ex // p.dw
            flat = ((((c * p.kh + ki) * p.kw + kj) * p.nb + b) * p.oh + oy) * p.ow + ox
            acc = np.where(ok, acc + cols[np.where(ok, flat, 0)], acc)
    return (acc,)


_COL2IM = _Spec("raw T cols", ("nb", "hh", "ww", "kh", "kw", "oh", "ow", "sh", "sw", "pt", "pl",
                               "dh", "dw"), "T img", _COL2IM_C, _col2im_emulate)


# --- max pooling: y (N, C, OH, OW) and the argmax offset k = ki*kw + kj --------------------------
# The rule of pooling.py's `_max_and_argmax` over the padded input (-inf outside x): best starts
# at offset 0; each later offset k with v > best sets best_k = k (ties keep the first maximum), and
# best becomes max(best, v) with NaN propagating as in NumPy's maximum.

_MAX_POOL_C = r"""
idx_t t = i;
const idx_t ox = t % ow; t /= ow;
const idx_t oy = t % oh; t /= oh;
const idx_t b = cmajor ? t % nb : t / ch;
const idx_t c = cmajor ? t / nb : t % ch;
T best = (T)0;
idx_t best_k = 0;
for (idx_t ki = 0; ki < kh; ++ki) {
    for (idx_t kj = 0; kj < kw; ++kj) {
        const idx_t iy = oy * sh + ki - pt;
        const idx_t ix = ox * sw + kj - pl;
        T v = (T)lowest;
        if (0 <= iy && iy < hh && 0 <= ix && ix < ww) {
            const idx_t at[4] = {b, c, iy, ix};
            v = x[at];
        }
        const idx_t k = ki * kw + kj;
        if (k == 0) {
            best = v;
        } else {
            if (v > best) best_k = k;
            if (v > best || isnan(v)) best = v;
        }
    }
}
y = best;
"""
_ARGMAX_C = "idx = (I)best_k;\n"


def _max_pool_emulate(i, raws, p):
    (x,) = raws
    t = i
    ox = t % p.ow; t = t // p.ow
    oy = t % p.oh; t = t // p.oh
    b, c = _cmajor_bc(t, p)
    best = np.zeros(i.shape, x.dtype)
    best_k = np.zeros(i.shape, np.int64)
    for ki in range(p.kh):
        for kj in range(p.kw):
            iy = oy * p.sh + ki - p.pt
            ix = ox * p.sw + kj - p.pl
            inside = (0 <= iy) & (iy < p.hh) & (0 <= ix) & (ix < p.ww)
            v = np.where(inside, _read4(x, b, c, iy, ix, inside), x.dtype.type(p.lowest))
            k = ki * p.kw + kj
            if k == 0:
                best = v
            else:
                better = v > best
                best_k = np.where(better, k, best_k)
                best = np.where(better | np.isnan(v), v, best)
    return best, best_k


_POOL_SCALARS = ("nb", "ch", "hh", "ww", "kh", "kw", "oh", "ow", "sh", "sw", "pt", "pl", "cmajor")
_MAX_POOL = _Spec("raw T x, float64 lowest", _POOL_SCALARS, "T y", _MAX_POOL_C,
                  lambda i, raws, p: _max_pool_emulate(i, raws, p)[:1])
_MAX_POOL_ARGMAX = _Spec("raw T x, float64 lowest", _POOL_SCALARS, "T y, I idx",
                         _MAX_POOL_C + _ARGMAX_C, _max_pool_emulate)


# --- max pooling's adjoints ---------------------------------------------------------------------
# scatter (gather form): dx[c, b, y, x] (channel-major) = sum over (ki, kj), in that order, of
# g[b, c, oy, ox] for the windows (oy, ox) that read (y, x) at offset (ki, kj) and whose argmax is
# ki*kw + kj. gather: y[b, c, oy, ox] = x[b, c, oy*sh + ki - pt, ox*sw + kj - pl] at the argmax
# offset (ki, kj) = divmod(idx, kw), 0 in the padding.

_MAX_SCATTER_C = r"""
idx_t t = i;
const idx_t xx = t % ww; t /= ww;
const idx_t yy = t % hh; t /= hh;
const idx_t b = t % nb;
const idx_t c = t / nb;
const idx_t py = yy + pt;
const idx_t px = xx + pl;
const idx_t oy_lo = FNN_O_LO(py, kh, sh, 1), oy_hi = FNN_O_HI(py, sh, oh);
const idx_t ox_lo = FNN_O_LO(px, kw, sw, 1), ox_hi = FNN_O_HI(px, sw, ow);
T acc = (T)0;
for (idx_t oy = oy_hi; oy >= oy_lo; --oy) {
    const idx_t ki = py - oy * sh;
    for (idx_t ox = ox_hi; ox >= ox_lo; --ox) {
        const idx_t kj = px - ox * sw;
        const idx_t at[4] = {b, c, oy, ox};
        if ((idx_t)idx[at] == ki * kw + kj) acc += g[at];
    }
}
dx = acc;
"""


def _max_scatter_emulate(i, arrays, p):
    g, idx = arrays
    t = i
    xx = t % p.ww; t = t // p.ww
    yy = t % p.hh; t = t // p.hh
    b = t % p.nb
    c = t // p.nb
    py = yy + p.pt
    px = xx + p.pl
    oy_lo, oy_hi = _o_lo(py, p.kh, p.sh, 1), _o_hi(py, p.sh, p.oh)
    ox_lo, ox_hi = _o_lo(px, p.kw, p.sw, 1), _o_hi(px, p.sw, p.ow)
    acc = np.zeros(i.shape, g.dtype)
    for down_y in range(p.oh):
        oy = oy_hi - down_y
        ki = py - oy * p.sh
        for down_x in range(p.ow):
            ox = ox_hi - down_x
            kj = px - ox * p.sw
            ok = (oy >= oy_lo) & (ox >= ox_lo)
            ok = ok & (_read4(idx, b, c, oy, ox, ok).astype(np.int64) == ki * p.kw + kj)
            acc = np.where(ok, acc + _read4(g, b, c, oy, ox, ok), acc)
    return (acc,)


_MAX_SCATTER = _Spec("raw T g, raw I idx", ("nb", "hh", "ww", "kh", "kw", "oh", "ow", "sh", "sw",
                                            "pt", "pl"), "T dx", _MAX_SCATTER_C,
                     _max_scatter_emulate)

_MAX_GATHER_C = r"""
idx_t t = i;
const idx_t ox = t % ow; t /= ow;
const idx_t oy = t % oh; t /= oh;
const idx_t b = cmajor ? t % nb : t / ch;
const idx_t c = cmajor ? t / nb : t % ch;
const idx_t at[4] = {b, c, oy, ox};
const idx_t k = (idx_t)idx[at];
const idx_t iy = oy * sh + k / kw - pt;
const idx_t ix = ox * sw + k % kw - pl;
if (0 <= iy && iy < hh && 0 <= ix && ix < ww) {
    const idx_t src[4] = {b, c, iy, ix};
    y = x[src];
} else {
    y = (T)0;
}
"""


def _max_gather_emulate(i, raws, p):
    x, idx = raws
    t = i
    ox = t % p.ow; t = t // p.ow
    oy = t % p.oh; t = t // p.oh
    b, c = _cmajor_bc(t, p)
    k = _read4(idx, b, c, oy, ox, True).astype(np.int64)
    iy = oy * p.sh + k // p.kw - p.pt
    ix = ox * p.sw + k % p.kw - p.pl
    inside = (0 <= iy) & (iy < p.hh) & (0 <= ix) & (ix < p.ww)
    return (_read4(x, b, c, iy, ix, inside),)


_MAX_GATHER = _Spec("raw T x, raw I idx", tuple(s for s in _POOL_SCALARS if s != "kh"), "T y",
                    _MAX_GATHER_C, _max_gather_emulate)


# --- average pooling and its adjoint ------------------------------------------------------------
# y[b, c, oy, ox] = (sum over (ki, kj), in that order, of the zero-padded input) / count, where
# count = (cells of rows [lo_h, hi_h) in the window's rows) * (same for columns), in padded
# coordinates: [0, Hp - extra) with count_include_pad, [pt, pt + H) without (pooling.py's divisor).
# spread (gather form): dx[c, b, y, x] = sum over (ki, kj) of g[b, c, oy, ox] / count(oy, ox) for
# the windows that read (y, x).

_COUNT_C = r"""
#define FNN_SPAN(lo, hi, start, k) \
    ((((start) + (k) < (hi) ? (start) + (k) : (hi)) - ((start) > (lo) ? (start) : (lo))) > 0 ? \
     (((start) + (k) < (hi) ? (start) + (k) : (hi)) - ((start) > (lo) ? (start) : (lo))) : 0)
"""


def _span(lo, hi, start, k):
    """Cells of [start, start + k) inside [lo, hi): FNN_SPAN."""
    return np.maximum(np.minimum(start + k, hi) - np.maximum(start, lo), 0)


_AVG_POOL_C = r"""
idx_t t = i;
const idx_t ox = t % ow; t /= ow;
const idx_t oy = t % oh; t /= oh;
const idx_t b = cmajor ? t % nb : t / ch;
const idx_t c = cmajor ? t / nb : t % ch;
const idx_t top = oy * sh;
const idx_t left = ox * sw;
T acc = (T)0;
for (idx_t ki = 0; ki < kh; ++ki) {
    for (idx_t kj = 0; kj < kw; ++kj) {
        const idx_t iy = top + ki - pt;
        const idx_t ix = left + kj - pl;
        T v = (T)0;
        if (0 <= iy && iy < hh && 0 <= ix && ix < ww) {
            const idx_t at[4] = {b, c, iy, ix};
            v = x[at];
        }
        if (ki == 0 && kj == 0) acc = v; else acc += v;
    }
}
const idx_t count = FNN_SPAN(lo_h, hi_h, top, kh) * FNN_SPAN(lo_w, hi_w, left, kw);
y = acc / (T)count;
"""


def _avg_pool_emulate(i, raws, p):
    (x,) = raws
    t = i
    ox = t % p.ow; t = t // p.ow
    oy = t % p.oh; t = t // p.oh
    b, c = _cmajor_bc(t, p)
    top = oy * p.sh
    left = ox * p.sw
    acc = np.zeros(i.shape, x.dtype)
    for ki in range(p.kh):
        for kj in range(p.kw):
            iy = top + ki - p.pt
            ix = left + kj - p.pl
            inside = (0 <= iy) & (iy < p.hh) & (0 <= ix) & (ix < p.ww)
            v = _read4(x, b, c, iy, ix, inside)
            acc = v if (ki == 0 and kj == 0) else acc + v
    count = _span(p.lo_h, p.hi_h, top, p.kh) * _span(p.lo_w, p.hi_w, left, p.kw)
    return (acc / count.astype(x.dtype),)


_AVG_SCALARS = _POOL_SCALARS + ("lo_h", "hi_h", "lo_w", "hi_w")
_AVG_POOL = _Spec("raw T x", _AVG_SCALARS, "T y", _AVG_POOL_C, _avg_pool_emulate)

_AVG_SPREAD_C = r"""
idx_t t = i;
const idx_t xx = t % ww; t /= ww;
const idx_t yy = t % hh; t /= hh;
const idx_t b = t % nb;
const idx_t c = t / nb;
const idx_t py = yy + pt;
const idx_t px = xx + pl;
const idx_t oy_lo = FNN_O_LO(py, kh, sh, 1), oy_hi = FNN_O_HI(py, sh, oh);
const idx_t ox_lo = FNN_O_LO(px, kw, sw, 1), ox_hi = FNN_O_HI(px, sw, ow);
T acc = (T)0;
for (idx_t oy = oy_hi; oy >= oy_lo; --oy) {
    for (idx_t ox = ox_hi; ox >= ox_lo; --ox) {
        const idx_t count = FNN_SPAN(lo_h, hi_h, oy * sh, kh) * FNN_SPAN(lo_w, hi_w, ox * sw, kw);
        const idx_t at[4] = {b, c, oy, ox};
        acc += g[at] / (T)count;
    }
}
dx = acc;
"""


def _avg_spread_emulate(i, arrays, p):
    (g,) = arrays
    t = i
    xx = t % p.ww; t = t // p.ww
    yy = t % p.hh; t = t // p.hh
    b = t % p.nb
    c = t // p.nb
    py = yy + p.pt
    px = xx + p.pl
    oy_lo, oy_hi = _o_lo(py, p.kh, p.sh, 1), _o_hi(py, p.sh, p.oh)
    ox_lo, ox_hi = _o_lo(px, p.kw, p.sw, 1), _o_hi(px, p.sw, p.ow)
    acc = np.zeros(i.shape, g.dtype)
    for down_y in range(p.oh):
        oy = oy_hi - down_y
        for down_x in range(p.ow):
            ox = ox_hi - down_x
            ok = (oy >= oy_lo) & (ox >= ox_lo)
            count = (_span(p.lo_h, p.hi_h, oy * p.sh, p.kh)
                     * _span(p.lo_w, p.hi_w, ox * p.sw, p.kw))
            count = np.where(ok, count, 1).astype(g.dtype)
            acc = np.where(ok, acc + _read4(g, b, c, oy, ox, ok) / count, acc)
    return (acc,)


_AVG_SPREAD = _Spec("raw T g", ("nb", "hh", "ww", "kh", "kw", "oh", "ow", "sh", "sw", "pt", "pl",
                                "lo_h", "hi_h", "lo_w", "hi_w"), "T dx", _AVG_SPREAD_C,
                    _avg_spread_emulate)

_SPECS = {"im2col": _IM2COL, "col2im": _COL2IM, "max_pool": _MAX_POOL,
          "max_pool_argmax": _MAX_POOL_ARGMAX, "max_scatter": _MAX_SCATTER,
          "max_gather": _MAX_GATHER, "avg_pool": _AVG_POOL, "avg_spread": _AVG_SPREAD}


# --- the kernel set: output allocation, parameters, launch --------------------------------------

def _cmajor(x) -> int:
    """1 when the (N, C, H, W) array x is laid out channel-major, as convolution outputs are."""
    return int(x.strides[1] > x.strides[0])


def _like(xp, x, shape, dtype=None):
    """A new (N, C, OH, OW) array laid out as x is (channel-major or NCHW), and the flag."""
    n, c, oh, ow = shape
    dtype = x.dtype if dtype is None else dtype
    if _cmajor(x):
        return xp.empty((c, n, oh, ow), dtype=dtype).transpose(1, 0, 2, 3), 1
    return xp.empty((n, c, oh, ow), dtype=dtype), 0


def _avg_range(n, p0, p1, extra, include_pad):
    """[lo, hi) of the padded axis whose cells count in an average window (see _AVG_POOL_C)."""
    if include_pad:
        return 0, n + p0 + p1 - extra
    return p0, p0 + n


class KernelSet:
    """The kernels of one array module, as functions with `_im2col.py`'s and `pooling.py`'s
    arguments and results. With `emulate=True` (NumPy arrays) each kernel body runs as its NumPy
    emulation instead: the test of the index arithmetic on a machine without a GPU."""

    def __init__(self, xp: types.ModuleType, emulate: bool = False):
        self.xp = xp
        self.emulate = emulate
        self._built: dict = {}

    def _kernel(self, name: str, wide: bool):
        key = (name, wide)
        kernel = self._built.get(key)
        if kernel is None:
            spec = _SPECS[name]
            itype = "int64" if wide else "int32"
            params = ", ".join([spec.raws] + [f"{itype} {s}" for s in spec.scalars])
            body = f"typedef {'long long' if wide else 'int'} idx_t;\n" + spec.body
            kernel = self.xp.ElementwiseKernel(params, spec.outs, body, f"fnn_{name}_{itype}",
                                               preamble=_WINDOWS_C + _COUNT_C)
            self._built[key] = kernel
        return kernel

    def launch(self, name: str, raws: tuple, scalars: dict, outs: tuple, extra=()):
        """Run kernel `name`: one thread per element of the contiguous output arrays `outs`, or
        for raw outputs `spec.threads(scalars)` threads. `extra` are the leading non-integer
        scalars of its raw parameter list (max pooling's padding value)."""
        spec = _SPECS[name]
        values = [scalars[s] for s in spec.scalars]
        threads = outs[0].size if spec.threads is None else spec.threads(scalars)
        if self.emulate:
            p = types.SimpleNamespace(**scalars, **dict(zip(("lowest",), extra)))
            i = np.arange(threads, dtype=np.int64)
            if spec.threads is not None:
                spec.emulate(i, raws + outs, p)
                return
            for out, value in zip(outs, spec.emulate(i, raws, p)):
                out.reshape(-1)[...] = value
            return
        wide = max(max(a.size for a in raws + outs), *values, 0) > _INT32_LIMIT
        size = {} if spec.threads is None else {"size": threads}
        if threads:
            self._kernel(name, wide)(*raws, *extra, *values, *outs, **size)

    # convolution --------------------------------------------------------------------------------

    def im2col(self, x, kh, kw, stride, pads, dilation, out_hw):
        n, c, h, w = x.shape
        oh, ow = out_hw
        cols = self.xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
        self.launch("im2col", (x,), dict(nb=n, ch=c, hh=h, ww=w, kh=kh, kw=kw, oh=oh, ow=ow,
                                         sh=stride[0], sw=stride[1], pt=pads[0], pl=pads[2],
                                         dh=dilation[0], dw=dilation[1]), (cols.reshape(-1),))
        return cols

    def col2im(self, cols, hw, stride, pads, dilation):
        c, kh, kw, n, oh, ow = cols.shape
        h, w = hw
        flat = self.xp.ascontiguousarray(cols).reshape(-1)
        img = self.xp.empty((c, n, h, w), dtype=cols.dtype)
        self.launch("col2im", (flat,), dict(nb=n, hh=h, ww=w, kh=kh, kw=kw, oh=oh, ow=ow,
                                            sh=stride[0], sw=stride[1], pt=pads[0], pl=pads[2],
                                            dh=dilation[0], dw=dilation[1]), (img,))
        return img.transpose(1, 0, 2, 3)

    # pooling ------------------------------------------------------------------------------------

    def _pool_scalars(self, x, kernel, stride, pads, out_hw, cmajor):
        n, c, h, w = x.shape
        return dict(nb=n, ch=c, hh=h, ww=w, kh=kernel[0], kw=kernel[1], oh=out_hw[0],
                    ow=out_hw[1], sh=stride[0], sw=stride[1], pt=pads[0], pl=pads[2],
                    cmajor=cmajor)

    def max_pool(self, x, kernel, stride, pads, out_hw, argmax: bool):
        """Window maxima (and argmax offsets, uint8 for windows of up to 256 cells, else int32)."""
        n, c = x.shape[:2]
        y, cmajor = _like(self.xp, x, (n, c) + tuple(out_hw))
        scalars = self._pool_scalars(x, kernel, stride, pads, out_hw, cmajor)
        outs = (y,)
        if argmax:
            itype = np.uint8 if kernel[0] * kernel[1] <= 256 else np.int32
            outs = (y, _like(self.xp, x, y.shape, itype)[0])
        self.launch("max_pool_argmax" if argmax else "max_pool", (x,), scalars,
                    tuple(_memory(o, cmajor) for o in outs), extra=(float("-inf"),))
        return outs if argmax else y

    def max_scatter(self, g, idx, hw, kernel, stride, pads):
        n, c, oh, ow = g.shape
        dx = self.xp.empty((c, n) + tuple(hw), dtype=g.dtype)
        self.launch("max_scatter", (g, idx), dict(nb=n, hh=hw[0], ww=hw[1], kh=kernel[0],
                                                  kw=kernel[1], oh=oh, ow=ow, sh=stride[0],
                                                  sw=stride[1], pt=pads[0], pl=pads[2]), (dx,))
        return dx.transpose(1, 0, 2, 3)

    def max_gather(self, x, idx, kernel, stride, pads):
        y, cmajor = _like(self.xp, x, idx.shape)
        scalars = self._pool_scalars(x, kernel, stride, pads, idx.shape[2:], cmajor)
        self.launch("max_gather", (x, idx), scalars, (_memory(y, cmajor),))
        return y

    def avg_pool(self, x, kernel, stride, pads, out_hw, include_pad, extra=(0, 0)):
        n, c, h, w = x.shape
        y, cmajor = _like(self.xp, x, (n, c) + tuple(out_hw))
        scalars = self._pool_scalars(x, kernel, stride, pads, out_hw, cmajor)
        scalars.update(_avg_scalars((h, w), pads, extra, include_pad))
        self.launch("avg_pool", (x,), scalars, (_memory(y, cmajor),))
        return y

    def avg_spread(self, g, hw, kernel, stride, pads, include_pad, extra=(0, 0)):
        n, c, oh, ow = g.shape
        dx = self.xp.empty((c, n) + tuple(hw), dtype=g.dtype)
        scalars = dict(nb=n, hh=hw[0], ww=hw[1], kh=kernel[0], kw=kernel[1], oh=oh, ow=ow,
                       sh=stride[0], sw=stride[1], pt=pads[0], pl=pads[2])
        scalars.update(_avg_scalars(hw, pads, extra, include_pad))
        self.launch("avg_spread", (g,), scalars, (dx,))
        return dx.transpose(1, 0, 2, 3)


def _memory(y, cmajor):
    """The contiguous array behind a (N, C, OH, OW) result made by `_like`."""
    return y.transpose(1, 0, 2, 3) if cmajor else y


def _avg_scalars(hw, pads, extra, include_pad):
    lo_h, hi_h = _avg_range(hw[0], pads[0], pads[1], extra[0], include_pad)
    lo_w, hi_w = _avg_range(hw[1], pads[2], pads[3], extra[1], include_pad)
    return dict(lo_h=lo_h, hi_h=hi_h, lo_w=lo_w, hi_w=hi_w)


_SETS: dict[str, KernelSet] = {}


def kernels_for(xp: types.ModuleType, *arrays: Any) -> KernelSet | None:
    """The kernel set of array module `xp` when it offers kernels (real CuPy) and every array in
    `arrays` is float32 or float64; None otherwise (NumPy, the tests' stand-in, other dtypes)."""
    if xp is np or not hasattr(xp, "ElementwiseKernel"):
        return None
    for a in arrays:
        if a.dtype not in _DTYPES:
            return None
    kset = _SETS.get(xp.__name__)
    if kset is None:
        kset = _SETS[xp.__name__] = KernelSet(xp)
    return kset
