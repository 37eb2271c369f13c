"""Gradient transformations: the small pieces optimizers are chained from.

Each is a function of its hyperparameters returning a `GradientTransformation`; each state is a
small NamedTuple. Where PyTorch has a matching optimizer the arithmetic follows `torch.optim`
(momentum buffers without dampening, Adam's eps outside the square root, RMSprop's and Adagrad's
`g / (sqrt(v) + eps)`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np

from fnn import tree
from fnn.optim._foreach import axpby_tree, scale_tree
from fnn.optim.base import (
    EmptyState,
    GradientTransformation,
    as_float,
    as_schedule,
    mask_leaves,
    xp_of,
    zeros_like_tree,
)

__all__ = [
    "scale",
    "scale_by_learning_rate",
    "trace",
    "scale_by_adam",
    "scale_by_rms",
    "scale_by_stddev",
    "scale_by_adagrad",
    "scale_by_lion",
    "add_decayed_weights",
    "clip",
    "clip_by_global_norm",
    "global_norm",
    "masked",
    "multi_steps",
    "ema",
    "ScaleByLearningRateState",
    "TraceState",
    "ScaleByAdamState",
    "ScaleByRmsState",
    "ScaleByStddevState",
    "ScaleByAdagradState",
    "ScaleByLionState",
    "MaskedState",
    "MultiStepsState",
    "EmaState",
]


def _need_params(name: str, params: Any) -> None:
    if params is None:
        raise ValueError(f"{name} needs the params: call update(grads, state, params)")


# --------------------------------------------------------------------------------------------
# Scaling


def scale(step_size: float) -> GradientTransformation:
    """Multiply the updates by a fixed `step_size`."""
    step_size = as_float(step_size, "scale: step_size")

    def init(params):
        return EmptyState()

    def update(updates, state, params=None):
        return scale_tree(updates, step_size, lambda u: u * step_size), state

    return GradientTransformation(init, update)


class ScaleByLearningRateState(NamedTuple):
    count: int  # updates applied so far
    learning_rate: float  # the rate the most recent update applied (before any: the first one's)


def scale_by_learning_rate(
    learning_rate: float | Callable[[int], float], *, flip_sign: bool = True
) -> GradientTransformation:
    """Multiply the updates by `-learning_rate` (by `+learning_rate` with `flip_sign=False`).

    `learning_rate` is a number or a schedule `step -> rate`; the state keeps the step `count` and
    the rate last applied, so `state.learning_rate` (or `fnn.optim.current_learning_rate`) reads it.
    """
    schedule = as_schedule(learning_rate, "scale_by_learning_rate: learning_rate")
    sign = -1.0 if flip_sign else 1.0

    def init(params):
        return ScaleByLearningRateState(count=0, learning_rate=schedule(0))

    if callable(learning_rate):
        def update(updates, state, params=None):
            count = int(state.count)
            lr = schedule(count)
            factor = sign * lr
            updates = scale_tree(updates, factor, lambda u: u * factor)
            return updates, ScaleByLearningRateState(count + 1, lr)
    else:  # a fixed rate: the factor and its per-leaf product made once
        lr = schedule(0)
        factor = sign * lr

        def scaled(u):
            return u * factor

        def update(updates, state, params=None):
            updates = scale_tree(updates, factor, scaled)
            return updates, ScaleByLearningRateState(int(state.count) + 1, lr)

    return GradientTransformation(init, update)


# --------------------------------------------------------------------------------------------
# Momentum and adaptive scalings


class TraceState(NamedTuple):
    trace: Any


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum as `torch.optim.SGD` (no dampening): `buf = decay * buf + g`; the update is `buf`,
    or `g + decay * buf` with `nesterov=True`."""
    decay = as_float(decay, "trace: decay")

    def init(params):
        return TraceState(trace=zeros_like_tree(params))

    def step(g, buf):
        new = buf * decay
        new += g
        if nesterov:
            out = new * decay
            out += g
            return out, new
        return new, new

    def update(updates, state, params=None):
        flat, td = tree.flatten(updates)
        bufs = td.flatten_up_to(state.trace)
        new = axpby_tree(decay, bufs, 1.0, flat)  # CuPy: a few launches for the whole tree
        if new is not None:
            outs = axpby_tree(decay, new, 1.0, flat) if nesterov else new
            return td.unflatten(outs), TraceState(trace=td.unflatten(new))
        outs, new = zip(*[step(g, b) for g, b in zip(flat, bufs)]) if flat else ((), ())
        return td.unflatten(outs), TraceState(trace=td.unflatten(new))

    return GradientTransformation(init, update)


def _ema_into(old, new_value, decay: float):
    """A fresh `decay * old + (1 - decay) * new_value`."""
    out = old * decay
    tmp = new_value * (1.0 - decay)
    out += tmp
    return out


class ScaleByAdamState(NamedTuple):
    count: int
    mu: Any
    nu: Any


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0
) -> GradientTransformation:
    """Adam's scaling with bias correction: `m_hat / (sqrt(v_hat + eps_root) + eps)`, eps outside
    the square root as in `torch.optim.Adam`."""
    b1 = as_float(b1, "scale_by_adam: b1")
    b2 = as_float(b2, "scale_by_adam: b2")
    eps = as_float(eps, "scale_by_adam: eps")
    eps_root = as_float(eps_root, "scale_by_adam: eps_root")

    def init(params):
        return ScaleByAdamState(count=0, mu=zeros_like_tree(params), nu=zeros_like_tree(params))

    def update(updates, state, params=None):
        count = int(state.count) + 1
        c1 = 1.0 / (1.0 - b1**count)
        c2 = 1.0 / (1.0 - b2**count)
        flat, td = tree.flatten(updates)
        mus = td.flatten_up_to(state.mu)
        nus = td.flatten_up_to(state.nu)
        outs, new_mu, new_nu = [], [], []
        for g, m, v in zip(flat, mus, nus):
            xp = xp_of(g)
            m = _ema_into(m, g, b1)
            gg = g * g
            gg *= 1.0 - b2
            v2 = v * b2
            v2 += gg
            denom = gg  # reuse the temporary: sqrt(v * c2 + eps_root) + eps
            xp.multiply(v2, c2, out=denom)
            if eps_root:
                denom += eps_root
            xp.sqrt(denom, out=denom)
            denom += eps
            out = m * c1
            out /= denom
            outs.append(out)
            new_mu.append(m)
            new_nu.append(v2)
        return td.unflatten(outs), ScaleByAdamState(
            count=count, mu=td.unflatten(new_mu), nu=td.unflatten(new_nu)
        )

    return GradientTransformation(init, update)


class ScaleByRmsState(NamedTuple):
    nu: Any


def scale_by_rms(decay: float = 0.99, eps: float = 1e-8, initial_scale: float = 0.0) -> GradientTransformation:
    """RMSprop's scaling as `torch.optim.RMSprop`: `v = decay v + (1-decay) g^2`, `g / (sqrt(v) + eps)`."""
    decay = as_float(decay, "scale_by_rms: decay")
    eps = as_float(eps, "scale_by_rms: eps")
    initial_scale = as_float(initial_scale, "scale_by_rms: initial_scale")

    def init(params):
        return ScaleByRmsState(nu=tree.map(lambda p: np.full_like(p, initial_scale), params))

    def update(updates, state, params=None):
        flat, td = tree.flatten(updates)
        nus = td.flatten_up_to(state.nu)
        outs, new_nu = [], []
        for g, v in zip(flat, nus):
            xp = xp_of(g)
            gg = g * g
            gg *= 1.0 - decay
            v2 = v * decay
            v2 += gg
            denom = gg
            xp.sqrt(v2, out=denom)
            denom += eps
            xp.divide(g, denom, out=denom)
            outs.append(denom)
            new_nu.append(v2)
        return td.unflatten(outs), ScaleByRmsState(nu=td.unflatten(new_nu))

    return GradientTransformation(init, update)


class ScaleByStddevState(NamedTuple):
    mu: Any
    nu: Any


def scale_by_stddev(decay: float = 0.99, eps: float = 1e-8, initial_scale: float = 0.0) -> GradientTransformation:
    """Centered RMSprop's scaling as `torch.optim.RMSprop(centered=True)`:
    `g / (sqrt(v - m^2) + eps)` with `m`, `v` running means of `g` and `g^2`."""
    decay = as_float(decay, "scale_by_stddev: decay")
    eps = as_float(eps, "scale_by_stddev: eps")
    initial_scale = as_float(initial_scale, "scale_by_stddev: initial_scale")

    def init(params):
        return ScaleByStddevState(
            mu=zeros_like_tree(params), nu=tree.map(lambda p: np.full_like(p, initial_scale), params)
        )

    def update(updates, state, params=None):
        flat, td = tree.flatten(updates)
        mus = td.flatten_up_to(state.mu)
        nus = td.flatten_up_to(state.nu)
        outs, new_mu, new_nu = [], [], []
        for g, m, v in zip(flat, mus, nus):
            xp = xp_of(g)
            m2 = _ema_into(m, g, decay)
            gg = g * g
            gg *= 1.0 - decay
            v2 = v * decay
            v2 += gg
            denom = gg
            xp.multiply(m2, m2, out=denom)
            xp.subtract(v2, denom, out=denom)
            xp.sqrt(denom, out=denom)
            denom += eps
            xp.divide(g, denom, out=denom)
            outs.append(denom)
            new_mu.append(m2)
            new_nu.append(v2)
        return td.unflatten(outs), ScaleByStddevState(mu=td.unflatten(new_mu), nu=td.unflatten(new_nu))

    return GradientTransformation(init, update)


class ScaleByAdagradState(NamedTuple):
    sum_of_squares: Any


def scale_by_adagrad(initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> GradientTransformation:
    """Adagrad's scaling as `torch.optim.Adagrad`: `s += g^2`, `g / (sqrt(s) + eps)`."""
    initial = as_float(initial_accumulator_value, "scale_by_adagrad: initial_accumulator_value")
    eps = as_float(eps, "scale_by_adagrad: eps")

    def init(params):
        return ScaleByAdagradState(sum_of_squares=tree.map(lambda p: np.full_like(p, initial), params))

    def update(updates, state, params=None):
        flat, td = tree.flatten(updates)
        sums = td.flatten_up_to(state.sum_of_squares)
        outs, new_sums = [], []
        for g, s in zip(flat, sums):
            xp = xp_of(g)
            s2 = g * g
            s2 += s
            denom = xp.sqrt(s2)
            denom += eps
            xp.divide(g, denom, out=denom)
            outs.append(denom)
            new_sums.append(s2)
        return td.unflatten(outs), ScaleByAdagradState(sum_of_squares=td.unflatten(new_sums))

    return GradientTransformation(init, update)


class ScaleByLionState(NamedTuple):
    count: int
    mu: Any


def scale_by_lion(b1: float = 0.9, b2: float = 0.99) -> GradientTransformation:
    """Lion: the update is `sign(b1 m + (1-b1) g)`; then `m = b2 m + (1-b2) g`."""
    b1 = as_float(b1, "scale_by_lion: b1")
    b2 = as_float(b2, "scale_by_lion: b2")

    def init(params):
        return ScaleByLionState(count=0, mu=zeros_like_tree(params))

    def update(updates, state, params=None):
        flat, td = tree.flatten(updates)
        mus = td.flatten_up_to(state.mu)
        outs, new_mu = [], []
        for g, m in zip(flat, mus):
            xp = xp_of(g)
            c = _ema_into(m, g, b1)
            xp.sign(c, out=c)
            m2 = _ema_into(m, g, b2)
            outs.append(c)
            new_mu.append(m2)
        return td.unflatten(outs), ScaleByLionState(count=int(state.count) + 1, mu=td.unflatten(new_mu))

    return GradientTransformation(init, update)


# --------------------------------------------------------------------------------------------
# Weight decay, clipping, masking


def add_decayed_weights(weight_decay: float = 0.0, mask: Any = None) -> GradientTransformation:
    """Add `weight_decay * params` to the updates.

    `mask` (a tree of bools like params, a prefix of it, or a function `params -> such a tree`)
    picks the leaves that decay; leave biases and norm scales out by setting theirs to False.
    """
    weight_decay = as_float(weight_decay, "add_decayed_weights: weight_decay")

    def init(params):
        return EmptyState()

    def add(u, p):
        out = p * weight_decay
        out += u
        return out

    def update(updates, state, params=None):
        if weight_decay == 0.0:
            return updates, state
        _need_params("add_decayed_weights", params)
        return tree.map(add, updates, params), state

    inner = GradientTransformation(init, update)
    return inner if mask is None else masked(inner, mask)


def clip(max_delta: float) -> GradientTransformation:
    """Clip each element of the updates to `[-max_delta, max_delta]`."""
    max_delta = as_float(max_delta, "clip: max_delta")

    def init(params):
        return EmptyState()

    def update(updates, state, params=None):
        return tree.map(lambda u: xp_of(u).clip(u, -max_delta, max_delta), updates), state

    return GradientTransformation(init, update)


def global_norm(updates: Any) -> float:
    """The L2 norm of all leaves together, as a Python float (accumulated in float64)."""
    return float(_squared_norm(updates)) ** 0.5


def _squared_norm(updates: Any) -> Any:
    """The sum of squares of all leaves in float64: a Python float for host leaves, a 0-d device
    array as soon as one leaf is a CuPy array (read back only by whoever needs a number)."""
    total = 0.0
    device_total = None
    for u in tree.leaves(updates):
        xp = xp_of(u)
        sq = xp.vdot(u, u) if getattr(u, "ndim", 0) else u * u
        if xp is np:
            total += float(sq)
        else:
            sq = sq.astype("float64")
            device_total = sq if device_total is None else device_total + sq
    return total if device_total is None else device_total + total


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Scale all updates by `max_norm / global_norm` when the global norm exceeds `max_norm`,
    keeping their direction. On the GPU the norm and the factor stay on the device."""
    max_norm = as_float(max_norm, "clip_by_global_norm: max_norm")

    def init(params):
        return EmptyState()

    def update(updates, state, params=None):
        squared = _squared_norm(updates)
        if isinstance(squared, float):
            norm = math.sqrt(squared)
            if not norm > max_norm:  # also passes NaN norms through, as optax does
                return updates, state
            factor = max_norm / norm
            return tree.map(lambda u: u * factor, updates), state
        xp = xp_of(squared)
        norm = xp.sqrt(squared)
        factor = xp.where(norm > max_norm, max_norm / norm, 1.0)  # NaN norms: factor 1, as above
        return tree.map(lambda u: u * factor.astype(getattr(u, "dtype", factor.dtype)), updates), state

    return GradientTransformation(init, update)


class MaskedState(NamedTuple):
    inner_state: Any


def masked(inner: GradientTransformation, mask: Any) -> GradientTransformation:
    """Apply `inner` only to the leaves where `mask` is True; the others pass through unchanged.

    `mask` is a tree of bools with params' structure (or a prefix of it), or a function
    `params -> such a tree`. `inner` sees, and keeps state for, the masked-in leaves only: the
    masked-out positions hold None, an empty node.
    """

    def select(t, keep):
        flat, td = tree.flatten(t)
        return td.unflatten([x if k else None for x, k in zip(flat, keep)])

    def init(params):
        keep = mask_leaves(mask, params)
        return MaskedState(inner_state=inner.init(select(params, keep)))

    def update(updates, state, params=None):
        keep = mask_leaves(mask, updates if params is None else params)
        flat, td = tree.flatten(updates)
        if len(keep) != len(flat):
            raise ValueError(f"masked: the mask covers {len(keep)} leaves but the updates have {len(flat)}")
        sub_params = None if params is None else select(params, keep)
        inner_updates, inner_state = inner.update(select(updates, keep), state.inner_state, sub_params)
        new_inner = iter(tree.leaves(inner_updates))
        merged = [next(new_inner) if k else u for u, k in zip(flat, keep)]
        return td.unflatten(merged), MaskedState(inner_state=inner_state)

    return GradientTransformation(init, update)


# --------------------------------------------------------------------------------------------
# Accumulation and averaging


class MultiStepsState(NamedTuple):
    mini_step: int  # gradients accumulated since the last inner update (0 .. every_k - 1)
    gradient_step: int  # inner updates applied so far
    inner_state: Any
    acc_grads: Any  # the sum of the gradients since the last inner update


def multi_steps(inner: GradientTransformation, every_k: int) -> GradientTransformation:
    """Gradient accumulation: average `every_k` gradients and apply `inner` to the mean once every
    `every_k` calls; the calls in between return zero updates and leave `inner`'s state alone."""
    every_k = int(every_k)
    if every_k < 1:
        raise ValueError(f"multi_steps: every_k must be at least 1, got {every_k}")

    def init(params):
        return MultiStepsState(
            mini_step=0, gradient_step=0, inner_state=inner.init(params), acc_grads=zeros_like_tree(params)
        )

    def add(acc, g):
        out = g + acc
        return out

    def update(updates, state, params=None):
        mini = int(state.mini_step) + 1
        acc = tree.map(add, state.acc_grads, updates)
        if mini < every_k:
            zeros = tree.map(np.zeros_like, updates)
            return zeros, state._replace(mini_step=mini, acc_grads=acc)

        def mean(a):
            a /= every_k  # `a` was just allocated by `add`
            return a

        mean_grads = tree.map(mean, acc)
        new_updates, inner_state = inner.update(mean_grads, state.inner_state, params)
        return new_updates, MultiStepsState(
            mini_step=0,
            gradient_step=int(state.gradient_step) + 1,
            inner_state=inner_state,
            acc_grads=tree.map(np.zeros_like, acc),
        )

    return GradientTransformation(init, update)


class EmaState(NamedTuple):
    count: int
    ema: Any


def ema(decay: float, debias: bool = True) -> GradientTransformation:
    """An exponential moving average of the updates: `e = decay e + (1-decay) u`; the output is
    `e`, divided by `1 - decay^t` with `debias=True`."""
    decay = as_float(decay, "ema: decay")

    def init(params):
        return EmaState(count=0, ema=zeros_like_tree(params))

    def update(updates, state, params=None):
        count = int(state.count) + 1
        flat, td = tree.flatten(updates)
        olds = td.flatten_up_to(state.ema)
        new = [_ema_into(e, u, decay) for u, e in zip(flat, olds)]
        if debias:
            c = 1.0 / (1.0 - decay**count)
            outs = [e * c for e in new]
        else:
            outs = new
        return td.unflatten(outs), EmaState(count=count, ema=td.unflatten(new))

    return GradientTransformation(init, update)
