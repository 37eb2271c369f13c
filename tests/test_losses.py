"""fnn.losses: values against NumPy formulas written here, gradients against central differences,
dtypes, reductions, error messages, and (where PyTorch is installed) PyTorch's losses."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fnn
import fnn.losses as L
from tests.gradcheck import check_grads

REDUCTIONS = ["mean", "sum", "none"]


# --- reference formulas (plain NumPy, independent of fnn) -----------------------------------------

def ref_log_softmax(z, axis):
    z = np.moveaxis(z, axis, -1)
    out = np.empty_like(z)
    for idx in np.ndindex(z.shape[:-1]):
        row = z[idx]
        out[idx] = row - (row.max() + math.log(sum(math.exp(v - row.max()) for v in row)))
    return np.moveaxis(out, -1, axis)


def ref_reduce(per, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": np.asarray}[reduction](per)


def ref_onehot(labels, k, axis):
    return np.moveaxis(np.eye(k)[labels], -1, axis)


def ref_sce(z, labels, eps, reduction, axis=-1):
    k = z.shape[axis]
    q = ref_onehot(labels, k, axis) if labels.dtype.kind == "i" else labels
    q = (1 - eps) * q + eps / k  # PyTorch's label smoothing
    return ref_reduce(-(q * ref_log_softmax(z, axis)).sum(axis=axis), reduction)


def ref_hinge(s, y, margin):
    per = np.zeros(s.shape[0])
    for i in range(s.shape[0]):
        for j in range(s.shape[1]):
            if j != y[i]:
                per[i] += max(0.0, margin + s[i, j] - s[i, y[i]])
    return per


def ref_bce(x, t, w=1.0):
    sig = 1 / (1 + np.exp(-x))
    return -(w * t * np.log(sig) + (1 - t) * np.log(1 - sig))


def ref_huber(d, delta):
    a = np.abs(d)
    return np.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta))


# --- strategies -----------------------------------------------------------------------------------

@st.composite
def classification(draw, max_batch=3, max_classes=4, min_classes=1):
    """(logits, integer labels, axis) with a batch of up to two dims; float64."""
    batch = tuple(draw(st.lists(st.integers(1, max_batch), max_size=2)))
    k = draw(st.integers(min_classes, max_classes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    axis = draw(st.integers(-len(batch) - 1, len(batch)))
    # contiguous: tests/gradcheck.numerical_vjp writes through reshape(-1), a copy for other layouts
    logits = np.ascontiguousarray(np.moveaxis(rng.standard_normal(batch + (k,)) * 2, -1, axis))
    labels = rng.integers(0, k, size=batch)
    return logits, labels, axis


seeds = st.integers(0, 2**32 - 1)


# --- softmax cross-entropy ------------------------------------------------------------------------

@given(classification(), st.sampled_from([0.0, 0.1, 0.5]), st.sampled_from(REDUCTIONS))
def test_sce_value_matches_formula(data, eps, reduction):
    z, y, axis = data
    out = L.softmax_cross_entropy(z, y, label_smoothing=eps, reduction=reduction, axis=axis)
    np.testing.assert_allclose(out, ref_sce(z, y, eps, reduction, axis), rtol=1e-10, atol=1e-12)


@given(classification(), st.sampled_from([0.0, 0.2]), st.sampled_from(REDUCTIONS))
def test_sce_integer_labels_equal_onehot_probabilities(data, eps, reduction):
    z, y, axis = data
    q = ref_onehot(y, z.shape[axis], axis)
    a = L.softmax_cross_entropy(z, y, eps, reduction, axis=axis)
    b = L.softmax_cross_entropy(z, q, eps, reduction, axis=axis)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    ga = fnn.grad(lambda t: np.sum(L.softmax_cross_entropy(t, y, eps, reduction, axis=axis) ** 2))(z)
    gb = fnn.grad(lambda t: np.sum(L.softmax_cross_entropy(t, q, eps, reduction, axis=axis) ** 2))(z)
    np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-12)


@settings(max_examples=15)
@given(classification(max_batch=2, max_classes=3), st.sampled_from([0.0, 0.3]),
       st.sampled_from(REDUCTIONS))
def test_sce_gradients_integer_labels(data, eps, reduction):
    z, y, axis = data
    check_grads(lambda t: L.softmax_cross_entropy(t, y, eps, reduction, axis=axis), [z], order=2)


@settings(max_examples=15)
@given(classification(max_batch=2, max_classes=3), seeds, st.sampled_from([0.0, 0.3]),
       st.sampled_from(REDUCTIONS))
def test_sce_gradients_probability_labels(data, seed, eps, reduction):
    z, _, axis = data
    q = np.random.default_rng(seed).uniform(0.0, 1.0, z.shape)  # not normalised on purpose
    check_grads(lambda t, p: L.softmax_cross_entropy(t, p, eps, reduction, axis=axis), [z, q],
                order=2)


def test_sce_gradient_is_softmax_minus_smoothed_target():
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = np.array([2, 0])
    eps, k = 0.1, 3
    p = np.exp(ref_log_softmax(z, -1))
    target = (1 - eps) * np.eye(k)[y] + eps / k
    g = fnn.grad(L.softmax_cross_entropy)(z, y, eps)
    np.testing.assert_allclose(g, (p - target) / 2, rtol=1e-12)


@pytest.mark.parametrize("shape, axis, reduction", [((4, 5), -1, "mean"), ((2, 3, 5), -1, "none"),
                                                   ((2, 5, 3), 1, "sum")])
def test_sce_retained_vjp_is_repeatable(shape, axis, reduction):
    # The rule works from the softmax kept by the forward pass: calling a retained vjp twice must
    # give the same cotangent (the residual is not modified in place) and the softmax - target.
    rng = np.random.default_rng(4)
    z = rng.normal(size=shape).astype(np.float32)
    k = shape[axis]
    y = rng.integers(0, k, size=tuple(n for i, n in enumerate(shape) if i != axis % len(shape)))
    out, vjp_fn = fnn.vjp(lambda t: L.softmax_cross_entropy(t, y, 0.1, reduction, axis=axis), z)
    u = np.ones_like(out)
    first = vjp_fn(u)[0].copy()
    second = vjp_fn(u)[0]
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32
    p = np.exp(ref_log_softmax(z.astype(np.float64), axis))
    target = 0.9 * np.moveaxis(np.eye(k)[y], -1, axis) + 0.1 / k
    scale = 1.0 / (z.size // k) if reduction == "mean" else 1.0
    np.testing.assert_allclose(first, (p - target) * scale, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [1e4, -1e4, 1e30])
def test_sce_extreme_logits_finite_float32(scale):
    z = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]], np.float32) * np.float32(scale)
    y = np.array([1, 1])
    for eps in (0.0, 0.1):
        loss, g = fnn.value_and_grad(L.softmax_cross_entropy)(z, y, eps)
        assert loss.dtype == np.float32 and g.dtype == np.float32
        assert np.isfinite(loss) and np.all(np.isfinite(g))
    if scale == 1e4:  # the first row's label sits 2e4 below the max: the loss is exactly that
        per = L.softmax_cross_entropy(z, y, reduction="none")
        np.testing.assert_allclose(per, [2e4, 0.0], rtol=1e-6)


# --- nll, hinge, kl ---------------------------------------------------------------------------------

@given(classification(), st.sampled_from(REDUCTIONS))
def test_nll_value_and_gradient(data, reduction):
    z, y, axis = data
    lp = ref_log_softmax(z, axis)
    per = -np.take_along_axis(lp, np.expand_dims(y, axis), axis).squeeze(axis)
    np.testing.assert_allclose(L.nll(lp, y, reduction, axis=axis), ref_reduce(per, reduction),
                               rtol=1e-12)
    if z.size <= 12:
        check_grads(lambda t: L.nll(t, y, reduction, axis=axis), [lp])


def test_nll_ignores_minus_infinity_elsewhere():
    lp = np.array([[0.0, -np.inf], [-np.inf, 0.0]])
    g = fnn.grad(L.nll)(lp, np.array([0, 1]))
    assert L.nll(lp, np.array([0, 1])) == 0.0 and np.array_equal(g, [[-0.5, 0], [0, -0.5]])


@settings(max_examples=25)
@given(st.integers(1, 3), st.integers(2, 4), seeds, st.sampled_from([1.0, 0.5]),
       st.sampled_from(REDUCTIONS))
def test_hinge_value_and_gradient_away_from_kinks(n, k, seed, margin, reduction):
    rng = np.random.default_rng(seed)
    z, y = rng.standard_normal((n, k)), rng.integers(0, k, n)
    s_y = np.take_along_axis(z, y[:, None], 1)
    assume(np.min(np.abs(margin + z - s_y)) > 1e-3)
    np.testing.assert_allclose(L.multiclass_hinge(z, y, margin, reduction),
                               ref_reduce(ref_hinge(z, y, margin), reduction), rtol=1e-12)
    check_grads(lambda t: L.multiclass_hinge(t, y, margin, reduction), [z])


def test_hinge_class_axis_and_subgradient_zero_at_hinge():
    s = np.array([[0.0, -1.0, 2.0]])  # margin + s_1 - s_0 == 0: exactly at the hinge
    g = fnn.grad(L.multiclass_hinge)(s, np.array([0]))
    np.testing.assert_array_equal(g, [[-1.0, 0.0, 1.0]])
    z = np.random.default_rng(0).standard_normal((3, 4))
    y = np.array([0, 3, 1])
    np.testing.assert_allclose(L.multiclass_hinge(z.T, y, axis=0), L.multiclass_hinge(z, y))


@settings(max_examples=20)
@given(classification(max_batch=2, max_classes=3), seeds, st.sampled_from(REDUCTIONS))
def test_kl_divergence(data, seed, reduction):
    z, _, axis = data
    t = np.random.default_rng(seed).uniform(0.0, 1.0, z.shape)
    t[t < 0.2] = 0.0  # some zero targets: 0 log 0 = 0
    lq = ref_log_softmax(z, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t > 0, t * (np.log(t) - lq), 0.0)
    np.testing.assert_allclose(L.kl_divergence(lq, t, reduction, axis=axis),
                               ref_reduce(terms.sum(axis=axis), reduction), rtol=1e-12, atol=1e-14)
    assume(np.all((t == 0) | (t > 1e-3)))
    check_grads(lambda a: L.kl_divergence(a, t, reduction, axis=axis), [lq])


# --- elementwise losses ---------------------------------------------------------------------------

@st.composite
def pairs(draw):
    shape = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal(shape) * 2, rng.standard_normal(shape)


@given(pairs(), st.sampled_from(REDUCTIONS))
def test_mse_mae(data, reduction):
    p, t = data
    np.testing.assert_allclose(L.mse(p, t, reduction), ref_reduce((p - t) ** 2, reduction), rtol=1e-12)
    np.testing.assert_allclose(L.mae(p, t, reduction), ref_reduce(np.abs(p - t), reduction), rtol=1e-12)
    check_grads(lambda a, b: L.mse(a, b, reduction), [p, t], order=2)
    assume(np.min(np.abs(p - t)) > 1e-3)
    check_grads(lambda a, b: L.mae(a, b, reduction), [p, t])


@given(pairs(), st.sampled_from([1.0, 0.5, 2.0]), st.sampled_from(REDUCTIONS))
def test_huber(data, delta, reduction):
    p, t = data
    np.testing.assert_allclose(L.huber(p, t, delta, reduction),
                               ref_reduce(ref_huber(p - t, delta), reduction), rtol=1e-12)
    d = np.abs(p - t)
    assume(np.min(d) > 1e-3 and np.min(np.abs(d - delta)) > 1e-3)
    check_grads(lambda a, b: L.huber(a, b, delta, reduction), [p, t])


@given(pairs(), seeds, st.booleans(), st.sampled_from(REDUCTIONS))
def test_bce_with_logits(data, seed, weighted, reduction):
    x, _ = data
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 1.0, x.shape)
    w = rng.uniform(0.5, 3.0, x.shape[-1:]) if weighted else None
    out = L.binary_cross_entropy_with_logits(x, t, pos_weight=w, reduction=reduction)
    np.testing.assert_allclose(out, ref_reduce(ref_bce(x, t, 1.0 if w is None else w), reduction),
                               rtol=1e-10)
    if w is None:
        check_grads(lambda a, b: L.binary_cross_entropy_with_logits(a, b, reduction=reduction),
                    [x, t], order=2)
    else:
        check_grads(lambda a, b, c: L.binary_cross_entropy_with_logits(a, b, c, reduction),
                    [x, t, w], order=2)


def test_bce_extreme_logits():
    x = np.array([1e4, -1e4, 3e38, -3e38, 0.0], np.float32)
    t = np.array([0.0, 1.0, 1.0, 0.0, 1.0], np.float32)
    loss, g = fnn.value_and_grad(L.binary_cross_entropy_with_logits)(x, t, reduction="sum")
    assert loss.dtype == g.dtype == np.float32
    np.testing.assert_allclose(loss, 2e4 + math.log(2), rtol=1e-6)
    np.testing.assert_array_equal(g, [1.0, -1.0, 0.0, 0.0, -0.5])  # sigmoid(x) - t
    gw = fnn.grad(L.binary_cross_entropy_with_logits, argnums=0)(x, t, np.float32(3.0), "sum")
    assert np.all(np.isfinite(gw)) and gw.dtype == np.float32


@given(pairs(), st.sampled_from(REDUCTIONS))
def test_cosine(data, reduction):
    a, b = data
    assume(a.ndim >= 1)
    ref = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    np.testing.assert_allclose(L.cosine_similarity(a, b), ref, rtol=1e-10)
    np.testing.assert_allclose(L.cosine_distance(a, b, reduction), ref_reduce(1 - ref, reduction),
                               rtol=1e-10, atol=1e-12)
    check_grads(lambda x, y: L.cosine_distance(x, y, reduction), [a, b])


def test_cosine_zero_vector_has_finite_gradient():
    g = fnn.grad(L.cosine_distance)(np.zeros((1, 3)), np.ones((1, 3)))
    assert np.all(np.isfinite(g))


# --- l2 ---------------------------------------------------------------------------------------------

def test_l2_sums_squares_of_every_float_leaf():
    rng = np.random.default_rng(1)
    tree = {"w": rng.standard_normal((2, 3)), "b": [rng.standard_normal(3), None], "step": np.int64(7),
            "s": (rng.standard_normal(()),)}
    expected = sum(float(np.sum(v ** 2)) for v in (tree["w"], tree["b"][0], tree["s"][0]))
    np.testing.assert_allclose(L.l2(tree), expected, rtol=1e-12)  # no 0.5 factor
    del tree["step"]  # fnn.grad differentiates floating leaves only
    g = fnn.grad(L.l2)(tree)
    np.testing.assert_allclose(g["w"], 2 * tree["w"])
    np.testing.assert_allclose(g["b"][0], 2 * tree["b"][0])
    check_grads(lambda w: L.l2({"w": w, "v": [w * 2.0]}), [tree["w"]], order=2)
    assert L.l2({}) == 0.0


# --- reductions and dtypes --------------------------------------------------------------------------

def _cases(dtype):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 3)).astype(dtype)
    t = rng.standard_normal((4, 3)).astype(dtype)
    y = np.array([0, 2, 1, 2])
    p = rng.uniform(0, 1, (4, 3)).astype(dtype)
    return {
        "sce": (lambda a, r: L.softmax_cross_entropy(a, y, 0.1, r), z, (4,)),
        "sce_probs": (lambda a, r: L.softmax_cross_entropy(a, p, 0.1, r), z, (4,)),
        "nll": (lambda a, r: L.nll(a, y, r), z, (4,)),
        "hinge": (lambda a, r: L.multiclass_hinge(a, y, reduction=r), z, (4,)),
        "kl": (lambda a, r: L.kl_divergence(a, p, r), z, (4,)),
        "mse": (lambda a, r: L.mse(a, t, r), z, (4, 3)),
        "mae": (lambda a, r: L.mae(a, t, r), z, (4, 3)),
        "huber": (lambda a, r: L.huber(a, t, 0.5, r), z, (4, 3)),
        "bce": (lambda a, r: L.binary_cross_entropy_with_logits(a, p, reduction=r), z, (4, 3)),
        "bce_w": (lambda a, r: L.binary_cross_entropy_with_logits(a, p, p[0] + 1, r), z, (4, 3)),
        "cosine": (lambda a, r: L.cosine_distance(a, t, r), z, (4,)),
    }


@pytest.mark.parametrize("name", sorted(_cases(np.float64)))
def test_reductions(name):
    f, x, shape = _cases(np.float64)[name]
    per = f(x, "none")
    assert np.shape(per) == shape
    np.testing.assert_allclose(f(x, "sum"), np.sum(per), rtol=1e-12)
    np.testing.assert_allclose(f(x, "mean"), np.mean(per), rtol=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        f(x, "avg")


@pytest.mark.parametrize("name", sorted(_cases(np.float32)))
def test_float32_preserved(name):
    f, x, _ = _cases(np.float32)[name]
    for r in REDUCTIONS:
        assert f(x, r).dtype == np.float32, (name, r)
        g = fnn.grad(lambda a: fnn.numpy.sum(f(a, r)))(x)
        assert g.dtype == np.float32, (name, r)
    assert fnn.grad(L.l2)({"w": x})["w"].dtype == np.float32


# --- errors -----------------------------------------------------------------------------------------

@given(st.sampled_from(["int8", "int16", "int32", "int64", "uint8", "uint32"]),
       st.lists(st.integers(-130, 130), min_size=1, max_size=6), st.integers(1, 12),
       st.booleans())
def test_label_range_check_agrees_with_min_and_max(dtype, ids, num_classes, strided):
    """The range check of integer labels (one reduction over the ids seen as unsigned) refuses
    exactly the label arrays with an id below 0 or at least the class count, for every integer
    width, signed or not, contiguous or strided; and names the offending id."""
    info = np.iinfo(dtype)
    ids = [i for i in ids if info.min <= i <= info.max] or [0]
    labels = np.array(ids, dtype)
    if strided:
        labels = np.repeat(labels, 2)[::2]
    z = np.zeros((labels.shape[0], num_classes))
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        with pytest.raises(ValueError, match=rf"label {bad} is out of range for {num_classes} classes"):
            L.softmax_cross_entropy(z, labels)
    else:
        assert np.isfinite(L.softmax_cross_entropy(z, labels))


def test_error_messages():
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy.*label 3 .*3 classes.*\(4,\).*\(4, 3\)"):
        L.softmax_cross_entropy(z, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy.*label -1"):
        L.softmax_cross_entropy(z, np.array([0, 1, -1, 0]))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy.*\(4, 1\).*\(4, 3\).*\(4,\)"):
        L.softmax_cross_entropy(z, np.zeros((4, 1), int))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy.*\(4, 2\).*\(4, 3\)"):
        L.softmax_cross_entropy(z, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="label_smoothing"):
        L.softmax_cross_entropy(z, np.zeros(4, int), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"nll.*label 5.*\(4,\).*\(4, 3\)"):
        L.nll(z, np.array([0, 5, 0, 0]))
    with pytest.raises(TypeError, match="nll.*integer"):
        L.nll(z, np.zeros(4))
    with pytest.raises(ValueError, match=r"multiclass_hinge.*\(3,\).*\(4, 3\)"):
        L.multiclass_hinge(z, np.zeros(3, int))
    with pytest.raises(ValueError, match=r"mse.*\(4, 3\).*\(4, 1\)"):
        L.mse(z, np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits.*\(4, 3\).*\(3,\)"):
        L.binary_cross_entropy_with_logits(z, np.zeros(3))
    with pytest.raises(ValueError, match=r"pos_weight.*\(2,\)"):
        L.binary_cross_entropy_with_logits(z, z, pos_weight=np.ones(2))
    with pytest.raises(ValueError, match="class axis 2"):
        L.softmax_cross_entropy(z, np.zeros(4, int), axis=2)
    with pytest.raises(TypeError, match="floating"):
        L.softmax_cross_entropy(np.zeros((4, 3), int), np.zeros(4, int))


# --- PyTorch cross-check ----------------------------------------------------------------------------

def test_against_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    z = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    q = rng.dirichlet(np.ones(4), 5)
    t = rng.standard_normal((5, 4))
    b = rng.uniform(0, 1, (5, 4))
    w = rng.uniform(0.5, 2, 4)
    T = torch.tensor

    def check(ours, f_torch, *arrays, n_diff=None):
        """Values, and gradients wrt the first n_diff arrays (all by default)."""
        n_diff = len(arrays) if n_diff is None else n_diff
        xs = [T(a, requires_grad=i < n_diff) for i, a in enumerate(arrays)]
        expected = f_torch(*xs)
        expected.sum().backward()
        np.testing.assert_allclose(ours(*arrays), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
        got = fnn.grad(lambda *a: fnn.numpy.sum(ours(*a)), argnums=tuple(range(n_diff)))(*arrays)
        for g, x in zip(got, xs):
            np.testing.assert_allclose(g, x.grad.numpy(), rtol=1e-9, atol=1e-12)

    for r in REDUCTIONS:
        for eps in (0.0, 0.1):
            check(lambda a: L.softmax_cross_entropy(a, y, eps, r),
                  lambda a: F.cross_entropy(a, T(y), label_smoothing=eps, reduction=r), z)
            check(lambda a, p: L.softmax_cross_entropy(a, p, eps, r),
                  lambda a, p: F.cross_entropy(a, p, label_smoothing=eps, reduction=r), z, q)
        # class axis 1 of a (N, C, d) input, PyTorch's layout
        z3 = rng.standard_normal((2, 4, 3))
        y3 = rng.integers(0, 4, (2, 3))
        check(lambda a: L.softmax_cross_entropy(a, y3, 0.1, r, axis=1),
              lambda a: F.cross_entropy(a, T(y3), label_smoothing=0.1, reduction=r), z3)
        check(lambda a: L.nll(a, y, r), lambda a: F.nll_loss(a, T(y), reduction=r), z)
        check(lambda a, c: L.mse(a, c, r), lambda a, c: F.mse_loss(a, c, reduction=r), z, t)
        check(lambda a, c: L.mae(a, c, r), lambda a, c: F.l1_loss(a, c, reduction=r), z, t)
        check(lambda a, c: L.huber(a, c, 0.7, r),
              lambda a, c: F.huber_loss(a, c, reduction=r, delta=0.7), z, t)
        check(lambda a, c, p: L.binary_cross_entropy_with_logits(a, c, p, r),
              lambda a, c, p: F.binary_cross_entropy_with_logits(a, c, pos_weight=p, reduction=r),
              z, b, w, n_diff=2)  # torch has no gradient for pos_weight
        check(lambda a, c: L.binary_cross_entropy_with_logits(a, c, reduction=r),
              lambda a, c: F.binary_cross_entropy_with_logits(a, c, reduction=r), z, b)
        # torch's multi_margin_loss divides each example's sum by the number of classes; ours not
        check(lambda a: L.multiclass_hinge(a, y, 0.8, r) / 4.0,
              lambda a: F.multi_margin_loss(a, T(y), margin=0.8, reduction=r), z)
    lq = F.log_softmax(T(z), -1).numpy()
    check(lambda a: L.kl_divergence(a, q), lambda a: F.kl_div(a, T(q), reduction="batchmean"), lq)
    check(lambda a, c: L.cosine_similarity(a, c), lambda a, c: F.cosine_similarity(a, c, dim=-1), z, t)
