"""The stores every durable test runs on: ``STORE_KINDS`` and ``open_test_store``.

Each kind opens an empty store private to the test (``tmp_path`` is the
test's own directory): ``sqlite`` (a file), ``postgresql`` (a schema of its own,
marked ``postgres``: fresh, or an earlier test's emptied and checked) and
``test`` (``trexec.testing``'s in-memory store, on the Trio thread, in Trio
time: docs/spec.md §10).
"""

from __future__ import annotations

import atexit
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


#: Schemas of finished tests, emptied and ready for the next test: a fresh schema
#: costs a migration and a DROP (~55 ms), emptying one a few ms. Dropped at exit.
_SPARE_SCHEMAS: list[str] = []
#: What a fresh migration leaves, measured once: its tables and sequences (the
#: ones emptied) and its check (below), which a schema must still match to be reused.
_PRISTINE: dict[str, Any] = {}
_RELATIONS = (
    "SELECT c.relname::text, c.relkind::text FROM pg_class c"
    " WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'S') ORDER BY 1"
)
# Catalog lookups by oid only (a scan of pg_class costs ~6 ms once many schemas
# have come and gone): the instance table's indexes and triggers, the schema's
# statistics objects and functions, the schema version.
_CHECK = (
    "SELECT array(SELECT c.relname::text FROM pg_index i JOIN pg_class c"
    " ON c.oid = i.indexrelid WHERE i.indrelid = %(table)s::regclass ORDER BY 1),"
    " array(SELECT tgname::text FROM pg_trigger WHERE tgrelid = %(table)s::regclass ORDER BY 1),"
    " array(SELECT stxname::text FROM pg_statistic_ext"
    " WHERE stxnamespace = %(schema)s::regnamespace ORDER BY 1),"
    " array(SELECT proname::text || md5(prosrc) FROM pg_proc"
    " WHERE pronamespace = %(schema)s::regnamespace ORDER BY 1),"
    " (SELECT value FROM {schema}.trexec_meta WHERE key = 'schema_version')"
)
_ADMIN: list[Any] = []  # one connection for the emptying, opened on first use


def _check(conn: Any, schema: str) -> list[Any]:
    quoted = f'"{schema}"'
    params = {"table": f"{quoted}.trexec_instances", "schema": quoted}
    return list(conn.execute(_CHECK.format(schema=quoted), params).fetchone())


def _empty_for_reuse(schema: str) -> bool:
    """Empty a finished test's schema for the next test and return True, or
    return False (the caller drops it) if the test left it other than a fresh
    migration would, or if it cannot be emptied at once."""
    import psycopg

    try:
        if not _ADMIN:
            _ADMIN.append(psycopg.connect(PG_URL, autocommit=True))
            _ADMIN[0].execute("SET lock_timeout = '2s'")
        conn = _ADMIN[0]
        with conn.transaction():
            if _check(conn, schema) != _PRISTINE["check"]:
                return False
            for name, kind in _PRISTINE["relations"]:
                if kind == "S":
                    conn.execute(f'ALTER SEQUENCE "{schema}"."{name}" RESTART')
                elif name == "trexec_meta":
                    conn.execute(
                        f'DELETE FROM "{schema}".trexec_meta WHERE key <> %s', ("schema_version",)
                    )
                else:
                    conn.execute(f'DELETE FROM "{schema}"."{name}"')
        return True
    except psycopg.Error:
        for conn in _ADMIN:  # perhaps a server restart: a new connection next time
            conn.close()
        _ADMIN.clear()
        return False


def _fresh_shape() -> None:
    """What a fresh migration leaves, measured once on a schema of its own."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:12]}"

    async def migrate() -> None:
        async with durable.open_store(PG_URL, schema=schema) as store:
            await store.migrate()

    try:
        trio.run(migrate)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            _PRISTINE["relations"] = conn.execute(_RELATIONS, (f'"{schema}"',)).fetchall()
            _PRISTINE["check"] = _check(conn, schema)
    finally:
        drop_schema(schema)


@atexit.register
def _drop_spare_schemas() -> None:
    for conn in _ADMIN:
        conn.close()
    for schema in _SPARE_SCHEMAS:
        with contextlib.suppress(Exception):
            drop_schema(schema)


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
    if kind in ("sqlite", "sqlite-inline", "sqlite-thread"):
        if kind != "sqlite":  # spec §5.11.6, §5.11.7: where the calls run
            options = {"calls": kind.removeprefix("sqlite-"), **options}
        async with durable.open_store(f"sqlite:///{tmp_path}/durable.db", **options) as store:
            yield store
    elif kind == "postgresql":
        # A schema of its own per test, empty: a fresh one, or one an earlier test
        # used, emptied and checked to be as a fresh migration leaves it (the test
        # may migrate it or not, as with a fresh one). Tests never see each
        # other's rows.
        schema = _SPARE_SCHEMAS.pop() if _SPARE_SCHEMAS else f"test_{uuid.uuid4().hex[:12]}"
        try:
            async with durable.open_store(PG_URL, schema=schema, **options) as store:
                yield store
        finally:
            with trio.CancelScope(shield=True):
                reused = False
                try:
                    if not _PRISTINE:  # the first test's schema: measure a fresh migration
                        await trio.to_thread.run_sync(_fresh_shape)
                    reused = await trio.to_thread.run_sync(_empty_for_reuse, schema)
                finally:
                    if reused:
                        _SPARE_SCHEMAS.append(schema)
                    else:
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
        # A module may add kinds: INLINE_TOO = True runs it on a SQLite file with
        # every call inline (spec §5.11.6) and with every call on the store's
        # thread (§5.11.1) as well as with the default calls (§5.11.7).
        extra = (
            ["sqlite-inline", "sqlite-thread"] if getattr(metafunc.module, "INLINE_TOO", False)
            else []
        )  # fmt: skip
        kinds = ["test"] if virtual else [*STORE_KINDS, *extra]
        metafunc.parametrize("store", kinds, indirect=True)
