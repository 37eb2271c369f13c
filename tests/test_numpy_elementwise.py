"""Property tests for the elementwise rules of fnn.numpy (fnn/numpy/elementwise.py, vjps.py).

Every differentiable elementwise function is drawn on a domain where it is smooth (values kept a
margin away from poles, branch cuts, kinks and ties, so central differences are valid) and checked
by `check_grads` to second order; binary functions get hypothesis-drawn broadcasting shape pairs
(size-1 axes, 0-d arrays and empty axes included).

The cross-cutting properties live here too: float32 stays float32, integer and boolean inputs get
no gradient, the `where` NaN trap is avoided by the library's own rules, plain NumPy calls on
traced values dispatch to fnn, and NumPy functions without a rule raise NoGradientError.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnn
import fnn.numpy as fnp
from gradcheck import check_grads

MAX_SIZE = 12  # central differences cost one call per element: keep arrays small


# --------------------------------------------------------------------------------------------
# Domains and shapes


def interval(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def union(*intervals):
    return st.one_of([interval(lo, hi) for lo, hi in intervals])


def away_from_zero(lo, hi):
    """|x| in [lo, hi], either sign."""
    return union((lo, hi), (-hi, -lo))


def lattice(offset):
    """Values 2k + offset + [0, 0.4] (k in -1..1): two lattices with offsets 0 and 1 never come
    closer than 0.6, so maximum/minimum never meet a tie."""
    return st.builds(lambda k, u: 2.0 * k + offset + u, st.integers(-1, 1), interval(0.0, 0.4))


# mod/fmod: with |y| in [1, 1.5] and |x| in [0.2, 0.9] or [1.6, 1.9], |x / y| stays in
# [0.13, 0.9] or [1.07, 1.9]: at least 0.06 away from the integers where mod jumps.
MOD_X = union((0.2, 0.9), (-0.9, -0.2), (1.6, 1.9), (-1.9, -1.6))
MOD_Y = away_from_zero(1.0, 1.5)


def _size(shape):
    return math.prod(shape)


def small_shapes(min_dims=0, max_dims=3):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=4).filter(
        lambda s: _size(s) <= MAX_SIZE)


def broadcast_shapes(num_shapes):
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=0, max_dims=3, min_side=0, max_side=3
    ).filter(lambda b: _size(b.result_shape) <= MAX_SIZE)


def arrays(shape, elements, dtype=np.float64):
    return hnp.arrays(dtype, shape, elements=elements)


# name -> (function, domain)
UNARY = {
    "negative": (fnp.negative, interval(-2, 2)),
    "positive": (fnp.positive, interval(-2, 2)),
    "reciprocal": (fnp.reciprocal, away_from_zero(0.3, 2)),
    "square": (fnp.square, interval(-2, 2)),
    "sqrt": (fnp.sqrt, interval(0.1, 3)),
    "cbrt": (fnp.cbrt, away_from_zero(0.1, 3)),
    "abs": (fnp.abs, away_from_zero(0.1, 2)),
    "exp": (fnp.exp, interval(-2, 2)),
    "exp2": (fnp.exp2, interval(-2, 2)),
    "expm1": (fnp.expm1, interval(-2, 2)),
    "log": (fnp.log, interval(0.1, 3)),
    "log2": (fnp.log2, interval(0.1, 3)),
    "log10": (fnp.log10, interval(0.1, 3)),
    "log1p": (fnp.log1p, interval(-0.6, 2)),
    "sin": (fnp.sin, interval(-3, 3)),
    "cos": (fnp.cos, interval(-3, 3)),
    "tan": (fnp.tan, interval(-1.2, 1.2)),
    "arcsin": (fnp.arcsin, interval(-0.9, 0.9)),
    "arccos": (fnp.arccos, interval(-0.9, 0.9)),
    "arctan": (fnp.arctan, interval(-2, 2)),
    "sinh": (fnp.sinh, interval(-2, 2)),
    "cosh": (fnp.cosh, interval(-2, 2)),
    "tanh": (fnp.tanh, interval(-2, 2)),
    "arcsinh": (fnp.arcsinh, interval(-2, 2)),
    "arccosh": (fnp.arccosh, interval(1.1, 3)),
    "arctanh": (fnp.arctanh, interval(-0.9, 0.9)),
    "deg2rad": (fnp.deg2rad, interval(-200, 200)),
    "rad2deg": (fnp.rad2deg, interval(-3, 3)),
}

# name -> (function, domain of x, domain of y)
BINARY = {
    "add": (fnp.add, interval(-2, 2), interval(-2, 2)),
    "subtract": (fnp.subtract, interval(-2, 2), interval(-2, 2)),
    "multiply": (fnp.multiply, interval(-2, 2), interval(-2, 2)),
    "divide": (fnp.divide, interval(-2, 2), away_from_zero(0.5, 2)),
    "power": (fnp.power, interval(0.5, 2), interval(-2, 2)),
    "float_power": (fnp.float_power, interval(0.5, 2), interval(-2, 2)),
    "mod": (fnp.mod, MOD_X, MOD_Y),
    "fmod": (fnp.fmod, MOD_X, MOD_Y),
    "logaddexp": (fnp.logaddexp, interval(-2, 2), interval(-2, 2)),
    "logaddexp2": (fnp.logaddexp2, interval(-2, 2), interval(-2, 2)),
    "arctan2": (fnp.arctan2, away_from_zero(0.3, 2), interval(-2, 2)),  # away from the branch cut
    "hypot": (fnp.hypot, away_from_zero(0.3, 2), interval(-2, 2)),  # away from the origin
    "maximum": (fnp.maximum, lattice(0.0), lattice(1.0)),
    "minimum": (fnp.minimum, lattice(0.0), lattice(1.0)),
    "fmax": (fnp.fmax, lattice(1.0), lattice(0.0)),
    "fmin": (fnp.fmin, lattice(1.0), lattice(0.0)),
    "safe_divide": (fnp.safe_divide, interval(-2, 2), away_from_zero(0.5, 2)),
}

# clip: a kept 0.2 or more away from both bounds; a_min in [-1, -0.7], a_max in [1, 1.3].
CLIP_A = union((-2.2, -1.6), (-0.5, 0.5), (1.6, 2.2))
CLIP_MIN = interval(-1.0, -0.7)
CLIP_MAX = interval(1.0, 1.3)


def test_tables_cover_the_elementwise_module():
    """Every differentiable primitive of elementwise.py is in a table (or has its own test)."""
    from fnn.autodiff.tracer import Primitive
    from fnn.numpy import elementwise as E

    prims = {v.name.rsplit(".", 1)[-1] for v in vars(E).values() if isinstance(v, Primitive)}
    tested = set(UNARY) | set(BINARY) | {"clip", "where"}
    assert prims - tested == set()


# --------------------------------------------------------------------------------------------
# Rules against central differences


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_rule(name, data):
    fun, domain = UNARY[name]
    x = data.draw(arrays(small_shapes(), domain) | domain, label="x (array or Python float)")
    check_grads(fun, [x], order=2)
    if isinstance(x, np.ndarray):
        check_float32(fun, [x], second_order=True)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_rule_broadcasting(name, data):
    """Arrays of broadcasting shapes; sometimes a Python float on one side (differentiated too)."""
    fun, dom_x, dom_y = BINARY[name]
    shapes = data.draw(broadcast_shapes(2), label="shapes")
    x_shape, y_shape = shapes.input_shapes
    x = data.draw(arrays(x_shape, dom_x), label="x")
    y = data.draw(arrays(y_shape, dom_y), label="y")
    python_float = data.draw(st.sampled_from([None, "x", "y"]), label="Python float")
    if python_float == "x":
        x = data.draw(dom_x, label="x float")
        x_shape = ()
    elif python_float == "y":
        y = data.draw(dom_y, label="y float")
        y_shape = ()
    check_grads(fun, [x, y], order=2)
    gx, gy = fnn.grad(lambda a, b: fnp.sum(fun(a, b)), argnums=(0, 1))(x, y)
    assert np.shape(gx) == x_shape and np.shape(gy) == y_shape
    # NumPy defines float_power to compute in float64; every other op keeps float32.
    check_float32(fun, [x, y], out_dtype=np.float64 if name == "float_power" else np.float32)


@given(data=st.data())
def test_power_with_constant_exponent_on_any_base(data):
    """x ** n for a constant integer-valued n: any real base, zero included."""
    x = data.draw(arrays(small_shapes(), interval(-2, 2)), label="x")
    n = data.draw(st.integers(1, 4), label="n")
    check_grads(lambda x: fnp.power(x, n), [x], order=2)
    check_grads(lambda x: x ** float(n), [x], order=2)
    expected = n * x ** (n - 1)
    np.testing.assert_allclose(fnn.grad(lambda x: fnp.sum(x ** n))(x), expected, rtol=1e-12)


@pytest.mark.parametrize("power", [fnp.power, fnp.float_power])
def test_power_at_zero_base(power):
    """d/dx x**0 = 0 and d/dx x**1 = 1 at x = 0; d/dy 0**y = 0 for y > 0."""
    zero = np.zeros(3)
    for y, expected in [(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (0, 0.0), (np.zeros(3), 0.0)]:
        g = fnn.grad(lambda x: fnp.sum(power(x, y)))(zero)
        np.testing.assert_array_equal(g, np.full(3, expected), err_msg=f"y={y!r}")
    # traced exponent 0 at base 0 too, both arguments at once
    gx, gy = fnn.grad(lambda x, y: fnp.sum(power(x, y)), argnums=(0, 1))(zero, np.array([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(gx, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(gy, [0.0, 0.0, 0.0])
    gy = fnn.grad(lambda y: fnp.sum(power(zero, y)))(np.array([0.5, 1.0, 2.0]))
    np.testing.assert_array_equal(gy, np.zeros(3))


@pytest.mark.parametrize("power", [fnp.power, fnp.float_power])
@given(x=hnp.arrays(np.float64, small_shapes(), elements=interval(0.5, 2)))
def test_power_second_derivative_at_zero_exponent(power, x):
    """y == 0 is no special point for x > 0: d2/dxdy x**y = x**(y-1) (1 + y log x) = 1/x there."""
    check_grads(power, [x, np.zeros(x.shape)], order=2)
    check_grads(power, [x, 0.0], order=2)
    cross = fnn.grad(lambda y: fnp.sum(fnn.grad(lambda x: fnp.sum(power(x, y)))(x)))(0.0)
    np.testing.assert_allclose(cross, np.sum(1.0 / x), rtol=1e-12)


@given(data=st.data())
def test_where_broadcasting(data):
    shapes = data.draw(broadcast_shapes(3), label="shapes")
    c_shape, x_shape, y_shape = shapes.input_shapes
    cond = data.draw(hnp.arrays(np.bool_, c_shape), label="condition")
    x = data.draw(arrays(x_shape, interval(-2, 2)), label="x")
    y = data.draw(arrays(y_shape, interval(-2, 2)), label="y")
    check_grads(lambda x, y: fnp.where(cond, x, y), [x, y], order=2)
    check_grads(lambda x: fnp.where(cond, fnp.sin(x), 0.5), [x], order=2)
    # The cotangent goes to the selected side only.
    gx, gy = fnn.grad(lambda x, y: fnp.sum(fnp.where(cond, x, y)), argnums=(0, 1))(x, y)
    ones = np.ones(shapes.result_shape)
    expected_x = _sum_to(np.where(cond, ones, 0.0), x_shape)
    expected_y = _sum_to(np.where(cond, 0.0, ones), y_shape)
    np.testing.assert_array_equal(gx, expected_x)
    np.testing.assert_array_equal(gy, expected_y)


def _sum_to(a, shape):
    """Sum `a` over the axes broadcasting added or stretched, so it has `shape` (independent of fnn)."""
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape)


@given(data=st.data())
def test_clip_broadcasting(data):
    shapes = data.draw(broadcast_shapes(3), label="shapes")
    a_shape, lo_shape, hi_shape = shapes.input_shapes
    a = data.draw(arrays(a_shape, CLIP_A), label="a")
    lo = data.draw(arrays(lo_shape, CLIP_MIN), label="a_min")
    hi = data.draw(arrays(hi_shape, CLIP_MAX), label="a_max")
    check_grads(fnp.clip, [a, lo, hi], order=2)
    check_grads(lambda a, hi: fnp.clip(a, None, hi), [a, hi], order=2)
    check_grads(lambda a, lo: fnp.clip(a, lo, None), [a, lo], order=2)
    check_grads(fnp.clip, [a, -0.8, 1.1], order=2)  # Python-float bounds are differentiated too


@given(data=st.data())
def test_safe_divide_is_zero_where_numerator_is_zero(data):
    shapes = data.draw(broadcast_shapes(2), label="shapes")
    g_shape, d_shape = shapes.input_shapes
    d = data.draw(arrays(d_shape, st.sampled_from([0.0, np.inf, -np.inf]) | interval(-2, 2)), label="d")
    g = np.zeros(g_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no divide-by-zero warning either
        out = fnp.safe_divide(g, d)
    assert np.array_equal(out, np.zeros(shapes.result_shape))
    with np.errstate(divide="ignore"):  # d/dg of g/0 is infinite
        gd = fnn.grad(lambda d: fnp.sum(fnp.safe_divide(g, d)))(d)
    assert np.all(gd == 0)


@pytest.mark.parametrize("fun", [fnp.maximum, fnp.minimum, fnp.fmax, fnp.fmin])
@given(data=st.data())
def test_select_ties_share_the_gradient(fun, data):
    """Where x == y, each gets half the cotangent; otherwise it goes to the selected one."""
    shape = data.draw(small_shapes(), label="shape")
    x = data.draw(arrays(shape, st.sampled_from([-1.0, 0.0, 1.0])), label="x")
    y = data.draw(arrays(shape, st.sampled_from([-1.0, 0.0, 1.0])), label="y")
    u = np.random.default_rng(0).standard_normal(shape)
    _, vjp_fn = fnn.vjp(fun, x, y)
    gx, gy = vjp_fn(u)
    x_won = x > y if fun in (fnp.maximum, fnp.fmax) else x < y
    y_won = y > x if fun in (fnp.maximum, fnp.fmax) else y < x
    np.testing.assert_array_equal(gx, u * (x_won + 0.5 * (x == y)))
    np.testing.assert_array_equal(gy, u * (y_won + 0.5 * (x == y)))


def test_maximum_tie_with_broadcast_scalar():
    """relu at 0: max(x, 0.) sends half to x; the broadcast scalar collects the other halves."""
    x = np.array([-1.0, 0.0, 2.0, 0.0])
    gx, gz = fnn.grad(lambda x, z: fnp.sum(fnp.maximum(x, z)), argnums=(0, 1))(x, 0.0)
    np.testing.assert_array_equal(gx, [0.0, 0.5, 1.0, 0.5])
    assert gz == 2.0 and isinstance(gz, float)  # wins at -1, half of each of the two ties


# --------------------------------------------------------------------------------------------
# float32 stays float32


def _to_float32(a):
    """float64 arrays become float32 arrays; Python floats stay (NumPy treats them as weak)."""
    return a.astype(np.float32) if isinstance(a, np.ndarray) else a


def check_float32(fun, args, out_dtype=np.float32, second_order=False):
    """float32 in, float32 out: the value, the gradient of every argument (a Python float's is a
    0-d scalar), and the gradients agree with float64 ones at the same point."""
    args32 = [_to_float32(a) for a in args]
    assert np.result_type(fun(*args32)) == out_dtype
    argnums = tuple(range(len(args)))

    def total(*a):
        return fnp.sum(fun(*a))

    value, grads = fnn.value_and_grad(total, argnums=argnums)(*args32)
    assert np.result_type(value) == out_dtype
    for a, g in zip(args32, grads):
        if isinstance(a, np.ndarray):
            assert g.dtype == np.float32 and g.shape == a.shape
        else:
            assert np.ndim(g) == 0
    grads64 = fnn.grad(total, argnums=argnums)(*[np.asarray(a, np.float64) if isinstance(a, np.ndarray) else a
                                                 for a in args32])
    for g, g64 in zip(grads, grads64):
        np.testing.assert_allclose(g, g64, rtol=1e-4, atol=1e-5)
    if second_order:  # a Hessian-vector product stays float32 too
        h = fnn.grad(lambda *a: fnp.sum(fnn.grad(total)(*a) * 0.5))(*args32)
        assert h.dtype == args32[0].dtype


@given(data=st.data())
def test_float32_where_and_clip(data):
    x = data.draw(arrays(small_shapes(min_dims=1), CLIP_A), label="x").astype(np.float32)
    cond = x > 0
    assert fnp.where(cond, x, 0.0).dtype == np.float32
    assert fnp.clip(x, -1.0, 1.0).dtype == np.float32
    g = fnn.grad(lambda x: fnp.sum(fnp.where(cond, x, 0.0) + fnp.clip(x, -1.0, 1.0)))(x)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, cond.astype(np.float32) + (np.abs(x) < 1))


REDUCTIONS = {
    "sum": lambda x: fnp.sum(x, axis=0), "mean": lambda x: fnp.mean(x, axis=-1, keepdims=True),
    "prod": lambda x: fnp.prod(x), "max": lambda x: fnp.max(x, axis=0),
    "min": lambda x: fnp.amin(x), "amax": lambda x: fnp.amax(x, axis=(0,)),
    "var": lambda x: fnp.var(x, ddof=1), "std": lambda x: fnp.std(x, axis=0, keepdims=True),
    "cumsum": lambda x: fnp.cumsum(x), "cumprod": lambda x: fnp.cumprod(x, axis=0),
    "logsumexp": lambda x: fnp.logsumexp(x, axis=0),
}


@given(x=hnp.arrays(np.float64, st.integers(2, 6), unique=True,
                    elements=st.integers(-20, 20).map(lambda k: k / 8)))
def test_float32_reductions(x):
    for name, fun in REDUCTIONS.items():
        try:
            check_float32(fun, [x])
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from e


# --------------------------------------------------------------------------------------------
# Integer and boolean inputs


def test_integer_constants_get_no_gradient():
    x = np.array([0.5, -1.0, 2.0])
    g = fnn.grad(lambda x: fnp.sum(x * np.arange(3)))(x)
    np.testing.assert_array_equal(g, np.arange(3.0))
    assert g.dtype == np.float64
    mask = np.array([True, False, True])
    g = fnn.grad(lambda x: fnp.sum(fnp.where(mask, x, 0.0) * mask))(x)
    np.testing.assert_array_equal(g, [1.0, 0.0, 1.0])


def test_integer_argument_outside_argnums():
    x = np.array([0.5, -1.0, 2.0])
    g = fnn.grad(lambda x, n: fnp.sum(x ** n), argnums=0)(x, 3)
    np.testing.assert_allclose(g, 3 * x ** 2)
    g = fnn.grad(lambda x, idx: fnp.sum(x * idx), argnums=0)(x, np.array([1, 2, 3]))
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("bad", [np.arange(3), 3, np.array([True, False]), np.int32(2)])
def test_grad_of_non_float_argument_raises(bad):
    with pytest.raises(TypeError, match="floating-point"):
        fnn.grad(lambda x: fnp.sum(x * 2.0))(bad)


@pytest.mark.parametrize("other", [np.array([1, 2, 3]), np.array([True, False, True])])
def test_vjp_gives_integer_and_boolean_primals_a_zero_cotangent(other):
    x = np.array([1.5, 2.5, 3.7])
    _, vjp_fn = fnn.vjp(lambda x, n: fnp.sum(x * n), x, other)
    gx, gn = vjp_fn(1.0)
    np.testing.assert_array_equal(gx, other.astype(np.float64))
    np.testing.assert_array_equal(gn, np.zeros_like(other))


# --------------------------------------------------------------------------------------------
# The `where` NaN trap: the unselected branch's zero cotangent stays zero


def _finite_where_grad(fun, x, valid):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the forward pass of the unselected branch

        def f(x):
            return fnp.sum(fnp.where(valid(x), fun(x), 0.0))

        g = fnn.grad(f)(x)
        h = fnn.grad(lambda x: fnp.sum(fnn.grad(f)(x)))(x)
    return g, h


TRAPS = {
    "sqrt": (fnp.sqrt, lambda x: x > 0, lambda x: 0.5 / np.sqrt(x)),
    "cbrt": (fnp.cbrt, lambda x: x != 0, lambda x: 1.0 / (3.0 * np.cbrt(x) ** 2)),
    "log": (fnp.log, lambda x: x > 0, lambda x: 1.0 / x),
    "log2": (fnp.log2, lambda x: x > 0, lambda x: 1.0 / (x * np.log(2.0))),
    "log10": (fnp.log10, lambda x: x > 0, lambda x: 1.0 / (x * np.log(10.0))),
    "log1p": (fnp.log1p, lambda x: x > -1, lambda x: 1.0 / (1.0 + x)),
    "arcsin": (fnp.arcsin, lambda x: np.abs(x) < 1, lambda x: 1.0 / np.sqrt(1 - x * x)),
    "arccos": (fnp.arccos, lambda x: np.abs(x) < 1, lambda x: -1.0 / np.sqrt(1 - x * x)),
    "arccosh": (fnp.arccosh, lambda x: x > 1, lambda x: 1.0 / np.sqrt(x * x - 1)),
    "arctanh": (fnp.arctanh, lambda x: np.abs(x) < 1, lambda x: 1.0 / (1 - x * x)),
    "hypot": (lambda x: fnp.hypot(x, 0.0), lambda x: x != 0, np.sign),
    "norm": (lambda x: fnp.linalg.norm(x[:, None], axis=1), lambda x: x != 0, np.sign),
}


@pytest.mark.parametrize("name", sorted(TRAPS))
def test_where_nan_trap_is_avoided(name):
    fun, valid, derivative = TRAPS[name]
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0])
    g, h = _finite_where_grad(fun, x, valid)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(h)), (g, h)
    ok = valid(x)
    np.testing.assert_allclose(g[ok], derivative(x[ok]), rtol=1e-12)
    assert np.all(g[~ok] == 0)


def test_where_nan_trap_brief_examples():
    x = np.array([0.0, -1.0, 4.0, 0.0])
    with np.errstate(invalid="ignore"):  # sqrt(-1) in the unselected branch
        g = fnn.grad(lambda x: fnp.sum(fnp.where(x > 0, fnp.sqrt(x), 0.0)))(x)
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.25, 0.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        g = fnn.grad(lambda x: fnp.sum(fnp.where(x > 0, fnp.log(x), 0.0)))(x)
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.25, 0.0])
    # The norm of a zero vector, masked out: zero gradient, not NaN.
    m = np.array([[0.0, 0.0], [3.0, 4.0]])
    g = fnn.grad(lambda m: fnp.sum(fnp.where(fnp.linalg.norm(m, axis=1) > 0,
                                             fnp.linalg.norm(m, axis=1), 0.0)))(m)
    np.testing.assert_allclose(g, [[0.0, 0.0], [0.6, 0.8]], rtol=1e-15)
    g = fnn.grad(lambda v: fnp.where(fnp.sum(v * v) > 0, fnp.linalg.norm(v), 0.0))(np.zeros(3))
    np.testing.assert_array_equal(g, np.zeros(3))


# --------------------------------------------------------------------------------------------
# NumPy's own functions on traced values


DISPATCH = [
    ("exp", lambda x: np.sum(np.exp(x)), lambda x: fnp.sum(fnp.exp(x))),
    ("maximum", lambda x: np.sum(np.maximum(x, 0.3)), lambda x: fnp.sum(fnp.maximum(x, 0.3))),
    ("where", lambda x: np.sum(np.where(x > 0, x * x, -x)), lambda x: fnp.sum(fnp.where(x > 0, x * x, -x))),
    ("clip", lambda x: np.sum(np.clip(x, -0.5, 0.5)), lambda x: fnp.sum(fnp.clip(x, -0.5, 0.5))),
    ("mean", lambda x: np.mean(np.tanh(x), axis=0).sum(), lambda x: fnp.sum(fnp.mean(fnp.tanh(x), axis=0))),
    ("prod", lambda x: np.prod(x, axis=1).max(), lambda x: fnp.max(fnp.prod(x, axis=1))),
    ("operators", lambda x: (abs(x) ** 2.0 / 3.0 - x % 1.5).std(), lambda x: fnp.std(
        fnp.abs(x) ** 2.0 / 3.0 - fnp.mod(x, 1.5))),
    ("ufunc.reduce", lambda x: np.add.reduce(np.sin(x), axis=1).sum(), lambda x: fnp.sum(fnp.sin(x))),
    ("ufunc.accumulate", lambda x: np.multiply.accumulate(x, axis=0).sum(),
     lambda x: fnp.sum(fnp.cumprod(x, axis=0))),
    ("logaddexp", lambda x: np.logaddexp(x, x.T).var(), lambda x: fnp.var(fnp.logaddexp(x, x.T))),
]


@pytest.mark.parametrize("name", [d[0] for d in DISPATCH])
@given(x=hnp.arrays(np.float64, (3, 3), elements=interval(-2, 2)))
def test_numpy_calls_dispatch(name, x):
    np_f, fnp_f = next((a, b) for n, a, b in DISPATCH if n == name)
    np.testing.assert_allclose(np_f(x), fnp_f(x), rtol=1e-12)
    g = fnn.grad(fnp_f)(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(fnn.grad(np_f)(x), g, rtol=1e-12, atol=1e-15)


@given(x=hnp.arrays(np.float64, small_shapes(), elements=interval(-3, 3)))
def test_numpy_exp_dispatch_gradient(x):
    g = fnn.grad(lambda x: np.sum(np.exp(x)))(x)
    np.testing.assert_allclose(g, np.exp(x), rtol=1e-15)
    np.testing.assert_allclose(g, fnn.grad(lambda x: fnp.sum(fnp.exp(x)))(x), rtol=0)


NO_RULE = [
    ("numpy.linalg.eigh", lambda x: np.linalg.eigh(x)[0]),
    ("numpy.fft.fft", lambda x: np.fft.fft(x).real),
    ("numpy.median", lambda x: np.median(x)),
    ("numpy.spacing", lambda x: np.spacing(x)),
    ("numpy.add.outer", lambda x: np.add.outer(x, x)),
    ("numpy.maximum.accumulate", lambda x: np.maximum.accumulate(x)),
    ("numpy.sinc", lambda x: fnp.sinc(x)),
    ("numpy.linalg.eigvals", lambda x: fnp.linalg.eigvals(x)),
]


@pytest.mark.parametrize("name", [n for n, _ in NO_RULE])
def test_numpy_function_without_rule_raises(name):
    fun = dict(NO_RULE)[name]
    x = np.array([[2.0, 1.0], [1.0, 3.0]])
    fun(x)  # works on plain arrays
    with pytest.raises(fnn.NoGradientError, match=re.escape(name)):
        fnn.grad(lambda x: fnp.sum(fun(x)))(x)
