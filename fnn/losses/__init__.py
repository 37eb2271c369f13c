"""fnn.losses: loss functions and penalties, differentiable with fnn.grad.

Each loss takes `reduction='mean' | 'sum' | 'none'` where a reduction makes sense, keeps the dtype
of its inputs (float32 stays float32), works on NumPy and CuPy arrays, and names itself and the
shapes involved when given inconsistent inputs.

    softmax_cross_entropy(logits, labels, label_smoothing=0.0, reduction='mean', axis=-1)
    nll(log_probs, labels, reduction='mean', axis=-1)
    multiclass_hinge(scores, labels, margin=1.0, reduction='mean', axis=-1)
    kl_divergence(log_predictions, targets, reduction='mean', axis=-1)
    mse(pred, target, reduction='mean')       mae(pred, target, reduction='mean')
    huber(pred, target, delta=1.0, reduction='mean')
    binary_cross_entropy_with_logits(logits, targets, pos_weight=None, reduction='mean')
    cosine_similarity(a, b, axis=-1, eps=1e-8)
    cosine_distance(pred, target, reduction='mean', axis=-1, eps=1e-8)
    l2(params)                                 (sum of squares; no 0.5 factor)
"""

from fnn.losses.classification import kl_divergence, multiclass_hinge, nll, softmax_cross_entropy
from fnn.losses.regression import (binary_cross_entropy_with_logits, cosine_distance,
                                   cosine_similarity, huber, mae, mse)
from fnn.losses.regularizers import l2

__all__ = [
    "softmax_cross_entropy", "nll", "multiclass_hinge", "kl_divergence",
    "mse", "mae", "huber", "binary_cross_entropy_with_logits",
    "cosine_similarity", "cosine_distance", "l2",
]
