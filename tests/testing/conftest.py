"""``trexec.testing`` tests: the durable telemetry recorder."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))  # test_docs_examples

from trexec import telemetry


@pytest.fixture
def events() -> Iterator[list[tuple[tuple[str, ...], dict, dict]]]:
    """Every durable telemetry event emitted during the test, in order."""
    seen: list[tuple[tuple[str, ...], dict, dict]] = []
    detach = telemetry.attach(lambda *event: seen.append(event), prefix=("trexec", "durable"))
    yield seen
    detach()
