"""Classification losses: softmax cross-entropy (one primitive), NLL, the multiclass SVM hinge and
the KL divergence. The class axis is `axis` (default the last); labels are integer class ids of the
scores' shape without that axis."""

from __future__ import annotations

from typing import Any

import fnn.numpy as fnp
from fnn.autodiff.tracer import any_traced, defvjp, primitive, strip
from fnn.backend import get_array_module
from fnn.losses._common import (as_array, check_float, check_int_labels, check_reduction,
                                check_same_shape, class_axis, is_integer_labels, onehot, reduce,
                                shape_of)

__all__ = ["softmax_cross_entropy", "nll", "multiclass_hinge", "kl_divergence"]


# --- softmax cross-entropy: one primitive with a hand-written VJP ---------------------------------

def _batch_count(shape: tuple, axis: int) -> int:
    n = 1
    for i, d in enumerate(shape):
        if i != axis:
            n *= d
    return n


def _sce_forward(logits, labels, *, axis, smoothing, reduction):
    """Per-example -sum_k q_k log_softmax(logits)_k, reduced; log-sum-exp after subtracting the
    max, so that no exp overflows whatever the logits."""
    xp = get_array_module(logits)
    num_classes = logits.shape[axis]
    shifted = logits - logits.max(axis=axis, keepdims=True)
    log_p = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    if is_integer_labels(labels):
        if log_p.ndim == 2 and axis == 1:  # (N, K): index the labels' entries directly
            loss = -log_p[xp.arange(log_p.shape[0]), labels]
        else:
            picked = xp.take_along_axis(log_p, xp.expand_dims(labels, axis), axis=axis)
            loss = -xp.squeeze(picked, axis=axis)
        if smoothing:
            loss = (1.0 - smoothing) * loss - (smoothing / num_classes) * xp.sum(log_p, axis=axis)
    else:
        q = labels.astype(logits.dtype, copy=False)
        if smoothing:
            q = (1.0 - smoothing) * q + smoothing / num_classes
        loss = -xp.sum(q * log_p, axis=axis)
    if reduction == "mean":
        return xp.mean(loss)
    if reduction == "sum":
        return xp.sum(loss)
    return loss


_sce = primitive(_sce_forward, name="fnn.losses.softmax_cross_entropy")


def _sce_cotangent(g, logits, axis, reduction):
    """The output cotangent spread over the examples, with a class axis to broadcast along."""
    if reduction == "none":
        return fnp.expand_dims(g, axis)
    if reduction == "mean":
        n = _batch_count(shape_of(logits), axis)
        return g * (1.0 / n) if n else g
    return g


def _log_softmax(logits, axis):
    return logits - fnp.logsumexp(logits, axis=axis, keepdims=True)


def _smoothed(labels, logits, axis, smoothing):
    """The target distribution (1 - eps) * q + eps / K; a plain array for integer labels."""
    num_classes = shape_of(logits)[axis]
    if is_integer_labels(labels):
        q = onehot(labels, num_classes, axis, strip(logits).dtype)
        return (1.0 - smoothing) * q + smoothing / num_classes if smoothing else q
    q = fnp.astype(labels, strip(logits).dtype) if labels.dtype != strip(logits).dtype else labels
    return (1.0 - smoothing) * q + smoothing / num_classes if smoothing else q


def _sce_logits_plain(g, logits, labels, axis, smoothing, reduction):
    """The logits rule for plain arrays and integer labels (the training-step case): softmax
    built in one fresh array and turned into the cotangent in place, the labels' entries
    lowered by indexing instead of subtracting a one-hot array."""
    xp = get_array_module(logits)
    num_classes = logits.shape[axis]
    e = logits - logits.max(axis=axis, keepdims=True)
    xp.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    if smoothing:
        e -= smoothing / num_classes
    if e.ndim == 2 and axis == 1:  # (N, K) logits: index the labels' entries directly
        e[xp.arange(e.shape[0]), labels] -= 1.0 - smoothing
    else:
        ids = xp.expand_dims(labels, axis)
        picked = xp.take_along_axis(e, ids, axis=axis)
        xp.put_along_axis(e, ids, picked - (1.0 - smoothing), axis=axis)
    if reduction == "none":
        e *= xp.expand_dims(g, axis)
    else:
        n = _batch_count(logits.shape, axis) if reduction == "mean" else 1
        e *= g * (1.0 / n) if n else g
    return e


def _sce_logits_rule(g, ans, logits, labels, *, axis, smoothing, reduction):
    """d/dlogits = softmax * sum_k q_k - q (softmax - q when q sums to one), scaled by g."""
    if is_integer_labels(labels) and not any_traced(g, logits):
        return _sce_logits_plain(g, logits, labels, axis, smoothing, reduction)
    p = fnp.exp(_log_softmax(logits, axis))
    q = _smoothed(labels, logits, axis, smoothing)
    if is_integer_labels(labels):
        diff = p - q
    else:
        diff = p * fnp.sum(q, axis=axis, keepdims=True) - q
    return _sce_cotangent(g, logits, axis, reduction) * diff


def _sce_labels_rule(g, ans, logits, labels, *, axis, smoothing, reduction):
    """d/dq = -(1 - eps) * log_softmax(logits), scaled by g (probability labels only)."""
    scale = -(1.0 - smoothing)
    return _sce_cotangent(g, logits, axis, reduction) * (scale * _log_softmax(logits, axis))


defvjp(_sce, _sce_logits_rule, _sce_labels_rule, reads=[(0, 1), (0,)])


def softmax_cross_entropy(logits: Any, labels: Any, label_smoothing: float = 0.0,
                          reduction: str = "mean", axis: int = -1) -> Any:
    """Cross-entropy between softmax(logits) and the labels, along the class axis `axis`.

    `labels` are integer class ids (the logits' shape without the class axis) or probabilities
    (the logits' shape). With `label_smoothing` eps the target is (1 - eps) * q + eps / K, as in
    PyTorch's `cross_entropy`. `reduction` is 'mean' (over all examples), 'sum' or 'none' (one
    loss per example). One primitive: log-sum-exp with the max subtracted forward, and
    softmax - target backward, so extreme logits give finite losses and gradients.
    """
    loss = "softmax_cross_entropy"
    check_reduction(reduction, loss)
    check_float(logits, loss, "logits")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{loss}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    shape = shape_of(logits)
    ax = class_axis(len(shape), axis, loss, "logits")
    labels = as_array(labels, logits)
    if is_integer_labels(labels):
        check_int_labels(labels, shape, ax, loss, "logits")
    else:
        check_float(labels, loss, "labels (integer class ids or probabilities)")
        if shape_of(labels) != shape:
            raise ValueError(
                f"{loss}: probability labels of shape {shape_of(labels)} do not match logits of "
                f"shape {shape}; integer labels need shape {shape[:ax] + shape[ax + 1:]}")
    return _sce(logits, labels, axis=ax, smoothing=eps, reduction=reduction)


# --- compositions ---------------------------------------------------------------------------------

def _pick(scores, mask, axis, keepdims=False):
    """The score of each example's label (a `where`, so -inf elsewhere is harmless)."""
    return fnp.sum(fnp.where(mask, scores, 0.0), axis=axis, keepdims=keepdims)


def _label_mask(values: Any, labels: Any, reduction: str, axis: int, loss: str, what: str) -> tuple:
    """Check the arguments of a loss over class scores with integer labels; return (class axis,
    boolean one-hot mask of the labels)."""
    check_reduction(reduction, loss)
    check_float(values, loss, what)
    shape = shape_of(values)
    ax = class_axis(len(shape), axis, loss, what)
    labels = as_array(labels, values)
    if not is_integer_labels(labels):
        raise TypeError(f"{loss}: labels must be integer class ids, got dtype {labels.dtype}")
    num_classes = check_int_labels(labels, shape, ax, loss, what)
    return ax, onehot(labels, num_classes, ax, bool)


def nll(log_probs: Any, labels: Any, reduction: str = "mean", axis: int = -1) -> Any:
    """Negative log-likelihood: -log_probs[label] per example, as PyTorch's `nll_loss` (which
    expects log-probabilities, e.g. from log_softmax). Integer labels only."""
    ax, mask = _label_mask(log_probs, labels, reduction, axis, "nll", "log_probs")
    return reduce(-_pick(log_probs, mask, ax), reduction)


def multiclass_hinge(scores: Any, labels: Any, margin: float = 1.0, reduction: str = "mean",
                     axis: int = -1) -> Any:
    """The multiclass SVM loss: per example sum over wrong classes j of max(0, margin + s_j - s_y).

    Unlike PyTorch's `multi_margin_loss` the sum is not divided by the number of classes. The
    subgradient at the hinge (margin + s_j - s_y == 0) is 0.
    """
    ax, mask = _label_mask(scores, labels, reduction, axis, "multiclass_hinge", "scores")
    violation = scores - _pick(scores, mask, ax, keepdims=True) + float(margin)
    xp = get_array_module(mask)
    active = xp.logical_and(strip(violation) > 0, xp.logical_not(mask))
    return reduce(fnp.sum(fnp.where(active, violation, 0.0), axis=ax), reduction)


def kl_divergence(log_predictions: Any, targets: Any, reduction: str = "mean",
                  axis: int = -1) -> Any:
    """KL(targets || predictions) per example: sum_k t_k (log t_k - log_predictions_k), with
    0 log 0 = 0. `log_predictions` are log-probabilities (as PyTorch's `kl_div` input), `targets`
    probabilities of the same shape. 'mean' averages over examples (PyTorch's 'batchmean' for
    2-D input), not over every element."""
    loss = "kl_divergence"
    check_reduction(reduction, loss)
    check_float(log_predictions, loss, "log_predictions")
    targets = as_array(targets, log_predictions)
    check_float(targets, loss, "targets")
    check_same_shape(log_predictions, targets, loss, "log_predictions", "targets", False)
    ax = class_axis(len(shape_of(targets)), axis, loss, "targets")
    positive = strip(targets) > 0
    safe_t = fnp.where(positive, targets, 1.0)
    terms = fnp.where(positive, targets * (fnp.log(safe_t) - fnp.where(positive, log_predictions, 0.0)), 0.0)
    return reduce(fnp.sum(terms, axis=ax), reduction)
