"""Shared test configuration: hypothesis profiles, and benchmarks/ on the path for the tests of its
scripts.

`ci` (what .ci/run uses) is derandomized with a fixed example budget and no deadline, so a run is
repeatable and never flaky on a loaded machine; `dev` is the default for local runs; `thorough` is
for a long hunt (`HYPOTHESIS_PROFILE=thorough pytest`).
"""

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

# FNN_FAKE_CUPY=1 runs the CuPy cases of the backend-parity tests on tests/fake_cupy, a NumPy-backed
# stand-in that keeps CuPy's rules (no mixing with NumPy arrays, no implicit conversion), so that
# they can be checked on a machine without a GPU. It must come first on sys.path before anything
# imports cupy.
if os.environ.get("FNN_FAKE_CUPY") == "1":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fake_cupy"))

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture(scope="module")
def benchmarks_on_path():
    """benchmarks/ on sys.path while one test module runs (its scripts import each other by
    name: they are not a package)."""
    sys.path.insert(0, BENCHMARKS)
    try:
        yield
    finally:
        sys.path.remove(BENCHMARKS)
