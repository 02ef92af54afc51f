"""PostgreSQL plumbing (spec §8.1-§8.5): schema names, transactions from Trio,
cancellation, reconnection and LISTEN/NOTIFY wake-ups, on the real server."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
import trio
from stores import PG_URL

from trexec import InvalidArgument
from trexec.durable._postgres_conn import Database, parse_schema
from trexec.durable._postgres_listen import Listener

pytestmark = pytest.mark.postgres

URL = PG_URL  # TREXEC_TEST_POSTGRES


def _terminate_others(conninfo: str) -> int:
    """Kill every other backend of this database user (a simulated server crash)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND datname = current_database()"
            " AND application_name = %s",
            ("trexec-test-conn",),
        ).fetchall()
    return len(rows)


def test_schema_defaults_to_public() -> None:
    _, schema = parse_schema(URL, None)
    assert schema == "public"


def test_schema_from_url_search_path_option() -> None:
    conninfo, schema = parse_schema(URL + "?options=-csearch_path%3Dapp_one", None)
    assert schema == "app_one"
    assert 'search_path="app_one"' in conninfo


def test_schema_from_a_url_search_path_list_is_its_first_entry() -> None:
    """spec §8.2.1: the rest of the list must not be left behind in the options
    (``,public`` made the server refuse the connection); unquoted names fold."""
    conninfo, schema = parse_schema(URL + "?options=-csearch_path%3DApp_One,public", None)
    assert schema == "app_one"
    with psycopg.connect(conninfo) as conn:
        assert conn.execute("SHOW search_path").fetchone() == ('"app_one"',)


def test_explicit_schema_overrides_url() -> None:
    conninfo, schema = parse_schema(URL + "?options=-csearch_path%3Dapp_one", "app_two")
    assert schema == "app_two"
    assert "app_one" not in conninfo


@pytest.mark.parametrize("bad", ["", "1abc", "a-b", 'x"; drop', "a" * 64, 5])
def test_bad_schema_is_rejected_naming_the_value(bad: Any) -> None:
    with pytest.raises(InvalidArgument, match="schema"):
        parse_schema(URL, bad)


def test_bad_url_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="url"):
        parse_schema("postgresql://[::1", None)


async def test_run_executes_one_transaction_per_call() -> None:
    db = Database(parse_schema(URL, None)[0])
    await db.open()
    try:
        table = f"t_{uuid.uuid4().hex[:8]}"
        await db.run(lambda c: c.execute(f"CREATE TEMP TABLE {table} (x int)"))

        def fails(conn: psycopg.Connection[Any]) -> None:
            conn.execute("SELECT 1")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await db.run(fails)
        got = await db.run(lambda c: c.execute("SELECT 41 + 1").fetchone())
        assert got == (42,)
    finally:
        await db.close()


async def test_interruptible_call_cancels_the_query_on_the_server() -> None:
    db = Database(parse_schema(URL, None)[0], pool_size=1)
    await db.open()
    try:
        with trio.fail_after(20):  # pg_sleep(30) was interrupted, not waited for
            with trio.move_on_after(0.2) as scope:
                await db.run(lambda c: c.execute("SELECT pg_sleep(30)"), interruptible=True)
        assert scope.cancelled_caught
        # The single connection is free again and clean: the query was cancelled,
        # the transaction rolled back, the thread joined.
        assert await db.run(lambda c: c.execute("SELECT 1").fetchone()) == (1,)
    finally:
        await db.close()


async def test_write_runs_to_its_end_despite_cancellation() -> None:
    db = Database(parse_schema(URL, None)[0], pool_size=1)
    await db.open()
    table = f"w_{uuid.uuid4().hex[:8]}"
    try:
        await db.run(lambda c: c.execute(f"CREATE TABLE {table} (x int)"))

        def slow_write(conn: psycopg.Connection[Any]) -> None:
            conn.execute("SELECT pg_sleep(0.3)")
            conn.execute(f"INSERT INTO {table} VALUES (1)")

        with trio.move_on_after(0.05) as scope:
            await db.run(slow_write)
            await trio.lowlevel.checkpoint()  # the cancellation is delivered after
        assert scope.cancelled_caught
        assert await db.run(lambda c: c.execute(f"SELECT count(*) FROM {table}").fetchone()) == (1,)
    finally:
        await db.run(lambda c: c.execute(f"DROP TABLE IF EXISTS {table}"))
        await db.close()


async def test_run_retries_after_the_connection_is_killed() -> None:
    conninfo = parse_schema(URL + "?application_name=trexec-test-conn", None)[0]
    db = Database(conninfo, pool_size=2)
    await db.open()
    try:
        assert await db.run(lambda c: c.execute("SELECT 1").fetchone()) == (1,)
        assert await trio.to_thread.run_sync(_terminate_others, URL) >= 1
        assert await db.run(lambda c: c.execute("SELECT 2").fetchone()) == (2,)
    finally:
        await db.close()


async def test_listener_wakes_on_notify_and_after_reconnecting() -> None:
    channel = f"trexec_test_{uuid.uuid4().hex[:8]}"
    conninfo = parse_schema(URL + "?application_name=trexec-test-conn", None)[0]
    wakes = trio.Semaphore(0, max_value=1000)
    listener = Listener(conninfo, channel, wakes.release)
    await listener.start()
    try:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, '')", (channel,))
        with trio.fail_after(5):
            await wakes.acquire()
        await trio.to_thread.run_sync(_terminate_others, URL)
        with trio.fail_after(10):
            await wakes.acquire()  # reconnected: wakes to look for missed work
        assert listener.reconnects == 1
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, '')", (channel,))
        with trio.fail_after(5):
            await wakes.acquire()
    finally:
        await listener.stop()


async def test_stopping_the_listener_joins_its_thread_at_once() -> None:
    listener = Listener(parse_schema(URL, None)[0], "trexec_test_stop", lambda: None)
    await listener.start()
    thread = listener._thread
    assert thread is not None and thread.is_alive()
    with trio.fail_after(0.9):  # under the thread's 1 s poll: the NOTIFY woke it
        await listener.stop()
    assert not thread.is_alive()
