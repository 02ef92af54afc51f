"""The embedded SQLite store itself (spec §5.2.3, §5.11): migrations, options,
where its calls run (its thread, inline, or both by default), cancellation."""

from __future__ import annotations

import sqlite3
import threading
from functools import partial

import pytest
import trio
from machines import Counter, CountTo3

import trexec
from trexec import durable
from trexec.durable import _sqlite_ops as sqlite_ops, _sqlite_sql as sqlite_sql


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


async def test_inline_from_the_url_runs_every_call_on_the_trio_thread(url):
    """spec §5.11.6: no store thread; the engine works as on the thread."""
    before = {t.name for t in threading.enumerate()}
    async with durable.open_store(f"{url}?inline=true&synchronous=full") as store:
        assert store.inline
        assert {t.name for t in threading.enumerate()} <= before
        async with durable.open_engine(store, [CountTo3]) as engine:
            ids = [await engine.insert(CountTo3, Counter()) for _ in range(20)]
            done = [await engine.wait(id_, timeout=10) for id_ in ids]
        level = await store._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    assert [i.result["n"] for i in done] == [3] * 20 and level == 2
    async with durable.open_store(url, inline=False) as store:
        assert not store.inline and (await store.get(ids[0])).status == "done"


@pytest.mark.parametrize(
    ("suffix", "options", "match"),
    [("?inline=maybe", {}, "inline=true"), ("", {"inline": "yes"}, "inline='yes'")],
)
async def test_inline_must_be_a_flag(url, suffix, options, match):
    with pytest.raises(trexec.InvalidArgument, match=match):
        async with durable.open_store(url + suffix, **options):
            pass


async def test_inline_waits_for_a_lock_without_blocking_the_loop(url, tmp_path):
    """spec §5.11.6: while another connection holds the file's write lock, an
    inline call pauses (awaited) and runs once the lock is free."""
    async with durable.open_store(f"{url}?inline=true") as store:
        await store.migrate()
        other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ticks = 0
        inserted: list[int] = []

        async def insert() -> None:
            async with durable.open_engine(store, workers=0) as engine:
                inserted.append(await engine.insert(CountTo3, Counter()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(insert)
            while ticks < 20:  # the loop runs while the insert waits for the lock
                await trio.sleep(0.005)
                ticks += 1
            assert inserted == []
            other.execute("COMMIT")
        other.close()
        assert len(inserted) == 1
        assert (await store.get(inserted[0])).status == "scheduled"


async def test_inline_gives_up_after_the_busy_timeout(tmp_path):
    from trexec.durable._sqlite import SqliteStore

    path = str(tmp_path / "store.db")
    store = SqliteStore(path, inline=True, busy_timeout=0.05)
    await store._open()
    try:
        await store.migrate()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(durable.StoreError, match="locked"):
            await store.migrate()
        other.execute("ROLLBACK")
        other.close()
        assert await store.migrate() == max(sqlite_sql.MIGRATIONS)
    finally:
        await store.close()


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


# --- the default calls: short writes inline, the rest on the thread (spec §5.11.7) ---


def _where(c: sqlite3.Connection) -> str:
    return threading.current_thread().name


def _write_where(c: sqlite3.Connection) -> str:
    with sqlite_ops.write(c):
        c.execute("CREATE TABLE IF NOT EXISTS scratch (n INTEGER)")
        c.execute("INSERT INTO scratch VALUES (1)")
    return threading.current_thread().name


async def test_auto_runs_short_writes_inline_and_the_rest_on_the_thread(url):
    async with durable.open_store(url) as store:
        assert store.calls == "auto" and not store.inline
        assert await store._run(_write_where, short=True) == threading.current_thread().name
        assert (await store._run(_where, read=True)).startswith("trexec-sqlite")
        assert (await store._run(_write_where)).startswith("trexec-sqlite")

        # Inline, SQLite neither waits for a lock nor checkpoints by itself.
        def settings(c: sqlite3.Connection) -> tuple[int, int]:
            pragma = lambda name: c.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
            return pragma("busy_timeout"), pragma("wal_autocheckpoint")

        assert await store._run(settings, short=True) == (0, 0)


@pytest.mark.parametrize(
    ("suffix", "options", "calls"),
    [
        ("?calls=thread", {}, "thread"),
        ("?calls=inline", {}, "inline"),
        ("", {"calls": "thread"}, "thread"),
        ("?inline=false", {}, "thread"),
        ("?synchronous=full", {}, "thread"),  # a disk sync per commit never runs inline
        ("?synchronous=full&calls=inline", {}, "inline"),
    ],
)
async def test_where_calls_run_from_the_url_or_keyword(url, suffix, options, calls):
    async with durable.open_store(url + suffix, **options) as store:
        assert store.calls == calls
        where = await store._run(_write_where, short=True)
        assert (where == threading.current_thread().name) == (calls == "inline")


@pytest.mark.parametrize(
    ("suffix", "options", "match"),
    [
        ("?calls=fast", {}, "calls='fast'"),
        ("", {"calls": True}, "calls=True"),
        ("?calls=thread&inline=true", {}, "inline=True"),
    ],
)
async def test_calls_must_name_a_mode(url, suffix, options, match):
    with pytest.raises(trexec.InvalidArgument, match=match):
        async with durable.open_store(url + suffix, **options):
            pass


async def wait_until(predicate) -> None:
    with trio.fail_after(5):
        while not predicate():
            await trio.sleep(0.001)


async def test_auto_waits_for_a_lock_on_the_thread_and_keeps_calls_in_order(url, tmp_path):
    """A short write that finds the file locked runs again on the thread, where
    SQLite waits for the lock; the loop runs meanwhile, and a call made while the
    thread is busy queues behind it instead of running inline."""
    async with durable.open_store(url) as store:
        await store.migrate()
        other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ran: list[tuple[str, str]] = []  # in the order the calls ran

        def recorded(label: str, fn):
            def op(c: sqlite3.Connection) -> None:
                ran.append((label, fn(c)))

            return op

        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(store._run, recorded("locked write", _write_where), short=True)
            )
            await wait_until(lambda: not store._thread._thread.idle)
            # Takes no lock: inline, it would run (and finish) first.
            nursery.start_soon(partial(store._run, recorded("no-lock call", _where), short=True))
            for _ in range(10):  # the loop runs while the write waits for the lock
                await trio.sleep(0.005)
            assert ran == []
            other.execute("COMMIT")
        other.close()
        assert [label for label, _ in ran] == ["locked write", "no-lock call"]
        assert all(where.startswith("trexec-sqlite") for _, where in ran)
        # Uncontended again: inline, and SQLite waits for nothing on the loop.
        assert await store._run(_write_where, short=True) == threading.current_thread().name
        busy = await store._run(lambda c: c.execute("PRAGMA busy_timeout").fetchone(), short=True)
        assert busy == (0,)


async def test_auto_checkpoints_on_the_thread_and_keeps_the_wal_small(url, tmp_path):
    """Every CHECKPOINT_EVERY-th short write goes to the thread and checkpoints
    after it; the WAL then restarts, so it stays the size of about that many
    writes instead of growing with every write."""
    from trexec.durable._sqlite_auto import CHECKPOINT_EVERY

    wal = tmp_path / "store.db-wal"
    async with durable.open_store(url) as store:
        await store.migrate()
        checkpoints = store._thread.checkpoints
        for _ in range(CHECKPOINT_EVERY // 2):
            await store._run(_write_where, short=True)
        half = wal.stat().st_size
        assert store._thread.checkpoints == checkpoints  # none inline
        for _ in range(10 * CHECKPOINT_EVERY):
            await store._run(_write_where, short=True)
        assert store._thread.checkpoints == checkpoints + 10
        # Twenty times `half` without checkpoints; one window's worth with them.
        assert wal.stat().st_size <= 3 * half


async def test_migration_7_keeps_live_keys_unique_and_frees_final_ones(url, tmp_path):
    """spec §5.11.8: a file at schema 6 with a live and a finished keyed row: after
    the migration the live key is still taken, the finished one free again, and
    a row that ends frees its key."""
    path = tmp_path / "store.db"
    with sqlite3.connect(path, isolation_level=None) as c:
        c.execute("CREATE TABLE trexec_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for version in range(1, 7):
            for statement in sqlite_sql.MIGRATIONS[version]:
                c.execute(statement)
        c.execute(sqlite_sql.SCHEMA_VERSION_SET, ("6",))
        for key, status in (("live", "scheduled"), ("ended", "done")):
            c.execute(
                "INSERT INTO instances (machine, version, step, status, state, key, run_at,"
                " created_at, updated_at) VALUES ('count_to_3', 1, 'start', ?, '{}', ?, 0, 0, 0)",
                (status, key),
            )
    async with durable.open_store(url) as store:
        assert await store.migrate() == 7
        async with durable.open_engine(store, workers=0) as e:
            with pytest.raises(durable.DuplicateKey):
                await e.insert(CountTo3, Counter(), key="live")
            again = await e.insert(CountTo3, Counter(), key="ended")
            await e.cancel(again)  # ends it: its key is free
            await e.insert(CountTo3, Counter(), key="ended")
        # A row made final by an update that leaves live_key alone: the trigger.
        await store._run(
            lambda c: c.execute("UPDATE instances SET status = 'stopped' WHERE key = 'live'")
        )
        async with durable.open_engine(store, workers=0) as e:
            await e.insert(CountTo3, Counter(), key="live")
