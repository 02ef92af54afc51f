"""Priorities and concurrency keys (spec §11.1, §11.2) on every store, and the
engine honouring them in virtual time (test store)."""

from __future__ import annotations

from typing import ClassVar

import pytest
import trio
from stores import FAST

import trexec
from trexec import durable, workflows
from trexec.durable._records import AwaitCommit, DoneCommit, NewInstance, Release

M = [("m", 1)]


def row(**kw: object) -> NewInstance:
    return NewInstance("m", 1, "start", "{}", **kw)  # type: ignore[arg-type]


async def claimed(store: durable.Store, n: int = 10, lease: float = 30.0) -> list[int]:
    return [job.id for job in (await store.claim(M, n, lease, {})).jobs]


# --- store: claim order (spec §11.1) -------------------------------------------------


async def test_claims_take_higher_priority_first_then_run_at_then_id(store):
    low, high, mid, high2, later = await store.insert(
        [
            row(),
            row(priority=9),
            row(priority=5),
            row(priority=9),
            row(priority=1000, scheduled_in=3600),
        ]
    )
    assert await claimed(store, 2) == [high, high2]
    assert await claimed(store) == [mid, low]
    assert await claimed(store) == []  # the priority-1000 row is not due
    assert (await store.get(later)).priority == 1000


async def test_next_due_is_the_earliest_of_every_priority_of_these_machines(store):
    """spec §11.1.3: next_due walks the claim index priority by priority (no
    index of its own); rows of other machines do not count."""
    assert await store.next_due(M) is None
    await store.insert([row(priority=9, scheduled_in=100.0), row(priority=0, scheduled_in=40.0),
                        row(priority=5, scheduled_in=70.0),
                        NewInstance("other", 1, "start", "{}", scheduled_in=5.0)])  # fmt: skip
    due = await store.next_due(M)
    assert due is not None and 35.0 < due <= 40.0
    assert await store.next_due([("other", 1)]) <= 5.0
    assert await store.next_due([("nobody", 1)]) is None
    await store.insert([row(priority=3, scheduled_in=20.0)])
    due = await store.next_due(M)
    assert due is not None and 15.0 < due <= 20.0


async def test_get_and_list_show_priority_and_concurrency_key(store):
    [id_] = await store.insert([row(priority=3, concurrency_key="acct-1")])
    got = await store.get(id_)
    assert (got.priority, got.concurrency_key) == (3, "acct-1")
    [listed] = await store.list()
    assert (listed.priority, listed.concurrency_key) == (3, "acct-1")


# --- store: concurrency keys (spec §11.2) ------------------------------------------------


async def test_one_slot_per_key_by_default_and_a_freed_slot_is_handed_on(store):
    a1, a2, b1, _a3 = await store.insert(
        [row(concurrency_key="a"), row(concurrency_key="a"), row(concurrency_key="b"),
         row(concurrency_key="a")]
    )  # fmt: skip
    claim = (await store.claim(M, 10, 30.0, {})).jobs
    assert [job.id for job in claim] == [a1, b1]
    # a2 and a3 are blocked by their key: not claimable, and not due (no spinning)
    assert await claimed(store) == []
    assert await store.next_due(M) is None
    assert (await store.get(a2)).status == "scheduled"  # still runnable to the user
    assert await store.complete([DoneCommit(claim[0].lease, result="1")]) == ["applied"]
    assert await store.next_due(M) == 0.0
    assert await claimed(store) == [a2]
    assert await claimed(store) == []


async def test_a_limit_above_one_lets_that_many_run(store):
    ids = await store.insert([row(concurrency_key="k", concurrency_limit=2) for _ in range(5)])
    jobs = (await store.claim(M, 10, 30.0, {})).jobs
    assert [job.id for job in jobs] == ids[:2]
    assert await claimed(store) == []
    await store.complete([DoneCommit(job.lease, result="1") for job in jobs])
    assert await claimed(store) == ids[2:4]


async def test_a_parked_instance_holds_no_slot(store):
    first, second = await store.insert([row(concurrency_key="k"), row(concurrency_key="k")])
    [job] = (await store.claim(M, 10, 30.0, {})).jobs
    assert await claimed(store) == []
    commit = AwaitCommit(job.lease, step="wait", state="{}", awaits=("go",), timeout=None)
    assert await store.complete([commit]) == ["applied"]
    assert (await store.get(first)).status == "awaiting"
    assert await claimed(store) == [second]


async def test_cancelling_a_running_instance_frees_its_slot(store):
    first, second = await store.insert([row(concurrency_key="k"), row(concurrency_key="k")])
    assert await claimed(store) == [first]
    assert await claimed(store) == []
    await store.cancel(first)
    assert await claimed(store) == [second]


async def test_a_released_claim_frees_its_slot_for_the_best_candidate(store):
    _first, second = await store.insert(
        [row(concurrency_key="k"), row(concurrency_key="k", priority=5)]
    )
    [job] = (await store.claim(M, 1, 30.0, {})).jobs
    assert job.id == second
    assert await claimed(store) == []  # first is blocked
    await store.release([Release(job.lease, attempted=False)])
    assert await claimed(store) == [second]  # priority 5 first again, first still waits
    assert await claimed(store) == []


async def test_a_reaped_lease_frees_the_slot(store, autojump_clock):
    first, second = await store.insert([row(concurrency_key="k"), row(concurrency_key="k")])
    assert await claimed(store, lease=1.0) == [first]
    assert await claimed(store) == []
    await trio.sleep(2.0)
    assert [r.id for r in await store.reap_expired()] == [first]
    # the reaped row is due again from now: the waiting one (due earlier) goes first
    assert await claimed(store) == [second]
    assert await claimed(store) == []


# --- engine, in virtual time ------------------------------------------------------------


class Tracked(durable.Machine):
    """Records how many instances of each key run at once."""

    name = "tracked"
    concurrency_limit = 2
    running: ClassVar[dict[str, int]] = {}
    peak: ClassVar[dict[str, int]] = {}
    order: ClassVar[list[int]] = []

    async def step(self, step, ctx):
        key = ctx.state["key"]
        Tracked.order.append(ctx.state["n"])
        Tracked.running[key] = Tracked.running.get(key, 0) + 1
        Tracked.peak[key] = max(Tracked.peak.get(key, 0), Tracked.running[key])
        await trio.sleep(1.0)
        Tracked.running[key] -= 1
        return durable.Done(ctx.state["n"])


async def test_the_engine_never_runs_more_than_the_limit_per_key(store, autojump_clock):
    Tracked.running, Tracked.peak = {}, {}
    async with durable.open_engine(store, [Tracked], workers=16, **FAST) as engine:
        ids = [
            await engine.insert(Tracked, {"key": f"k{i % 3}", "n": i}, concurrency_key=f"k{i % 3}")
            for i in range(18)
        ]
        started = trio.current_time()
        for id_ in ids:
            assert (await engine.wait(id_, timeout=60)).status == "done"
        elapsed = trio.current_time() - started
    assert Tracked.peak == {"k0": 2, "k1": 2, "k2": 2}
    # 6 per key, 2 at a time, 1 s each: 3 s. A freed slot is taken at once, not
    # at the next poll (the committing engine claims in the same transaction).
    assert elapsed < 3.5


async def test_the_engine_runs_higher_priority_first(store, autojump_clock):
    Tracked.order = []
    async with durable.open_engine(store, [Tracked], workers=0, **FAST) as producer:
        for n, priority in enumerate([0, 7, 3, 7, 1000]):
            await producer.insert(Tracked, {"key": "x", "n": n}, priority=priority)
    async with durable.open_engine(store, [Tracked], workers=1, batch_size=1, **FAST) as engine:
        while len(await engine.list(status="done")) < 5:
            await trio.sleep(0.5)
    assert Tracked.order == [4, 1, 3, 2, 0]


async def test_workflow_steps_inherit_the_run_priority(store):
    async def one(ctx):
        return {"ok": True}

    wf = workflows.Workflow("prio_wf", [workflows.Step("one", one)], execution="instances")
    async with durable.open_engine(store, [], workflows=[wf], workers=0) as engine:
        run_id = await engine.start_workflow(wf, {}, priority=7, concurrency_key="tenant-1")
        instances = await engine.list()
    run = next(i for i in instances if i.id == run_id)
    assert (run.priority, run.concurrency_key) == (7, "tenant-1")
    steps = [i for i in instances if i.id != run_id]
    assert steps and all(i.priority == 7 and i.concurrency_key is None for i in steps)


async def test_a_child_carries_its_priority_and_key(store):
    class Kid(durable.Machine):
        name = "kid"

        async def step(self, step, ctx):
            return durable.Done(None)

    class Parent(durable.Machine):
        name = "parent"

        async def step(self, step, ctx):
            if step == "start":
                child = durable.Child(Kid, None, priority=4, concurrency_key="c")
                return durable.ScheduleChildren("end", [child], ctx.state)
            return durable.Done([(c.priority, c.concurrency_key) for c in ctx.children])

    async with durable.open_engine(store, [Parent, Kid], **FAST) as engine:
        done = await engine.wait(await engine.insert(Parent, None), timeout=20)
    assert done.result == [[4, "c"]]


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [True, 1.0, "1", -1, 1001, None])
async def test_a_bad_priority_is_refused_naming_it(store, bad):
    async with durable.open_engine(store, [Tracked], workers=0) as engine:
        with pytest.raises(trexec.InvalidArgument, match="priority"):
            await engine.insert(Tracked, {}, priority=bad)
    with pytest.raises(trexec.InvalidArgument, match="priority"):
        durable.InsertSpec(Tracked, {}, priority=bad)
    with pytest.raises(trexec.InvalidArgument, match="priority"):
        durable.Child(Tracked, {}, priority=bad)


@pytest.mark.parametrize("bad", ["", 5, b"k", "a\x00b", "x" * 513])
async def test_a_bad_concurrency_key_is_refused_naming_it(store, bad):
    async with durable.open_engine(store, [Tracked], workers=0) as engine:
        with pytest.raises(trexec.InvalidArgument, match="concurrency_key"):
            await engine.insert(Tracked, {}, concurrency_key=bad)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
async def test_a_bad_concurrency_limit_is_refused_naming_it(store, bad):
    class Bad(durable.Machine):
        name = "bad"
        concurrency_limit = bad

    with pytest.raises(trexec.InvalidArgument, match="concurrency_limit"):
        async with durable.open_engine(store, [Bad], workers=0):
            pass
    async with durable.open_engine(store, [Tracked], workers=0) as engine:
        with pytest.raises(trexec.InvalidArgument, match="concurrency_limit"):
            await engine.insert(Bad, {})


# --- schema ---------------------------------------------------------------------------


def test_a_version_2_sqlite_file_is_upgraded_keeping_its_runnable_rows(tmp_path):
    """spec §11.1.3: migration 3 adds the columns and swaps the runnable index."""
    import sqlite3

    from trexec.durable import _sqlite_sql

    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as c:
        for version in (1, 2):
            for statement in _sqlite_sql.MIGRATIONS[version]:
                c.execute(statement)
        c.execute(_sqlite_sql.SCHEMA_VERSION_SET, ("2",))
        c.execute(
            "INSERT INTO instances (machine, version, step, status, state, run_at, created_at,"
            " updated_at) VALUES ('m', 1, 'start', 'scheduled', '{}', 0, 0, 0)"
        )

    async def upgrade() -> list[int]:
        async with durable.open_store(f"sqlite:///{path}") as store:
            assert await store.migrate() == max(_sqlite_sql.MIGRATIONS)
            [old] = await store.list()
            assert (old.priority, old.concurrency_key) == (0, None)
            return await claimed(store)

    assert trio.run(upgrade) == [1]


def test_sqlite_claim_statements_are_index_searches_without_a_sort(tmp_path):
    """spec §11.1.3 (1M-row plans of both stores: bench/scheduling_plans.py)."""
    import sqlite3

    from trexec.durable import _sqlite_sql as sql

    with sqlite3.connect(tmp_path / "plans.db") as c:
        for version in sorted(sql.MIGRATIONS):
            for statement in sql.MIGRATIONS[version]:
                c.execute(statement)
        machines = "VALUES (?, ?)"
        for query, params in [
            (sql.RUNNABLE_TOP_PRIORITY, []),
            (sql.RUNNABLE_PRIORITY_BELOW, [5]),
            (sql.CLAIM_CANDIDATES.format(machines), [5, 0.0, "m", 1, 64]),
            (sql.KEY_RUNNING, ["k"]),
            (sql.NEXT_DUE.format(machines), ["m", 1]),
        ]:
            plan = " | ".join(row[3] for row in c.execute(f"EXPLAIN QUERY PLAN {query}", params))
            assert "TEMP B-TREE" not in plan and "SCAN instances" not in plan, plan
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
