"""The transforms: grad, value_and_grad, vjp, jvp, jacobian, hessian, stop_gradient, custom_vjp,
checkpoint, and the primitive / defvjp extension point."""

from __future__ import annotations

import gc
import weakref
from collections import namedtuple

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnn
import fnn.numpy as fnp
from fnn.autodiff.tracer import strip
from gradcheck import assert_close, numerical_jvp, numerical_vjp

floats = st.floats(-2.0, 2.0, allow_nan=False, width=64)


def small_arrays(min_dims=0, max_dims=2, max_side=4):
    return hnp.arrays(np.float64, hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side),
                      elements=floats)


def mlp_loss(params, x):
    h = fnp.tanh(x @ params["w1"] + params["b1"])
    return fnp.mean((h @ params["w2"]) ** 2)


def make_params(rng, dtype=np.float64):
    return {
        "w1": rng.standard_normal((3, 4)).astype(dtype),
        "b1": rng.standard_normal(4).astype(dtype),
        "w2": rng.standard_normal((4, 2)).astype(dtype),
    }


# --- grad and value_and_grad --------------------------------------------------------------------

def test_grad_of_pytree_matches_central_differences():
    rng = np.random.default_rng(0)
    params, x = make_params(rng), rng.standard_normal((5, 3))
    g = fnn.grad(mlp_loss)(params, x)
    assert set(g) == set(params)
    for name in params:
        def loss_of(leaf, name=name):
            return mlp_loss({**params, name: leaf}, x)
        assert_close(g[name], numerical_vjp(loss_of, [params[name]], 0, np.ones(())), name)


def test_gradient_keeps_structure_dtype_and_float32():
    rng = np.random.default_rng(1)
    params, x = make_params(rng, np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    loss, g = fnn.value_and_grad(mlp_loss)(params, x)
    assert loss.dtype == np.float32
    assert fnn.tree.structure(g) == fnn.tree.structure(params)
    for name in params:
        assert g[name].dtype == np.float32 and g[name].shape == params[name].shape


def test_argnums_int_tuple_and_one_tuple():
    f = lambda x, y, z: x * y ** 2 + z  # noqa: E731
    assert fnn.grad(f)(2.0, 3.0, 1.0) == pytest.approx(9.0)
    assert fnn.grad(f, argnums=1)(2.0, 3.0, 1.0) == pytest.approx(12.0)
    one = fnn.grad(f, argnums=(0,))(2.0, 3.0, 1.0)
    assert isinstance(one, tuple) and len(one) == 1 and one[0] == pytest.approx(9.0)
    gx, gz = fnn.grad(f, argnums=(0, 2))(2.0, 3.0, 1.0)
    assert (gx, gz) == (pytest.approx(9.0), pytest.approx(1.0))
    assert fnn.grad(f, argnums=-1)(2.0, 3.0, 1.0) == pytest.approx(1.0)


def test_python_float_input_gives_float_gradient():
    g = fnn.grad(lambda x: fnp.sin(x) * x)(0.5)
    assert isinstance(g, float)
    assert g == pytest.approx(np.cos(0.5) * 0.5 + np.sin(0.5))


def test_has_aux_returns_aux_unboxed():
    def f(x):
        y = fnp.sum(x ** 2)
        return y, {"y": y, "double": 2 * x}

    (value, aux), g = fnn.value_and_grad(f, has_aux=True)(np.arange(3.0))
    assert value == pytest.approx(5.0)
    assert not fnn.is_traced(aux["y"]) and not fnn.is_traced(aux["double"])
    np.testing.assert_allclose(aux["double"], 2 * np.arange(3.0))
    np.testing.assert_allclose(g, 2 * np.arange(3.0))
    g2, aux2 = fnn.grad(f, has_aux=True)(np.arange(3.0))
    np.testing.assert_allclose(g2, g)
    assert aux2["y"] == pytest.approx(5.0)


def test_input_that_output_ignores_gets_zero_gradient():
    gx, gy = fnn.grad(lambda x, y: fnp.sum(x ** 2), argnums=(0, 1))(np.ones(2), np.ones((3, 3), np.float32))
    np.testing.assert_array_equal(gy, np.zeros((3, 3), np.float32))
    assert gy.dtype == np.float32


def test_broadcasting_is_undone_centrally():
    x, y = np.ones((3, 1)), np.arange(4.0)
    gx, gy = fnn.grad(lambda x, y: fnp.sum((x + y) * (x * y)), argnums=(0, 1))(x, y)
    assert gx.shape == (3, 1) and gy.shape == (4,)
    np.testing.assert_allclose(gx, np.full((3, 1), np.sum(2 * x[0, 0] * y + y ** 2)))


def test_namedtuple_and_attrs_inputs():
    Pair = namedtuple("Pair", "a b")

    @attrs.frozen
    class Layer:
        w: np.ndarray
        name: str = fnn.tree.static_field(default="dense")

    def loss(p, layer):
        return fnp.sum(p.a * p.b * layer.w)

    p, layer = Pair(np.ones(2), np.full(2, 3.0)), Layer(np.full(2, 2.0))
    gp, glayer = fnn.grad(loss, argnums=(0, 1))(p, layer)
    assert isinstance(gp, Pair) and isinstance(glayer, Layer) and glayer.name == "dense"
    np.testing.assert_allclose(gp.a, [6.0, 6.0])
    np.testing.assert_allclose(glayer.w, [3.0, 3.0])


# --- errors ------------------------------------------------------------------------------------

def test_non_scalar_output_is_refused_with_its_shape():
    with pytest.raises(TypeError, match=r"scalar.*\(3,\)"):
        fnn.grad(lambda x: x * 2)(np.ones(3))


def test_integer_input_is_refused_naming_the_path():
    with pytest.raises(TypeError, match=r"argument 0\['b'\].*floating-point"):
        fnn.grad(lambda p: fnp.sum(p["a"]))({"a": np.ones(2), "b": np.arange(2)})
    with pytest.raises(TypeError, match="floating-point"):
        fnn.grad(lambda x: x * 2.0)(3)


def test_argnums_out_of_range():
    with pytest.raises(ValueError, match="argnums=2"):
        fnn.grad(lambda x, y: x * y, argnums=2)(1.0, 2.0)


def test_missing_vjp_names_the_function():
    cube = fnn.primitive(lambda x: x ** 3, name="my_cube")
    assert cube(2.0) == 8.0
    with pytest.raises(fnn.NoGradientError, match="my_cube"):
        fnn.grad(lambda x: cube(x))(2.0)


def test_one_primitive_traced_at_different_positions():
    """A node's plan is made per set of traced positions: the same primitive, called with each
    subset of its arguments traced (and, once, with a traced value where it declares no gradient),
    gives each call its own correct gradients."""
    scaled = fnn.primitive(lambda x, y, s, *, power: x * y ** power * s, name="scaled")
    fnn.defvjp(scaled, lambda g, ans, x, y, s, *, power: g * y ** power * s,
               lambda g, ans, x, y, s, *, power: g * x * power * y ** (power - 1) * s, None,
               reads=[(1, 2), (0, 1, 2), ()])
    x, y, s = np.array([1.5, -2.0]), np.array([0.5, 3.0]), np.array([2.0, 0.25])

    def f(x, y, s):
        return fnp.sum(scaled(x, y, s, power=2))

    for _ in range(2):  # the second round uses the cached plans
        np.testing.assert_allclose(fnn.grad(f, argnums=0)(x, y, s), y ** 2 * s)
        np.testing.assert_allclose(fnn.grad(f, argnums=1)(x, y, s), 2 * x * y * s)
        gx, gy = fnn.grad(f, argnums=(0, 1))(x, y, s)
        np.testing.assert_allclose(gx, y ** 2 * s)
        np.testing.assert_allclose(gy, 2 * x * y * s)
        # s has no rule: a traced s is used as a constant, and its gradient is zero
        gx, gs = fnn.grad(f, argnums=(0, 2))(x, y, s)
        np.testing.assert_allclose(gx, y ** 2 * s)
        np.testing.assert_array_equal(gs, 0.0)
    assert scaled(x, y, s, power=2).tolist() == (x * y ** 2 * s).tolist()  # untraced


def test_has_aux_without_pair():
    with pytest.raises(TypeError, match="pair"):
        fnn.grad(lambda x: x * 2.0, has_aux=True)(1.0)


def test_defvjp_rejects_non_primitive():
    with pytest.raises(TypeError, match="primitive"):
        fnn.defvjp(np.sin, lambda g, ans, x: g)


# --- the extension point -------------------------------------------------------------------------

def test_primitive_and_defvjp_and_its_second_derivative():
    @fnn.primitive
    def softplus(x):
        return np.logaddexp(0.0, x)

    fnn.defvjp(softplus, lambda g, ans, x: g / (1.0 + fnp.exp(-x)))
    x = np.linspace(-2, 2, 5)
    sig = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(fnn.grad(lambda x: fnp.sum(softplus(x)))(x), sig)
    second = fnn.grad(lambda x: fnp.sum(fnn.grad(lambda y: fnp.sum(softplus(y)))(x)))(x)
    np.testing.assert_allclose(second, sig * (1 - sig))


def _weighted_sum_primitive(name):
    """sum_k (k + 1) * xs[k], as a variadic primitive."""
    return fnn.primitive(lambda *xs: sum((k + 1) * x for k, x in enumerate(xs)), name=name)


def test_defvjp_argnum_one_call_per_position_or_together():
    xs = [np.full(3, float(k)) for k in range(4)]
    calls = {"each": 0, "together": 0}

    each = _weighted_sum_primitive("each")

    def each_rule(argnum, g, ans, *xs):
        calls["each"] += 1
        return g * float(argnum + 1)

    fnn.defvjp_argnum(each, each_rule, reads=())

    together = _weighted_sum_primitive("together")

    def together_rule(argnums, g, ans, *xs):
        calls["together"] += 1
        return [g * float(i + 1) for i in argnums]

    fnn.defvjp_argnum(together, together_rule, reads=(), together=True)

    for prim in (each, together):
        grads = fnn.grad(lambda *xs: fnp.sum(fnp.sin(prim(*xs))), argnums=(0, 1, 2, 3))(*xs)
        cos = np.cos(sum((k + 1) * x for k, x in enumerate(xs)))
        for k, g in enumerate(grads):
            np.testing.assert_allclose(g, (k + 1) * cos)
    assert calls == {"each": 4, "together": 1}
    # only the traced positions are asked for, in order
    seen = []
    fnn.defvjp_argnum(together, lambda argnums, g, ans, *xs: seen.append(argnums) or [g] * len(argnums),
                      reads=(), together=True)
    fnn.grad(lambda a, b: fnp.sum(together(a, 2.0 * np.ones(3), b)), argnums=(0, 1))(xs[0], xs[1])
    assert [list(a) for a in seen] == [[0, 2]]


def test_a_failed_trace_leaves_no_tape_behind():
    from fnn.autodiff import tracer

    before = dict(tracer._TAPES)

    def bad(x):
        y = fnp.sin(x) * 2.0
        raise RuntimeError("inside the traced function")

    with pytest.raises(RuntimeError, match="inside the traced function"):
        fnn.grad(lambda x: bad(x))(np.ones(3))
    assert tracer._TAPES == before


def test_a_box_used_after_its_trace_ended_records_nowhere():
    leaked = []

    def f(x):
        leaked.append(x * 1.0)
        return fnp.sum(x * x)

    np.testing.assert_allclose(fnn.grad(f)(np.arange(3.0)), 2 * np.arange(3.0))
    late = fnp.sin(leaked[0]) + leaked[0]  # the trace is over: computed, not recorded
    np.testing.assert_allclose(strip(late), np.sin(np.arange(3.0)) + np.arange(3.0))
    np.testing.assert_allclose(fnn.grad(f)(np.ones(2)), 2 * np.ones(2))  # later traces unaffected


def test_a_failed_backward_pass_can_be_run_again():
    fails = {"n": 1}
    p = fnn.primitive(lambda x: np.sin(x), name="flaky_sin")

    def rule(g, ans, x):
        if fails["n"]:
            fails["n"] -= 1
            raise ValueError("rule failed once")
        return g * fnp.cos(x)

    fnn.defvjp(p, rule)
    x = np.linspace(0, 1, 4)
    # sin's node is older than flaky_sin's: it holds a cotangent when flaky_sin's rule fails
    out, vjp_fn = fnn.vjp(lambda x: fnp.sin(x) + p(x) * 3.0, x)
    with pytest.raises(ValueError, match="rule failed once"):
        vjp_fn(np.ones(4))
    (g,) = vjp_fn(np.ones(4))  # no cotangent of the failed pass is left in the graph
    np.testing.assert_allclose(g, 4.0 * np.cos(x))


def test_residuals_are_released_during_the_backward_pass():
    refs = {}

    def plain_sin(name):
        def fwd(x):
            out = np.sin(x)
            refs[name] = weakref.ref(out)
            return out
        return fnn.primitive(fwd, name=name)

    p1, p2, p3 = plain_sin("p1"), plain_sin("p2"), plain_sin("p3")
    seen_alive = []
    fnn.defvjp(p2, lambda g, ans, x: g * fnp.cos(x))
    fnn.defvjp(p3, lambda g, ans, x: g * fnp.cos(x))

    def p1_rule(g, ans, x):
        seen_alive.append(refs["p2"]() is not None)  # p2's output: a residual of p2 and p3 only
        return g * fnp.cos(x)

    fnn.defvjp(p1, p1_rule)
    fnn.grad(lambda x: fnp.sum(p3(p2(p1(x)))))(np.linspace(0, 1, 1000))
    assert seen_alive == [False]


# --- higher order and nesting ---------------------------------------------------------------------

def test_higher_derivatives_of_sin():
    d = fnn.grad
    x = 0.7
    assert d(fnp.sin)(x) == pytest.approx(np.cos(x))
    assert d(d(fnp.sin))(x) == pytest.approx(-np.sin(x))
    assert d(d(d(fnp.sin)))(x) == pytest.approx(-np.cos(x))
    assert d(d(d(d(fnp.sin))))(x) == pytest.approx(np.sin(x))


def test_no_perturbation_confusion():
    # d/dx [ x * d/dy (x + y) ] = d/dx [ x * 1 ] = 1; confusing the two levels gives 2.
    result = fnn.grad(lambda x: x * fnn.grad(lambda y: x + y)(1.0))(2.0)
    assert result == pytest.approx(1.0)
    # A closure over an outer traced value inside an inner grad.
    f = lambda x: fnn.grad(lambda y: fnp.sin(x * y))(1.0)  # noqa: E731  (= x cos x)
    assert fnn.grad(f)(0.3) == pytest.approx(np.cos(0.3) - 0.3 * np.sin(0.3))


# --- vjp, jvp, jacobian, hessian -----------------------------------------------------------------

def test_vjp_with_pytree_output_and_reuse():
    def f(x, y):
        return {"s": fnp.sum(x * y), "p": x * 2.0}, None

    x, y = np.arange(3.0), np.ones(3)
    out, vjp_fn = fnn.vjp(f, x, y)
    assert out[0]["s"] == pytest.approx(3.0)
    cot = ({"s": 1.0, "p": np.ones(3)}, None)
    gx, gy = vjp_fn(cot)
    np.testing.assert_allclose(gx, y + 2.0)
    np.testing.assert_allclose(gy, x)
    gx2, _ = vjp_fn(cot)  # a vjp function may be applied again
    np.testing.assert_allclose(gx2, gx)
    with pytest.raises(ValueError, match="structure"):
        vjp_fn({"s": 1.0})


def test_vjp_has_aux():
    out, vjp_fn, aux = fnn.vjp(lambda x: (x * 3.0, "note"), np.ones(2), has_aux=True)
    assert aux == "note"
    (g,) = vjp_fn(np.ones(2))
    np.testing.assert_allclose(g, [3.0, 3.0])


@given(small_arrays(), st.integers(0, 2**16))
def test_jvp_matches_central_differences(x, seed):
    f = lambda x: fnp.sin(x) * fnp.exp(x / 3.0) + x ** 2  # noqa: E731
    v = np.random.default_rng(seed).standard_normal(x.shape)
    out, t = fnn.jvp(f, (x,), (v,))
    assert_close(out, f(x), "primal")
    assert_close(t, numerical_jvp(f, [x], [v]), "tangent")


@given(small_arrays(min_dims=1, max_dims=1), st.integers(0, 2**16))
def test_vjp_jvp_dot_product_law(x, seed):
    rng = np.random.default_rng(seed)
    f = lambda x: fnp.outer(fnp.tanh(x), x) @ fnp.cos(x)  # noqa: E731
    u, v = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    out, vjp_fn = fnn.vjp(f, x)
    _, jv = fnn.jvp(f, (x,), (v,))
    assert_close(np.sum(u * jv), np.sum(vjp_fn(u)[0] * v), "<u, Jv> = <J^T u, v>", 1e-9, 1e-9)


def test_jacobian_and_hessian():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 3))
    x = rng.standard_normal(3)
    jac = fnn.jacobian(lambda x: fnp.tanh(a @ x))(x)
    expected = (1 - np.tanh(a @ x) ** 2)[:, None] * a
    assert_close(jac, expected, "jacobian")
    hess = fnn.hessian(lambda x: x @ a @ x)(x)
    assert_close(hess, a + a.T, "hessian")
    j_tree = fnn.jacobian(lambda p: p["w"] * p["b"])({"w": x, "b": 2.0})
    assert_close(j_tree["w"], 2.0 * np.eye(3), "jacobian wrt a dict leaf")
    assert_close(j_tree["b"], x, "jacobian wrt a scalar leaf")


def test_jvp_checks_tangent_shapes():
    with pytest.raises(ValueError, match="shape"):
        fnn.jvp(fnp.sin, (np.ones(3),), (np.ones(2),))


# --- stop_gradient, custom_vjp, checkpoint -------------------------------------------------------

def test_stop_gradient():
    g = fnn.grad(lambda x: fnp.sum(x * fnn.stop_gradient(x)))(np.arange(3.0))
    np.testing.assert_allclose(g, np.arange(3.0))
    tree = fnn.stop_gradient({"a": 1.0, "b": [np.ones(2)]})
    assert tree["a"] == 1.0


def test_custom_vjp_is_used_and_gets_residuals():
    calls = []

    @fnn.custom_vjp
    def clipped_identity(x, limit):
        return x

    def fwd(x, limit):
        return x, limit

    def bwd(limit, g):
        calls.append(limit)
        return fnp.clip(g, -limit, limit), None

    clipped_identity.defvjp(fwd, bwd)
    g = fnn.grad(lambda x: fnp.sum(clipped_identity(x * 10.0, 1.0)))(np.ones(3))
    np.testing.assert_allclose(g, np.full(3, 10.0))  # clip(1.0) * 10
    assert calls == [1.0]
    np.testing.assert_allclose(clipped_identity(np.ones(2), 1.0), np.ones(2))  # untraced call


def test_custom_vjp_pytree_arguments_and_outputs():
    @fnn.custom_vjp
    def f(p):
        return {"sum": p["a"] + p["b"], "prod": p["a"] * p["b"]}

    def fwd(p):
        return f(p), (p["a"], p["b"])

    def bwd(res, g):
        a, b = res
        return ({"a": g["sum"] + g["prod"] * b, "b": g["sum"] + g["prod"] * a},)

    f.defvjp(fwd, bwd)
    p = {"a": np.array(2.0), "b": np.array(5.0)}
    g = fnn.grad(lambda p: f(p)["prod"] * 1.0 + f(p)["sum"] * 3.0)(p)
    assert g["a"] == pytest.approx(5.0 + 3.0) and g["b"] == pytest.approx(2.0 + 3.0)


def test_custom_vjp_nondiff_argnums_and_bad_bwd():
    def scale(n, x):
        return x * n

    f = fnn.custom_vjp(scale, nondiff_argnums=(0,))
    f.defvjp(lambda n, x: (x * n, None), lambda n, res, g: (g * n,))
    assert fnn.grad(lambda x: f(3, x))(2.0) == pytest.approx(3.0)

    bad = fnn.custom_vjp(lambda x, y: x * y)
    bad.defvjp(lambda x, y: (x * y, None), lambda res, g: (g,))
    with pytest.raises(TypeError, match="one cotangent per argument"):
        fnn.grad(lambda x: bad(x, 2.0))(1.0)


def test_checkpoint_same_gradient_and_drops_intermediates():
    alive = []

    def block(x):
        h = fnp.sin(x) * 2.0
        alive.append(weakref.ref(strip(h)))
        return fnp.sin(h)  # sin's rule reads its input, so h is a residual

    x = np.linspace(-1, 1, 50)
    plain = fnn.grad(lambda x: fnp.sum(block(x)))(x)
    checked = fnn.grad(lambda x: fnp.sum(fnn.checkpoint(block)(x)))(x)
    np.testing.assert_allclose(checked, plain)

    alive.clear()
    out, vjp_plain = fnn.vjp(block, x)
    gc.collect()
    assert alive[-1]() is not None  # kept for the backward pass
    alive.clear()
    out, vjp_checked = fnn.vjp(fnn.checkpoint(block), x)
    gc.collect()
    assert alive[-1]() is None  # not kept: it is recomputed
    np.testing.assert_allclose(vjp_checked(np.ones(50))[0], vjp_plain(np.ones(50))[0])


def test_checkpoint_inside_nested_grad():
    f = fnn.checkpoint(lambda x: fnp.sin(x) * x)
    second = fnn.grad(fnn.grad(f))(0.4)
    assert second == pytest.approx(2 * np.cos(0.4) - 0.4 * np.sin(0.4))


def test_tape_keeps_only_what_rules_need():
    # x @ w feeds only an addition, whose rule needs no values: the product is not kept.
    def layer(x, w, b):
        product = x @ w
        ref = weakref.ref(strip(product))
        return fnp.sum(fnp.tanh(product + b)), ref

    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    _, vjp_fn, ref = fnn.vjp(layer, x, w, b, has_aux=True)
    gc.collect()
    assert ref() is None
    gx, gw, gb = vjp_fn(1.0)
    t = 1 - np.tanh(x @ w + b) ** 2
    np.testing.assert_allclose(gw, x.T @ t)
    np.testing.assert_allclose(gb, t.sum(0))


def test_tape_keeps_per_rule_residuals():
    # In sin(x) * 0.9 only the multiply's constant is needed for x's cotangent, and tanh's rule
    # reads its output, not its input: neither the sine nor the product is kept.
    def f(x):
        s = fnp.sin(x)
        p = s * 0.9
        refs = [weakref.ref(strip(s)), weakref.ref(strip(p))]
        return fnp.sum(fnp.tanh(p)), refs

    x = np.linspace(0, 1, 100)
    _, vjp_fn, refs = fnn.vjp(f, x, has_aux=True)
    gc.collect()
    assert [r() for r in refs] == [None, None]
    t = np.tanh(0.9 * np.sin(x))
    np.testing.assert_allclose(vjp_fn(1.0)[0], (1 - t ** 2) * 0.9 * np.cos(x))


def test_defvjp_validates_reads():
    p = fnn.primitive(lambda x: x * 2.0, name="double")
    with pytest.raises(ValueError, match="reads entries"):
        fnn.defvjp(p, lambda g, ans, x: g * 2.0, reads=[("x",)])
    with pytest.raises(ValueError, match="1 reads entries for 2 rules"):
        fnn.defvjp(p, lambda g, ans, x: g, lambda g, ans, x: g, reads=[()])


def test_residual_primitive_passes_fwd_residuals_to_rules():
    calls = []

    def fwd(x):
        e = np.exp(x)
        calls.append("fwd")
        return e / (1 + e), {"e": e}

    def plain(x):
        calls.append("fun")
        return 1 / (1 + np.exp(-x))

    sigmoid = fnn.primitive(plain, name="sigmoid", fwd=fwd)
    fnn.defvjp(sigmoid, lambda g, res, x: g * res["e"] / (1 + res["e"]) ** 2, reads=[("ans",)])
    x = np.linspace(-2, 2, 5)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(sigmoid(x), s)
    assert calls == ["fun"]
    np.testing.assert_allclose(fnn.grad(lambda x: fnp.sum(sigmoid(x)))(x), s * (1 - s))
    assert calls[1:] == ["fwd"]


def test_custom_vjp_refuses_a_closure_over_traced_values():
    """fwd closing over a value being differentiated would lose that value's gradient: refused."""

    def outer(x, w):
        @fnn.custom_vjp
        def scale(x):
            return x * w

        scale.defvjp(lambda x: (x * w, None), lambda res, g: (g * w,))
        return fnp.sum(scale(x))

    with pytest.raises(TypeError, match="not among its arguments"):
        fnn.grad(outer, argnums=(0, 1))(np.ones(3), np.ones(3))
