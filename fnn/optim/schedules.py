"""Learning-rate schedules: functions `step -> value`, with optax's names and semantics.

A schedule takes the step count (a Python int, or a NumPy integer scalar) and returns a Python
float, so it never upcasts float32 params. Pass one wherever a learning rate is asked for:
`fnn.optim.adam(fnn.optim.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 10_000))`.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

__all__ = [
    "Schedule",
    "constant_schedule",
    "exponential_decay",
    "piecewise_constant_schedule",
    "step_decay",
    "polynomial_schedule",
    "linear_schedule",
    "cosine_decay_schedule",
    "warmup_cosine_decay_schedule",
    "join_schedules",
    "one_cycle",
    "cosine_onecycle_schedule",
]

Schedule = Callable[[int], float]


def _step(count) -> float:
    """The step as a Python number (NumPy scalars and 0-d arrays included)."""
    item = getattr(count, "item", None)
    return item() if item is not None else count


def constant_schedule(value: float) -> Schedule:
    """`value` at every step."""
    value = float(value)
    return lambda count: value


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """`init_value * decay_rate ** ((step - transition_begin) / transition_steps)`, held at
    `init_value` before `transition_begin`; `staircase` floors the exponent; `end_value` bounds
    the value (a floor when decaying, a ceiling when growing)."""
    init_value, decay_rate = float(init_value), float(decay_rate)
    if transition_steps <= 0:
        return constant_schedule(init_value)

    def schedule(count):
        steps = max(_step(count) - transition_begin, 0)
        p = steps / transition_steps
        if staircase:
            p = math.floor(p)
        value = init_value * decay_rate**p
        if end_value is not None:
            value = max(value, end_value) if decay_rate < 1.0 else min(value, end_value)
        return float(value)

    return schedule


def piecewise_constant_schedule(init_value: float, boundaries_and_scales: Mapping[int, float] | None = None) -> Schedule:
    """`init_value` times the product of the scales of every boundary the step has reached
    (`step >= boundary`)."""
    init_value = float(init_value)
    items = sorted((int(b), float(s)) for b, s in (boundaries_and_scales or {}).items())

    def schedule(count):
        count = _step(count)
        value = init_value
        for boundary, s in items:
            if count >= boundary:
                value *= s
            else:
                break
        return value

    return schedule


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """`torch.optim.lr_scheduler.StepLR`: `init_value * gamma ** (step // step_size)`."""
    init_value, gamma = float(init_value), float(gamma)
    if step_size <= 0:
        raise ValueError(f"step_decay: step_size must be positive, got {step_size}")
    return lambda count: init_value * gamma ** (int(_step(count)) // step_size)


def polynomial_schedule(
    init_value: float, end_value: float, power: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """From `init_value` at `transition_begin` to `end_value` at `transition_begin +
    transition_steps` along `(1 - t) ** power`; constant outside that interval."""
    init_value, end_value, power = float(init_value), float(end_value), float(power)
    if transition_steps <= 0:
        return constant_schedule(init_value)

    def schedule(count):
        steps = min(max(_step(count) - transition_begin, 0), transition_steps)
        frac = 1.0 - steps / transition_steps
        return (init_value - end_value) * frac**power + end_value

    return schedule


def linear_schedule(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """A straight line from `init_value` to `end_value` over `transition_steps` (a linear warmup
    when `end_value > init_value`), then `end_value`."""
    return polynomial_schedule(init_value, end_value, 1.0, transition_steps, transition_begin)


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0) -> Schedule:
    """Half a cosine from `init_value` at step 0 to `alpha * init_value` at `decay_steps`, then
    held there."""
    init_value, alpha, exponent = float(init_value), float(alpha), float(exponent)
    if decay_steps <= 0:
        raise ValueError(f"cosine_decay_schedule: decay_steps must be positive, got {decay_steps}")

    def schedule(count):
        t = min(_step(count), decay_steps) / decay_steps
        cosine = (0.5 * (1.0 + math.cos(math.pi * t))) ** exponent
        return init_value * ((1.0 - alpha) * cosine + alpha)

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """`schedules[i]` from `boundaries[i-1]` on, each called with the steps since its boundary."""
    schedules, boundaries = list(schedules), [int(b) for b in boundaries]
    if len(schedules) != len(boundaries) + 1:
        raise ValueError("join_schedules: needs one more schedule than boundaries")

    def schedule(count):
        count = _step(count)
        start = 0
        for fn, boundary in zip(schedules, boundaries):
            if count < boundary:
                return fn(count - start)
            start = boundary
        return schedules[-1](count - start)

    return schedule


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warmup from `init_value` to `peak_value` over `warmup_steps`, then a cosine decay to
    `end_value` at step `decay_steps` (which counts the warmup, as in optax), then `end_value`."""
    init_value, peak_value, end_value = float(init_value), float(peak_value), float(end_value)
    exponent = float(exponent)
    cosine_steps = decay_steps - warmup_steps
    if cosine_steps <= 0:
        raise ValueError(
            f"warmup_cosine_decay_schedule: decay_steps ({decay_steps}) must exceed warmup_steps ({warmup_steps})"
        )

    def schedule(count):
        count = _step(count)
        if count < warmup_steps:
            return init_value + (peak_value - init_value) * (count / warmup_steps)
        t = min(count - warmup_steps, cosine_steps) / cosine_steps
        cosine = (0.5 * (1.0 + math.cos(math.pi * t))) ** exponent
        return end_value + (peak_value - end_value) * cosine

    return schedule


def _cosine_interpolate(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def one_cycle(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """The one-cycle policy with optax's `cosine_onecycle_schedule` semantics.

    From `peak_value / div_factor` at step 0, cosine up to `peak_value` at step
    `int(pct_start * transition_steps)`, cosine down to `peak_value / (div_factor *
    final_div_factor)` at `transition_steps`, held there after. (torch's OneCycleLR with
    `anneal_strategy='cos'` has the same shape but ends its phases one step earlier: at
    `pct_start * total_steps - 1` and `total_steps - 1`.)
    """
    peak_value = float(peak_value)
    start = peak_value / div_factor
    final = start / final_div_factor
    mid = int(pct_start * transition_steps)
    if not 0 < mid < transition_steps:
        raise ValueError("one_cycle: pct_start * transition_steps must fall strictly inside (0, transition_steps)")

    def schedule(count):
        count = _step(count)
        if count < 0:
            return start
        if count < mid:
            return _cosine_interpolate(start, peak_value, count / mid)
        if count < transition_steps:
            return _cosine_interpolate(peak_value, final, (count - mid) / (transition_steps - mid))
        return final

    return schedule


cosine_onecycle_schedule = one_cycle
