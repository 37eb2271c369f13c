"""Classification metrics on NumPy or CuPy arrays.

Every function computes with the module of the arrays it is given (NumPy or CuPy), looks through
traced values (no gradient flows through a metric), returns Python floats for scalar results and
arrays of the input's module for per-class results.

Predictions may be given as class scores of shape (..., K) (logits, probabilities: the prediction is
the arg-max over the last axis, ties going to the lowest class id, as `argmax` does) or as predicted
class ids of the same shape as `labels`. Labels are integer class ids.

Conventions follow scikit-learn (and PyTorch's torchmetrics where they agree):

- `confusion_matrix`: rows are the true class, columns the predicted class.
- `precision_recall_f1`: scikit-learn's `precision_recall_fscore_support` over the classes
  `0..num_classes-1`; F1 is `2 tp / (2 tp + fp + fn)` and a 0/0 takes the value `zero_division`.
- `pr_curve` / `average_precision`: scikit-learn's `precision_recall_curve` and
  `average_precision_score` (AP = sum_n (R_n - R_{n-1}) P_n, no interpolation).
- `roc_curve` / `roc_auc`: scikit-learn's `roc_curve` (with every threshold kept) and
  `roc_auc_score` (the trapezoidal area, equal to the probability that a random positive scores
  above a random negative, ties counting one half).
- The top-k error is `1 - top_k_accuracy(scores, labels, k)`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fnn.autodiff import stop_gradient
from fnn.backend import get_array_module

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "confusion_matrix",
    "precision_recall_f1",
    "pr_curve",
    "average_precision",
    "pr_curves",
    "mean_average_precision",
    "roc_curve",
    "roc_auc",
]


# --------------------------------------------------------------------------------------------
# Helpers


def _arrays(*xs: Any):
    """The plain arrays behind `xs` (traces removed), all in one array module, and that module."""
    xs = [stop_gradient(x) for x in xs]
    xp = get_array_module(*xs)
    return xp, [xp.asarray(x) for x in xs]


def _check_labels(labels, where: str) -> None:
    if labels.dtype.kind not in "iub":
        raise TypeError(f"{where}: labels must be integer class ids, got dtype {labels.dtype}")


def _pred_ids(xp, preds_or_scores, labels, where: str):
    """Predicted class ids from scores (..., K) or ids (...), and the number of score columns."""
    _check_labels(labels, where)
    p = preds_or_scores
    if p.ndim == labels.ndim + 1:
        if p.shape[:-1] != labels.shape:
            raise ValueError(
                f"{where}: scores of shape {p.shape} do not match labels of shape {labels.shape} "
                "(expected scores of shape labels.shape + (num_classes,))"
            )
        if p.shape[-1] == 0:
            raise ValueError(f"{where}: scores have no class columns (shape {p.shape})")
        return xp.argmax(p, axis=-1), p.shape[-1]
    if p.shape != labels.shape:
        raise ValueError(
            f"{where}: predictions of shape {p.shape} do not match labels of shape {labels.shape}; "
            "give predicted ids of the labels' shape or scores of shape labels.shape + (K,)"
        )
    if p.dtype.kind not in "iub":
        raise TypeError(
            f"{where}: predicted ids must be integers, got dtype {p.dtype} "
            "(for class scores give shape labels.shape + (num_classes,))"
        )
    return p, None


def _num_classes(xp, preds, labels, num_classes, from_scores, where: str) -> int:
    if preds.size and int(preds.min()) < 0 or labels.size and int(labels.min()) < 0:
        raise ValueError(f"{where}: class ids must be non-negative")
    if num_classes is None:
        if from_scores is not None:
            num_classes = from_scores
        else:
            hi = max(int(preds.max()) if preds.size else -1, int(labels.max()) if labels.size else -1)
            num_classes = hi + 1
    num_classes = int(num_classes)
    if num_classes < 0:
        raise ValueError(f"{where}: num_classes must be non-negative, got {num_classes}")
    top = max(int(preds.max()) if preds.size else -1, int(labels.max()) if labels.size else -1)
    if top >= num_classes:
        raise ValueError(f"{where}: class id {top} is out of range for num_classes={num_classes}")
    return num_classes


def _divide(xp, num, den, zero_division: float):
    """num / den elementwise, `zero_division` where den == 0 (no warnings)."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    safe = xp.where(den == 0, 1.0, den)
    return xp.where(den == 0, float(zero_division), num / safe)


# --------------------------------------------------------------------------------------------
# Accuracy


def accuracy(logits_or_preds: Any, labels: Any) -> float:
    """The fraction of examples whose prediction equals the label.

    `logits_or_preds` is class scores of shape labels.shape + (K,) or predicted ids of labels' shape.
    NaN for zero examples.
    """
    xp, (p, labels) = _arrays(logits_or_preds, labels)
    preds, _ = _pred_ids(xp, p, labels, "accuracy")
    if labels.size == 0:
        return math.nan
    return float(xp.mean(preds == labels))


def top_k_accuracy(scores: Any, labels: Any, k: int = 5) -> float:
    """The fraction of examples whose true class is among the `k` highest scores.

    `scores` has shape labels.shape + (K,). Ties are broken as `argmax` breaks them (the lower class
    id ranks first), so `top_k_accuracy(s, y, 1) == accuracy(s, y)` and `k >= K` gives 1.
    The top-k error is `1 - top_k_accuracy(scores, labels, k)`.
    """
    xp, (scores, labels) = _arrays(scores, labels)
    _check_labels(labels, "top_k_accuracy")
    k = int(k)
    if k < 1:
        raise ValueError(f"top_k_accuracy: k must be at least 1, got {k}")
    if scores.ndim != labels.ndim + 1 or scores.shape[:-1] != labels.shape:
        raise ValueError(
            f"top_k_accuracy: scores of shape {scores.shape} do not match labels of shape "
            f"{labels.shape} (expected labels.shape + (num_classes,))"
        )
    num_classes = scores.shape[-1]
    if labels.size == 0:
        return math.nan
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"top_k_accuracy: labels out of range for {num_classes} classes")
    lab = labels[..., None].astype(np.int64)
    true_score = xp.take_along_axis(scores, lab, axis=-1)
    ids = xp.arange(num_classes)
    ahead = (scores > true_score) | ((scores == true_score) & (ids < lab))
    rank = xp.sum(ahead, axis=-1)
    return float(xp.mean(rank < k))


# --------------------------------------------------------------------------------------------
# Confusion matrix, precision, recall, F1


def confusion_matrix(preds_or_scores: Any, labels: Any, num_classes: int | None = None):
    """Counts `C[i, j]` of examples of true class i predicted as class j (int64, shape (K, K)).

    K is `num_classes`, else the score columns, else `max(id) + 1` over predictions and labels.
    """
    xp, (p, labels) = _arrays(preds_or_scores, labels)
    preds, cols = _pred_ids(xp, p, labels, "confusion_matrix")
    k = _num_classes(xp, preds, labels, num_classes, cols, "confusion_matrix")
    flat = labels.reshape(-1).astype(np.int64) * k + preds.reshape(-1).astype(np.int64)
    return xp.bincount(flat, minlength=k * k)[: k * k].reshape(k, k)


def _average(xp, values, support, average, zero_division):
    if average == "macro":
        return float(xp.mean(values)) if values.size else math.nan
    if average == "weighted":
        total = float(xp.sum(support))
        if total == 0:
            return float(zero_division)
        return float(xp.sum(values * support) / total)
    raise AssertionError(average)


def precision_recall_f1(
    preds_or_scores: Any,
    labels: Any,
    num_classes: int | None = None,
    average: str | None = None,
    zero_division: float = 0.0,
):
    """Precision, recall and F1 for the classes 0..K-1 (K as in `confusion_matrix`).

    `average=None` returns three per-class float64 arrays; 'macro' the unweighted mean over the K
    classes (macro F1 is the mean of per-class F1s, as scikit-learn); 'micro' the scores of the
    pooled counts (equal to the accuracy for single-label data); 'weighted' the mean weighted by
    each class's support (its number of true examples). A 0/0 gives `zero_division`; F1 is
    `2 tp / (2 tp + fp + fn)`.
    """
    if average not in (None, "macro", "micro", "weighted"):
        raise ValueError(
            f"precision_recall_f1: average must be None, 'macro', 'micro' or 'weighted', got {average!r}"
        )
    cm = confusion_matrix(preds_or_scores, labels, num_classes)
    xp = get_array_module(cm)
    tp = xp.diagonal(cm)
    predicted = xp.sum(cm, axis=0)
    support = xp.sum(cm, axis=1)
    fp = predicted - tp
    fn = support - tp
    if average == "micro":
        tp, fp, fn = xp.sum(tp), xp.sum(fp), xp.sum(fn)
    precision = _divide(xp, tp, tp + fp, zero_division)
    recall = _divide(xp, tp, tp + fn, zero_division)
    f1 = _divide(xp, 2 * tp, 2 * tp + fp + fn, zero_division)
    if average is None:
        return precision, recall, f1
    if average == "micro":
        return float(precision), float(recall), float(f1)
    return tuple(_average(xp, v, support, average, zero_division) for v in (precision, recall, f1))


# --------------------------------------------------------------------------------------------
# Precision-recall curves


def _binary(xp, scores, labels_binary, where: str):
    if scores.ndim != 1 or labels_binary.shape != scores.shape:
        raise ValueError(
            f"{where}: expected 1-d scores and labels of one shape, got {scores.shape} and "
            f"{labels_binary.shape}"
        )
    if labels_binary.dtype.kind == "b":
        return labels_binary
    if labels_binary.size and not bool(xp.all((labels_binary == 0) | (labels_binary == 1))):
        raise ValueError(f"{where}: binary labels must be 0/1 or booleans")
    return labels_binary != 0


def _curve_counts(xp, scores, positive):
    """Scores in decreasing order; true and false positives at each distinct threshold."""
    order = xp.argsort(scores)[::-1]
    s = scores[order]
    y = positive[order].astype(np.int64)
    distinct = xp.nonzero(xp.diff(s))[0]
    last = xp.asarray([s.size - 1], dtype=distinct.dtype)
    idx = xp.concatenate([distinct, last])
    tps = xp.cumsum(y)[idx]
    fps = 1 + idx - tps
    return tps, fps, s[idx]


def pr_curve(scores: Any, labels_binary: Any):
    """(precision, recall, thresholds) of one binary problem, as scikit-learn's precision_recall_curve.

    `thresholds` are the distinct scores in increasing order; `precision[i]` and `recall[i]` are
    those of predicting positive when `score >= thresholds[i]`; the last entries are 1 and 0 (no
    threshold). With no positive label, recall is 1 at every threshold.
    """
    xp, (scores, labels_binary) = _arrays(scores, labels_binary)
    positive = _binary(xp, scores, labels_binary, "pr_curve")
    if scores.size == 0:
        raise ValueError("pr_curve: no examples")
    tps, fps, thresholds = _curve_counts(xp, scores, positive)
    precision = _divide(xp, tps, tps + fps, 0.0)
    total = int(tps[-1])
    recall = xp.ones(tps.shape, np.float64) if total == 0 else tps / float(total)
    one = xp.ones(1, np.float64)
    precision = xp.concatenate([precision[::-1], one])
    recall = xp.concatenate([recall[::-1], xp.zeros(1, np.float64)])
    return precision, recall, thresholds[::-1]


def average_precision(scores: Any, labels_binary: Any) -> float:
    """scikit-learn's average precision: the sum over thresholds of (R_n - R_{n-1}) P_n."""
    precision, recall, _ = pr_curve(scores, labels_binary)
    xp = get_array_module(precision)
    return float(-xp.sum(xp.diff(recall) * precision[:-1]))


def _one_vs_rest(scores, labels, where: str):
    xp, (scores, labels) = _arrays(scores, labels)
    _check_labels(labels, where)
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(
            f"{where}: expected scores of shape (N, K) and labels of shape (N,), got "
            f"{scores.shape} and {labels.shape}"
        )
    return xp, scores, labels


def pr_curves(scores: Any, labels: Any) -> list:
    """One-vs-rest precision-recall curves: a list with `pr_curve(scores[:, c], labels == c)` per class c."""
    xp, scores, labels = _one_vs_rest(scores, labels, "pr_curves")
    return [pr_curve(scores[:, c], labels == c) for c in range(scores.shape[1])]


def mean_average_precision(scores: Any, labels: Any) -> float:
    """The mean over classes of the one-vs-rest average precision (scores (N, K), labels (N,)).

    Classes without any positive example have no defined AP and are left out of the mean (NaN when
    no class has one). With every class present this is scikit-learn's
    `average_precision_score(label_binarize(labels, classes=range(K)), scores, average='macro')`.
    """
    xp, scores, labels = _one_vs_rest(scores, labels, "mean_average_precision")
    aps = []
    for c in range(scores.shape[1]):
        positive = labels == c
        if bool(xp.any(positive)):
            aps.append(average_precision(scores[:, c], positive))
    return float(np.mean(aps)) if aps else math.nan


# --------------------------------------------------------------------------------------------
# ROC curves


def roc_curve(scores: Any, labels_binary: Any):
    """(false positive rate, true positive rate, thresholds) of one binary problem, as
    scikit-learn's `roc_curve(..., drop_intermediate=False)`.

    `thresholds` are the distinct scores in decreasing order, preceded by +inf; entry i gives the
    rates of predicting positive when `score >= thresholds[i]`, so the curve runs from (0, 0) to
    (1, 1). Both kinds of label must be present (a rate over no example is undefined).
    """
    xp, (scores, labels_binary) = _arrays(scores, labels_binary)
    positive = _binary(xp, scores, labels_binary, "roc_curve")
    n_pos = int(xp.sum(positive))
    n_neg = int(positive.size) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_curve: needs positive and negative examples, got {n_pos} positive and "
                         f"{n_neg} negative")
    tps, fps, thresholds = _curve_counts(xp, scores.astype(np.float64), positive)
    zero = xp.zeros(1, np.float64)
    fpr = xp.concatenate([zero, fps / float(n_neg)])
    tpr = xp.concatenate([zero, tps / float(n_pos)])
    return fpr, tpr, xp.concatenate([xp.full(1, np.inf), thresholds])


def roc_auc(scores: Any, labels_binary: Any) -> float:
    """The area under the ROC curve (scikit-learn's `roc_auc_score` for one binary problem): the
    probability that a random positive example scores higher than a random negative one, ties
    counting one half. Raises ValueError unless both kinds of label are present."""
    fpr, tpr, _ = roc_curve(scores, labels_binary)
    xp = get_array_module(fpr)
    return float(xp.sum(xp.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)
