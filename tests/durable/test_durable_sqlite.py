"""The embedded SQLite store itself (spec §5.2.3, §5.11): migrations, options,
its thread, cancellation."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import trio
from machines import Counter, CountTo3

from trexec import durable
from trexec.durable import _sqlite_sql as sqlite_sql


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/store.db"


async def test_migrate_is_idempotent_and_versions_the_schema(url):
    async with durable.open_store(url) as store:
        assert await store.migrate() == max(sqlite_sql.MIGRATIONS)
        assert await store.migrate() == max(sqlite_sql.MIGRATIONS)


async def test_a_schema_newer_than_the_code_is_refused(url, tmp_path):
    async with durable.open_store(url) as store:
        await store.migrate()
    with sqlite3.connect(tmp_path / "store.db") as c:
        c.execute("UPDATE trexec_meta SET value = '99' WHERE key = 'schema_version'")
    async with durable.open_store(url) as store:
        with pytest.raises(durable.StoreError, match="schema version 99 is newer"):
            await store.migrate()


@pytest.mark.parametrize("mode", ["NORMAL", "FULL"])
async def test_synchronous_mode_from_the_url(url, tmp_path, mode):
    store_url = f"{url}?synchronous={mode.lower()}"
    async with durable.open_store(store_url) as store, durable.open_engine(store, [CountTo3]) as e:
        id_ = await e.insert(CountTo3, Counter())
        assert (await e.wait(id_, timeout=10)).status == "done"
        level = await store._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    assert level == {"NORMAL": 1, "FULL": 2}[mode]


async def test_the_store_thread_is_gone_after_the_block(url):
    before = {t.name for t in threading.enumerate()}
    async with durable.open_store(url) as store:
        await store.migrate()
        assert any(t.name.startswith("trexec-sqlite") for t in threading.enumerate())
    assert {t.name for t in threading.enumerate()} <= before
    with pytest.raises(durable.StoreError, match="closed"):
        await store.migrate()


async def test_a_call_cancelled_before_it_starts_changes_nothing(url):
    async with durable.open_store(url) as store, durable.open_engine(store, workers=0) as e:
        with trio.CancelScope() as scope:
            scope.cancel()
            await e.insert(CountTo3, Counter(), key="never")
        assert scope.cancelled_caught
        with pytest.raises(durable.NoTarget):
            await e.get("never")


async def test_a_write_cancelled_while_running_completes_or_not_at_all(url):
    async with durable.open_store(url) as store, durable.open_engine(store, workers=0) as e:
        for i in range(20):
            with trio.move_on_after(0):  # cancelled at once, mid-hop at the latest
                await e.insert_many(
                    [durable.InsertSpec(CountTo3, Counter(), key=f"k{i}-{j}") for j in range(5)]
                )
        rows = await store.list(limit=1000)
        by_batch = {}
        for row in rows:
            by_batch.setdefault(row.key.split("-")[0], []).append(row)
        assert all(len(batch) == 5 for batch in by_batch.values())


async def test_an_unopenable_path_is_a_store_error(tmp_path):
    with pytest.raises(durable.StoreError, match="cannot open"):
        async with durable.open_store(f"sqlite:///{tmp_path}/missing-dir/x.db"):
            pass
