"""Shared test configuration: hypothesis profiles and markers.

Profiles: "ci" (default, bounded examples so the suite stays fast on 2 cores), "stress" (4x those examples: the
stress block of .ci/run) and "long" (many examples, for local soak runs: `HYPOTHESIS_PROFILE=long pytest -m "not slow"`).
"""
import os

from hypothesis import HealthCheck, settings

for profile, examples in {"ci": 25, "stress": 100, "long": 1000}.items():
    settings.register_profile(profile, max_examples=examples, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
