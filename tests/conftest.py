"""Shared fixtures and the PostgreSQL gate.

Time-dependent tests take ``autojump_clock`` (MockClock, autojump_threshold=0):
pytest-trio runs the test under that clock.

Tests marked ``postgres`` use the server at ``TREXEC_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``); ``pytest -m "not postgres"``
deselects them all. When the server is unreachable they are skipped, saying
why, unless ``TREXEC_TEST_POSTGRES_REQUIRED=1`` (CI): then they fail.
"""

from __future__ import annotations

import functools
import os

import pytest
import trio.testing


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@functools.cache
def _postgres_problem() -> str | None:
    """Why the test server cannot be used, or None if it can (asked once)."""
    url = os.environ.get("TREXEC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install 'trexec[postgres]'"
    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at {url} is unreachable ({first}); set TREXEC_TEST_POSTGRES"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") is None:
        return
    problem = _postgres_problem()
    if problem is not None:
        if os.environ.get("TREXEC_TEST_POSTGRES_REQUIRED") == "1":
            pytest.fail(f"{problem} (TREXEC_TEST_POSTGRES_REQUIRED=1)", pytrace=False)
        pytest.skip(problem)
