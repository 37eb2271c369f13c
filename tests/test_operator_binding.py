"""The Box operators (`x + y`, `x @ w`, ...) and one-argument calls bind through unrolled fast
paths (`fnn.autodiff.tracer.bind1` / `bind2`); they must record exactly what the general path
(`fnp.add(x, y)` and friends) records: the same values and gradients at first and second order,
with plain, traced and outer-trace operands, and the same errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp

OPERATORS = {
    "add": (lambda a, b: a + b, fnp.add),
    "subtract": (lambda a, b: a - b, fnp.subtract),
    "multiply": (lambda a, b: a * b, fnp.multiply),
    "divide": (lambda a, b: a / b, fnp.divide),
    "power": (lambda a, b: a ** b, fnp.power),
    "matmul": (lambda a, b: a @ b, fnp.matmul),
}


def _operands(rng, name):
    if name == "matmul":
        return rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    a = rng.uniform(0.5, 2.0, size=(3, 4))  # positive: power's base
    return a, rng.uniform(0.5, 2.0, size=(4,))  # broadcast on the right


@settings(deadline=None)
@given(st.sampled_from(sorted(OPERATORS)), st.sampled_from(["both", "left", "right"]),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_operator_matches_function_form(name, traced, reflected_plain, seed):
    op, fun = OPERATORS[name]
    a, b = _operands(np.random.default_rng(seed), name)
    if reflected_plain and traced == "right" and name != "matmul":
        a = float(a[0, 0])  # a Python number on the left: the traced right side's reflected operator

    def loss(form):
        def f(a, b):
            return fnp.sum(fnp.sin(form(a, b)))
        return f

    argnums = {"both": (0, 1), "left": (0,), "right": (1,)}[traced]
    v_op, g_op = fnn.value_and_grad(loss(op), argnums=argnums)(a, b)
    v_fn, g_fn = fnn.value_and_grad(loss(fun), argnums=argnums)(a, b)
    np.testing.assert_allclose(v_op, v_fn, rtol=1e-13)
    for x, y in zip(g_op, g_fn):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_operator_with_an_outer_traced_operand_matches_function_form(name):
    # grad of a function that closes over a value of the enclosing trace: at the inner level the
    # outer box is a constant, which the fast path hands to the general one.
    op, fun = OPERATORS[name]
    a, b = _operands(np.random.default_rng(0), name)

    def outer(form):
        def f(b):
            inner = fnn.grad(lambda a: fnp.sum(fnp.sin(form(a, b))) * fnp.sum(fnp.tanh(a)))
            return fnp.sum(inner(a) ** 2)
        return f

    np.testing.assert_allclose(fnn.grad(outer(op))(b), fnn.grad(outer(fun))(b), rtol=1e-12, atol=1e-14)


def test_unary_call_and_second_order_match_numpy():
    x = np.linspace(-1.5, 1.5, 7)
    f = lambda x: fnp.sum(fnp.tanh(x) * -x)  # noqa: E731
    g = fnn.grad(f)(x)
    t = np.tanh(x)
    np.testing.assert_allclose(g, -(1 - t * t) * x - t, rtol=1e-12)
    h = fnn.hessian(f)(x)
    expected = np.diag(2 * t * (1 - t * t) * x - 2 * (1 - t * t))
    np.testing.assert_allclose(h, expected, rtol=1e-10, atol=1e-12)


def test_operator_on_a_primitive_without_a_rule_names_it():
    nameless = fnn.primitive(lambda x, y: x + y, name="my_plus")
    with pytest.raises(fnn.NoGradientError, match="my_plus"):
        fnn.grad(lambda x: fnp.sum(nameless(x, 1.0)))(np.ones(3))


@pytest.mark.parametrize("traced", ["both", "left", "right"])
def test_unrolled_binding_of_an_argument_declared_without_a_gradient(traced):
    # bind2 plans its nodes by which operands are boxes; a position whose rule is None is a
    # constant there, as in the general path: no gradient, and the other one unchanged.
    from fnn.autodiff.tracer import Box, bind2

    scaled = fnn.primitive(lambda x, s: x * s, name="scaled_by_constant")
    fnn.defvjp(scaled, lambda g, ans, x, s: g * s, None, reads=[(1,), None])

    def through(binder):
        def f(x, s):
            top = max(v._trace for v in (x, s) if type(v) is Box)
            return fnp.sum(fnp.sin(binder(top, x, s)))
        return f

    unrolled = through(lambda top, x, s: bind2(scaled, top, x, s))
    general = through(lambda top, x, s: scaled(x, s))
    x, s = np.linspace(-1.0, 1.0, 5), np.full(5, 1.5)
    argnums = {"both": (0, 1), "left": (0,), "right": (1,)}[traced]
    for _ in range(2):  # the second call uses the plans the first one made
        v_u, g_u = fnn.value_and_grad(unrolled, argnums=argnums)(x, s)
        v_g, g_g = fnn.value_and_grad(general, argnums=argnums)(x, s)
        np.testing.assert_allclose(v_u, v_g, rtol=1e-14)
        for a, b, i in zip(g_u, g_g, argnums):
            np.testing.assert_allclose(a, b, rtol=1e-14)
            if i == 1:
                np.testing.assert_array_equal(a, np.zeros(5))
            else:
                np.testing.assert_allclose(a, np.cos(x * s) * s, rtol=1e-12)
