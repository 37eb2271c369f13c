"""Optimizers as `(init, update)` pairs of pure functions, in optax's shape.

    opt = fnn.optim.adamw(fnn.optim.warmup_cosine_decay(0.0, 1e-3, 100, 10_000))
    opt_state = opt.init(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = fnn.optim.apply_updates(params, updates)
    fnn.optim.current_learning_rate(opt_state), fnn.optim.step_count(opt_state)

`base`: the interface and `chain`; `transforms`: the pieces; `optimizers`: sgd, adam, adamw,
rmsprop, adagrad, lion (torch.optim's arithmetic); `schedules`: learning-rate schedules.
"""

from fnn.optim import schedules
from fnn.optim.base import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    current_learning_rate,
    identity,
    step_count,
)
from fnn.optim.optimizers import adagrad, adam, adamw, lion, rmsprop, sgd
from fnn.optim.schedules import (
    constant_schedule,
    cosine_decay_schedule,
    cosine_onecycle_schedule,
    exponential_decay,
    join_schedules,
    linear_schedule,
    one_cycle,
    piecewise_constant_schedule,
    polynomial_schedule,
    step_decay,
    warmup_cosine_decay_schedule,
)
from fnn.optim.transforms import (
    EmaState,
    MaskedState,
    MultiStepsState,
    ScaleByAdagradState,
    ScaleByAdamState,
    ScaleByLearningRateState,
    ScaleByLionState,
    ScaleByRmsState,
    ScaleByStddevState,
    TraceState,
    add_decayed_weights,
    clip,
    clip_by_global_norm,
    ema,
    global_norm,
    masked,
    multi_steps,
    scale,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_rms,
    scale_by_stddev,
    trace,
)

# Short names optax users reach for.
constant = constant_schedule
cosine_decay = cosine_decay_schedule
warmup_cosine_decay = warmup_cosine_decay_schedule
piecewise_constant = piecewise_constant_schedule
linear_warmup = linear_schedule
polynomial = polynomial_schedule

__all__ = [
    "schedules",
    # base
    "GradientTransformation", "EmptyState", "apply_updates", "chain", "identity",
    "current_learning_rate", "step_count",
    # transforms
    "scale", "scale_by_learning_rate", "trace", "scale_by_adam", "scale_by_rms", "scale_by_stddev",
    "scale_by_adagrad", "scale_by_lion", "add_decayed_weights", "clip", "clip_by_global_norm",
    "global_norm", "masked", "multi_steps", "ema",
    "ScaleByLearningRateState", "TraceState", "ScaleByAdamState", "ScaleByRmsState",
    "ScaleByStddevState", "ScaleByAdagradState", "ScaleByLionState", "MaskedState",
    "MultiStepsState", "EmaState",
    # optimizers
    "sgd", "adam", "adamw", "rmsprop", "adagrad", "lion",
    # schedules
    "constant_schedule", "exponential_decay", "piecewise_constant_schedule", "step_decay",
    "polynomial_schedule", "linear_schedule", "cosine_decay_schedule",
    "warmup_cosine_decay_schedule", "join_schedules", "one_cycle", "cosine_onecycle_schedule",
    "constant", "cosine_decay", "warmup_cosine_decay", "piecewise_constant", "linear_warmup",
    "polynomial",
]
