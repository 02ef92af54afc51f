"""Durable tests run on every store kind in ``stores.STORE_KINDS``.

Time (docs/spec.md §5.12, §10): the real stores read wall-clock time on their
own thread (SQLite) or in the database (PostgreSQL), so trio's MockClock cannot
drive them. A test that depends on time (leases, delays, timeouts) takes
``autojump_clock`` and then runs on the test store only, in virtual time
(``stores.parametrize_store``); the others run on every store, with short real
durations, and assert order and state, never elapsed time.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
from stores import FAST as FAST, open_test_store, parametrize_store

from trexec import durable


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_store(metafunc)


@pytest.fixture
async def store(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[durable.Store]:
    async with open_test_store(request.param, tmp_path) as opened:
        await opened.migrate()
        yield opened


@pytest.fixture
def events() -> AsyncIterator[list[tuple[tuple[str, ...], dict, dict]]]:
    """Every durable telemetry event emitted during the test, in order."""
    from trexec import telemetry

    seen: list[tuple[tuple[str, ...], dict, dict]] = []
    detach = telemetry.attach(lambda *event: seen.append(event), prefix=("trexec", "durable"))
    yield seen  # type: ignore[misc]
    detach()
