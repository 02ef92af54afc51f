"""Workflow tests run on every durable store kind (``tests/durable/stores.py``).

Time: as in the durable tests (``tests/durable/conftest.py``): a test that takes
``autojump_clock`` runs on the test store only, in virtual time (docs/spec.md
§10); the others run on every store and assert order and state, never elapsed
time.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import AsyncIterator

import pytest

from trexec import durable, telemetry

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "durable"))

from stores import open_test_store, parametrize_store

#: Engine options for tests: notice other engines' commits quickly.
FAST = {"poll_interval": 0.02}


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
def wf_events() -> AsyncIterator[list[tuple[tuple[str, ...], dict, dict]]]:
    """Every workflow telemetry event emitted during the test, in order."""
    seen: list[tuple[tuple[str, ...], dict, dict]] = []
    detach = telemetry.attach(lambda *event: seen.append(event), prefix=("trexec", "workflow"))
    yield seen  # type: ignore[misc]
    detach()
