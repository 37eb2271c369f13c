"""Property tests for the reduction and scan rules of fnn.numpy (fnn/numpy/reductions.py, vjps.py).

Shapes of 0 to 3 dims (size-1 and size-0 axes included where NumPy allows the reduction), axis
None / int / negative int / tuple, keepdims, ddof; each checked against central differences to
second order. Plus the exact cases: prod and cumprod with zeros in the input, max/min ties.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnn
import fnn.numpy as fnp
from gradcheck import check_grads

MAX_SIZE = 12


def small_shapes(min_dims=0, max_dims=3, min_side=0):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=4).filter(
        lambda s: math.prod(s) <= MAX_SIZE)


def axes_for(ndim):
    """None, an int (either sign), or a tuple of distinct axes (either sign, possibly empty)."""
    options = [st.none(), hnp.valid_tuple_axes(ndim)]
    if ndim:
        options.append(st.integers(-ndim, ndim - 1))
    return st.one_of(options)


def normalized(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % ndim for a in axis))


def reduced_count(shape, axis):
    return math.prod(shape[a] for a in normalized(axis, len(shape)))


def out_size(shape, axis):
    kept = normalized(axis, len(shape))
    return math.prod(n for i, n in enumerate(shape) if i not in kept)


SMOOTH = st.floats(-2, 2, allow_nan=False, allow_infinity=False)
# prod and cumprod: their second derivatives divide by the elements, which loses all accuracy
# where a * a underflows (|a| < 1e-154); exact zeros are handled exactly (tests below).
NOT_TINY = st.one_of(st.floats(0.1, 2), st.floats(-2, -0.1))
# Distinct values 0.1 apart: max/min without ties, var/std away from 0 (no kink of std).
DISTINCT = st.integers(-25, 25).map(lambda k: k / 10)


@st.composite
def problems(draw, elements=SMOOTH, unique=False, needs_elements=False):
    """(x, axis, keepdims). With needs_elements, the reduced slices are not empty (NumPy's max
    and min refuse them, its mean warns and gives NaN)."""
    shape = draw(small_shapes(), label="shape")
    x = draw(hnp.arrays(np.float64, shape, elements=elements, unique=unique), label="x")
    axis = draw(axes_for(len(shape)), label="axis")
    keepdims = draw(st.booleans(), label="keepdims")
    if needs_elements:
        assume(reduced_count(shape, axis) > 0)
    return x, axis, keepdims


def check_against_numpy(fun, np_fun, x):
    """fnn's forward value is NumPy's (shape and dtype included)."""
    out, expected = fun(x), np_fun(x)
    assert np.shape(out) == np.shape(expected)
    assert np.result_type(out) == np.result_type(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)


def test_every_reduction_primitive_is_tested():
    from fnn.autodiff.tracer import Primitive
    from fnn.numpy import reductions as R

    prims = {v.name.rsplit(".", 1)[-1] for v in vars(R).values()
             if isinstance(v, Primitive) and v.fun.__module__ == R.__name__}  # not imported ones
    tested = {"sum", "mean", "prod", "max", "min", "var", "cumsum", "cumprod", "logsumexp"}
    assert prims - tested == set()


# --------------------------------------------------------------------------------------------
# Each reduction against central differences, to second order


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "max", "min", "amax", "amin"])
@given(data=st.data())
def test_reduction(name, data):
    extremum = name in ("max", "min", "amax", "amin")
    x, axis, keepdims = data.draw(problems(
        elements=DISTINCT if extremum else NOT_TINY if name == "prod" else SMOOTH, unique=extremum,
        needs_elements=name in ("mean", "max", "min", "amax", "amin")))
    fun = getattr(fnp, name)

    def f(x):
        return fun(x, axis=axis, keepdims=keepdims)

    check_against_numpy(f, lambda x: getattr(np, name)(x, axis=axis, keepdims=keepdims), x)
    check_grads(f, [x], order=2)


@pytest.mark.parametrize("name", ["var", "std"])
@given(data=st.data())
def test_var_std(name, data):
    x, axis, keepdims = data.draw(problems(elements=DISTINCT, unique=True))
    ddof = data.draw(st.integers(0, 2), label="ddof")
    n = reduced_count(x.shape, axis)
    assume(n - ddof > 0 or out_size(x.shape, axis) == 0)
    fun = getattr(fnp, name)

    def f(x):
        return fun(x, axis=axis, ddof=ddof, keepdims=keepdims)

    with warnings.catch_warnings():
        if n - ddof <= 0:  # an empty output, and NumPy's warnings about it
            warnings.filterwarnings("ignore", "Degrees of freedom", RuntimeWarning)
            warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        check_against_numpy(f, lambda x: getattr(np, name)(x, axis=axis, ddof=ddof, keepdims=keepdims), x)
        check_grads(f, [x], order=2)


@given(data=st.data())
def test_std_of_single_elements_has_zero_gradient(data):
    """A slice of one element has std 0 whatever its value: the gradient is 0, not NaN."""
    shape = data.draw(small_shapes(min_dims=1, min_side=1), label="shape")
    x = data.draw(hnp.arrays(np.float64, shape + (1,), elements=SMOOTH), label="x")
    for f in (lambda x: fnp.std(x, axis=-1), lambda x: fnp.std(x, axis=(-1,), keepdims=True),
              lambda x: fnp.std(x[..., :1, :], axis=-2) if x.ndim > 1 else fnp.std(x[:1])):
        g = fnn.grad(lambda x: fnp.sum(f(x) * 2.0))(x)
        np.testing.assert_array_equal(g, np.zeros_like(x))
    # a constant slice of several elements: no NaN either (0 is in std's subgradient there)
    g = fnn.grad(lambda x: fnp.std(x))(np.full(shape, 0.7))
    assert np.all(np.isfinite(g))


@given(data=st.data())
def test_logsumexp(data):
    x, axis, keepdims = data.draw(problems(elements=st.floats(-3, 3), needs_elements=True))

    def np_logsumexp(x):
        m = np.max(x, axis=axis, keepdims=True)
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=normalized(axis, x.ndim))

    def f(x):
        return fnp.logsumexp(x, axis=axis, keepdims=keepdims)

    check_against_numpy(f, np_logsumexp, x)
    check_grads(f, [x], order=2)


@given(data=st.data())
def test_logsumexp_gradient_is_softmax_even_for_large_inputs(data):
    shape = data.draw(small_shapes(min_dims=1, min_side=1), label="shape")
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3)), label="x") + 1000.0
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    u = np.random.default_rng(1).standard_normal(np.delete(np.array(shape), axis % x.ndim))
    out, vjp_fn = fnn.vjp(lambda x: fnp.logsumexp(x, axis=axis), x)
    (g,) = vjp_fn(u)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    softmax = e / np.sum(e, axis=axis, keepdims=True)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(g))
    np.testing.assert_allclose(g, softmax * np.expand_dims(u, axis), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@given(data=st.data())
def test_scan(name, data):
    shape = data.draw(small_shapes(), label="shape")
    elements = NOT_TINY if name == "cumprod" else SMOOTH
    x = data.draw(hnp.arrays(np.float64, shape, elements=elements), label="x")
    axis = data.draw(st.none() | (st.integers(-x.ndim, x.ndim - 1) if x.ndim else st.none()), label="axis")
    fun = getattr(fnp, name)

    def f(x):
        return fun(x, axis=axis)

    check_against_numpy(f, lambda x: getattr(np, name)(x, axis=axis), x)
    check_grads(f, [x], order=2)


# --------------------------------------------------------------------------------------------
# Exact cases: zeros in prod and cumprod, ties in max and min


ZEROS_AND_VALUES = st.one_of(st.just(0.0), st.just(-0.0), NOT_TINY)


def _affine_derivative(f, x, u):
    """d<u, f(x)>/dx for f affine in each element separately (prod, cumprod): exact, by setting
    each element to 1 and to 0 in turn."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        one, zero = x.copy(), x.copy()
        one[i], zero[i] = 1.0, 0.0
        g[i] = np.sum(u * f(one)) - np.sum(u * f(zero))
    return g


@given(data=st.data())
def test_prod_with_zeros_is_exact(data):
    x, axis, keepdims = data.draw(problems(elements=ZEROS_AND_VALUES))
    out = np.prod(x, axis=axis, keepdims=keepdims)
    u = np.random.default_rng(2).standard_normal(np.shape(out))
    _, vjp_fn = fnn.vjp(lambda x: fnp.prod(x, axis=axis, keepdims=keepdims), x)
    (g,) = vjp_fn(u)
    expected = _affine_derivative(lambda x: np.prod(x, axis=axis, keepdims=keepdims), x, u)
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-14)
    check_grads(lambda x: fnp.prod(x, axis=axis, keepdims=keepdims), [x], order=2)


def test_prod_gradient_is_product_of_the_others():
    x = np.array([2.0, 0.0, 3.0, 0.0, 5.0])
    for i in range(5):
        y = x.copy()
        y[1] = 4.0 if i != 1 else 0.0  # one zero or two
        g = fnn.grad(fnp.prod)(y)
        expected = [np.prod(np.delete(y, j)) for j in range(5)]
        np.testing.assert_array_equal(g, expected)


@given(data=st.data())
def test_cumprod_with_zeros_is_exact(data):
    shape = data.draw(small_shapes(min_dims=1), label="shape")
    x = data.draw(hnp.arrays(np.float64, shape, elements=ZEROS_AND_VALUES), label="x")
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1), label="axis")
    u = np.random.default_rng(3).standard_normal(np.cumprod(x, axis=axis).shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by the zeros
        _, vjp_fn = fnn.vjp(lambda x: fnp.cumprod(x, axis=axis), x)
        (g,) = vjp_fn(u)
    expected = _affine_derivative(lambda x: np.cumprod(x, axis=axis), x, u)
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-14)
    check_grads(lambda x: fnp.cumprod(x, axis=axis), [x], order=2)


def test_max_ties_share_the_gradient():
    np.testing.assert_array_equal(fnn.grad(fnp.max)(np.array([1.0, 3.0, 3.0])), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(fnn.grad(fnp.min)(np.array([2.0, -1.0, 5.0, -1.0, -1.0])),
                                  [0.0, 1 / 3, 0.0, 1 / 3, 1 / 3])


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
@given(data=st.data())
def test_extremum_ties_share_the_gradient(name, data):
    x, axis, keepdims = data.draw(problems(elements=st.sampled_from([-1.0, 0.0, 2.0]), needs_elements=True))
    np_fun = getattr(np, name)
    out = np_fun(x, axis=axis, keepdims=keepdims)
    u = np.random.default_rng(4).standard_normal(np.shape(out))
    _, vjp_fn = fnn.vjp(lambda x: getattr(fnp, name)(x, axis=axis, keepdims=keepdims), x)
    (g,) = vjp_fn(u)
    winners = x == np_fun(x, axis=axis, keepdims=True)
    share = winners / np.sum(winners, axis=axis, keepdims=True)
    u_full = np.reshape(u, np.shape(np_fun(x, axis=axis, keepdims=True)))
    np.testing.assert_allclose(g, share * u_full, rtol=1e-15)
    # the whole cotangent of each output is handed on
    np.testing.assert_allclose(np.sum(g), np.sum(u), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Gradients keep the input's shape and dtype; method and NumPy spellings agree


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "max", "min", "var", "std"])
@given(data=st.data())
def test_methods_and_numpy_functions_agree(name, data):
    x, axis, keepdims = data.draw(problems(elements=DISTINCT, unique=True, needs_elements=True))
    assume(name not in ("var", "std") or reduced_count(x.shape, axis) > 1 or out_size(x.shape, axis) == 0)

    def via_fnp(x):
        return fnp.sum(getattr(fnp, name)(x, axis=axis, keepdims=keepdims))

    def via_np(x):
        return np.sum(getattr(np, name)(x, axis=axis, keepdims=keepdims))

    def via_method(x):
        return getattr(x, name)(axis=axis, keepdims=keepdims).sum()

    g = fnn.grad(via_fnp)(x)
    assert g.shape == x.shape and g.dtype == x.dtype
    np.testing.assert_allclose(fnn.grad(via_np)(x), g, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(fnn.grad(via_method)(x), g, rtol=1e-14, atol=1e-15)


def test_out_argument_is_refused_on_traced_values():
    x = np.ones(3)
    with pytest.raises(TypeError, match="out="):
        fnn.grad(lambda x: fnp.sum(x, out=np.zeros(())))(x)
