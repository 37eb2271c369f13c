"""Gradient checking against central differences, for the rule tests.

All checks run in float64. `check_grads(f, args)` verifies, for every floating argument:
- the VJP against a central-difference derivative of <u, f(x)>,
- the JVP against a central difference of f along a random direction,
- the dot-product law <u, J v> = <J^T u, v> between jvp and vjp,
and with `order=2` also the derivative of the VJP itself (second derivatives).
"""

from __future__ import annotations

import numpy as np

import fnn

EPS = 1e-6
RTOL = 1e-5
ATOL = 1e-6


def _float_argnums(args):
    return [i for i, a in enumerate(args)
            if isinstance(a, float) or (isinstance(a, np.ndarray) and a.dtype.kind == "f")]


def _with(args, i, value):
    out = list(args)
    out[i] = value
    return out


def numerical_vjp(f, args, i, u, eps=EPS):
    """d<u, f(x)>/dx for argument i by central differences."""
    x = np.array(args[i], dtype=np.float64, order="C")
    grad = np.zeros(x.shape)  # C-contiguous, so `flat` below is a view that writes into it
    flat = grad.reshape(-1)
    for k in range(x.size):
        step = np.zeros_like(x).reshape(-1)
        step[k] = eps
        step = step.reshape(x.shape)
        plus = np.sum(u * np.asarray(f(*_with(args, i, _like(args[i], x + step)))))
        minus = np.sum(u * np.asarray(f(*_with(args, i, _like(args[i], x - step)))))
        flat[k] = (plus - minus) / (2 * eps)
    return grad


def _like(template, value):
    return float(value) if isinstance(template, float) else value


def numerical_jvp(f, args, tangents, eps=EPS):
    """Directional derivative of f along `tangents` (one per argument) by central differences."""
    plus = [_like(a, np.asarray(a) + eps * t) if t is not None else a for a, t in zip(args, tangents)]
    minus = [_like(a, np.asarray(a) - eps * t) if t is not None else a for a, t in zip(args, tangents)]
    return (np.asarray(f(*plus)) - np.asarray(f(*minus))) / (2 * eps)


def assert_close(actual, expected, what, rtol=RTOL, atol=ATOL):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def check_grads(f, args, order=1, rng=None, rtol=RTOL, atol=ATOL):
    """Check fnn's derivatives of f at `args` against central differences (see module doc)."""
    rng = rng or np.random.default_rng(0)
    args = list(args)
    argnums = _float_argnums(args)
    assert argnums, "nothing to differentiate"
    out = np.asarray(f(*args))
    u = rng.standard_normal(out.shape)

    def f_diff(*diff):
        return f(*[diff[argnums.index(j)] if j in argnums else a for j, a in enumerate(args)])

    primals = [args[i] for i in argnums]
    value, vjp_fn = fnn.vjp(f_diff, *primals)
    assert_close(value, out, "vjp's primal output")
    cotangents = vjp_fn(u if out.shape else float(u) if isinstance(value, float) else u.astype(out.dtype))
    for k, i in enumerate(argnums):
        expected = numerical_vjp(f, args, i, u)
        assert_close(cotangents[k], expected, f"VJP wrt argument {i}", rtol, atol)
        assert np.shape(cotangents[k]) == np.shape(args[i]), f"cotangent shape for argument {i}"

    tangents = [rng.standard_normal(np.shape(p)) for p in primals]
    tangents = [float(t) if isinstance(p, float) else t for t, p in zip(tangents, primals)]
    _, tangent_out = fnn.jvp(f_diff, primals, tangents)
    full_tangents = [tangents[argnums.index(j)] if j in argnums else None for j in range(len(args))]
    assert_close(tangent_out, numerical_jvp(f, args, full_tangents), "JVP", rtol, atol)
    lhs = np.sum(u * np.asarray(tangent_out))
    rhs = sum(np.sum(np.asarray(c) * t) for c, t in zip(cotangents, tangents))
    assert_close(lhs, rhs, "dot-product law <u, Jv> = <J^T u, v>", 1e-9, 1e-9)

    if order >= 2:
        w = [rng.standard_normal(np.shape(p)) for p in primals]

        def vjp_projection(*diff):
            _, fn = fnn.vjp(f_diff, *diff)
            cots = fn(u if out.shape else float(u))
            return sum(fnn.numpy.sum(c * wk) for c, wk in zip(cots, w))

        second = fnn.grad(vjp_projection, argnums=tuple(range(len(primals))))(*primals)
        for k, i in enumerate(argnums):

            def plain_projection(*call_args):
                diff = [call_args[j] for j in argnums]
                return vjp_projection(*diff)

            expected = numerical_vjp(plain_projection, args, i, np.ones(()), eps=1e-5)
            assert_close(second[k], expected, f"second derivative wrt argument {i}", 1e-4, 1e-5)
