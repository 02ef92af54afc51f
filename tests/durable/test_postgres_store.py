"""PostgreSQL-only store behaviour (spec §8): schemas, migrations from several
processes, SKIP LOCKED claims, the database clock, NOTIFY wake-ups, reconnection.

The semantics shared with SQLite are proved by the common durable suite, which
runs on both stores (``tests/durable/stores.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
import trio
import trio.testing
from stores import PG_URL

from trexec import InvalidArgument, durable
from trexec.durable import _postgres_sql as _pg_sql
from trexec.durable._exceptions import StoreError
from trexec.durable._postgres import PostgresStore
from trexec.durable._records import (
    DoneCommit,
    Lease,
    NewInstance,
    NextCommit,
    RateLimitPolicy,
    StopCommit,
)

pytestmark = pytest.mark.postgres

URL = PG_URL  # TREXEC_TEST_POSTGRES
M = [("m", 1)]


def _drop(schema: str) -> None:
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@asynccontextmanager
async def fresh_store(schema: str | None = None, **options: Any) -> AsyncIterator[PostgresStore]:
    schema = schema or f"test_{uuid.uuid4().hex[:12]}"
    try:
        async with PostgresStore.open(URL, schema=schema, **options) as store:
            await store.migrate()
            yield store
    finally:
        await trio.to_thread.run_sync(_drop, schema)


def item(key: str | None = None, **kw: Any) -> NewInstance:
    return NewInstance("m", 1, "start", "{}", key=key, **kw)


async def test_migrate_creates_the_schema_and_is_idempotent() -> None:
    async with fresh_store() as store:
        assert await store.migrate() == max(_pg_sql.MIGRATIONS)
        with psycopg.connect(URL) as conn:
            found = conn.execute(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema = %s AND table_name LIKE 'trexec_%%'",
                (store.schema,),
            ).fetchone()
        assert found is not None and found[0] == 7  # + trexec_schedules, trexec_engines


async def test_concurrent_migrations_from_several_stores_all_succeed() -> None:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    results: list[int] = []
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(4):

                async def one() -> None:
                    async with PostgresStore.open(URL, schema=schema, listen=False) as store:
                        results.append(await store.migrate())

                nursery.start_soon(one)
        assert results == [max(_pg_sql.MIGRATIONS)] * 4
    finally:
        await trio.to_thread.run_sync(_drop, schema)


def _indexes(schema: str) -> set[str]:
    with psycopg.connect(URL) as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))
        return {name for (name,) in rows}


async def test_a_version_1_schema_is_upgraded_in_place_keeping_its_rows() -> None:
    """spec §8.7.1, §11.1: migrations 2 and 4 swap the runnable index for the claim index."""
    from trexec.durable import _postgres_sql as sql

    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'SET search_path = "{schema}"')
            for statement in sql.MIGRATIONS[1]:
                conn.execute(statement)
            conn.execute(sql.SCHEMA_VERSION_SET, ("1",))
            # a row written by version 1
            (id_,) = conn.execute(
                "INSERT INTO trexec_instances (machine, version, step, status, state,"
                " run_at, created_at, updated_at) VALUES ('m', 1, 'start', 'scheduled', '{}',"
                " now(), now(), now()) RETURNING id"
            ).fetchone()  # type: ignore[misc]
        assert "trexec_instances_runnable" in _indexes(schema)
        async with PostgresStore.open(URL, schema=schema, listen=False) as store:
            assert await store.migrate() == max(_pg_sql.MIGRATIONS)
            found = _indexes(schema)
            # spec §11.1: migration 4 replaced migration 2's per-machine index
            assert "trexec_instances_claim" in found
            assert "trexec_instances_runnable" not in found
            assert "trexec_instances_runnable_by_machine" not in found
            claim = await store.claim(M, 10, 30.0, {})
            assert [job.id for job in claim.jobs] == [id_]
    finally:
        await trio.to_thread.run_sync(_drop, schema)


async def test_a_claim_scans_only_the_machines_it_runs_in_run_at_order() -> None:
    async with fresh_store() as store:
        ids = await store.insert(
            [NewInstance(m, 1, "start", "{}", scheduled_in=0.0) for m in ("a", "b", "c", "a")]
        )
        claim = await store.claim([("a", 1), ("c", 1)], 10, 30.0, {})
        assert [job.id for job in claim.jobs] == [ids[0], ids[2], ids[3]]
        assert (await store.claim([("b", 2)], 10, 30.0, {})).jobs == ()
        assert [job.id for job in (await store.claim([("b", 1)], 1, 30.0, {})).jobs] == [ids[1]]


async def test_a_newer_schema_version_is_refused() -> None:
    async with fresh_store() as store:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(
                f"UPDATE \"{store.schema}\".trexec_meta SET value = '99'"
                " WHERE key = 'schema_version'"
            )
        with pytest.raises(StoreError, match="version 99"):
            await store.migrate()


async def test_schema_from_the_url_options_isolates_applications() -> None:
    one, two = (f"test_{uuid.uuid4().hex[:12]}" for _ in range(2))
    try:
        async with (
            PostgresStore.open(f"{URL}?options=-csearch_path%3D{one}") as a,
            PostgresStore.open(URL, schema=two) as b,
        ):
            assert (a.schema, b.schema) == (one, two)
            await a.migrate()
            await b.migrate()
            [id_a] = await a.insert([item("shared-key")])
            [id_b] = await b.insert([item("shared-key")])  # no clash: separate schemas
            assert (await a.get("shared-key")).id == id_a  # type: ignore[union-attr]
            assert (await b.get("shared-key")).id == id_b  # type: ignore[union-attr]
            assert len(await a.list()) == len(await b.list()) == 1
    finally:
        for schema in (one, two):
            await trio.to_thread.run_sync(_drop, schema)


async def test_a_schema_name_with_capitals_holds_the_tables() -> None:
    """spec §8.2.1: the schema is created quoted, so the search_path names it
    quoted too (unquoted, it folded to lower case: no schema to create in)."""
    schema = f"Test_{uuid.uuid4().hex[:12]}"
    async with fresh_store(schema) as store:
        [id_] = await store.insert([item()])
        assert [r.id for r in await store.list()] == [id_]
        with psycopg.connect(URL) as conn:
            found = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchone()
        assert found == (7,)  # + trexec_schedules (§11.4), trexec_engines (§5.16)


async def test_bad_options_are_rejected_naming_the_value() -> None:
    with pytest.raises(InvalidArgument, match="pool_size"):
        PostgresStore(URL, pool_size=0)
    with pytest.raises(InvalidArgument, match="schema"):
        PostgresStore(URL, schema="no spaces")


async def test_an_unreachable_server_raises_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open"):
        async with PostgresStore.open(
            "postgresql://postgres@127.0.0.1:1/test", connect_timeout=1.0
        ):
            pass  # pragma: no cover


async def test_the_url_in_messages_hides_the_password() -> None:
    store = PostgresStore("postgresql://postgres:s3cret@127.0.0.1:5432/test")
    assert "s3cret" not in store.url


async def test_a_closed_store_raises_store_error() -> None:
    async with fresh_store() as store:
        pass
    with pytest.raises(StoreError, match="closed"):
        await store.get(1)


async def test_concurrent_claims_never_share_a_row() -> None:
    async with fresh_store() as store, PostgresStore.open(URL, schema=store.schema) as other:
        await store.insert([item() for _ in range(200)])
        claimed: list[int] = []

        async def drain(s: PostgresStore) -> None:
            while jobs := (await s.claim(M, 7, 30.0, {})).jobs:
                claimed.extend(j.id for j in jobs)

        async with trio.open_nursery() as nursery:
            for s in (store, other, store, other):
                nursery.start_soon(drain, s)
        assert sorted(claimed) == sorted(set(claimed))
        assert len(claimed) == 200


async def test_claims_return_jobs_oldest_run_at_first() -> None:
    async with fresh_store() as store:
        late, early = await store.insert([item(scheduled_in=0.0), item(scheduled_in=0.0)])
        await store.insert([item(scheduled_in=3600.0)])
        jobs = (await store.claim(M, 10, 30.0, {})).jobs
        assert [j.id for j in jobs] == [late, early]


async def test_leases_use_the_database_clock_and_the_reaper_fences() -> None:
    async with fresh_store() as store:
        await store.insert([item()])
        [job] = (await store.claim(M, 1, 0.0, {})).jobs  # expires at once on the db clock
        reclaimed = await store.reap_expired()
        assert [(r.id, r.attempt) for r in reclaimed] == [(job.id, 2)]
        assert await store.reap_expired() == []  # each row reclaimed once
        [again] = (await store.claim(M, 1, 30.0, {})).jobs
        assert again.token > job.token
        # The first worker's outcome is rejected (fencing); the second one's applies.
        assert await store.complete([DoneCommit(job.lease, result="1")]) == ["stale"]
        assert await store.complete([DoneCommit(again.lease, result="2")]) == ["applied"]


async def test_concurrent_reapers_reclaim_each_row_once() -> None:
    async with fresh_store() as store, PostgresStore.open(URL, schema=store.schema) as other:
        await store.insert([item() for _ in range(50)])
        await store.claim(M, 50, 0.0, {})
        reclaimed: list[int] = []

        async def reap(s: PostgresStore) -> None:
            reclaimed.extend(r.id for r in await s.reap_expired())

        async with trio.open_nursery() as nursery:
            for s in (store, other, store, other):
                nursery.start_soon(reap, s)
        assert sorted(reclaimed) == sorted(set(reclaimed)) and len(reclaimed) == 50


async def test_a_batch_of_outcomes_commits_in_one_transaction() -> None:
    async with fresh_store() as store:
        await store.insert([item() for _ in range(20)])
        jobs = (await store.claim(M, 20, 30.0, {})).jobs
        commits = [
            NextCommit(j.lease, step="two", state='{"n": 1}') if j.id % 2 else
            DoneCommit(j.lease, result=str(j.id))
            for j in jobs
        ]  # fmt: skip
        assert await store.complete(commits) == ["applied"] * 20
        rows = {r.id: r for r in await store.list()}
        for j in jobs:
            assert rows[j.id].status == ("scheduled" if j.id % 2 else "done")


async def test_a_simple_batch_fences_each_commit_in_its_one_statement() -> None:
    # spec §8.8.5: next/done/stop without effects take the one-statement path;
    # its statuses equal §8.8.1's: cancelled, stale (old token, unknown row), applied.
    async with fresh_store() as store:
        await store.insert([item(key=f"k{i}") for i in range(5)])
        a, b, c, d, e = (await store.claim(M, 5, 30.0, {})).jobs
        await store.cancel(b.id)
        commits = [
            NextCommit(a.lease, step="two", state='{"n": 1}', rate_limit="r", weight=2),
            DoneCommit(b.lease, result="1"),
            StopCommit(c.lease, error="boom"),
            DoneCommit(Lease(d.id, d.token + 1), result="2"),
            NextCommit(Lease(10**9, 1), step="two", state="{}"),
            DoneCommit(e.lease, result='"r\\u00e9\u00e9"'),
        ]
        statuses, claim = await store.complete_and_claim(commits, M, 5, 30.0, {})
        assert statuses == ["applied", "cancelled", "applied", "stale", "stale", "applied"]
        assert [job.id for job in claim.jobs] == [a.id]  # the next commit, claimed again
        assert (claim.jobs[0].step, claim.jobs[0].state) == ("two", '{"n": 1}')
        rows = {r.id: r for r in await store.list()}
        assert [rows[j.id].status for j in (a, b, c, d, e)] == [
            "running", "cancelled", "stopped", "running", "done",
        ]  # fmt: skip
        assert (rows[c.id].error, rows[e.id].result) == ("boom", '"r\\u00e9\u00e9"')
        # A stale commit changed nothing: the row is still held by its lease.
        assert await store.complete([DoneCommit(d.lease, result="3")]) == ["applied"]


async def test_rate_limited_claims_share_buckets_across_stores() -> None:
    limits = {"api": RateLimitPolicy(rate=0.001, burst=3.0)}
    async with fresh_store() as store, PostgresStore.open(URL, schema=store.schema) as other:
        ids = await store.insert([item() for _ in range(5)])
        jobs = (await store.claim(M, 5, 30.0, {})).jobs
        await store.complete(
            [NextCommit(j.lease, step="call", state="{}", rate_limit="api") for j in jobs]
        )
        first = await store.claim(M, 2, 30.0, limits)
        second = await other.claim(M, 5, 30.0, limits)
        assert len(first.jobs) == 2 and len(second.jobs) == 1
        assert len(second.throttled) == 2
        assert all(t.wait > 100 for t in second.throttled)
        assert {j.id for j in first.jobs + second.jobs} | {t.id for t in second.throttled} == set(
            ids
        )


async def test_notify_wakes_a_waiting_store_in_another_connection() -> None:
    async with fresh_store() as store, PostgresStore.open(URL, schema=store.schema) as other:
        woke: list[bool] = []

        async def wait() -> None:
            woke.append(await store.wait_for_work(30.0))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            with trio.fail_after(10):
                await other.insert([item()])
        assert woke == [True]


async def test_notifications_are_scoped_to_the_schema() -> None:
    async with fresh_store() as a, fresh_store() as b:
        before = a.wakeups
        await b.insert([item()])
        # b's own listener sees its insert; a's never does.
        with trio.move_on_after(0.3):
            await a.wait_for_work(0.3)
        assert a.wakeups == before


async def test_calls_survive_the_server_killing_every_connection() -> None:
    async with fresh_store(pool_size=2) as store:
        await store.insert([item()])
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database()"
                " AND query NOT ILIKE '%%pg_stat_activity%%'"
                " AND application_name = ''"
                " AND backend_type = 'client backend' AND pid IN (SELECT pid FROM"
                " pg_stat_activity WHERE state = 'idle')"
            )
        assert len(await store.list()) == 1
        assert len((await store.claim(M, 1, 30.0, {})).jobs) == 1


async def test_a_mock_clock_drives_the_database_clock() -> None:
    clock = trio.testing.MockClock()
    async with fresh_store(clock=lambda: clock.current_time()) as store:
        # Nothing due is None, never 0 (due now): an idle picker would spin.
        assert await store.next_due(M) is None
        await store.insert([item(scheduled_in=100.0)])
        due = await store.next_due(M)
        assert due == 100.0
        clock.jump(60)
        assert await store.next_due(M) == 40.0
        assert (await store.claim(M, 1, 30.0, {})).jobs == ()
        clock.jump(40)
        assert await store.next_due(M) == 0.0
        assert len((await store.claim(M, 1, 30.0, {})).jobs) == 1


class _Once(durable.Machine):
    name = "pg_once"

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        return durable.Done(step)


class _TwoSteps(durable.Machine):
    """``one`` waits for ``gate`` (opened while its engine shuts down), then ``two``."""

    name = "pg_two_steps"
    entered: trio.Event
    gate: trio.Event

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        if step == "start":
            type(self).entered.set()
            await type(self).gate.wait()
            return durable.Next("two", None)
        print("TWO by", id(ctx.engine), trio.current_time())
        return durable.Done(step)


async def test_a_next_committed_during_shutdown_wakes_an_idle_engine_elsewhere() -> None:
    """spec §8.5.2: an engine shutting down claims nothing more, so its last
    ``Next`` notifies; the other engine never polls (an hour)."""
    _TwoSteps.entered, _TwoSteps.gate = trio.Event(), trio.Event()
    async with (
        fresh_store() as store_a,
        PostgresStore.open(URL, schema=store_a.schema) as store_b,
        trio.open_nursery() as nursery,
    ):
        async with durable.open_engine(store_a, [_TwoSteps], poll_interval=0.02) as a:
            id_ = await a.insert(_TwoSteps, None)
            await _TwoSteps.entered.wait()
            scope, b = await nursery.start(_serve, store_b)
            print("A", id(a), "B", id(b), trio.current_time())

            async def open_gate() -> None:
                await trio.sleep(0.1)  # real time: the engine is in its shutdown grace
                _TwoSteps.gate.set()

            nursery.start_soon(open_gate)
        with trio.fail_after(30):
            while (await b.get(id_)).status != "done":
                await trio.sleep(0.01)
        assert (await b.get(id_)).result == "two"
        scope.cancel()


async def _serve(store: PostgresStore, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    with trio.CancelScope() as scope:
        async with durable.open_engine(store, [_TwoSteps], poll_interval=3600.0) as engine:
            await trio.testing.wait_all_tasks_blocked()
            task_status.started((scope, engine))
            await trio.sleep_forever()


async def test_notify_wakes_an_idle_engine_on_another_connection() -> None:
    """The worker engine never polls (an hour): only NOTIFY can wake it."""
    async with (
        fresh_store() as producer_store,
        PostgresStore.open(URL, schema=producer_store.schema) as worker_store,
        durable.open_engine(worker_store, [_Once], poll_interval=3600.0),
        durable.open_engine(producer_store, workers=0) as producer,
    ):
        await trio.testing.wait_all_tasks_blocked()
        id_ = await producer.insert(_Once, None)
        with trio.fail_after(30):
            while (await producer.get(id_)).status != "done":
                await trio.sleep(0.01)
