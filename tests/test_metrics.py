"""fnn.metrics: hand-computed cases, properties, and a cross-check against scikit-learn when present."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import metrics

# --------------------------------------------------------------------------------------------
# Hand-computed cases

SCORES = np.array(
    [
        [0.9, 0.05, 0.05],  # pred 0, true 0
        [0.1, 0.8, 0.1],  # pred 1, true 1
        [0.2, 0.3, 0.5],  # pred 2, true 1
        [0.6, 0.3, 0.1],  # pred 0, true 2
        [0.1, 0.1, 0.8],  # pred 2, true 2
    ],
    np.float32,
)
LABELS = np.array([0, 1, 1, 2, 2])
PREDS = np.array([0, 1, 2, 0, 2])


def test_accuracy_scores_and_ids():
    assert metrics.accuracy(SCORES, LABELS) == pytest.approx(3 / 5)
    assert metrics.accuracy(PREDS, LABELS) == pytest.approx(3 / 5)
    assert isinstance(metrics.accuracy(PREDS, LABELS), float)
    assert math.isnan(metrics.accuracy(np.zeros((0, 3)), np.zeros(0, np.int64)))


def test_accuracy_on_traced_values():
    def f(s):
        assert metrics.accuracy(s, LABELS) == pytest.approx(0.6)
        return fnn.numpy.sum(s)

    fnn.grad(f)(SCORES)


def test_top_k_accuracy_hand():
    # True-class ranks: 0, 0, 1, 2, 0 -> top-1 3/5, top-2 4/5, top-3 5/5.
    assert metrics.top_k_accuracy(SCORES, LABELS, k=1) == pytest.approx(3 / 5)
    assert metrics.top_k_accuracy(SCORES, LABELS, k=2) == pytest.approx(4 / 5)
    assert metrics.top_k_accuracy(SCORES, LABELS, k=3) == 1.0
    assert metrics.top_k_accuracy(SCORES, LABELS, k=5) == 1.0
    # Ties go to the lower class id, as argmax: [1, 1] with true class 1 ranks second.
    tied = np.array([[1.0, 1.0]])
    assert metrics.top_k_accuracy(tied, np.array([1]), k=1) == 0.0
    assert metrics.top_k_accuracy(tied, np.array([0]), k=1) == 1.0
    with pytest.raises(ValueError):
        metrics.top_k_accuracy(SCORES, LABELS, k=0)


def test_confusion_matrix_hand():
    expected = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 1]])
    np.testing.assert_array_equal(metrics.confusion_matrix(SCORES, LABELS), expected)
    np.testing.assert_array_equal(metrics.confusion_matrix(PREDS, LABELS), expected)
    cm = metrics.confusion_matrix(PREDS, LABELS, num_classes=4)
    assert cm.shape == (4, 4) and cm[3].sum() == 0 and cm[:3, :3].tolist() == expected.tolist()
    with pytest.raises(ValueError, match="out of range"):
        metrics.confusion_matrix(PREDS, LABELS, num_classes=2)


def test_precision_recall_f1_hand():
    # From the confusion matrix above: tp = [1, 1, 1], predicted = [2, 1, 2], support = [1, 2, 2].
    p, r, f = metrics.precision_recall_f1(PREDS, LABELS)
    np.testing.assert_allclose(p, [1 / 2, 1, 1 / 2])
    np.testing.assert_allclose(r, [1, 1 / 2, 1 / 2])
    np.testing.assert_allclose(f, [2 / 3, 2 / 3, 1 / 2])
    pm, rm, fm = metrics.precision_recall_f1(PREDS, LABELS, average="macro")
    assert pm == pytest.approx(2 / 3) and rm == pytest.approx(2 / 3)
    assert fm == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert metrics.precision_recall_f1(PREDS, LABELS, average="micro") == pytest.approx((0.6, 0.6, 0.6))
    pw, rw, fw = metrics.precision_recall_f1(PREDS, LABELS, average="weighted")
    assert pw == pytest.approx((1 * 0.5 + 2 * 1 + 2 * 0.5) / 5)
    assert fw == pytest.approx((1 * 2 / 3 + 2 * 2 / 3 + 2 * 0.5) / 5)
    assert isinstance(pm, float)


def test_zero_division():
    # Class 2 is never predicted and never true: precision, recall and F1 are all 0/0.
    preds, labels = np.array([0, 1, 1]), np.array([0, 1, 0])
    p, r, f = metrics.precision_recall_f1(preds, labels, num_classes=3, zero_division=1.0)
    assert (p[2], r[2], f[2]) == (1.0, 1.0, 1.0)
    p, r, f = metrics.precision_recall_f1(preds, labels, num_classes=3)
    assert (p[2], r[2], f[2]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="average"):
        metrics.precision_recall_f1(preds, labels, average="samples")


def test_pr_curve_hand():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    y = np.array([0, 0, 1, 1])
    # Thresholds 0.8, 0.4, 0.35, 0.1 give (tp, fp) = (1, 0), (1, 1), (2, 1), (2, 2).
    p, r, t = metrics.pr_curve(scores, y)
    np.testing.assert_allclose(t, [0.1, 0.35, 0.4, 0.8])
    np.testing.assert_allclose(p, [0.5, 2 / 3, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(r, [1.0, 1.0, 0.5, 0.5, 0.0])
    # AP = sum (R_n - R_{n-1}) P_n = 0.5 * 1 + 0 * 0.5 + 0.5 * 2/3 = 0.8333...
    assert metrics.average_precision(scores, y) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_pr_curve_ties_and_perfect():
    p, r, t = metrics.pr_curve(np.array([0.5, 0.5, 0.5]), np.array([1, 0, 1]))
    np.testing.assert_allclose(t, [0.5])
    np.testing.assert_allclose(p, [2 / 3, 1.0])
    np.testing.assert_allclose(r, [1.0, 0.0])
    assert metrics.average_precision(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0


def test_pr_curves_and_map():
    curves = metrics.pr_curves(SCORES, LABELS)
    assert len(curves) == 3
    for c, (p, r, t) in enumerate(curves):
        p2, r2, t2 = metrics.pr_curve(SCORES[:, c], LABELS == c)
        np.testing.assert_array_equal(p, p2)
        np.testing.assert_array_equal(t, t2)
    aps = [metrics.average_precision(SCORES[:, c], LABELS == c) for c in range(3)]
    assert metrics.mean_average_precision(SCORES, LABELS) == pytest.approx(np.mean(aps))
    # A class without positives is left out of the mean.
    labels = np.array([0, 1, 1, 1, 0])
    aps = [metrics.average_precision(SCORES[:, c], labels == c) for c in range(2)]
    assert metrics.mean_average_precision(SCORES, labels) == pytest.approx(np.mean(aps))


def test_shape_errors():
    with pytest.raises(ValueError, match="do not match"):
        metrics.accuracy(SCORES, LABELS[:3])
    with pytest.raises(TypeError, match="integer"):
        metrics.accuracy(SCORES, LABELS.astype(np.float32))


# --------------------------------------------------------------------------------------------
# Properties


@st.composite
def problems(draw, max_n=30, max_k=6):
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, max_k))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Rounded scores so ties happen.
    scores = np.round(rng.standard_normal((n, k)), draw(st.integers(0, 2))).astype(np.float32)
    labels = rng.integers(0, k, n)
    return scores, labels


@given(problems())
def test_properties(problem):
    scores, labels = problem
    n, k = scores.shape
    acc = metrics.accuracy(scores, labels)
    assert 0.0 <= acc <= 1.0
    cm = metrics.confusion_matrix(scores, labels)
    assert cm.shape == (k, k) and int(cm.sum()) == n
    assert np.trace(cm) / n == pytest.approx(acc)
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(labels, minlength=k))
    assert metrics.top_k_accuracy(scores, labels, k=1) == pytest.approx(acc)
    assert metrics.top_k_accuracy(scores, labels, k=k) == 1.0
    tops = [metrics.top_k_accuracy(scores, labels, k=j) for j in range(1, k + 1)]
    assert all(a <= b for a, b in zip(tops, tops[1:]))
    p, r, f = metrics.precision_recall_f1(scores, labels)
    assert metrics.precision_recall_f1(scores, labels, average="macro")[2] == pytest.approx(np.mean(f))
    assert metrics.precision_recall_f1(scores, labels, average="micro") == pytest.approx((acc,) * 3)
    assert np.all((0 <= f) & (f <= 1))


@given(problems(max_k=1), st.integers(0, 2**32 - 1))
def test_pr_curve_properties(problem, seed):
    scores, _ = problem
    s = scores[:, 0]
    y = np.random.default_rng(seed).integers(0, 2, s.size).astype(bool)
    p, r, t = metrics.pr_curve(s, y)
    assert len(p) == len(r) == len(t) + 1 and p[-1] == 1 and r[-1] == 0
    assert np.all(np.diff(t) > 0) and np.all(np.diff(r) <= 0)
    ap = metrics.average_precision(s, y)
    assert 0.0 <= ap <= 1.0


# --------------------------------------------------------------------------------------------
# scikit-learn cross-check


@pytest.mark.filterwarnings("ignore::UserWarning")
@given(problems(), st.sampled_from([0.0, 1.0]))
def test_against_sklearn_prf(problem, zero_division):
    skm = pytest.importorskip("sklearn.metrics")
    scores, labels = problem
    k = scores.shape[1]
    preds = scores.argmax(1)
    for average in (None, "macro", "micro", "weighted"):
        ours = metrics.precision_recall_f1(preds, labels, num_classes=k, average=average,
                                           zero_division=zero_division)
        theirs = skm.precision_recall_fscore_support(
            labels, preds, labels=list(range(k)), average=average, zero_division=zero_division
        )[:3]
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(preds, labels, k), skm.confusion_matrix(labels, preds, labels=range(k))
    )


@given(problems(max_k=1), st.integers(0, 2**32 - 1))
def test_against_sklearn_curve(problem, seed):
    skm = pytest.importorskip("sklearn.metrics")
    s = problem[0][:, 0]
    y = np.random.default_rng(seed).integers(0, 2, s.size)
    y[0] = 1  # scikit-learn warns when there is no positive
    p, r, t = metrics.pr_curve(s, y)
    p2, r2, t2 = skm.precision_recall_curve(y, s)
    np.testing.assert_allclose(p, p2)
    np.testing.assert_allclose(r, r2)
    np.testing.assert_allclose(t, t2)
    assert metrics.average_precision(s, y) == pytest.approx(skm.average_precision_score(y, s))


@given(problems(max_k=5))
def test_against_sklearn_map(problem):
    skm = pytest.importorskip("sklearn.metrics")
    pre = pytest.importorskip("sklearn.preprocessing")
    scores, labels = problem
    k = scores.shape[1]
    labels = labels.copy()
    if k < 2 or scores.shape[0] < k:
        return
    labels[:k] = np.arange(k)  # every class present
    expected = skm.average_precision_score(pre.label_binarize(labels, classes=range(k)) if k > 2
                                           else np.eye(k, dtype=int)[labels], scores, average="macro")
    assert metrics.mean_average_precision(scores, labels) == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# CuPy


def test_cupy():
    if not fnn.backend.cupy_available():
        pytest.skip("no GPU")
    import cupy as cp

    s, y = cp.asarray(SCORES), cp.asarray(LABELS)
    assert metrics.accuracy(s, y) == pytest.approx(metrics.accuracy(SCORES, LABELS))
    assert metrics.top_k_accuracy(s, y, 2) == pytest.approx(metrics.top_k_accuracy(SCORES, LABELS, 2))
    cm = metrics.confusion_matrix(s, y)
    assert isinstance(cm, cp.ndarray)
    p, r, f = metrics.precision_recall_f1(s, y)
    assert isinstance(f, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(f), metrics.precision_recall_f1(SCORES, LABELS)[2])
    pc, rc, tc = metrics.pr_curve(s[:, 0], y == 0)
    pn, rn, tn = metrics.pr_curve(SCORES[:, 0], LABELS == 0)
    np.testing.assert_allclose(cp.asnumpy(pc), pn)
    np.testing.assert_allclose(cp.asnumpy(tc), tn)
    assert metrics.mean_average_precision(s, y) == pytest.approx(metrics.mean_average_precision(SCORES, LABELS))


def test_roc_curve_hand():
    assert metrics.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)  # sklearn's doc example
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.6])
    y = np.array([1, 0, 1, 0, 1])
    fpr, tpr, t = metrics.roc_curve(scores, y)
    np.testing.assert_allclose(t, [np.inf, 0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1])
    # pairs (pos, neg): 0.9 beats both; 0.7 beats 0.6, loses to 0.8; 0.6 loses to 0.8, ties 0.6
    assert metrics.roc_auc(scores, y) == pytest.approx((2 + 1 + 0.5) / 6)


def test_roc_needs_both_kinds_of_label():
    with pytest.raises(ValueError, match="positive and negative"):
        metrics.roc_auc(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="0/1 or booleans"):
        metrics.roc_curve(np.array([0.1, 0.2]), np.array([2, 0]))


@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=40))
def test_roc_auc_is_the_pairwise_win_rate(pairs):
    # scores from a few values, so ties are common; AUC = P(pos > neg) + P(pos == neg) / 2
    scores = np.array([s for s, _ in pairs], dtype=np.float64) / 6
    y = np.array([b for _, b in pairs])
    pos, neg = scores[y], scores[~y]
    if not len(pos) or not len(neg):
        with pytest.raises(ValueError):
            metrics.roc_auc(scores, y)
        return
    wins = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    auc = metrics.roc_auc(scores, y)
    assert auc == pytest.approx(wins, abs=1e-12)
    assert metrics.roc_auc(-scores, y) == pytest.approx(1 - auc)         # reversed scores
    assert metrics.roc_auc(scores, ~y) == pytest.approx(1 - auc)         # swapped classes
    assert metrics.roc_auc(3 * scores + 1, y) == pytest.approx(auc)      # monotone transform
    fpr, tpr, _ = metrics.roc_curve(scores, y)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_roc_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    scores = np.round(rng.standard_normal(200) + y, 1)  # rounded: ties
    fpr, tpr, t = metrics.roc_curve(scores, y)
    fpr_sk, tpr_sk, t_sk = sk.roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, fpr_sk)
    np.testing.assert_allclose(tpr, tpr_sk)
    np.testing.assert_allclose(t, t_sk)
    assert metrics.roc_auc(scores, y) == pytest.approx(sk.roc_auc_score(y, scores))
