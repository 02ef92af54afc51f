"""The stores every durable test runs on: ``STORE_KINDS`` and ``open_test_store``.

Each kind opens a fresh, empty store private to the test (``tmp_path`` is the
test's own directory): ``sqlite`` (a file), ``postgresql`` (a fresh schema,
marked ``postgres``) and ``test`` (``trexec.testing``'s in-memory store, on the
Trio thread, in Trio time: docs/spec.md §10).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from trexec import durable
from trexec.testing._store import TestStore

#: Engine options for tests: notice other engines' commits quickly.
FAST = {"poll_interval": 0.02}

#: The real stores: their own threads, their own clocks.
REAL_STORE_KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
STORE_KINDS = [*REAL_STORE_KINDS, "test"]

#: The PostgreSQL server the tests use (``.ci/run`` makes sure it is up).
PG_URL = os.environ.get("TREXEC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def raw_connection(store: durable.Store) -> Iterator[Any]:
    """A connection to a SQLite store's database behind the store's back,
    committed and closed after the block; for the test store, its own
    connection (autocommit, in memory)."""
    if isinstance(store, TestStore):
        yield store._thread._connection
        return
    import sqlite3

    connection = sqlite3.connect(store.path)  # type: ignore[attr-defined]
    try:
        with connection:
            yield connection
    finally:
        connection.close()


@contextlib.asynccontextmanager
async def open_test_store(
    kind: str, tmp_path: pathlib.Path, **options: Any
) -> AsyncIterator[durable.Store]:
    """``options`` go to ``open_store`` (every store takes ``clock``, spec §8.6.2)."""
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
    elif kind == "test":
        test_store = TestStore(**options)
        await test_store._open()
        try:
            yield test_store
        finally:
            await test_store.close()
    else:  # pragma: no cover
        raise ValueError(f"unknown store kind {kind!r}")


def parametrize_store(metafunc: pytest.Metafunc) -> None:
    """``pytest_generate_tests`` for the ``store`` fixture: a test that takes
    ``autojump_clock`` runs in virtual time, so on the test store only (the
    real stores read real time); every other test runs on every kind."""
    if "store" in metafunc.fixturenames:
        virtual = "autojump_clock" in metafunc.fixturenames
        metafunc.parametrize("store", ["test"] if virtual else STORE_KINDS, indirect=True)
