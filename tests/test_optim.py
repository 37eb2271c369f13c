"""fnn.optim: every transformation and optimizer against its update written out by hand, and
invariants with hypothesis (dtypes kept, masked leaves untouched, clipping bounds, accumulation)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn.optim as optim
from fnn import tree

DTYPES = [np.float32, np.float64]
N_STEPS = 4


def tol(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": rng.standard_normal((2, 3)).astype(dtype),
        "b": rng.standard_normal(3).astype(dtype),
    }


def make_grads(dtype, n=N_STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [
        {"w": rng.standard_normal((2, 3)).astype(dtype), "b": rng.standard_normal(3).astype(dtype)}
        for _ in range(n)
    ]


def run(opt, params, grads_seq):
    """Apply `opt` for each gradient in turn; returns the final params and state."""
    state = opt.init(params)
    for g in grads_seq:
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
    return params, state


def run_transform(t, params, grads_seq):
    """The sequence of updates a transformation emits (params fixed)."""
    state = t.init(params)
    outs = []
    for g in grads_seq:
        u, state = t.update(g, state, params)
        outs.append(u)
    return outs, state


def f64(t):
    return {k: np.asarray(v, np.float64) for k, v in t.items()}


def assert_tree_close(actual, expected, dtype):
    assert tree.structure(actual) == tree.structure(expected)
    for a, e in zip(tree.leaves(actual), tree.leaves(expected)):
        assert a.dtype == dtype, (a.dtype, dtype)
        np.testing.assert_allclose(a, e, **tol(dtype))


# --------------------------------------------------------------------------------------------
# Transformations, step by step against hand-written formulas


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_and_identity(dtype):
    p, gs = make_params(dtype), make_grads(dtype)
    outs, state = run_transform(optim.scale(0.5), p, gs)
    assert state == optim.EmptyState()
    for u, g in zip(outs, gs):
        assert_tree_close(u, {k: 0.5 * f64(g)[k] for k in g}, dtype)
    outs, _ = run_transform(optim.identity(), p, gs)
    for u, g in zip(outs, gs):
        assert_tree_close(u, g, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_by_learning_rate_constant_and_schedule(dtype):
    p, gs = make_params(dtype), make_grads(dtype)
    outs, state = run_transform(optim.scale_by_learning_rate(0.1), p, gs)
    for u, g in zip(outs, gs):
        assert_tree_close(u, {k: -0.1 * f64(g)[k] for k in g}, dtype)
    assert state.count == N_STEPS and state.learning_rate == 0.1

    sched = lambda t: 0.1 * (t + 1)  # noqa: E731
    outs, state = run_transform(optim.scale_by_learning_rate(sched), p, gs)
    for t, (u, g) in enumerate(zip(outs, gs)):
        assert_tree_close(u, {k: -sched(t) * f64(g)[k] for k in g}, dtype)
    assert state.count == N_STEPS
    assert state.learning_rate == pytest.approx(sched(N_STEPS - 1))

    outs, _ = run_transform(optim.scale_by_learning_rate(0.1, flip_sign=False), p, gs[:1])
    assert_tree_close(outs[0], {k: 0.1 * f64(gs[0])[k] for k in gs[0]}, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_trace(dtype, nesterov):
    p, gs = make_params(dtype), make_grads(dtype)
    outs, state = run_transform(optim.trace(0.9, nesterov=nesterov), p, gs)
    for k in p:
        buf = np.zeros_like(f64(p)[k])
        for u, g in zip(outs, gs):
            g = f64(g)[k]
            buf = 0.9 * buf + g
            expected = g + 0.9 * buf if nesterov else buf
            np.testing.assert_allclose(u[k], expected, **tol(dtype))
        np.testing.assert_allclose(state.trace[k], buf, **tol(dtype))
        assert state.trace[k].dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps_root", [0.0, 1e-3])
def test_scale_by_adam(dtype, eps_root):
    b1, b2, eps = 0.8, 0.95, 1e-3
    p, gs = make_params(dtype), make_grads(dtype)
    outs, state = run_transform(optim.scale_by_adam(b1, b2, eps, eps_root), p, gs)
    assert state.count == N_STEPS
    for k in p:
        m = v = 0.0
        for t, (u, g) in enumerate(zip(outs, gs), start=1):
            g = f64(g)[k]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            np.testing.assert_allclose(u[k], m_hat / (np.sqrt(v_hat + eps_root) + eps), **tol(dtype))
            assert u[k].dtype == dtype
        np.testing.assert_allclose(state.mu[k], m, **tol(dtype))
        np.testing.assert_allclose(state.nu[k], v, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("initial_scale", [0.0, 0.5])
def test_scale_by_rms(dtype, initial_scale):
    decay, eps = 0.9, 1e-3
    p, gs = make_params(dtype), make_grads(dtype)
    outs, state = run_transform(optim.scale_by_rms(decay, eps, initial_scale), p, gs)
    for k in p:
        v = initial_scale
        for u, g in zip(outs, gs):
            g = f64(g)[k]
            v = decay * v + (1 - decay) * g * g
            np.testing.assert_allclose(u[k], g / (np.sqrt(v) + eps), **tol(dtype))
        np.testing.assert_allclose(state.nu[k], v, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_by_stddev(dtype):
    decay, eps = 0.9, 1e-3
    p, gs = make_params(dtype), make_grads(dtype)
    outs, _ = run_transform(optim.scale_by_stddev(decay, eps), p, gs)
    for k in p:
        m = v = 0.0
        for u, g in zip(outs, gs):
            g = f64(g)[k]
            m = decay * m + (1 - decay) * g
            v = decay * v + (1 - decay) * g * g
            np.testing.assert_allclose(u[k], g / (np.sqrt(v - m * m) + eps), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("initial", [0.0, 0.1])
def test_scale_by_adagrad(dtype, initial):
    eps = 1e-6
    p, gs = make_params(dtype), make_grads(dtype)
    outs, state = run_transform(optim.scale_by_adagrad(initial, eps), p, gs)
    for k in p:
        s = initial
        for u, g in zip(outs, gs):
            g = f64(g)[k]
            s = s + g * g
            np.testing.assert_allclose(u[k], g / (np.sqrt(s) + eps), **tol(dtype))
        np.testing.assert_allclose(state.sum_of_squares[k], s, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_by_lion(dtype):
    b1, b2 = 0.9, 0.99
    p, gs = make_params(dtype), make_grads(dtype)
    outs, state = run_transform(optim.scale_by_lion(b1, b2), p, gs)
    assert state.count == N_STEPS
    for k in p:
        m = 0.0
        for u, g in zip(outs, gs):
            g = f64(g)[k]
            np.testing.assert_array_equal(u[k], np.sign(b1 * m + (1 - b1) * g))
            m = b2 * m + (1 - b2) * g
        np.testing.assert_allclose(state.mu[k], m, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_decayed_weights_with_masks(dtype):
    p, gs = make_params(dtype), make_grads(dtype)
    g = gs[0]
    u, _ = optim.add_decayed_weights(0.1).update(g, optim.add_decayed_weights(0.1).init(p), p)
    assert_tree_close(u, {k: f64(g)[k] + 0.1 * f64(p)[k] for k in g}, dtype)

    for mask in ({"w": True, "b": False}, lambda params: {"w": True, "b": False}):
        t = optim.add_decayed_weights(0.1, mask=mask)
        u, _ = t.update(g, t.init(p), p)
        np.testing.assert_allclose(u["w"], f64(g)["w"] + 0.1 * f64(p)["w"], **tol(dtype))
        assert u["b"] is g["b"]

    # a prefix mask: one bool for a whole subtree
    nested_p = {"enc": p, "head": {"w": p["w"]}}
    nested_g = {"enc": g, "head": {"w": g["w"]}}
    t = optim.add_decayed_weights(0.1, mask={"enc": False, "head": True})
    u, _ = t.update(nested_g, t.init(nested_p), nested_p)
    assert u["enc"]["w"] is g["w"] and u["enc"]["b"] is g["b"]
    np.testing.assert_allclose(u["head"]["w"], f64(g)["w"] + 0.1 * f64(p)["w"], **tol(dtype))

    with pytest.raises(ValueError, match="needs the params"):
        t = optim.add_decayed_weights(0.1)
        t.update(g, t.init(p))


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip(dtype):
    p, gs = make_params(dtype), make_grads(dtype)
    outs, _ = run_transform(optim.clip(0.5), p, gs)
    for u, g in zip(outs, gs):
        assert_tree_close(u, {k: np.clip(f64(g)[k], -0.5, 0.5) for k in g}, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_by_global_norm(dtype):
    p, gs = make_params(dtype), make_grads(dtype)
    g = gs[0]
    norm = math.sqrt(sum(float(np.sum(f64(g)[k] ** 2)) for k in g))
    assert optim.global_norm(g) == pytest.approx(norm, rel=1e-6)
    t = optim.clip_by_global_norm(norm / 2)
    u, _ = t.update(g, t.init(p))
    assert_tree_close(u, {k: f64(g)[k] / 2 for k in g}, dtype)
    t = optim.clip_by_global_norm(norm * 2)
    u, _ = t.update(g, t.init(p))
    assert all(u[k] is g[k] for k in g)  # below the bound: untouched


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_with_stateful_inner(dtype):
    p, gs = make_params(dtype), make_grads(dtype)
    t = optim.masked(optim.trace(0.5), {"w": False, "b": True})
    outs, state = run_transform(t, p, gs)
    assert tree.leaves(state.inner_state.trace) == [state.inner_state.trace["b"]]  # only masked-in state
    buf = 0.0
    for u, g in zip(outs, gs):
        buf = 0.5 * buf + f64(g)["b"]
        np.testing.assert_allclose(u["b"], buf, **tol(dtype))
        assert u["w"] is g["w"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_steps(dtype):
    k_every = 3
    p, gs = make_params(dtype), make_grads(dtype, n=2 * k_every)
    inner = optim.adam(0.1)
    t = optim.multi_steps(inner, k_every)
    state = t.init(p)
    inner_state = inner.init(p)
    for i, g in enumerate(gs):
        u, state = t.update(g, state, p)
        if (i + 1) % k_every:
            for leaf in tree.leaves(u):
                assert leaf.dtype == dtype and not leaf.any()
            assert state.mini_step == (i + 1) % k_every
        else:
            window = gs[i + 1 - k_every : i + 1]
            mean = {key: sum(f64(w)[key] for w in window) / k_every for key in g}
            expected, inner_state = inner.update(mean, inner_state, p)
            assert_tree_close(u, expected, dtype)
            assert state.mini_step == 0 and state.gradient_step == (i + 1) // k_every
    assert optim.step_count(state) == 2 and optim.current_learning_rate(state) == 0.1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("debias", [True, False])
def test_ema(dtype, debias):
    p, gs = make_params(dtype), make_grads(dtype)
    outs, state = run_transform(optim.ema(0.9, debias=debias), p, gs)
    assert state.count == N_STEPS
    for k in p:
        e = 0.0
        for t, (u, g) in enumerate(zip(outs, gs), start=1):
            e = 0.9 * e + 0.1 * f64(g)[k]
            np.testing.assert_allclose(u[k], e / (1 - 0.9**t) if debias else e, **tol(dtype))


def test_chain_state_is_a_tuple_and_composes_in_order():
    p, gs = make_params(np.float64), make_grads(np.float64)
    t = optim.chain(optim.clip(0.3), optim.trace(0.5), optim.scale(-2.0))
    outs, state = run_transform(t, p, gs)
    assert type(state) is tuple and len(state) == 3
    assert isinstance(state[1], optim.TraceState)
    buf = 0.0
    for u, g in zip(outs, gs):
        buf = 0.5 * buf + np.clip(g["w"], -0.3, 0.3)
        np.testing.assert_allclose(u["w"], -2.0 * buf)
    with pytest.raises(ValueError, match="entries"):
        t.update(gs[0], state[:2], p)


@given(st.floats(1e-4, 10.0), st.booleans(), st.integers(0, 50))
def test_a_fixed_rate_updates_as_the_same_rate_given_as_a_schedule(rate, flip_sign, seed):
    """The fixed-rate fast path of scale_by_learning_rate against the schedule path: the same
    updates, bit for bit, and the same states."""
    p, gs = make_params(np.float32, seed), make_grads(np.float32, seed=seed + 1)
    fixed, state_f = run_transform(optim.scale_by_learning_rate(rate, flip_sign=flip_sign), p, gs)
    sched, state_s = run_transform(optim.scale_by_learning_rate(lambda t: rate, flip_sign=flip_sign), p, gs)
    assert state_f == state_s
    for a, b in zip(fixed, sched):
        for k in a:
            assert a[k].dtype == np.float32
            np.testing.assert_array_equal(a[k], b[k])


def test_a_one_transform_chain_keeps_a_one_tuple_state_and_checks_it():
    p, gs = make_params(np.float64), make_grads(np.float64)
    inner = optim.trace(0.5)
    outs, state = run_transform(optim.chain(inner), p, gs)
    ref_outs, ref_state = run_transform(inner, p, gs)
    assert type(state) is tuple and len(state) == 1
    assert isinstance(state[0], optim.TraceState)
    tree.map(np.testing.assert_array_equal, state[0].trace, ref_state.trace)
    for u, r in zip(outs, ref_outs):
        tree.map(np.testing.assert_array_equal, u, r)
    with pytest.raises(ValueError, match="the state has 2 entries but the chain has 1"):
        optim.chain(inner).update(gs[0], (state[0], state[0]), p)
    with pytest.raises(ValueError, match="entries"):
        optim.sgd(0.1).update(gs[0], (), p)


# --------------------------------------------------------------------------------------------
# Optimizers against their updates written out by hand


def ref_sgd(p, gs, lr, momentum=0.0, nesterov=False, wd=0.0):
    p = f64(p)
    buf = {k: 0.0 for k in p}
    for g in gs:
        g = f64(g)
        for k in p:
            d = g[k] + wd * p[k]
            if momentum:
                buf[k] = momentum * buf[k] + d
                d = d + momentum * buf[k] if nesterov else buf[k]
            p[k] = p[k] - lr * d
    return p


def ref_adam(p, gs, lr, b1, b2, eps, wd=0.0, decoupled=False, decay_mask=None):
    p = f64(p)
    m = {k: 0.0 for k in p}
    v = {k: 0.0 for k in p}
    for t, g in enumerate(gs, start=1):
        g = f64(g)
        for k in p:
            decays = decay_mask is None or decay_mask[k]
            gk = g[k] + (wd * p[k] if (wd and not decoupled and decays) else 0.0)
            if decoupled and decays:
                p[k] = p[k] * (1 - lr * wd)
            m[k] = b1 * m[k] + (1 - b1) * gk
            v[k] = b2 * v[k] + (1 - b2) * gk * gk
            denom = np.sqrt(v[k]) / math.sqrt(1 - b2**t) + eps
            p[k] = p[k] - lr / (1 - b1**t) * m[k] / denom
    return p


def ref_rmsprop(p, gs, lr, alpha, eps, momentum=0.0, centered=False):
    p = f64(p)
    sq = {k: 0.0 for k in p}
    ga = {k: 0.0 for k in p}
    buf = {k: 0.0 for k in p}
    for g in gs:
        g = f64(g)
        for k in p:
            sq[k] = alpha * sq[k] + (1 - alpha) * g[k] ** 2
            if centered:
                ga[k] = alpha * ga[k] + (1 - alpha) * g[k]
                avg = np.sqrt(sq[k] - ga[k] ** 2) + eps
            else:
                avg = np.sqrt(sq[k]) + eps
            if momentum:
                buf[k] = momentum * buf[k] + g[k] / avg
                p[k] = p[k] - lr * buf[k]
            else:
                p[k] = p[k] - lr * g[k] / avg
    return p


def ref_adagrad(p, gs, lr, init, eps):
    p = f64(p)
    s = {k: init for k in p}
    for g in gs:
        g = f64(g)
        for k in p:
            s[k] = s[k] + g[k] ** 2
            p[k] = p[k] - lr * g[k] / (np.sqrt(s[k]) + eps)
    return p


def ref_lion(p, gs, lr, b1, b2, wd):
    p = f64(p)
    m = {k: 0.0 for k in p}
    for g in gs:
        g = f64(g)
        for k in p:
            c = np.sign(b1 * m[k] + (1 - b1) * g[k])
            p[k] = p[k] * (1 - lr * wd) - lr * c
            m[k] = b2 * m[k] + (1 - b2) * g[k]
    return p


OPTIMIZER_CASES = {
    "sgd": (lambda: optim.sgd(0.1), lambda p, gs: ref_sgd(p, gs, 0.1)),
    "sgd_momentum": (lambda: optim.sgd(0.1, momentum=0.9), lambda p, gs: ref_sgd(p, gs, 0.1, 0.9)),
    "sgd_nesterov_wd": (
        lambda: optim.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda p, gs: ref_sgd(p, gs, 0.1, 0.9, True, 0.01),
    ),
    "adam": (lambda: optim.adam(0.01, 0.8, 0.9, 1e-3), lambda p, gs: ref_adam(p, gs, 0.01, 0.8, 0.9, 1e-3)),
    "adam_l2": (
        lambda: optim.adam(0.01, weight_decay=0.1),
        lambda p, gs: ref_adam(p, gs, 0.01, 0.9, 0.999, 1e-8, wd=0.1),
    ),
    "adamw": (
        lambda: optim.adamw(0.01, weight_decay=0.1),
        lambda p, gs: ref_adam(p, gs, 0.01, 0.9, 0.999, 1e-8, wd=0.1, decoupled=True),
    ),
    "adamw_masked": (
        lambda: optim.adamw(0.01, weight_decay=0.1, mask={"w": True, "b": False}),
        lambda p, gs: ref_adam(p, gs, 0.01, 0.9, 0.999, 1e-8, wd=0.1, decoupled=True,
                               decay_mask={"w": True, "b": False}),
    ),
    "rmsprop": (lambda: optim.rmsprop(0.01), lambda p, gs: ref_rmsprop(p, gs, 0.01, 0.99, 1e-8)),
    "rmsprop_momentum_centered": (
        lambda: optim.rmsprop(0.01, decay=0.9, momentum=0.5, centered=True),
        lambda p, gs: ref_rmsprop(p, gs, 0.01, 0.9, 1e-8, 0.5, True),
    ),
    "adagrad": (lambda: optim.adagrad(0.1, 0.1, 1e-10), lambda p, gs: ref_adagrad(p, gs, 0.1, 0.1, 1e-10)),
    "lion": (lambda: optim.lion(0.01, weight_decay=0.1), lambda p, gs: ref_lion(p, gs, 0.01, 0.9, 0.99, 0.1)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPTIMIZER_CASES))
def test_optimizer_against_hand_written_update(name, dtype):
    make, ref = OPTIMIZER_CASES[name]
    p, gs = make_params(dtype), make_grads(dtype)
    params, state = run(make(), p, gs)
    assert_tree_close(params, ref(p, gs), dtype)
    assert type(state) is tuple
    assert optim.step_count(state) == N_STEPS


def test_sgd_rejects_nesterov_without_momentum():
    with pytest.raises(ValueError, match="nesterov"):
        optim.sgd(0.1, nesterov=True)


def test_update_does_not_touch_its_inputs():
    p, gs = make_params(np.float32), make_grads(np.float32)
    for name, (make, _) in OPTIMIZER_CASES.items():
        opt = make()
        state = opt.init(p)
        _, state = opt.update(gs[0], state, p)
        before = [np.array(x, copy=True) for x in tree.leaves((p, gs[1], state))]
        opt.update(gs[1], state, p)
        after = tree.leaves((p, gs[1], state))
        for b, a in zip(before, after):
            np.testing.assert_array_equal(b, a, err_msg=name)


# --------------------------------------------------------------------------------------------
# The step count and the learning rate, readable after several steps


def test_current_learning_rate_and_step_count_with_a_schedule():
    sched = optim.warmup_cosine_decay(0.0, 1.0, warmup_steps=4, decay_steps=10)
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adamw(sched, weight_decay=0.1))
    p, gs = make_params(np.float32), make_grads(np.float32, n=6)
    state = opt.init(p)
    assert optim.current_learning_rate(state) == 0.0 and optim.step_count(state) == 0
    for i, g in enumerate(gs):
        _, state = opt.update(g, state, p)
        assert optim.step_count(state) == i + 1
        assert optim.current_learning_rate(state) == pytest.approx(sched(i))
    lr_state = state[1][-1]
    assert isinstance(lr_state, optim.ScaleByLearningRateState)
    assert lr_state.count == 6 and lr_state.learning_rate == pytest.approx(sched(5))
    assert isinstance(optim.current_learning_rate(state), float)


def test_current_learning_rate_missing():
    with pytest.raises(ValueError, match="learning_rate"):
        optim.current_learning_rate(optim.scale(1.0).init({}))


# --------------------------------------------------------------------------------------------
# Invariants


small_trees = st.builds(
    lambda seed, n, dtype: {
        f"p{i}": np.random.default_rng(seed + i).standard_normal((i + 1, 2)).astype(dtype) for i in range(n)
    },
    st.integers(0, 2**20),
    st.integers(1, 3),
    st.sampled_from(DTYPES),
)


def _like(t, seed):
    rng = np.random.default_rng(seed)
    return tree.map(lambda x: rng.standard_normal(x.shape).astype(x.dtype), t)


@given(small_trees, st.integers(0, 100), st.floats(0.0, 0.99))
def test_sgd_with_zero_learning_rate_leaves_params_unchanged(params, seed, momentum):
    opt = optim.sgd(0.0, momentum=momentum)
    new, _ = run(opt, params, [_like(params, seed), _like(params, seed + 1)])
    for a, b in zip(tree.leaves(new), tree.leaves(params)):
        np.testing.assert_array_equal(a, b)


@given(small_trees, st.integers(0, 100), st.floats(1e-3, 10.0))
def test_clip_by_global_norm_bounds_norm_and_keeps_direction(params, seed, max_norm):
    g = tree.map(lambda x: x * 3, _like(params, seed))
    t = optim.clip_by_global_norm(max_norm)
    u, _ = t.update(g, t.init(params))
    norm_in, norm_out = optim.global_norm(g), optim.global_norm(u)
    assert norm_out <= max_norm * (1 + 1e-6)
    assert norm_out == pytest.approx(min(norm_in, max_norm), rel=1e-5)
    flat_g = np.concatenate([x.ravel() for x in tree.leaves(g)]).astype(np.float64)
    flat_u = np.concatenate([x.ravel() for x in tree.leaves(u)]).astype(np.float64)
    cos = flat_g @ flat_u / (np.linalg.norm(flat_g) * np.linalg.norm(flat_u))
    assert cos == pytest.approx(1.0, abs=1e-6)
    for a, b in zip(tree.leaves(u), tree.leaves(g)):
        assert a.dtype == b.dtype


@given(small_trees, st.integers(0, 100), st.data())
def test_masked_leaves_masked_out_leaves_unchanged(params, seed, data):
    mask = {k: data.draw(st.booleans(), label=k) for k in params}
    t = optim.masked(optim.chain(optim.trace(0.9), optim.scale(-0.5)), mask)
    state = t.init(params)
    for s in range(3):
        g = _like(params, seed + s)
        u, state = t.update(g, state, params)
        for k in params:
            if mask[k]:
                assert not np.array_equal(u[k], g[k]) or not g[k].any()
            else:
                assert u[k] is g[k]


@given(small_trees, st.integers(0, 100), st.integers(1, 4))
def test_multi_steps_equals_one_step_on_the_mean(params, seed, k):
    gs = [_like(params, seed + i) for i in range(k)]
    inner = optim.sgd(0.1, momentum=0.9)
    t = optim.multi_steps(inner, k)
    acc_params, _ = run(t, params, gs)
    mean = tree.map(lambda *xs: sum(xs) / k, *gs)
    one_params, _ = run(inner, params, [mean])
    for a, b in zip(tree.leaves(acc_params), tree.leaves(one_params)):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, **tol(a.dtype.type))


@given(small_trees, st.integers(0, 100), st.sampled_from(sorted(set(OPTIMIZER_CASES) - {"adamw_masked"})))
def test_optimizers_keep_dtypes(params, seed, name):
    opt = OPTIMIZER_CASES[name][0]()
    new, state = run(opt, params, [_like(params, seed), _like(params, seed + 1)])
    for a, b in zip(tree.leaves(new), tree.leaves(params)):
        assert a.dtype == b.dtype and a.shape == b.shape
    for leaf in tree.leaves(state):
        if isinstance(leaf, np.ndarray):
            assert leaf.dtype == tree.leaves(params)[0].dtype


def test_numpy_float64_hyperparameters_and_schedules_do_not_upcast():
    p, gs = make_params(np.float32), make_grads(np.float32)
    lr = np.float64(0.1)
    for opt in (
        optim.sgd(lr, momentum=np.float64(0.9), weight_decay=np.float64(0.1)),
        optim.adamw(lambda t: np.float64(0.01) * (t + 1), b1=np.float64(0.9), weight_decay=np.float64(0.1)),
        optim.rmsprop(lr, decay=np.float64(0.9), centered=True),
        optim.chain(optim.clip_by_global_norm(np.float64(0.5)), optim.ema(np.float64(0.9)), optim.sgd(lr)),
    ):
        params, state = run(opt, p, gs)
        assert all(x.dtype == np.float32 for x in tree.leaves(params))
        assert type(optim.current_learning_rate(state)) is float


def test_apply_updates_keeps_param_dtype():
    p = {"w": np.ones(3, np.float32)}
    out = optim.apply_updates(p, {"w": np.full(3, 0.5, np.float64)})
    assert out["w"].dtype == np.float32
    np.testing.assert_array_equal(out["w"], 1.5)


def test_apply_updates_donate_updates_in_place_and_matches():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": np.float32(1.5), "c": 2.0,
              "v": np.broadcast_to(np.float32(1.0), (2,))}
    updates = {"w": rng.normal(size=(3, 4)), "b": np.float32(0.5), "c": 1.0,
               "v": np.ones(2, np.float32)}  # w's update is float64: the result stays float32
    expected = optim.apply_updates(params, updates)
    w_before = params["w"]
    donated = optim.apply_updates(params, updates, donate=True)
    for k in expected:
        np.testing.assert_array_equal(np.asarray(donated[k]), np.asarray(expected[k]))
        assert np.asarray(donated[k]).dtype == np.asarray(expected[k]).dtype
    assert donated["w"] is w_before  # written in place
    assert donated["v"] is not params["v"]  # a read-only view is added out of place


def test_apply_updates_donate_refuses_an_update_of_another_shape():
    params = {"w": np.ones(3, np.float32)}
    with pytest.raises(ValueError, match="broadcast"):
        optim.apply_updates(params, {"w": np.ones((2, 3), np.float32)}, donate=True)
    np.testing.assert_array_equal(params["w"], 1.0)  # untouched
