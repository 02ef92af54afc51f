"""Without a reachable PostgreSQL server, its tests skip saying why; with
``TREXEC_TEST_POSTGRES_REQUIRED=1`` (CI) they fail (the gate in tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest


def _load_gate():
    # By path: "conftest" in sys.modules may be tests/durable's.
    path = pathlib.Path(__file__).with_name("conftest.py")
    spec = importlib.util.spec_from_file_location("trexec_tests_gate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conftest = _load_gate()
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"


class MarkedItem:
    """What the gate reads of a test item: its ``postgres`` marker."""

    def get_closest_marker(self, name: str) -> object:
        return object() if name == "postgres" else None


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TREXEC_TEST_POSTGRES", UNREACHABLE)
    monkeypatch.delenv("TREXEC_TEST_POSTGRES_REQUIRED", raising=False)
    conftest._postgres_problem.cache_clear()
    yield monkeypatch
    conftest._postgres_problem.cache_clear()


def test_an_unreachable_server_skips_its_tests_with_the_reason(unreachable):
    with pytest.raises(pytest.skip.Exception) as skipped:
        conftest.pytest_runtest_setup(MarkedItem())
    reason = str(skipped.value)
    assert f"PostgreSQL at {UNREACHABLE} is unreachable" in reason
    assert "set TREXEC_TEST_POSTGRES" in reason


def test_required_makes_an_unreachable_server_fail_the_test(unreachable):
    unreachable.setenv("TREXEC_TEST_POSTGRES_REQUIRED", "1")
    with pytest.raises(pytest.fail.Exception, match="TREXEC_TEST_POSTGRES_REQUIRED=1"):
        conftest.pytest_runtest_setup(MarkedItem())
