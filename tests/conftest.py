"""Shared fixtures. Time-dependent tests take ``autojump_clock`` (MockClock,
autojump_threshold=0): pytest-trio runs the test under that clock."""

from __future__ import annotations

import pytest
import trio.testing


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)
