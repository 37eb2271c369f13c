"""Shared test configuration: hypothesis profiles.

`ci` (what .ci/run uses) is derandomized with a fixed example budget and no deadline, so a run is
repeatable and never flaky on a loaded machine; `dev` is the default for local runs; `thorough` is
for a long hunt (`HYPOTHESIS_PROFILE=thorough pytest`).
"""

import os

from hypothesis import HealthCheck, settings

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
