"""fnn.optim.schedules: each schedule at its boundaries (start, end of warmup, end of decay, beyond),
Python floats out for Python ints in, and monotonicity where the schedule promises it."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn.optim as optim
from fnn.optim import schedules

approx = pytest.approx


def test_constant():
    s = optim.constant_schedule(0.3)
    assert [s(t) for t in (0, 1, 10**6)] == [0.3, 0.3, 0.3]
    assert optim.constant is optim.constant_schedule


def test_exponential_decay():
    s = optim.exponential_decay(1.0, transition_steps=10, decay_rate=0.5)
    assert s(0) == 1.0 and s(10) == approx(0.5) and s(20) == approx(0.25) and s(5) == approx(0.5**0.5)
    s = optim.exponential_decay(1.0, 10, 0.5, transition_begin=5, staircase=True)
    assert s(0) == 1.0 and s(5) == 1.0 and s(14) == 1.0 and s(15) == approx(0.5) and s(24) == approx(0.5)
    s = optim.exponential_decay(1.0, 10, 0.5, end_value=0.3)
    assert s(10) == approx(0.5) and s(20) == approx(0.3) and s(1000) == approx(0.3)
    s = optim.exponential_decay(1.0, 10, 2.0, end_value=3.0)  # growth is capped
    assert s(10) == approx(2.0) and s(100) == approx(3.0)
    assert optim.exponential_decay(0.7, 0, 0.5)(100) == 0.7


def test_piecewise_constant():
    s = optim.piecewise_constant_schedule(1.0, {10: 0.1, 20: 0.5})
    assert s(0) == 1.0 and s(9) == 1.0
    assert s(10) == approx(0.1) and s(19) == approx(0.1)
    assert s(20) == approx(0.05) and s(1000) == approx(0.05)
    assert optim.piecewise_constant is optim.piecewise_constant_schedule


def test_step_decay_is_torch_steplr():
    s = optim.step_decay(1.0, step_size=3, gamma=0.1)
    assert [s(t) for t in range(7)] == approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01])


def test_linear_schedule_warmup():
    s = optim.linear_schedule(0.0, 1.0, transition_steps=10)
    assert s(0) == 0.0 and s(5) == approx(0.5) and s(10) == 1.0 and s(100) == 1.0
    s = optim.linear_schedule(1.0, 0.0, transition_steps=4, transition_begin=2)
    assert s(0) == 1.0 and s(2) == 1.0 and s(4) == approx(0.5) and s(6) == 0.0 and s(7) == 0.0
    assert optim.linear_warmup is optim.linear_schedule


def test_polynomial_schedule():
    s = optim.polynomial_schedule(1.0, 0.0, power=2, transition_steps=10)
    assert s(0) == 1.0 and s(5) == approx(0.25) and s(10) == 0.0 and s(11) == 0.0


def test_cosine_decay():
    s = optim.cosine_decay_schedule(1.0, decay_steps=10, alpha=0.1)
    assert s(0) == 1.0
    assert s(5) == approx(0.1 + 0.9 * 0.5)
    assert s(10) == approx(0.1) and s(50) == approx(0.1)
    assert optim.cosine_decay is optim.cosine_decay_schedule
    with pytest.raises(ValueError):
        optim.cosine_decay_schedule(1.0, 0)


def test_warmup_cosine_decay():
    s = optim.warmup_cosine_decay_schedule(0.1, 1.0, warmup_steps=10, decay_steps=110, end_value=0.01)
    assert s(0) == 0.1
    assert s(5) == approx(0.55)
    assert s(10) == 1.0  # end of warmup: the peak
    assert s(60) == approx(0.01 + 0.99 * 0.5)  # half way through the cosine
    assert s(110) == approx(0.01)  # end of decay
    assert s(10_000) == approx(0.01)  # beyond
    assert optim.warmup_cosine_decay is optim.warmup_cosine_decay_schedule
    with pytest.raises(ValueError):
        optim.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10)


def test_join_schedules():
    s = optim.join_schedules([optim.constant(1.0), optim.linear_schedule(2.0, 0.0, 4)], [3])
    assert [s(t) for t in range(9)] == approx([1, 1, 1, 2, 1.5, 1, 0.5, 0, 0])


def test_one_cycle_follows_optax_cosine_onecycle():
    s = optim.one_cycle(100, peak_value=1.0, pct_start=0.3, div_factor=25.0, final_div_factor=1e4)
    assert s(0) == approx(1.0 / 25)
    assert s(15) == approx((1.0 / 25 + 1.0) / 2)
    assert s(30) == approx(1.0)
    assert s(65) == approx((1.0 + 1.0 / 25e4) / 2)
    assert s(100) == approx(1.0 / 25e4) and s(1000) == approx(1.0 / 25e4)
    values = [s(t) for t in range(101)]
    assert all(a <= b for a, b in zip(values[:30], values[1:31]))
    assert all(a >= b for a, b in zip(values[30:100], values[31:101]))
    assert optim.cosine_onecycle_schedule is optim.one_cycle


ALL = [
    optim.constant_schedule(0.5),
    optim.exponential_decay(1.0, 7, 0.5, transition_begin=3, staircase=True, end_value=0.1),
    optim.piecewise_constant_schedule(1.0, {3: 0.5, 9: 0.5}),
    optim.step_decay(1.0, 4, 0.5),
    optim.linear_schedule(0.0, 1.0, 10, 2),
    optim.polynomial_schedule(1.0, 0.1, 3, 10),
    optim.cosine_decay_schedule(1.0, 10, 0.1),
    optim.warmup_cosine_decay_schedule(0.0, 1.0, 3, 20, 0.05),
    optim.one_cycle(50, 1.0),
]


@pytest.mark.parametrize("sched", ALL, ids=lambda s: getattr(s, "__qualname__", "s").split(".")[0])
def test_python_floats_for_integer_steps(sched):
    for t in (0, 1, 3, 10, 57, 10**9):
        assert type(sched(t)) is float
    for t in (np.int64(5), np.int32(5), np.array(5)):
        v = sched(t)
        assert type(v) is float and v == sched(5)


@given(st.integers(0, 200), st.integers(1, 50), st.integers(1, 150), st.floats(0.0, 0.9))
def test_warmup_cosine_rises_then_falls(t, warmup, extra, end_frac):
    s = optim.warmup_cosine_decay_schedule(0.0, 1.0, warmup, warmup + extra, end_value=end_frac)
    if t < warmup:
        assert s(t) <= s(t + 1) + 1e-12
    else:
        assert s(t) >= s(t + 1) - 1e-12
    assert min(0.0, end_frac) - 1e-12 <= s(t) <= 1.0 + 1e-12


def test_schedules_module_is_exported():
    assert optim.schedules is schedules
    assert math.isclose(schedules.cosine_decay_schedule(2.0, 4)(2), 1.0)
