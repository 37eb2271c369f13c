"""Classification losses: softmax cross-entropy (one primitive), NLL, the multiclass SVM hinge and
the KL divergence. The class axis is `axis` (default the last); labels are integer class ids of the
scores' shape without that axis."""

from __future__ import annotations

from typing import Any

import fnn.numpy as fnp
from fnn.autodiff.tracer import any_traced, defvjp, primitive, strip
from fnn.backend import get_array_module
from fnn.losses._cuda_cross_entropy import cross_entropy_kernels
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
    return _sce_plain(logits, labels, axis, smoothing, reduction, want_softmax=False)[0]


def _reduce_losses(xp, loss, reduction):
    if reduction == "mean":
        return loss.sum() * (1.0 / loss.size) if loss.size else xp.mean(loss)
    if reduction == "sum":
        return loss.sum()
    return loss


def _sce_plain(logits, labels, axis, smoothing, reduction, want_softmax):
    """(loss, softmax or None) on plain arrays: shift by the max, exp, sum, and each example's
    log-sum-exp minus its label's entry; the softmax (the exps divided by their sums, in place)
    only when asked, as the residual of the logits rule."""
    kernels = cross_entropy_kernels(logits, labels, axis) if is_integer_labels(labels) else None
    if kernels is not None:  # CuPy, (N, K): one launch
        return kernels.forward(logits, labels, smoothing, reduction, want_softmax)
    xp = get_array_module(logits)
    num_classes = logits.shape[axis]
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = xp.exp(shifted)
    sums = e.sum(axis=axis, keepdims=True)
    log_sums = xp.log(sums)
    if is_integer_labels(labels):
        if shifted.ndim == 2 and axis == 1:  # (N, K): index the labels' entries directly
            loss = log_sums[:, 0] - shifted[xp.arange(shifted.shape[0]), labels]
        else:
            picked = xp.take_along_axis(shifted, xp.expand_dims(labels, axis), axis=axis)
            loss = xp.squeeze(log_sums - picked, axis=axis)
        if smoothing:
            # sum_k log_softmax_k = sum_k shifted_k - K * log_sum
            mean_log_p = shifted.sum(axis=axis) * (1.0 / num_classes) - xp.squeeze(log_sums, axis=axis)
            loss = (1.0 - smoothing) * loss - smoothing * mean_log_p
    else:
        q = labels.astype(logits.dtype, copy=False)
        if smoothing:
            q = (1.0 - smoothing) * q + smoothing / num_classes
        loss = -xp.sum(q * (shifted - log_sums), axis=axis)
    out = _reduce_losses(xp, loss, reduction)
    if not want_softmax:
        return out, None
    e /= sums
    return out, e


def _sce_fwd(logits, labels, *, axis, smoothing, reduction):
    """The forward pass when differentiating: the loss and a residual for the rules. For plain
    integer-label inputs (the training step) the residual is the softmax, so the logits rule
    needs no second exp, and the logits themselves are not kept; otherwise it is the logits."""
    if is_integer_labels(labels) and not any_traced(logits, labels):
        loss, softmax = _sce_plain(logits, labels, axis, smoothing, reduction, want_softmax=True)
        return loss, ("softmax", softmax)
    return _sce(logits, labels, axis=axis, smoothing=smoothing, reduction=reduction), ("logits", logits)


_sce = primitive(_sce_forward, name="fnn.losses.softmax_cross_entropy", fwd=_sce_fwd)


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


def _smoothed(labels, like, axis, smoothing):
    """The target distribution (1 - eps) * q + eps / K; a plain array for integer labels."""
    num_classes = shape_of(like)[axis]
    if is_integer_labels(labels):
        q = onehot(labels, num_classes, axis, strip(like).dtype)
        return (1.0 - smoothing) * q + smoothing / num_classes if smoothing else q
    q = fnp.astype(labels, strip(like).dtype) if labels.dtype != strip(like).dtype else labels
    return (1.0 - smoothing) * q + smoothing / num_classes if smoothing else q


def _sce_grad_from_softmax(g, softmax, labels, axis, smoothing, reduction):
    """softmax - target, times the spread cotangent, for plain arrays and integer labels (the
    training step): one scaled copy of the softmax, the labels' entries lowered by indexing."""
    kernels = cross_entropy_kernels(softmax, labels, axis)
    if kernels is not None and type(g).__module__.startswith("cupy"):  # CuPy, (N, K): one launch
        return kernels.grad(g, softmax, labels, smoothing, reduction)
    xp = get_array_module(softmax)
    if reduction == "none":
        scale = xp.expand_dims(g, axis)
    else:
        n = _batch_count(softmax.shape, axis) if reduction == "mean" else 1
        scale = g * (1.0 / n) if n else g
    e = softmax * scale  # a fresh array: the residual stays intact for a retained vjp
    if smoothing:
        e -= (smoothing / softmax.shape[axis]) * scale
    if e.ndim == 2 and axis == 1 and reduction != "none":  # (N, K): index the labels' entries
        e[xp.arange(e.shape[0]), labels] -= (1.0 - smoothing) * scale
    else:
        ids = xp.expand_dims(labels, axis)
        lowered = (1.0 - smoothing) * xp.broadcast_to(scale, e.shape)
        picked = xp.take_along_axis(e, ids, axis=axis) - xp.take_along_axis(lowered, ids, axis=axis)
        xp.put_along_axis(e, ids, picked, axis=axis)
    return e


def _sce_logits_rule(g, res, logits, labels, *, axis, smoothing, reduction):
    """d/dlogits = softmax * sum_k q_k - q (softmax - q when q sums to one), scaled by g."""
    kind, value = res
    if kind == "softmax":
        if not any_traced(g):
            return _sce_grad_from_softmax(g, value, labels, axis, smoothing, reduction)
        p = value  # a plain softmax, differentiated again only through g
    else:
        p = fnp.exp(_log_softmax(value, axis))
    q = _smoothed(labels, p, axis, smoothing)
    if is_integer_labels(labels):
        diff = p - q
    else:
        diff = p * fnp.sum(q, axis=axis, keepdims=True) - q
    return _sce_cotangent(g, p, axis, reduction) * diff


def _sce_labels_rule(g, res, logits, labels, *, axis, smoothing, reduction):
    """d/dq = -(1 - eps) * log_softmax(logits), scaled by g (probability labels only, whose
    residual is always the logits)."""
    logits = res[1]
    scale = -(1.0 - smoothing)
    return _sce_cotangent(g, logits, axis, reduction) * (scale * _log_softmax(logits, axis))


# The rules read the residual (the softmax or the logits) and the labels, never the logits
# argument itself, which is therefore not kept on the tape.
defvjp(_sce, _sce_logits_rule, _sce_labels_rule, reads=[("ans", 1), ("ans",)])


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
