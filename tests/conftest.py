"""Shared test configuration: hypothesis profiles and markers.

Profiles: "ci" (default, bounded examples so the suite stays fast on 2 cores) and "long" (many examples, for local
soak runs: `HYPOTHESIS_PROFILE=long pytest -m "not slow"`).
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "long", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
