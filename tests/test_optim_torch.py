"""fnn.optim against torch.optim: the same hyperparameters and the same loss give the same params.

PyTorch is optional (not a dependency of fnn): without it these tests are skipped. The loss is
`sum(c * (p - target)^2)` with a different `c` per step, so every step's gradient depends on the
params each library has reached.
"""

import numpy as np
import pytest

import fnn.optim as optim
from fnn import tree

torch = pytest.importorskip("torch")

N_STEPS = 6


def _problem():
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    target = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    coefs = rng.uniform(0.5, 2.0, N_STEPS)
    return params, target, coefs


def _grad(p, target, c):
    return 2.0 * c * (p - target)


def run_fnn(opt, params, target, coefs):
    state = opt.init(params)
    for c in coefs:
        grads = tree.map(lambda p, t: _grad(p, t, c), params, target)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
    return params


def run_torch(make_opt, params, target, coefs, make_sched=None):
    tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    keys = sorted(tparams)
    opt = make_opt([tparams[k] for k in keys])
    sched = make_sched(opt) if make_sched else None
    for c in coefs:
        opt.zero_grad()
        loss = sum((c * (tparams[k] - torch.tensor(target[k])) ** 2).sum() for k in keys)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    return {k: v.detach().numpy() for k, v in tparams.items()}


T = torch.optim
CASES = {
    "sgd": (optim.sgd(0.05), lambda ps: T.SGD(ps, lr=0.05)),
    "sgd_momentum": (optim.sgd(0.05, momentum=0.9), lambda ps: T.SGD(ps, lr=0.05, momentum=0.9)),
    "sgd_nesterov": (
        optim.sgd(0.05, momentum=0.9, nesterov=True),
        lambda ps: T.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "sgd_weight_decay": (
        optim.sgd(0.05, momentum=0.5, weight_decay=0.1),
        lambda ps: T.SGD(ps, lr=0.05, momentum=0.5, weight_decay=0.1),
    ),
    "adam": (optim.adam(0.1), lambda ps: T.Adam(ps, lr=0.1)),
    "adam_hyper": (
        optim.adam(0.05, b1=0.8, b2=0.95, eps=1e-3, weight_decay=0.1),
        lambda ps: T.Adam(ps, lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1),
    ),
    "adamw": (optim.adamw(0.1), lambda ps: T.AdamW(ps, lr=0.1)),
    "adamw_hyper": (
        optim.adamw(0.05, b1=0.8, b2=0.95, eps=1e-3, weight_decay=0.3),
        lambda ps: T.AdamW(ps, lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.3),
    ),
    "rmsprop": (optim.rmsprop(0.01), lambda ps: T.RMSprop(ps, lr=0.01)),
    "rmsprop_momentum": (
        optim.rmsprop(0.01, decay=0.9, eps=1e-6, momentum=0.8),
        lambda ps: T.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-6, momentum=0.8),
    ),
    "rmsprop_centered": (
        optim.rmsprop(0.01, decay=0.9, momentum=0.5, centered=True, weight_decay=0.1),
        lambda ps: T.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1),
    ),
    "adagrad": (optim.adagrad(0.1), lambda ps: T.Adagrad(ps, lr=0.1)),
    "adagrad_hyper": (
        optim.adagrad(0.1, initial_accumulator_value=0.5, eps=1e-6, weight_decay=0.1),
        lambda ps: T.Adagrad(ps, lr=0.1, initial_accumulator_value=0.5, eps=1e-6, weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_params_as_torch(name):
    opt, make_torch = CASES[name]
    params, target, coefs = _problem()
    ours = run_fnn(opt, params, target, coefs)
    theirs = run_torch(make_torch, params, target, coefs)
    moved = max(float(np.abs(ours[k] - params[k]).max()) for k in params)
    assert moved > 1e-3  # the optimizer did something
    for k in params:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-6, atol=1e-9, err_msg=f"{name} {k}")


SCHEDULE_CASES = {
    "step_lr": (
        optim.step_decay(0.1, step_size=2, gamma=0.5),
        lambda o: T.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
    ),
    "cosine_annealing": (
        # (torch's CosineAnnealingLR is periodic past T_max; ours holds, so compare up to T_max)
        optim.cosine_decay_schedule(0.1, decay_steps=N_STEPS, alpha=0.1),
        lambda o: T.lr_scheduler.CosineAnnealingLR(o, T_max=N_STEPS, eta_min=0.01),
    ),
    "exponential_lr": (
        optim.exponential_decay(0.1, transition_steps=1, decay_rate=0.7),
        lambda o: T.lr_scheduler.ExponentialLR(o, gamma=0.7),
    ),
}


@pytest.mark.parametrize("name", sorted(SCHEDULE_CASES))
def test_schedules_match_torch_lr_schedulers(name):
    sched, make_sched = SCHEDULE_CASES[name]
    params, target, coefs = _problem()
    ours = run_fnn(optim.sgd(sched, momentum=0.9), params, target, coefs)
    theirs = run_torch(lambda ps: T.SGD(ps, lr=0.1, momentum=0.9), params, target, coefs, make_sched)
    for k in params:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-6, atol=1e-9, err_msg=f"{name} {k}")
