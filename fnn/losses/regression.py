"""Elementwise losses: squared and absolute error, Huber, binary cross-entropy on logits, and the
cosine distance. `reduction='mean'` averages over every element (as PyTorch does)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import fnn.numpy as fnp
from fnn.autodiff.tracer import any_traced, defvjp, primitive
from fnn.backend import get_array_module
from fnn.losses._common import (as_array, check_float, check_reduction, check_same_shape,
                                class_axis, reduce, shape_of)

__all__ = ["mse", "mae", "huber", "binary_cross_entropy_with_logits", "cosine_similarity",
           "cosine_distance"]


def _prepare(pred, target, loss, reduction):
    check_reduction(reduction, loss)
    check_float(pred, loss, "predictions")
    target = as_array(target, pred)
    check_same_shape(pred, target, loss, "predictions", "targets")
    return target


def mse(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Squared error (pred - target)**2, reduced (PyTorch's `mse_loss`)."""
    target = _prepare(pred, target, "mse", reduction)
    diff = pred - target
    return reduce(diff * diff, reduction)


def mae(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Absolute error |pred - target|, reduced (PyTorch's `l1_loss`); subgradient 0 at 0."""
    target = _prepare(pred, target, "mae", reduction)
    return reduce(fnp.abs(pred - target), reduction)


def huber(pred: Any, target: Any, delta: float = 1.0, reduction: str = "mean") -> Any:
    """Huber loss (PyTorch's `huber_loss`): 0.5 d**2 where |d| <= delta, else
    delta * (|d| - 0.5 delta), with d = pred - target. Written as 0.5 m**2 + delta * (|d| - m),
    m = min(|d|, delta), which is smooth through the joint."""
    delta = float(delta)
    if not delta > 0.0:
        raise ValueError(f"huber: delta must be positive, got {delta!r}")
    target = _prepare(pred, target, "huber", reduction)
    a = fnp.abs(pred - target)
    m = fnp.minimum(a, delta)
    return reduce(0.5 * (m * m) + delta * (a - m), reduction)


# --- binary cross-entropy on logits: one primitive ------------------------------------------------

def _bce_elementwise(x, t, pos_weight):
    """max(x, 0) - x t + log1p(exp(-|x|)), or with a positive-class weight w:
    w t softplus(-x) + (1 - t) softplus(x)."""
    xp = get_array_module(x)
    tail = xp.log1p(xp.exp(-xp.abs(x)))
    if pos_weight is None:
        return xp.maximum(x, 0.0) - x * t + tail
    softplus_pos = xp.maximum(x, 0.0) + tail  # softplus(x) = -log(1 - sigmoid(x))
    softplus_neg = softplus_pos - x  # softplus(-x) = -log(sigmoid(x))
    return pos_weight * t * softplus_neg + (1.0 - t) * softplus_pos


def _bce_forward(x, t, pos_weight, reduction="mean"):
    per_element = _bce_elementwise(x, t, pos_weight)
    if reduction == "none":
        return per_element
    total = per_element.sum()
    return total / per_element.size if reduction == "mean" and per_element.size else total


# One primitive, the reduction included: a training step records one node for the loss.
_bce = primitive(_bce_forward, name="fnn.losses.binary_cross_entropy_with_logits")


def _sigmoid(x):
    return 0.5 * (fnp.tanh(0.5 * x) + 1.0)  # never overflows


def _softplus(x):
    return fnp.logaddexp(0.0, x)


def _per_element(g, x, reduction):
    """The cotangent of each element's loss, from the cotangent of the reduced loss."""
    if reduction == "none":
        return g
    size = math.prod(shape_of(x))
    return g * (1.0 / size) if reduction == "mean" and size else g


def _bce_x_rule(g, ans, x, t, pos_weight, reduction="mean"):
    g = _per_element(g, x, reduction)
    if pos_weight is None:
        if not any_traced(g, x, t):
            xp = get_array_module(x)
            return g * (0.5 * (xp.tanh(0.5 * x) + 1.0) - t)
        return g * (_sigmoid(x) - t)
    return g * ((1.0 - t) * _sigmoid(x) - pos_weight * t * _sigmoid(-x))


def _bce_t_rule(g, ans, x, t, pos_weight, reduction="mean"):
    g = _per_element(g, x, reduction)
    if pos_weight is None:
        return -g * x
    return g * (pos_weight * _softplus(-x) - _softplus(x))


def _bce_w_rule(g, ans, x, t, pos_weight, reduction="mean"):
    return _per_element(g, x, reduction) * (t * _softplus(-x))


defvjp(_bce, _bce_x_rule, _bce_t_rule, _bce_w_rule, reads=[(0, 1, 2), (0, 2), (0, 1)])


def binary_cross_entropy_with_logits(logits: Any, targets: Any, pos_weight: Any = None,
                                     reduction: str = "mean") -> Any:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed from the logits
    without overflow; its gradient is sigmoid(x) - t (finite at any logit). `pos_weight` weighs
    the positive term and broadcasts against the logits (one weight per class along the last axis),
    as in PyTorch's `binary_cross_entropy_with_logits`."""
    loss = "binary_cross_entropy_with_logits"
    check_reduction(reduction, loss)
    check_float(logits, loss, "logits")
    targets = as_array(targets, logits)
    check_float(targets, loss, "targets")
    check_same_shape(logits, targets, loss, "logits", "targets", allow_scalar_b=False)
    if pos_weight is not None:
        pos_weight = as_array(pos_weight, logits)
        try:
            np.broadcast_shapes(shape_of(pos_weight), shape_of(logits))
        except ValueError:
            raise ValueError(f"{loss}: pos_weight of shape {shape_of(pos_weight)} does not "
                             f"broadcast against logits of shape {shape_of(logits)}") from None
    return _bce(logits, targets, pos_weight, reduction)


# --- cosine ---------------------------------------------------------------------------------------

def _norm(x, axis, eps):
    """max(||x||, eps): its gradient is 0, not NaN, at the zero vector."""
    return fnp.sqrt(fnp.maximum(fnp.sum(x * x, axis=axis), eps * eps))


def cosine_similarity(a: Any, b: Any, axis: int = -1, eps: float = 1e-8) -> Any:
    """<a, b> / (max(||a||, eps) * max(||b||, eps)) along `axis` (no reduction)."""
    loss = "cosine_similarity"
    check_float(a, loss, "a")
    b = as_array(b, a)
    check_same_shape(a, b, loss, "a", "b", allow_scalar_b=False)
    ax = class_axis(len(shape_of(a)), axis, loss, "a")
    eps = float(eps)
    return fnp.sum(a * b, axis=ax) / (_norm(a, ax, eps) * _norm(b, ax, eps))


def cosine_distance(pred: Any, target: Any, reduction: str = "mean", axis: int = -1,
                    eps: float = 1e-8) -> Any:
    """1 - cosine_similarity(pred, target) per example (optax's `cosine_distance`), reduced."""
    check_reduction(reduction, "cosine_distance")
    return reduce(1.0 - cosine_similarity(pred, target, axis=axis, eps=eps), reduction)
