"""Every VJP rule on CuPy arrays gives what it gives on NumPy arrays.

Each primitive of fnn.numpy, fnn.nn.functional and fnn.losses is called on the same inputs moved to
the GPU; its value, its VJP (and for a few, the second-order VJP that exercises the helper
primitives of the backward pass) must stay on the GPU, keep their dtypes and match the NumPy results,
which the rule tests check against central differences. Skipped without CuPy and a GPU.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn import tree
import fnn.losses as L
import fnn.nn.functional as F
import fnn.numpy as fnp
from fnn.autodiff.tracer import Primitive

from backends import assert_on_backend, assert_trees_close, requires_cupy, to_backend, to_host
from test_numpy_elementwise import BINARY, UNARY, arrays, broadcast_shapes, small_shapes

def _vjp_on(backend: str, fun, args, u, order: int):
    """(value, cotangents) of fun at args for cotangent u, computed on `backend`, brought home."""
    args_b = to_backend(list(args), backend)
    u_b = to_backend(u, backend)
    if order == 1:
        value, vjp_fn = fnn.vjp(fun, *args_b)
        result = (value, vjp_fn(u_b))
    else:
        argnums = tuple(i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f")

        def first_order(*a):
            return fnn.grad(lambda *b: fnp.sum(fun(*b) * u_b), argnums=argnums)(*a)

        value, vjp_fn = fnn.vjp(first_order, *args_b)
        result = (value, vjp_fn(value))
    # integer arguments (indices, labels) get no gradient: leave their zero cotangents out
    result = (result[0], tuple(c for c, a in zip(result[1], args) if np.asarray(a).dtype.kind == "f"))
    assert_on_backend(result, backend, f"{getattr(fun, '__name__', fun)} on {backend}")
    return to_host(result)


def check_parity(fun, args, order: int = 1, rtol: float = 1e-6, atol: float = 1e-9, seed: int = 0):
    """fun's value and VJP agree on CuPy and NumPy, in float64 and (for float inputs) float32."""
    for dtype, tol in ((np.float64, (rtol, atol)), (np.float32, (2e-4, 2e-5))):
        cast = [a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]
        rng = np.random.default_rng(seed)
        u = tree.map(lambda v: rng.standard_normal(np.shape(v)).astype(np.asarray(v).dtype), fun(*cast))
        expected = _vjp_on("numpy", fun, cast, u, order)
        actual = _vjp_on("cupy", fun, cast, u, order)
        assert_trees_close(actual, expected, f"{getattr(fun, '__name__', fun)} ({np.dtype(dtype).name})",
                           rtol=tol[0], atol=tol[1])


# --------------------------------------------------------------------------------------------
# Elementwise rules: the tables of the elementwise rule tests, on hypothesis-drawn inputs


@requires_cupy
@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=5)
@given(data=st.data())
def test_unary_rule_on_cupy(name, data):
    fun, domain = UNARY[name]
    x = data.draw(arrays(small_shapes(min_dims=1), domain), label="x")
    check_parity(fun, [x], order=2)


@requires_cupy
@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=5)
@given(data=st.data())
def test_binary_rule_on_cupy(name, data):
    fun, dx, dy = BINARY[name]
    shapes = data.draw(broadcast_shapes(2), label="shapes")
    x = data.draw(arrays(shapes.input_shapes[0], dx), label="x")
    y = data.draw(arrays(shapes.input_shapes[1], dy), label="y")
    check_parity(fun, [x, y])


# --------------------------------------------------------------------------------------------
# Every other primitive: one case each (name -> builder of (function, args, order))

R = np.random.default_rng(1)


def _n(*shape, lo=-1.0, hi=1.0):
    return R.uniform(lo, hi, shape)


def _spd(n):
    a = _n(n, n)
    return a @ a.T + n * np.eye(n)


IDX = np.array([0, 2, 2, 1])
IMAGES = _n(2, 3, 6, 6)
CASES = {
    # elementwise with extra structure
    "fnn.numpy.clip": lambda: (lambda a: fnp.clip(a, -0.5, 0.5), [_n(3, 4)], 1),
    "fnn.numpy.where": lambda: (lambda a, b: fnp.where(a > 0, a, b), [_n(3, 4), _n(4)], 1),
    # contractions
    "fnn.numpy.dot": lambda: (fnp.dot, [_n(3, 4), _n(4, 2)], 2),
    "fnn.numpy.einsum": lambda: (lambda a, b: fnp.einsum("ij,jk->ik", a, b), [_n(3, 4), _n(4, 2)], 2),
    "fnn.numpy.matmul": lambda: (fnp.matmul, [_n(2, 3, 4), _n(4, 5)], 2),
    "fnn.numpy.tensordot": lambda: (lambda a, b: fnp.tensordot(a, b, 2), [_n(2, 3, 4), _n(3, 4, 2)], 1),
    "fnn.numpy.sum": lambda: (lambda a: fnp.sum(a, axis=1, keepdims=True), [_n(3, 4, 2)], 2),
    # indexing
    "fnn.numpy.getitem": lambda: (lambda a, i: a[i, 1:3], [_n(4, 5), IDX], 2),
    "fnn.numpy.index_add": lambda: (lambda a, v, i: fnp.index_add(a, i, v), [_n(4, 3), _n(4, 3), IDX], 1),
    "fnn.numpy.index_multiply": lambda: (lambda a, v, i: fnp.index_multiply(a, i, v),
                                         [_n(4, 3), _n(4, 3, lo=0.5, hi=1.5), IDX], 1),
    "fnn.numpy.index_set": lambda: (lambda a, v: fnp.index_set(a, np.s_[1:3], v), [_n(4, 3), _n(2, 3)], 1),
    # linear algebra and order statistics
    "fnn.numpy.linalg.det": lambda: (fnp.linalg.det, [_spd(3)], 1),
    "fnn.numpy.linalg.inv": lambda: (fnp.linalg.inv, [_spd(3)], 1),
    "fnn.numpy.linalg.norm": lambda: (lambda a: fnp.linalg.norm(a, axis=-1), [_n(3, 4)], 1),
    "fnn.numpy.linalg.slogdet": lambda: (lambda a: fnp.linalg.slogdet(a)[1], [_spd(3)], 1),
    "fnn.numpy.linalg.solve": lambda: (fnp.linalg.solve, [_spd(3), _n(3, 2)], 1),
    "fnn.numpy.max": lambda: (lambda a: fnp.max(a, axis=0), [_n(4, 3)], 1),
    "fnn.numpy.min": lambda: (lambda a: fnp.min(a, axis=1), [_n(4, 3)], 1),
    # reductions
    "fnn.numpy.cumprod": lambda: (lambda a: fnp.cumprod(a, axis=1), [_n(3, 4, lo=0.5, hi=1.5)], 1),
    "fnn.numpy.cumsum": lambda: (lambda a: fnp.cumsum(a, axis=0), [_n(3, 4)], 1),
    "fnn.numpy.logsumexp": lambda: (lambda a: fnp.logsumexp(a, axis=-1), [_n(3, 4)], 2),
    "fnn.numpy.mean": lambda: (lambda a: fnp.mean(a, axis=(0, 2)), [_n(3, 4, 2)], 1),
    "fnn.numpy.prod": lambda: (lambda a: fnp.prod(a, axis=1), [_n(3, 4, lo=0.5, hi=1.5)], 1),
    "fnn.numpy.var": lambda: (lambda a: fnp.var(a, axis=0, ddof=1), [_n(5, 3)], 2),
    # shapes
    "broadcast_to": lambda: (lambda a: fnp.broadcast_to(a, (2, 3, 4)), [_n(3, 1)], 1),
    "cast": lambda: (lambda a: fnp.astype(a, np.float32) * 2, [_n(3, 4)], 1),
    "fnn.numpy.concatenate": lambda: (lambda a, b: fnp.concatenate([a, b], axis=1), [_n(2, 3), _n(2, 1)], 1),
    "fnn.numpy.pad": lambda: (lambda a: fnp.pad(a, ((1, 0), (2, 1))), [_n(2, 3)], 1),
    "fnn.numpy.reshape": lambda: (lambda a: fnp.reshape(a, (4, 3)), [_n(2, 6)], 1),
    "fnn.numpy.stack": lambda: (lambda a, b: fnp.stack([a, b], axis=1), [_n(2, 3), _n(2, 3)], 1),
    "fnn.numpy.transpose": lambda: (lambda a: fnp.transpose(a, (2, 0, 1)), [_n(2, 3, 4)], 1),
    "fnn.numpy.unstack": lambda: (lambda a: fnp.unstack(a, axis=1)[1] * 3, [_n(2, 3)], 1),
    # activations and other layer primitives
    "fnn.nn.functional.erf": lambda: (F.erf, [_n(3, 4, lo=-2, hi=2)], 2),
    "fnn.nn.functional.gelu": lambda: (F.gelu, [_n(3, 4, lo=-2, hi=2)], 2),
    "fnn.nn.functional.gelu(approximate='tanh')": lambda: (lambda a: F.gelu(a, approximate=True),
                                                          [_n(3, 4, lo=-2, hi=2)], 2),
    "fnn.nn.functional.log_softmax": lambda: (F.log_softmax, [_n(3, 4)], 2),
    "fnn.nn.functional.softmax": lambda: (lambda a: F.softmax(a, axis=0), [_n(3, 4)], 2),
    "fnn.nn.functional.dense": lambda: (F.dense, [_n(5, 3), _n(3, 4), _n(4)], 2),
    "fnn.nn.functional.embedding": lambda: (lambda t, ids: F.embedding(ids, t),
                                            [_n(4, 3), np.array([[0, 3], [3, 1]])], 1),
    "fnn.nn.functional.batch_norm": lambda: (F.batch_norm, [_n(6, 3, 2, 2), _n(3), _n(3)], 2),
    "fnn.nn.functional.layer_norm": lambda: (F.layer_norm, [_n(4, 5), _n(5), _n(5)], 2),
    "fnn.nn.functional.rnn_sequence": lambda: (F.rnn_sequence, [_n(2, 4, 3), _n(2, 3), _n(3, 3), _n(3)], 1),
    "fnn.nn.functional.lstm_sequence": lambda: (F.lstm_sequence,
                                                [_n(2, 4, 12), _n(2, 3), _n(2, 3), _n(3, 12), _n(12)], 1),
    "fnn.nn.functional.gru_sequence": lambda: (F.gru_sequence, [_n(2, 4, 9), _n(2, 3), _n(3, 9), _n(9)], 1),
    # convolution and pooling; order 2 runs the helper primitives of their backward passes
    "conv2d": lambda: (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), [IMAGES, _n(4, 3, 3, 3), _n(4)], 2),
    "conv_grouped": lambda: (lambda x, w: F.conv2d(x, w, padding=(1, 2), dilation=2, groups=3),
                             [IMAGES, _n(6, 1, 2, 3)], 2),
    "conv_transpose2d": lambda: (lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                                 [IMAGES, _n(3, 2, 3, 3)], 2),
    "avg_pool2d": lambda: (lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
                           [IMAGES], 2),
    "max_pool2d": lambda: (lambda x: F.max_pool2d(x, 2, ceil_mode=True), [R.permutation(216).reshape(2, 3, 6, 6) / 50.0], 2),
    "max_pool2d_overlap": lambda: (lambda x: F.max_pool2d(x, 3, stride=2, padding=1),
                                   [R.permutation(216).reshape(2, 3, 6, 6) / 50.0], 2),
    # losses with their own rules
    "fnn.losses.softmax_cross_entropy": lambda: (lambda z, y: L.softmax_cross_entropy(z, y, label_smoothing=0.1),
                                                 [_n(3, 4), np.array([2, 0, 1])], 2),
    "fnn.losses.binary_cross_entropy_with_logits": lambda: (
        L.binary_cross_entropy_with_logits, [_n(3, 2), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])], 2),
}
for _name in ("elu", "hard_sigmoid", "hard_swish", "hard_tanh", "leaky_relu", "mish", "relu", "relu6", "selu",
              "sigmoid", "silu", "softplus", "softsign", "tanh"):
    # kinks kept away from the sample points: 0 for the ReLU family, +-1 and +-3 for the hard ones
    CASES[f"fnn.nn.functional.{_name}"] = (lambda f: lambda: (f, [_n(3, 4, lo=0.1, hi=0.9) * np.sign(_n(3, 4))
                                                                 * np.array([1, 2, 4, 5])], 1))(getattr(F, _name))

# Primitives covered through another case: the helpers that the backward passes of convolution and
# pooling call (the order-2 cases above differentiate through them), and the elementwise tables.
COVERED_ELSEWHERE = {
    "conv2d_from_columns": "conv2d", "conv2d_weight_grad": "conv2d", "conv2d_weight_grad_from_columns": "conv2d",
    "avg_pool2d_spread": "avg_pool2d", "max_pool2d_gather": "max_pool2d", "max_pool2d_scatter": "max_pool2d",
    "fnn.numpy.multiply": "binary table",
}


def all_primitives() -> set[str]:
    """Names of every primitive defined in fnn.numpy, fnn.nn.functional and fnn.losses."""
    modules = [f"fnn.numpy.{m.name}" for m in pkgutil.iter_modules(fnp.__path__)]
    modules += [f"fnn.nn.functional.{m.name}" for m in pkgutil.iter_modules(F.__path__)]
    modules += [f"fnn.losses.{m.name}" for m in pkgutil.iter_modules(L.__path__)]
    names = set()
    for module in modules:
        for value in vars(importlib.import_module(module)).values():
            if isinstance(value, Primitive):
                names.add(value.name)
    return names


def test_every_primitive_has_a_parity_case():
    elementwise = {f"fnn.numpy.{n}" for n in set(UNARY) | set(BINARY)}
    covered = set(CASES) | set(COVERED_ELSEWHERE) | elementwise
    missing = all_primitives() - covered
    assert not missing, f"primitives without a CuPy parity case: {sorted(missing)}"


@requires_cupy
@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_on_cupy(name):
    fun, args, order = CASES[name]()
    check_parity(fun, args, order=order)
