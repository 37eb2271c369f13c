"""The host-side logic of fnn's GPU paths, checked with NumPy arrays (no GPU needed).

- `index_multiply` on CuPy (which has no `multiply.at`) groups repeated positions on the host:
  the grouping must equal NumPy's `multiply.at` for any index.
- The optimizers' foreach launches (`fnn/optim/_foreach.py`) group arrays by dtype, 16 per
  launch, and pad the unused slots: run through a NumPy stand-in of the kernel (the C body's
  formula, `out_k = a * x_k + b * y_k` in double), every array must get its own update.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn.numpy.indexing import _multiply_at_grouped
from fnn.optim import _foreach


@given(data=st.data(), shape=st.sampled_from([(5,), (4, 3), (3, 2, 2)]))
def test_grouped_multiply_at_equals_numpy(data, shape):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal(shape)
    n = data.draw(st.integers(0, 8), label="selected")
    idx = tuple(rng.integers(0, s, n) for s in shape[:data.draw(st.integers(1, len(shape)), label="axes")])
    v = rng.uniform(0.5, 1.5, x[idx].shape)
    expected = x.copy()
    np.multiply.at(expected, idx, v)
    actual = x.copy()
    _multiply_at_grouped(actual, idx, v)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


def _emulated_kernel(calls):
    """A NumPy stand-in for the compiled foreach kernel, with its argument layout."""
    group = _foreach._GROUP

    def run(grid, block, args):
        outs, xs, ys, ns = args[:group], args[group:2 * group], args[2 * group:3 * group], args[3 * group:4 * group]
        count, a, b, has_y = args[4 * group:]
        assert grid[1] == count <= group
        calls.append(int(count))
        for t in range(int(count)):
            n = int(ns[t])
            value = float(a) * xs[t].reshape(-1)[:n].astype(np.float64)
            if has_y:
                value = value + float(b) * ys[t].reshape(-1)[:n].astype(np.float64)
            outs[t].reshape(-1)[:n] = value.astype(outs[t].dtype)

    return run


@pytest.mark.parametrize("with_y", [False, True])
def test_foreach_updates_every_array_of_every_dtype(monkeypatch, with_y):
    calls = []
    monkeypatch.setattr(_foreach, "_kernel", lambda xp, dtype: _emulated_kernel(calls))
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), (2, 2, 2)] * 13  # 39 arrays, 29 float32 and 10 float64
    xs = [rng.standard_normal(s).astype(np.float32 if k % 4 else np.float64) for k, s in enumerate(shapes)]
    ys = [rng.standard_normal(x.shape).astype(x.dtype) for x in xs]
    outs = [np.full_like(x, np.nan) for x in xs]
    _foreach._launch(outs, xs, ys if with_y else None, -0.1, 2.0)
    for out, x, y in zip(outs, xs, ys):
        expected = -0.1 * x.astype(np.float64) + (2.0 * y.astype(np.float64) if with_y else 0.0)
        np.testing.assert_allclose(out, expected.astype(x.dtype), rtol=1e-6)
        assert out.dtype == x.dtype
    expected_launches = []
    for dtype in (np.float32, np.float64):
        count = sum(x.dtype == dtype for x in xs)
        expected_launches += [16] * (count // 16) + ([count % 16] if count % 16 else [])
    assert sorted(calls) == sorted(expected_launches)  # 16 arrays per launch, one dtype each
