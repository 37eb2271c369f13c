"""The CuPy kernels of convolution and pooling (fnn/nn/functional/_cuda_kernels.py) against the
array-operation path.

Every comparison runs in three modes:
- "emulated" (always): the dispatch points of `_im2col.py` and `pooling.py` are handed
  `KernelSet(numpy, emulate=True)`, which runs each kernel's NumPy emulation (the same index
  formula as its C body) through the same wrappers; this checks the index arithmetic, the
  parameters and the dispatch wiring without a GPU.
- "gpu" and "gpu64" (real CuPy with kernels and a GPU): the kernels themselves, with 32-bit and
  with 64-bit indexes.
The kernels sum in the array path's order, so their results are compared exactly; only paths
that go through a GEMM (cuBLAS against NumPy's BLAS) get a tolerance.

On a GPU: `PYTHONPATH=. python -m pytest -q tests/test_cuda_kernels.py`.
"""

from __future__ import annotations

import contextlib
import re
import types

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fnn
from fnn import backend
from fnn.nn import functional as F
from fnn.nn.functional import _cuda_kernels as CK
from fnn.nn.functional import _im2col as K
from fnn.nn.functional import pooling as P
from fnn.nn.functional.conv import conv_transpose_output_shape


def _gpu_with_kernels() -> bool:
    if not backend.cupy_available():
        return False
    import cupy  # noqa: PLC0415

    return hasattr(cupy, "ElementwiseKernel")


GPU = _gpu_with_kernels()
needs_gpu = pytest.mark.skipif(not GPU, reason="needs CuPy with a GPU (kernels)")
MODES = ["emulated", pytest.param("gpu", marks=needs_gpu), pytest.param("gpu64", marks=needs_gpu)]
FLOATS = st.sampled_from([np.float32, np.float64])

EMU = CK.KernelSet(np, emulate=True)


def _emulated_for(xp, *arrays):
    return EMU if all(a.dtype in CK._DTYPES for a in arrays) else None


@contextlib.contextmanager
def _dispatch(kernels_for):
    """Both dispatch points answer with `kernels_for`."""
    saved = K.kernels_for, P.kernels_for
    K.kernels_for = P.kernels_for = kernels_for
    try:
        yield
    finally:
        K.kernels_for, P.kernels_for = saved


@contextlib.contextmanager
def _counting_launches():
    """Counts KernelSet.launch calls: proof that a kernel, not the array path, ran."""
    calls = []
    launch = CK.KernelSet.launch

    def counted(self, name, *args, **kwargs):
        calls.append(name)
        return launch(self, name, *args, **kwargs)

    CK.KernelSet.launch = counted
    try:
        yield calls
    finally:
        CK.KernelSet.launch = launch


def generic(fn, *args, **kwargs):
    """fn on NumPy arrays by the array-operation path."""
    with _dispatch(lambda xp, *a: None):
        return fn(*args, **kwargs)


def kernel(mode, fn, *args, **kwargs):
    """fn through the kernels of `mode` (NumPy arrays in, NumPy arrays out); checks that at least
    one kernel ran."""
    with _counting_launches() as calls:
        if mode == "emulated":
            with _dispatch(_emulated_for):
                out = fn(*args, **kwargs)
        else:
            limit = CK._INT32_LIMIT
            CK._INT32_LIMIT = -1 if mode == "gpu64" else limit
            try:
                out = fnn.tree.map(_to_host, fn(*fnn.tree.map(_to_device, args), **kwargs))
            finally:
                CK._INT32_LIMIT = limit
    assert calls, f"{getattr(fn, '__name__', fn)}: no kernel ran in mode {mode}"
    return out


def _memory_order(a):
    """The axes of `a` from the slowest-varying in memory to the fastest."""
    return sorted(range(a.ndim), key=lambda ax: -a.strides[ax])


def _to_device(a):
    """A NumPy array copied to CuPy in its own memory order (`cupy.asarray` alone gives C order)."""
    if not isinstance(a, np.ndarray):
        return a
    import cupy  # noqa: PLC0415

    perm = _memory_order(a)
    return cupy.asarray(np.ascontiguousarray(a.transpose(perm))).transpose(np.argsort(perm))


def _to_host(a):
    """A CuPy array copied to NumPy in its own memory order (`.get()` alone gives C order)."""
    if not backend.is_cupy_array(a):
        return a
    import cupy  # noqa: PLC0415

    perm = _memory_order(a)
    host = cupy.ascontiguousarray(a.transpose(perm)).get()
    return host.transpose(np.argsort(perm))


def assert_same(got, want, what="", layout=True):
    """Same dtype, shape, values (NaN equal to NaN) and, with `layout`, memory order of the axes
    longer than 1."""
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_array_equal(got, want, err_msg=what)
    if not layout:
        return
    long_axes = [a for a, s in enumerate(want.shape) if s > 1]
    order = lambda x: sorted(long_axes, key=lambda a: -x.strides[a])  # noqa: E731
    assert order(got) == order(want), f"{what}: layout {got.strides} != {want.strides}"


def _layout_defined(x):
    """Whether the layout of results made like x is defined: an axis of length 1 has a stride tied
    with another, and NumPy's order-'K' arrays of another shape (the array path's padded buffers)
    then put the axes in an arbitrary order; the kernels follow x's channel-major flag."""
    return min(x.shape) > 1


def _array(rng, shape, dtype, cmajor=False, values="normal"):
    """A random (N, C, H, W) array, NCHW or channel-major in memory; `values`: normal, ties
    (small integers) or nan (normal with some NaNs)."""
    if values == "ties":
        a = rng.integers(-2, 3, shape).astype(dtype)
    else:
        a = rng.standard_normal(shape).astype(dtype)
        if values == "nan":
            a[rng.random(shape) < 0.15] = np.nan
    if cmajor:
        a = np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    return a


# --- the dispatch rule ---------------------------------------------------------------------------

def test_kernels_only_for_a_module_with_kernels_and_float32_or_float64():
    x32 = np.zeros((1, 1, 2, 2), np.float32)
    assert CK.kernels_for(np, x32) is None
    with_kernels = types.SimpleNamespace(__name__="with_kernels", ElementwiseKernel=object)
    kset = CK.kernels_for(with_kernels, x32, x32.astype(np.float64))
    assert isinstance(kset, CK.KernelSet) and kset.xp is with_kernels
    assert CK.kernels_for(with_kernels, x32) is kset  # one set per module, kernels built lazily
    assert CK.kernels_for(with_kernels, x32.astype(np.float16)) is None
    assert CK.kernels_for(with_kernels, x32.astype(np.int32)) is None


def test_no_kernels_on_the_stand_in():
    """Under FNN_FAKE_CUPY=1 `cupy` is the NumPy-backed stand-in, which has no kernels."""
    import importlib  # noqa: PLC0415

    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        pytest.skip("no cupy module (neither CuPy nor the stand-in)")
    if getattr(cupy, "FAKE", False):
        assert CK.kernels_for(cupy, cupy.zeros((1, 1, 2, 2), dtype=np.float32)) is None


def test_kernel_sources_name_every_parameter_they_use():
    """Each C body is built with its parameter list; a scalar named in the list but never used,
    or a spec without emulation, would be a slip between the C and the emulation."""
    for name, spec in CK._SPECS.items():
        for s in spec.scalars:
            assert re.search(rf"\b{s}\b", spec.body), f"{name}: parameter {s} unused"
        assert callable(spec.emulate)


# --- convolution ---------------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[1]), 8))
    w = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pads[2] - pads[3]), 8))
    n = draw(st.integers(1, 3))
    oh = K.out_size(h, kh, stride[0], pads[0], pads[1], dil[0])
    ow = K.out_size(w, kw, stride[1], pads[2], pads[3], dil[1])
    # fewer output positions than fit: the adjoint of a transposed convolution's output_padding
    out_hw = (oh - draw(st.integers(0, min(1, oh - 1))), ow - draw(st.integers(0, min(1, ow - 1))))
    return dict(n=n, c=cg * groups, o=og * groups, hw=(h, w), k=(kh, kw), stride=stride,
                pads=pads, dil=dil, groups=groups, out_hw=out_hw, cmajor=draw(st.booleans()),
                dtype=draw(FLOATS), seed=draw(st.integers(0, 2**16)))


@pytest.mark.parametrize("mode", MODES)
@given(case=conv_cases())
@settings(max_examples=60)
def test_im2col(mode, case):
    rng = np.random.default_rng(case["seed"])
    x = _array(rng, (case["n"], case["c"]) + case["hw"], case["dtype"], case["cmajor"])
    args = (x, *case["k"], case["stride"], case["pads"], case["dil"], case["out_hw"])
    assert_same(kernel(mode, K.im2col, *args), generic(K.im2col, *args), "im2col")


@pytest.mark.parametrize("mode", MODES)
@given(case=conv_cases())
@settings(max_examples=60)
def test_col2im(mode, case):
    rng = np.random.default_rng(case["seed"])
    shape = (case["c"],) + case["k"] + (case["n"],) + case["out_hw"]
    cols = rng.standard_normal(shape).astype(case["dtype"])
    args = (cols, case["hw"], case["stride"], case["pads"], case["dil"])
    assert_same(kernel(mode, K.col2im, *args), generic(K.col2im, *args), "col2im")


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("mode", MODES)
@given(case=conv_cases())
@settings(max_examples=40)
def test_conv_input_grad(mode, case):
    """The input cotangent: plain columns into the col2im kernel (the array path's stride-1 rows
    are widened, so its GEMM has other shapes: equal up to rounding)."""
    rng = np.random.default_rng(case["seed"])
    dtype = case["dtype"]
    w = rng.standard_normal((case["o"], case["c"] // case["groups"]) + case["k"]).astype(dtype)
    g = _array(rng, (case["n"], case["o"]) + case["out_hw"], dtype, case["cmajor"])
    args = (g, w, case["hw"], case["stride"], case["pads"], case["dil"], case["groups"])
    got, want = kernel(mode, K.conv_input_grad, *args), generic(K.conv_input_grad, *args)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.transpose(1, 0, 2, 3).flags.c_contiguous  # channel-major, as the array path's
    np.testing.assert_allclose(got, want, **_tol(dtype))


def _conv_vjp(x, w, b, g, stride, pads, dil, groups):
    padding = (pads[0], pads[2])
    y, vjp = fnn.vjp(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding,
                                               dilation=dil, groups=groups), x, w, b)
    return (y,) + tuple(vjp(g))


def _conv_t_vjp(x, w, b, g, stride, padding, out_pad, dil, groups):
    y, vjp = fnn.vjp(lambda x, w, b: F.conv_transpose2d(
        x, w, b, stride=stride, padding=padding, output_padding=out_pad, dilation=dil,
        groups=groups), x, w, b)
    return (y,) + tuple(vjp(g))


@pytest.mark.parametrize("mode", MODES)
@given(case=conv_cases())
@settings(max_examples=30)
def test_conv2d_and_its_gradients(mode, case):
    rng = np.random.default_rng(case["seed"])
    dtype = case["dtype"]
    pads = (case["pads"][0], case["pads"][0], case["pads"][2], case["pads"][2])  # symmetric
    h, w_ = case["hw"]
    kh, kw = case["k"]
    assume(case["dil"][0] * (kh - 1) + 1 <= h + 2 * pads[0])
    assume(case["dil"][1] * (kw - 1) + 1 <= w_ + 2 * pads[2])
    x = _array(rng, (case["n"], case["c"], h, w_), dtype, case["cmajor"])
    w = rng.standard_normal((case["o"], case["c"] // case["groups"], kh, kw)).astype(dtype)
    b = rng.standard_normal(case["o"]).astype(dtype)
    oh = K.out_size(h, kh, case["stride"][0], pads[0], pads[1], case["dil"][0])
    ow = K.out_size(w_, kw, case["stride"][1], pads[2], pads[3], case["dil"][1])
    g = rng.standard_normal((case["n"], case["o"], oh, ow)).astype(dtype)
    args = (x, w, b, g, case["stride"], pads, case["dil"], case["groups"])
    got, want = kernel(mode, _conv_vjp, *args), generic(_conv_vjp, *args)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, want):
        assert a.dtype == e.dtype == dtype, name
        np.testing.assert_allclose(a, e, err_msg=name, **_tol(dtype))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, padding, out_pad, dil, groups", [
    ((2, 4, 5, 6), (4, 3, 3, 3), (2, 2), (1, 1), (1, 0), (1, 1), 1),
    ((2, 4, 4, 5), (4, 2, 2, 3), (3, 2), (0, 1), (2, 1), (1, 2), 2),
    ((1, 3, 6, 4), (3, 2, 3, 2), (1, 1), (2, 0), (0, 0), (2, 1), 1),
])
def test_conv_transpose2d_and_its_gradients(mode, dtype, xs, ws, stride, padding, out_pad, dil,
                                            groups):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[1] * groups).astype(dtype)
    shape = conv_transpose_output_shape(x, w, stride=stride, padding=padding,
                                        output_padding=out_pad, dilation=dil, groups=groups)
    g = rng.standard_normal(shape).astype(dtype)
    args = (x, w, b, g, stride, padding, out_pad, dil, groups)
    got, want = kernel(mode, _conv_t_vjp, *args), generic(_conv_t_vjp, *args)
    for name, a, e in zip(("y", "dx", "dw", "db"), got, want):
        assert a.dtype == e.dtype == dtype, name
        np.testing.assert_allclose(a, e, err_msg=name, **_tol(dtype))


# --- pooling -------------------------------------------------------------------------------------

@st.composite
def pool_cases(draw, values=("normal", "ties")):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h = draw(st.integers(max(1, k[0] - 2 * p[0]), 9))
    w = draw(st.integers(max(1, k[1] - 2 * p[1]), 9))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    ceil_mode = draw(st.booleans())
    kernel_, stride, pads = P._pool_setup("max_pool2d", np.empty(shape), k, s, p, 2, ceil_mode)
    return dict(shape=shape, kernel=kernel_, stride=stride, pads=pads, ceil_mode=ceil_mode,
                p=p, k=k, s=s, include_pad=draw(st.booleans()), extra=P._extra_kw(pads),
                cmajor=draw(st.booleans()), dtype=draw(FLOATS),
                values=draw(st.sampled_from(values)), seed=draw(st.integers(0, 2**16)))


def _max_and_argmax(x, kernel_, stride, pads):
    return P._max_and_argmax(x, kernel_, stride, pads)


@pytest.mark.parametrize("mode", MODES)
@given(case=pool_cases(values=("normal", "ties", "nan")))
@settings(max_examples=60)
def test_max_pool_value_and_argmax(mode, case):
    rng = np.random.default_rng(case["seed"])
    x = _array(rng, case["shape"], case["dtype"], case["cmajor"], case["values"])
    args = (x, case["kernel"], case["stride"], case["pads"])
    (y, idx), (y0, idx0) = kernel(mode, _max_and_argmax, *args), generic(_max_and_argmax, *args)
    layout = _layout_defined(x)
    assert_same(y, y0, "max", layout)
    assert_same(idx, idx0, "argmax", layout)
    kw = dict(kernel=case["kernel"], stride=case["stride"], pads=case["pads"])
    assert_same(kernel(mode, P._max_pool, x, **kw), y0, "max only", layout)


@pytest.mark.parametrize("mode", MODES)
@given(case=pool_cases())
@settings(max_examples=60)
def test_max_pool_scatter_and_gather(mode, case):
    rng = np.random.default_rng(case["seed"])
    x = _array(rng, case["shape"], case["dtype"], case["cmajor"], case["values"])
    kw = dict(kernel=case["kernel"], stride=case["stride"], pads=case["pads"])
    _, idx = generic(_max_and_argmax, x, case["kernel"], case["stride"], case["pads"])
    g = _array(rng, idx.shape, case["dtype"], case["cmajor"])
    want = generic(P._max_scatter, g, idx, hw=x.shape[2:], **kw)
    assert_same(kernel(mode, P._max_scatter, g, idx, hw=x.shape[2:], **kw), want, "scatter")
    assert_same(kernel(mode, P._max_gather, x, idx, **kw), generic(P._max_gather, x, idx, **kw),
                 "gather", _layout_defined(x))


@pytest.mark.parametrize("mode", MODES)
@given(case=pool_cases(values=("normal", "ties", "nan")))
@settings(max_examples=60)
def test_avg_pool_and_spread(mode, case):
    rng = np.random.default_rng(case["seed"])
    x = _array(rng, case["shape"], case["dtype"], case["cmajor"], case["values"])
    kw = dict(kernel=case["kernel"], stride=case["stride"], pads=case["pads"],
              include_pad=case["include_pad"], **case["extra"])
    y0 = generic(P._avg_pool, x, **kw)
    assert_same(kernel(mode, P._avg_pool, x, **kw), y0, "avg", _layout_defined(x))
    g = _array(rng, y0.shape, case["dtype"], case["cmajor"])
    assert_same(kernel(mode, P._avg_spread, g, hw=x.shape[2:], **kw),
                generic(P._avg_spread, g, hw=x.shape[2:], **kw), "spread")


def _pool_grads(x, g, t, k, s, p, ceil_mode, include_pad):
    """Forward, VJP and JVP (the transposed VJP: the adjoints' adjoints) of both pools."""
    out = []
    for f in (lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil_mode),
              lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=include_pad,
                                     ceil_mode=ceil_mode)):
        y, vjp = fnn.vjp(f, x)
        out += [y, vjp(g)[0], fnn.jvp(f, (x,), (t,))[1]]
    return tuple(out)


@pytest.mark.parametrize("mode", MODES)
@given(case=pool_cases())
@settings(max_examples=30)
def test_pool_gradients(mode, case):
    rng = np.random.default_rng(case["seed"])
    x = _array(rng, case["shape"], case["dtype"], case["cmajor"], case["values"])
    t = _array(rng, case["shape"], case["dtype"], case["cmajor"])
    y_shape = P.pool_output_shape(x, case["k"], case["s"], case["p"], case["ceil_mode"])
    g = rng.standard_normal(y_shape).astype(case["dtype"])
    args = (x, g, t, case["k"], case["s"], case["p"], case["ceil_mode"], case["include_pad"])
    got, want = kernel(mode, _pool_grads, *args), generic(_pool_grads, *args)
    names = ("max", "max vjp", "max jvp", "avg", "avg vjp", "avg jvp")
    for name, a, e in zip(names, got, want):
        assert a.dtype == e.dtype == case["dtype"], name
        np.testing.assert_allclose(a, e, err_msg=name, **_tol(case["dtype"]))


@pytest.mark.parametrize("mode", MODES)
def test_1d_and_adaptive_pools(mode):
    rng = np.random.default_rng(5)
    x1 = rng.standard_normal((2, 3, 11)).astype(np.float32)
    x2 = _array(rng, (2, 3, 8, 6), np.float32, cmajor=True)

    def pools(x1, x2):
        return (F.max_pool1d(x1, 3, 2, 1), F.avg_pool1d(x1, 4, 3, 2, ceil_mode=True),
                F.adaptive_avg_pool2d(x2, (4, 3)))

    for a, e in zip(kernel(mode, pools, x1, x2), generic(pools, x1, x2)):
        assert_same(a, e)


@needs_gpu
def test_large_window_argmax_is_int32_on_gpu():
    x = np.random.default_rng(6).standard_normal((1, 2, 20, 20)).astype(np.float32)
    (y, idx), (y0, idx0) = (kernel("gpu", _max_and_argmax, x, (17, 16), (1, 2), (0, 0, 0, 0)),
                            generic(_max_and_argmax, x, (17, 16), (1, 2), (0, 0, 0, 0)))
    assert idx.dtype == idx0.dtype == np.int32
    assert_same(y, y0)
    assert_same(idx, idx0)
