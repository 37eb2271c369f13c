"""fnn.random on each device: `device=` picks where numbers are made; on the GPU they are made there
(no host reads), the same key gives the same numbers, distinct keys distinct numbers, and the
distributions match the CPU's (sample moments within generous bounds). The GPU's numbers differ
from the CPU's for the same key, so only distributions are compared across devices."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import backend
from fnn import random as rnd
from backends import BACKENDS, assert_on_backend, requires_cupy, to_backend, to_host

K = rnd.key(7)
DEVICE = {"numpy": "cpu", "cupy": "gpu"}

SAMPLERS = {
    "normal": lambda k, d: rnd.normal(k, (5, 3), device=d),
    "normal_scaled": lambda k, d: rnd.normal(k, (7,), mean=2.0, stddev=3.0, device=d),
    "normal_f16": lambda k, d: rnd.normal(k, (4,), np.float16, device=d),
    "uniform": lambda k, d: rnd.uniform(k, (4, 4), minval=-1.0, maxval=2.0, device=d),
    "uniform_f64": lambda k, d: rnd.uniform(k, (3,), np.float64, device=d),
    "truncated_normal": lambda k, d: rnd.truncated_normal(k, -1.0, 1.5, (50,), device=d),
    "bernoulli": lambda k, d: rnd.bernoulli(k, 0.3, (20,), device=d),
    "randint": lambda k, d: rnd.randint(k, (20,), 0, 1000, device=d),
    "randint_u8": lambda k, d: rnd.randint(k, (20,), 0, 200, dtype=np.uint8, device=d),
    "permutation": lambda k, d: rnd.permutation(k, 20, device=d),
    "permutation_array": lambda k, d: rnd.permutation(k, np.arange(30).reshape(10, 3), device=d),
    "permutation_independent": lambda k, d: rnd.permutation(k, np.arange(30).reshape(10, 3), axis=0,
                                                            independent=True, device=d),
    "choice": lambda k, d: rnd.choice(k, 100, (10,), device=d),
    "choice_p": lambda k, d: rnd.choice(k, 20, (10,), p=np.arange(20.0), device=d),
    "choice_noreplace": lambda k, d: rnd.choice(k, 20, (10,), replace=False, device=d),
    "choice_noreplace_p": lambda k, d: rnd.choice(k, 20, (5,), replace=False, p=np.arange(20.0), device=d),
}


def _norm_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))  # precise in the lower tail


def _norm_pdf(x):
    return math.exp(-x * x / 2.0) / math.sqrt(2.0 * math.pi) if math.isfinite(x) else 0.0


def _truncnorm_moments(a, b):
    if a > 0:  # mirror into the lower tail, where the CDF differences keep their precision
        mean, std = _truncnorm_moments(-b, -a)
        return -mean, std
    z = _norm_cdf(b) - _norm_cdf(a)
    pa, pb = _norm_pdf(a), _norm_pdf(b)
    apa = a * pa if math.isfinite(a) else 0.0
    bpb = b * pb if math.isfinite(b) else 0.0
    mean = (pa - pb) / z
    return mean, math.sqrt(1.0 + (apa - bpb) / z - mean**2)


def _no_sync(name):
    """A context in which reading a device value on the host raises (CuPy's own check)."""
    if name == "numpy":
        import contextlib  # noqa: PLC0415

        return contextlib.nullcontext()
    import cupyx  # noqa: PLC0415

    return cupyx.allow_synchronize(False)


def draw(name, f, k=K):
    """f(k, device) on backend `name`: checked to live there, made without a host read, returned
    on the host."""
    with _no_sync(name):
        out = f(k, DEVICE[name])
    assert_on_backend(out, name)
    return to_host(out)


# --------------------------------------------------------------------------------------------
# Determinism, independence, dtypes and shapes


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_same_key_same_numbers_on_the_device(backend_name, sampler):
    f = SAMPLERS[sampler]
    a, b = draw(backend_name, f), draw(backend_name, f, rnd.key(7))
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_different_keys_different_numbers_on_the_device(backend_name, sampler):
    f = SAMPLERS[sampler]
    k1, k2 = rnd.split(K)
    assert not np.array_equal(draw(backend_name, f, k1), draw(backend_name, f, k2))


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_dtype_and_shape_match_the_cpu(backend_name, sampler):
    f = SAMPLERS[sampler]
    cpu, dev = f(K, "cpu"), draw(backend_name, f)
    assert (dev.dtype, dev.shape) == (cpu.dtype, cpu.shape)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("shape, expected", [((), ()), (3, (3,)), ((2, 3), (2, 3)), ((0, 2), (0, 2))])
def test_shapes_on_the_device(backend_name, shape, expected):
    d = DEVICE[backend_name]
    for out in (rnd.normal(K, shape, device=d), rnd.uniform(K, shape, device=d),
                rnd.truncated_normal(K, shape=shape, device=d), rnd.bernoulli(K, 0.5, shape, device=d),
                rnd.randint(K, shape, 0, 5, device=d), rnd.choice(K, 5, shape, device=d)):
        assert_on_backend(out, backend_name)
        assert tuple(out.shape) == expected


@pytest.mark.parametrize("backend_name", BACKENDS)
@given(seed=st.integers(0, 2**64 - 1), n=st.integers(0, 300), k=st.integers(0, 300),
       weighted=st.booleans())
def test_permutations_and_samples_without_replacement_never_repeat(backend_name, seed, n, k, weighted):
    k = min(k, n)
    key_ = rnd.key(seed)
    perm = draw(backend_name, lambda kk, d: rnd.permutation(kk, n, device=d), key_)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))
    if n:
        p = np.arange(1.0, n + 1) if weighted else None
        sample = draw(backend_name, lambda kk, d: rnd.choice(kk, n, (k,), replace=False, p=p, device=d), key_)
        assert len(set(sample.tolist())) == k and np.all((0 <= sample) & (sample < n))


@pytest.mark.parametrize("backend_name", BACKENDS)
@given(seed=st.integers(0, 2**64 - 1), lo=st.floats(-1e3, 1e3), width=st.floats(1e-3, 1e3),
       dtype=st.sampled_from([np.float16, np.float32, np.float64]))
def test_uniform_stays_in_its_half_open_interval(backend_name, seed, lo, width, dtype):
    hi = lo + width
    if not np.dtype(dtype).type(lo) < np.dtype(dtype).type(hi):
        return  # the interval is empty in this dtype
    x = draw(backend_name, lambda kk, d: rnd.uniform(kk, (257,), dtype, minval=lo, maxval=hi, device=d),
             rnd.key(seed))
    assert x.dtype == dtype
    assert np.all(x >= np.dtype(dtype).type(lo)) and np.all(x < np.dtype(dtype).type(hi))


# --------------------------------------------------------------------------------------------
# Which device: the key, the array arguments, or `device=`


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_device_none_follows_the_key_and_array_arguments(backend_name):
    k = to_backend(K, backend_name)
    assert_on_backend(rnd.normal(k, (3,)), backend_name)
    assert_on_backend(rnd.bernoulli(K, to_backend(np.full(4, 0.5), backend_name)), backend_name)
    assert_on_backend(rnd.permutation(K, to_backend(np.arange(6), backend_name)), backend_name)
    assert_on_backend(rnd.choice(K, to_backend(np.arange(6), backend_name), (2,)), backend_name)
    assert_on_backend(rnd.normal(K, (3,)), "numpy")  # a host key and no arrays: the CPU


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_key_moved_to_the_device_gives_the_numbers_of_the_host_key(backend_name):
    d = DEVICE[backend_name]
    moved = to_backend(K, backend_name)
    np.testing.assert_array_equal(to_host(rnd.normal(moved, (6,), device=d)),
                                  to_host(rnd.normal(K, (6,), device=d)))
    np.testing.assert_array_equal(rnd.split(moved), rnd.split(K))  # keys stay host arrays
    np.testing.assert_array_equal(rnd.fold_in(moved, 3), rnd.fold_in(K, 3))


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_host_arguments_go_to_the_asked_device(backend_name):
    d = DEVICE[backend_name]
    a = np.arange(12).reshape(4, 3)
    q = draw(backend_name, lambda k, dev: rnd.permutation(k, a, device=dev))
    np.testing.assert_array_equal(np.sort(q[:, 0]), a[:, 0])
    np.testing.assert_array_equal(q[:, 1] - q[:, 0], np.ones(4))  # rows moved whole
    x = rnd.bernoulli(K, np.array([0.0, 1.0]), device=d)
    assert_on_backend(x, backend_name)
    np.testing.assert_array_equal(to_host(x), [False, True])


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        rnd.normal(K, (2,), device="tpu")


@requires_cupy
def test_cpu_draw_from_device_arguments_is_refused():
    backend_name = "cupy"
    p = to_backend(np.full(3, 0.5), backend_name)
    with pytest.raises(backend.MixedBackendError, match="device='cpu' but p is a CuPy array"):
        rnd.bernoulli(K, p, device="cpu")
    with pytest.raises(backend.MixedBackendError, match="x is a CuPy array"):
        rnd.permutation(K, to_backend(np.arange(3), backend_name), device="cpu")


# --------------------------------------------------------------------------------------------
# Distributions (large samples, generous bounds)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_normal_and_uniform_moments(backend_name):
    x = draw(backend_name, lambda k, d: rnd.normal(k, (200_000,), mean=1.0, stddev=2.0, device=d))
    assert abs(x.mean() - 1.0) < 0.03 and abs(x.std() - 2.0) < 0.03
    u = draw(backend_name, lambda k, d: rnd.uniform(k, (200_000,), minval=-1.0, maxval=3.0, device=d))
    assert u.min() >= -1.0 and u.max() < 3.0
    assert abs(u.mean() - 1.0) < 0.02 and abs(u.var() - 16 / 12) < 0.03


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("lower, upper", [(-2.0, 2.0), (-0.5, 1.0), (3.0, 3.2), (3.0, math.inf),
                                          (0.5, 5.0), (-math.inf, -4.0), (-math.inf, math.inf),
                                          (8.0, 9.0), (-9.0, -8.0)])
def test_truncated_normal_bounds_and_moments(backend_name, lower, upper):
    x = draw(backend_name, lambda k, d: rnd.truncated_normal(k, lower, upper, (100_000,), np.float64, device=d))
    assert np.all(x > lower) and np.all(x < upper)
    mean, std = _truncnorm_moments(lower, upper)
    assert abs(x.mean() - mean) < 0.02 + 0.02 * std, (x.mean(), mean)
    assert abs(x.std() - std) < 0.03 * std + 0.005, (x.std(), std)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_truncated_normal_strict_bounds_in_float32_and_array_bounds(backend_name):
    x = draw(backend_name, lambda k, d: rnd.truncated_normal(k, 1.0, 1.0 + 1e-6, (1000,), device=d))
    assert x.min() > np.float32(1.0) and x.max() < np.float32(1.0 + 1e-6)
    lo, hi = np.array([-1.0, 2.0, -5.0]), np.array([1.0, 3.0, -4.0])
    y = draw(backend_name, lambda k, d: rnd.truncated_normal(k, lo, hi, (1000, 3), device=d))
    assert np.all(y > lo.astype(np.float32)) and np.all(y < hi.astype(np.float32))
    with pytest.raises(ValueError, match="lower < upper"):
        rnd.truncated_normal(K, 1.0, 1.0, (3,), device=DEVICE[backend_name])


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_bernoulli_and_randint_rates(backend_name):
    x = draw(backend_name, lambda k, d: rnd.bernoulli(k, 0.3, (200_000,), device=d))
    assert abs(x.mean() - 0.3) < 0.01
    p = np.array([0.1, 0.9])
    y = draw(backend_name, lambda k, d: rnd.bernoulli(k, np.broadcast_to(p, (50_000, 2)), device=d))
    assert np.all(np.abs(y.mean(axis=0) - p) < 0.02)
    z = draw(backend_name, lambda k, d: rnd.randint(k, (70_000,), -3, 4, device=d))
    assert z.min() == -3 and z.max() == 3
    assert np.all(np.abs(np.bincount(z + 3) / z.size - 1 / 7) < 0.01)
    with pytest.raises(ValueError, match="randint"):
        rnd.randint(K, (3,), 5, 5, device=DEVICE[backend_name])


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_randint_with_array_bounds(backend_name):
    lo, hi = np.array([0, 10, -5]), np.array([2, 20, 5])
    x = draw(backend_name, lambda k, d: rnd.randint(k, (30_000, 3), lo, hi, dtype=np.int64, device=d))
    assert np.all(x >= lo) and np.all(x < hi)
    np.testing.assert_array_equal(x.min(axis=0), lo)
    np.testing.assert_array_equal(x.max(axis=0), hi - 1)
    np.testing.assert_allclose(x.mean(axis=0), (lo + hi - 1) / 2, atol=0.15)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_permutations_are_permutations_and_uniform(backend_name):
    p = draw(backend_name, lambda k, d: rnd.permutation(k, 1000, device=d))
    np.testing.assert_array_equal(np.sort(p), np.arange(1000))
    assert not np.array_equal(p, np.arange(1000))
    firsts = np.array([draw(backend_name, lambda k, d: rnd.permutation(k, 4, device=d), rnd.fold_in(K, i))[0]
                       for i in range(800)])
    assert np.all(np.abs(np.bincount(firsts, minlength=4) / 800 - 0.25) < 0.06)
    a = np.arange(30).reshape(10, 3)
    r = draw(backend_name, lambda k, d: rnd.permutation(k, a.T.copy(), axis=1, device=d))
    np.testing.assert_array_equal(np.sort(r[0]), a[:, 0])
    np.testing.assert_array_equal(r[1] - r[0], np.ones(10))
    ind = draw(backend_name, lambda k, d: rnd.permutation(k, a, independent=True, device=d))
    np.testing.assert_array_equal(np.sort(ind, axis=0), a)  # each column shuffled on its own


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_choice_without_replacement_and_with_weights(backend_name):
    x = draw(backend_name, lambda k, d: rnd.choice(k, 50, (50,), replace=False, device=d))
    np.testing.assert_array_equal(np.sort(x), np.arange(50))
    y = draw(backend_name, lambda k, d: rnd.choice(k, np.arange(100) * 2, (30,), replace=False, device=d))
    assert len(set(y.tolist())) == 30 and np.all(y % 2 == 0)
    with pytest.raises(ValueError):
        rnd.choice(K, 5, (6,), replace=False, device=DEVICE[backend_name])
    p = np.array([0.5, 0.0, 0.25, 0.0, 0.25])
    w = draw(backend_name, lambda k, d: rnd.choice(k, 5, (40_000,), p=p, device=d))
    assert set(w.tolist()) == {0, 2, 4}
    assert abs(np.mean(w == 0) - 0.5) < 0.02
    v = draw(backend_name, lambda k, d: rnd.choice(k, 5, (3,), replace=False, p=p, device=d))
    assert sorted(v.tolist()) == [0, 2, 4]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_weighted_choice_without_replacement_follows_the_weights(backend_name):
    # The first pick of a weighted draw without replacement is a weighted pick.
    p = np.array([0.6, 0.3, 0.1])
    firsts = np.array([draw(backend_name, lambda k, d: rnd.choice(k, 3, (2,), replace=False, p=p, device=d),
                            rnd.fold_in(K, i))[0] for i in range(1500)])
    assert np.all(np.abs(np.bincount(firsts, minlength=3) / 1500 - p) < 0.05)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_choice_with_device_weights(backend_name):
    p = to_backend(np.array([0.0, 3.0, 1.0]), backend_name)  # unnormalised weights on the device
    with _no_sync(backend_name):
        x = rnd.choice(K, 3, (20_000,), p=p)
    assert_on_backend(x, backend_name)
    x = to_host(x)
    assert set(x.tolist()) == {1, 2} and abs(np.mean(x == 1) - 0.75) < 0.02


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_choice_shapes_along_axis(backend_name):
    d = DEVICE[backend_name]
    a = np.arange(24).reshape(2, 3, 4)
    assert rnd.choice(K, a, (5, 6), axis=1, device=d).shape == (2, 5, 6, 4)
    assert rnd.choice(K, a, device=d).shape == (3, 4)
    assert rnd.choice(K, 10, device=d).shape == ()
    rows = to_host(rnd.choice(K, np.arange(12).reshape(4, 3), (7,), device=d))
    assert rows.shape == (7, 3) and np.all(rows[:, 0] % 3 == 0)


# --------------------------------------------------------------------------------------------
# Dropout draws its mask on x's device


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_dropout_mask_is_made_on_the_inputs_device(backend_name):
    import fnn  # noqa: PLC0415
    import fnn.numpy as fnp  # noqa: PLC0415
    from fnn.nn.functional import dropout  # noqa: PLC0415

    x = to_backend(np.ones((400, 500), np.float32), backend_name)
    with _no_sync(backend_name):
        y = dropout(x, 0.25, K)
        again = dropout(x, 0.25, rnd.key(7))
        g = fnn.grad(lambda v: fnp.sum(dropout(v, 0.25, K)))(x)
    for out in (y, again, g):
        assert_on_backend(out, backend_name)
    y, again, g = to_host(y), to_host(again), to_host(g)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, again)
    assert set(np.unique(y).tolist()) == {0.0, np.float32(1 / 0.75)}
    assert abs(np.mean(y == 0) - 0.25) < 0.01
    np.testing.assert_array_equal(g, y)  # d/dx sum(x * mask) = mask
