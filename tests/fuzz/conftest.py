"""Fuzzing the public surface (issue 20): Hypothesis profiles and the portal.

Profiles: ``fuzz-short`` (the default test run: the whole suite in a few
seconds) and ``fuzz-long`` (``nox -s fuzz``), chosen by ``TREXEC_FUZZ_PROFILE``.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "durable"))

from fuzz_portal import Portal

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "fuzz-short",
    max_examples=12,
    deadline=None,
    suppress_health_check=_SUPPRESS,
    derandomize=True,  # the default run is the same every time: no luck either way
)
settings.register_profile(
    "fuzz-long", max_examples=400, deadline=None, suppress_health_check=_SUPPRESS
)
settings.load_profile(os.environ.get("TREXEC_FUZZ_PROFILE", "fuzz-short"))


@pytest.fixture(scope="session")
def portal() -> Iterator[Portal]:
    started = Portal()
    started.start()
    yield started
    started.stop()
