"""The usual optimizers, each a `chain` of transformations ending with `scale_by_learning_rate`.

Hyperparameters and their defaults are `torch.optim`'s, and so is the arithmetic: running the same
steps from the same params gives the same params as PyTorch (tests/test_optim_torch.py checks it).
`learning_rate` is a number or a schedule `step -> rate` (see fnn.optim.schedules); the current
rate is `fnn.optim.current_learning_rate(opt_state)`. A weight decay of 0 leaves its
transformation out of the chain.
"""

from __future__ import annotations

from typing import Any, Callable

from fnn.optim.base import GradientTransformation, chain
from fnn.optim.transforms import (
    add_decayed_weights,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_rms,
    scale_by_stddev,
    trace,
)

__all__ = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "lion"]

Schedule = Callable[[int], float]


def _chain(*parts) -> GradientTransformation:
    return chain(*[p for p in parts if p is not None])


def sgd(
    learning_rate: float | Schedule,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """`torch.optim.SGD`: `g += wd p`; `buf = momentum buf + g`; `p -= lr * buf`
    (with `nesterov`, `p -= lr * (g + momentum buf)`).

    State: `(add_decayed_weights?, TraceState?, ScaleByLearningRateState)`."""
    if nesterov and not momentum:
        raise ValueError("sgd: nesterov momentum needs a nonzero momentum")
    return _chain(
        add_decayed_weights(weight_decay) if weight_decay else None,
        trace(momentum, nesterov=nesterov) if momentum else None,
        scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """`torch.optim.Adam`: weight decay is L2 (`g += wd p` before the moments); eps outside the
    square root; bias-corrected moments."""
    return _chain(
        add_decayed_weights(weight_decay) if weight_decay else None,
        scale_by_adam(b1, b2, eps),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    mask: Any = None,
) -> GradientTransformation:
    """`torch.optim.AdamW`: decoupled decay, `p -= lr * (adam_step + wd p)`, that is
    `p *= 1 - lr wd` then the Adam step. `mask` (tree of bools or `params -> tree`) picks the
    leaves that decay, e.g. to leave biases and norm scales out."""
    return _chain(
        scale_by_adam(b1, b2, eps),
        add_decayed_weights(weight_decay, mask) if weight_decay else None,
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: float | Schedule,
    decay: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
    initial_scale: float = 0.0,
) -> GradientTransformation:
    """`torch.optim.RMSprop` (`decay` is torch's `alpha`): `v = decay v + (1-decay) g^2`,
    `g / (sqrt(v) + eps)` (centered: `sqrt(v - mean(g)^2)`), then momentum, then `-lr`."""
    return _chain(
        add_decayed_weights(weight_decay) if weight_decay else None,
        scale_by_stddev(decay, eps, initial_scale) if centered else scale_by_rms(decay, eps, initial_scale),
        trace(momentum) if momentum else None,
        scale_by_learning_rate(learning_rate),
    )


def adagrad(
    learning_rate: float | Schedule,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """`torch.optim.Adagrad` (without lr_decay): `s += g^2`, `p -= lr g / (sqrt(s) + eps)`."""
    return _chain(
        add_decayed_weights(weight_decay) if weight_decay else None,
        scale_by_adagrad(initial_accumulator_value, eps),
        scale_by_learning_rate(learning_rate),
    )


def lion(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """Lion (Chen et al., 2023): `p -= lr * (sign(b1 m + (1-b1) g) + wd p)`, decay decoupled."""
    return _chain(
        scale_by_lion(b1, b2),
        add_decayed_weights(weight_decay, mask) if weight_decay else None,
        scale_by_learning_rate(learning_rate),
    )
