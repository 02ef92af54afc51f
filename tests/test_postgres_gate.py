"""Without a reachable PostgreSQL server, its tests skip saying why; with
``TREXEC_TEST_POSTGRES_REQUIRED=1`` (CI) they fail (tests/conftest.py)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"


def run_postgres_tests(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/durable/test_postgres_store.py", "-k", "migrate"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TREXEC_TEST_POSTGRES": UNREACHABLE, **env},
    )  # fmt: skip


def test_an_unreachable_server_skips_its_tests_with_the_reason():
    result = run_postgres_tests()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in result.stdout and "passed" not in result.stdout
    assert f"PostgreSQL at {UNREACHABLE} is unreachable" in result.stdout
    assert "set TREXEC_TEST_POSTGRES" in result.stdout


def test_required_makes_an_unreachable_server_fail_the_run():
    result = run_postgres_tests(TREXEC_TEST_POSTGRES_REQUIRED="1")
    assert result.returncode == 1
    assert "TREXEC_TEST_POSTGRES_REQUIRED=1" in result.stdout
