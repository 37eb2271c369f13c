"""Tests for fnn.random: determinism, independence of split streams, dtypes and shapes, sample
statistics (generous bounds on large samples), and errors for things that are not keys."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import random as rnd
from fnn import tree

K = rnd.key(42)

SAMPLERS = {
    "normal": lambda k: rnd.normal(k, (5, 3)),
    "normal_scaled": lambda k: rnd.normal(k, (7,), mean=2.0, stddev=3.0),
    "uniform": lambda k: rnd.uniform(k, (4, 4), minval=-1.0, maxval=2.0),
    "truncated_normal": lambda k: rnd.truncated_normal(k, -1.0, 1.5, (50,)),
    "bernoulli": lambda k: rnd.bernoulli(k, 0.3, (20,)),
    "randint": lambda k: rnd.randint(k, (20,), 0, 1000),
    "permutation": lambda k: rnd.permutation(k, 20),
    "permutation_array": lambda k: rnd.permutation(k, np.arange(30).reshape(10, 3)),
    "choice": lambda k: rnd.choice(k, 100, (10,)),
    "choice_noreplace_p": lambda k: rnd.choice(k, 20, (5,), replace=False, p=np.arange(20.0)),
}


def _norm_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _norm_pdf(x):
    return math.exp(-x * x / 2.0) / math.sqrt(2.0 * math.pi) if math.isfinite(x) else 0.0


def _truncnorm_moments(a, b):
    z = _norm_cdf(b) - _norm_cdf(a)
    pa, pb = _norm_pdf(a), _norm_pdf(b)
    apa = a * pa if math.isfinite(a) else 0.0
    bpb = b * pb if math.isfinite(b) else 0.0
    mean = (pa - pb) / z
    var = 1.0 + (apa - bpb) / z - mean**2
    return mean, math.sqrt(var)


# --------------------------------------------------------------------------------------------
# Keys


def test_key_is_uint32_pair_and_a_tree_leaf():
    k = rnd.key(0)
    assert isinstance(k, np.ndarray) and k.dtype == np.uint32 and k.shape == (2,)
    assert tree.leaves({"rng": k})[0] is k


@given(st.integers())
def test_key_any_int_is_deterministic(seed):
    a, b = rnd.key(seed), rnd.key(seed)
    assert a.dtype == np.uint32 and a.shape == (2,)
    np.testing.assert_array_equal(a, b)


@given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1))
def test_distinct_64bit_seeds_give_distinct_keys(s, t):
    if s != t:
        assert not np.array_equal(rnd.key(s), rnd.key(t))


def test_key_accepts_numpy_ints_and_big_or_negative_seeds():
    np.testing.assert_array_equal(rnd.key(np.int64(7)), rnd.key(7))
    for seed in (-1, -(2**40), 2**32, 2**40 + 3, 2**100, -(2**100)):
        k = rnd.key(seed)
        assert k.dtype == np.uint32 and k.shape == (2,)
    assert not np.array_equal(rnd.key(2**100), rnd.key(2**100 + 1))
    assert not np.array_equal(rnd.key(5), rnd.key(2**32 + 5))


@pytest.mark.parametrize("bad", [1.5, "3", None, np.float32(2.0), [1, 2], True])
def test_key_rejects_non_integers(bad):
    with pytest.raises(TypeError, match="seed must be an integer"):
        rnd.key(bad)


# --------------------------------------------------------------------------------------------
# split and fold_in


def test_split_is_deterministic_and_shaped():
    a, b = rnd.split(K), rnd.split(K)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 2) and a.dtype == np.uint32
    assert rnd.split(K, 5).shape == (5, 2)
    assert rnd.split(K, 0).shape == (0, 2)


def test_split_keys_are_distinct_and_differ_from_parent():
    keys = rnd.split(K, 64)
    rows = {tuple(r) for r in keys.tolist()}
    assert len(rows) == 64 and tuple(K.tolist()) not in rows


def test_split_keys_give_different_uncorrelated_streams():
    k1, k2 = rnd.split(K)
    a, b = rnd.normal(k1, (20000,)), rnd.normal(k2, (20000,))
    parent = rnd.normal(K, (20000,))
    assert not np.array_equal(a, b)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05
    assert abs(np.corrcoef(a, parent)[0, 1]) < 0.05
    assert abs(np.corrcoef(b, parent)[0, 1]) < 0.05


def test_fold_in():
    a, b = rnd.fold_in(K, 0), rnd.fold_in(K, 1)
    assert a.dtype == np.uint32 and a.shape == (2,)
    np.testing.assert_array_equal(a, rnd.fold_in(K, 0))
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, K)
    folded = {tuple(rnd.fold_in(K, i).tolist()) for i in range(100)}
    assert len(folded) == 100
    assert not folded & {tuple(r) for r in rnd.split(K, 100).tolist()}
    assert not np.array_equal(rnd.fold_in(K, -1), rnd.fold_in(K, 1))
    assert not np.array_equal(rnd.fold_in(rnd.key(1), 3), rnd.fold_in(rnd.key(2), 3))


def test_derived_keys_are_stable():
    # Regression pins: keys must not change between releases (checkpoints store them).
    np.testing.assert_array_equal(rnd.key(0), [0, 0])
    np.testing.assert_array_equal(rnd.key(-1), [2**32 - 1, 2**32 - 1])
    np.testing.assert_array_equal(rnd.key(2**32 + 5), [1, 5])
    np.testing.assert_array_equal(rnd.split(rnd.key(0)), [[3493329091, 4188131702], [3226943899, 1277232997]])
    np.testing.assert_array_equal(rnd.fold_in(rnd.key(0), 1), [3520582178, 2658246099])


# --------------------------------------------------------------------------------------------
# Determinism of every sampler; no global state


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_key_same_numbers(name):
    f = SAMPLERS[name]
    a, b = f(K), f(rnd.key(42))
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_different_keys_different_numbers(name):
    f = SAMPLERS[name]
    k1, k2 = rnd.split(K)
    assert not np.array_equal(f(k1), f(k2))


def test_no_global_state_used_or_touched():
    before = np.random.get_state()[1].copy()
    a = rnd.normal(K, (10,))
    np.random.seed(123)
    np.random.rand(5)
    mid = np.random.get_state()[1].copy()
    b = rnd.normal(K, (10,))
    rnd.uniform(K, (3,))
    rnd.split(K)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mid, np.random.get_state()[1])
    assert before.shape == mid.shape


# --------------------------------------------------------------------------------------------
# dtypes and shapes


@pytest.mark.parametrize("shape, expected", [((), ()), (3, (3,)), ((2, 3), (2, 3)), ([4], (4,)), ((0, 2), (0, 2))])
def test_shapes(shape, expected):
    assert rnd.normal(K, shape).shape == expected
    assert rnd.uniform(K, shape).shape == expected
    assert rnd.truncated_normal(K, shape=shape).shape == expected
    assert rnd.bernoulli(K, 0.5, shape).shape == expected
    assert rnd.randint(K, shape, 0, 5).shape == expected
    assert rnd.choice(K, 5, shape).shape == expected


@pytest.mark.parametrize("f", [rnd.normal, rnd.uniform, lambda k, s, **kw: rnd.truncated_normal(k, shape=s, **kw)])
def test_float_dtypes(f):
    assert f(K, (3,)).dtype == np.float32
    assert f(K, ()).dtype == np.float32
    assert isinstance(f(K, ()), np.ndarray)
    assert f(K, (3,), dtype=np.float64).dtype == np.float64
    assert f(K, (3,), dtype=np.float16).dtype == np.float16
    with pytest.raises(TypeError, match="floating dtype"):
        f(K, (3,), dtype=np.int32)


def test_scale_arguments_do_not_upcast():
    assert rnd.normal(K, (3,), mean=np.float64(1.0), stddev=np.float64(2.0)).dtype == np.float32
    assert rnd.uniform(K, (3,), minval=np.float64(-1), maxval=np.array(1.0)).dtype == np.float32


def test_integer_and_bool_dtypes():
    assert rnd.randint(K, (3,), 0, 5).dtype == np.int32
    assert rnd.randint(K, (3,), 0, 5, dtype=np.int64).dtype == np.int64
    assert rnd.randint(K, (3,), 0, 5, dtype=np.uint8).dtype == np.uint8
    assert rnd.bernoulli(K, 0.5, (3,)).dtype == np.bool_
    assert rnd.bernoulli(K, np.full((2, 3), 0.5)).shape == (2, 3)
    assert rnd.bernoulli(K).shape == ()
    with pytest.raises(TypeError, match="integer dtype"):
        rnd.randint(K, (3,), 0, 5, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Statistics (large samples, generous bounds)


def test_normal_statistics():
    x = rnd.normal(K, (200_000,))
    assert abs(x.mean()) < 0.02 and abs(x.std() - 1.0) < 0.02
    y = rnd.normal(K, (200_000,), mean=3.0, stddev=2.0)
    assert abs(y.mean() - 3.0) < 0.04 and abs(y.std() - 2.0) < 0.04
    z = rnd.normal(K, (200_000,), dtype=np.float64)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02


def test_uniform_statistics_and_range():
    x = rnd.uniform(K, (200_000,))
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 0.01 and abs(x.var() - 1 / 12) < 0.005
    y = rnd.uniform(K, (200_000,), minval=-3.0, maxval=5.0)
    assert y.min() >= -3.0 and y.max() < 5.0 and abs(y.mean() - 1.0) < 0.05
    assert y.min() < -2.9 and y.max() > 4.9


def test_uniform_stays_half_open_after_rounding():
    # float16 has few values near 1: without care, rounding would produce maxval itself.
    x = rnd.uniform(K, (200_000,), dtype=np.float16)
    assert x.dtype == np.float16 and x.max() < 1.0 and x.min() >= 0.0
    y = rnd.uniform(K, (200_000,), minval=1.0, maxval=1.001)  # a few float32 values apart
    assert y.min() >= np.float32(1.0) and y.max() < np.float32(1.001)


@pytest.mark.parametrize(
    "lower, upper",
    [
        (-2.0, 2.0),  # wide, around zero
        (-0.5, 1.0),  # narrow, around zero
        (3.0, 3.2),  # narrow, in the tail
        (3.0, math.inf),  # one-sided tail
        (0.5, 5.0),  # wide, right of zero
        (-math.inf, -4.0),  # far left tail
        (-math.inf, math.inf),
    ],
)
def test_truncated_normal_bounds_and_moments(lower, upper):
    x = rnd.truncated_normal(K, lower, upper, (100_000,), dtype=np.float64)
    assert np.all(x > lower) and np.all(x < upper)
    mean, std = _truncnorm_moments(lower, upper)
    assert abs(x.mean() - mean) < 0.02 + 0.02 * std, (x.mean(), mean)
    assert abs(x.std() - std) < 0.03 * std + 0.005, (x.std(), std)


def test_truncated_normal_strict_bounds_in_float32():
    x = rnd.truncated_normal(K, -2.0, 2.0, (200_000,))
    assert x.dtype == np.float32
    assert x.min() > np.float32(-2.0) and x.max() < np.float32(2.0)
    # a narrow interval whose ends are float32 neighbours of many samples
    y = rnd.truncated_normal(K, 1.0, 1.0 + 1e-6, (1000,))
    assert y.min() > np.float32(1.0) and y.max() < np.float32(1.0 + 1e-6)


def test_truncated_normal_array_bounds_and_errors():
    lo = np.array([-1.0, 2.0, -5.0])
    hi = np.array([1.0, 3.0, -4.0])
    x = rnd.truncated_normal(K, lo, hi, (1000, 3))
    assert np.all(x > lo.astype(np.float32)) and np.all(x < hi.astype(np.float32))
    with pytest.raises(ValueError, match="lower < upper"):
        rnd.truncated_normal(K, 1.0, 1.0, (3,))


def test_bernoulli_rate():
    x = rnd.bernoulli(K, 0.3, (200_000,))
    assert abs(x.mean() - 0.3) < 0.01
    assert not rnd.bernoulli(K, 0.0, (10_000,)).any()
    assert rnd.bernoulli(K, 1.0, (10_000,)).all()
    p = np.array([0.1, 0.9])
    y = rnd.bernoulli(K, np.broadcast_to(p, (50_000, 2)))
    assert np.all(np.abs(y.mean(axis=0) - p) < 0.02)


def test_randint_range():
    x = rnd.randint(K, (50_000,), -3, 4)
    assert x.min() == -3 and x.max() == 3
    counts = np.bincount(x + 3)
    assert np.all(np.abs(counts / x.size - 1 / 7) < 0.01)
    with pytest.raises(ValueError, match="randint"):
        rnd.randint(K, (3,), 5, 5)


def test_permutation_is_a_permutation():
    p = rnd.permutation(K, 1000)
    np.testing.assert_array_equal(np.sort(p), np.arange(1000))
    assert not np.array_equal(p, np.arange(1000))
    a = np.arange(30).reshape(10, 3)
    q = rnd.permutation(K, a)
    assert q.shape == a.shape and q is not a
    np.testing.assert_array_equal(np.sort(q[:, 0]), a[:, 0])
    np.testing.assert_array_equal(q[:, 1] - q[:, 0], np.ones(10))  # rows moved whole
    r = rnd.permutation(K, a.T.copy(), axis=1)
    np.testing.assert_array_equal(r, q.T)
    np.testing.assert_array_equal(a, np.arange(30).reshape(10, 3))  # input untouched


def test_choice_without_replacement_has_no_repeats():
    x = rnd.choice(K, 50, (50,), replace=False)
    np.testing.assert_array_equal(np.sort(x), np.arange(50))
    y = rnd.choice(K, np.arange(100) * 2, (30,), replace=False)
    assert len(set(y.tolist())) == 30 and np.all(y % 2 == 0)
    with pytest.raises(ValueError):
        rnd.choice(K, 5, (6,), replace=False)


def test_choice_respects_zero_probability():
    p = np.array([0.5, 0.0, 0.25, 0.0, 0.25])
    x = rnd.choice(K, 5, (40_000,), p=p)
    assert set(x.tolist()) == {0, 2, 4}
    assert abs(np.mean(x == 0) - 0.5) < 0.02
    y = rnd.choice(K, 5, (3,), replace=False, p=p)
    assert sorted(y.tolist()) == [0, 2, 4]
    z = rnd.choice(K, 5, (1000,), p=[0, 0, 3, 0, 1])  # unnormalised weights are fine
    assert set(z.tolist()) <= {2, 4}


def test_choice_shapes_along_axis():
    a = np.arange(24).reshape(2, 3, 4)
    assert rnd.choice(K, a, (5, 6), axis=1).shape == (2, 5, 6, 4)
    assert rnd.choice(K, a).shape == (3, 4)
    assert rnd.choice(K, 10).shape == ()
    rows = rnd.choice(K, np.arange(12).reshape(4, 3), (7,))
    assert rows.shape == (7, 3) and np.all(rows[:, 0] % 3 == 0)


# --------------------------------------------------------------------------------------------
# Bad keys


@pytest.mark.parametrize(
    "f",
    [
        lambda k: rnd.normal(k, (2,)),
        lambda k: rnd.uniform(k),
        lambda k: rnd.split(k),
        lambda k: rnd.fold_in(k, 1),
        lambda k: rnd.bernoulli(k, 0.5),
        lambda k: rnd.randint(k, (2,), 0, 3),
        lambda k: rnd.permutation(k, 3),
        lambda k: rnd.choice(k, 3),
        lambda k: rnd.truncated_normal(k),
    ],
)
def test_bad_keys_are_rejected_clearly(f):
    with pytest.raises(TypeError, match=r"expected a key from fnn\.random\.key\(seed\)"):
        f(0)
    with pytest.raises(TypeError, match="batch of keys"):
        f(rnd.split(K, 3))
    with pytest.raises(TypeError, match="dtype float64"):
        f(np.zeros(2))
    with pytest.raises(TypeError, match="dtype uint32 and shape \\(3,\\)"):
        f(np.zeros(3, np.uint32))
    with pytest.raises(TypeError, match="expected a key"):
        f("key")


def test_fold_in_data_must_be_an_integer():
    with pytest.raises(TypeError, match="data must be an integer"):
        rnd.fold_in(K, 1.5)
