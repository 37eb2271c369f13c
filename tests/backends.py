"""Running one test case on NumPy and on CuPy arrays and comparing the two.

`BACKENDS` parametrises a test over "numpy" and "cupy"; the CuPy case is skipped, with the reason
stated, where CuPy or a GPU is missing. With FNN_FAKE_CUPY=1 (see conftest.py) the CuPy case runs on
the NumPy-backed stand-in in tests/fake_cupy, which checks that arrays stay on their device but not
CuPy's own numerics or kernels.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from fnn import backend, tree

FAKE = os.environ.get("FNN_FAKE_CUPY") == "1"
HAVE_CUPY = backend.cupy_available()
SKIP_REASON = ("needs CuPy and a GPU (FNN_FAKE_CUPY=1 runs these cases on a NumPy-backed stand-in "
               "that checks only that arrays stay on their device)")

requires_cupy = pytest.mark.skipif(not HAVE_CUPY, reason=SKIP_REASON)
BACKENDS = ["numpy", pytest.param("cupy", marks=requires_cupy)]


def xp_of(name: str):
    """The array module of a backend name."""
    if name == "numpy":
        return np
    import cupy  # noqa: PLC0415

    return cupy


def to_backend(value, name: str):
    """A pytree with its NumPy arrays moved to backend `name` (other leaves as they are)."""
    return value if name == "numpy" else backend.to_cupy(value)


def to_host(value):
    """A pytree with every CuPy array copied back to NumPy."""
    return backend.to_numpy(value)


def assert_on_backend(value, name: str, what: str = "result") -> None:
    """Every array leaf of `value` lives on backend `name`."""
    for leaf in tree.leaves(value):
        if isinstance(leaf, np.ndarray) or backend.is_cupy_array(leaf):
            where = "cupy" if backend.is_cupy_array(leaf) else "numpy"
            assert where == name, f"{what}: a {where} array where {name} was expected ({leaf.shape})"


def assert_trees_close(actual, expected, what: str, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Two pytrees (host arrays) with the same structure, dtypes and values within tolerance."""
    a_leaves, a_def = tree.flatten(actual)
    e_leaves, e_def = tree.flatten(expected)
    assert a_def == e_def, f"{what}: structure {a_def} != {e_def}"
    for i, (a, e) in enumerate(zip(a_leaves, e_leaves)):
        if isinstance(e, np.ndarray) or isinstance(a, np.ndarray):
            a, e = np.asarray(a), np.asarray(e)
            assert a.shape == e.shape, f"{what} leaf {i}: shape {a.shape} != {e.shape}"
            assert a.dtype == e.dtype, f"{what} leaf {i}: dtype {a.dtype} != {e.dtype}"
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"{what} leaf {i}")
        elif isinstance(e, float):
            assert a == pytest.approx(e, rel=rtol, abs=atol, nan_ok=True), f"{what} leaf {i}: {a!r} != {e!r}"
        else:
            assert a == e, f"{what} leaf {i}: {a!r} != {e!r}"


def run_on(name: str, fn, *args, **kwargs):
    """fn(*args) with the array arguments moved to backend `name`; the result checked to stay on
    that backend and returned on the host."""
    out = fn(*to_backend(args, name), **kwargs)
    assert_on_backend(out, name)
    return to_host(out)


def assert_same_on_backends(fn, *args, rtol: float = 1e-5, atol: float = 1e-6, **kwargs):
    """fn gives the same result (values, dtypes, structure) on CuPy as on NumPy; returns it."""
    expected = run_on("numpy", fn, *args, **kwargs)
    if HAVE_CUPY:
        actual = run_on("cupy", fn, *args, **kwargs)
        assert_trees_close(actual, expected, getattr(fn, "__name__", "fn"), rtol=rtol, atol=atol)
    return expected
