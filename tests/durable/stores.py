"""The stores every durable test runs on: ``STORE_KINDS`` and ``open_test_store``.

Each kind opens a fresh, empty store private to the test (``tmp_path`` is the
test's own directory).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import trio

from trexec import durable

STORE_KINDS = ["sqlite", "postgresql"]

#: The PostgreSQL server the tests use (``.ci/run`` makes sure it is up).
PG_URL = os.environ.get("TREXEC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def drop_schema(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.asynccontextmanager
async def open_test_store(
    kind: str, tmp_path: pathlib.Path, **options: Any
) -> AsyncIterator[durable.Store]:
    """``options`` go to ``open_store`` (both stores take ``clock``, spec §8.6.2)."""
    if kind == "sqlite":
        async with durable.open_store(f"sqlite:///{tmp_path}/durable.db", **options) as store:
            yield store
    elif kind == "postgresql":
        # A fresh schema per test, dropped afterwards: tests never see each other's rows.
        schema = f"test_{uuid.uuid4().hex[:12]}"
        try:
            async with durable.open_store(PG_URL, schema=schema, **options) as store:
                yield store
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(drop_schema, schema)
    else:  # pragma: no cover
        raise ValueError(f"unknown store kind {kind!r}")
