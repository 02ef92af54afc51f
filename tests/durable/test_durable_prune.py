"""Pruning finished instances (spec §5.15), on every store kind.

Time: both stores take a ``clock`` (spec §8.6.2; the SQLite store's "now" is
its clock callable), here an uninstalled ``trio.testing.MockClock`` that only
``jump`` moves: "old" and "young" are exact and no test sleeps. The store's
clock stands still otherwise, so a row inserted now is runnable now and a lease
never expires.
"""

from __future__ import annotations

import itertools
import json
import re

import attrs
import psycopg
import pytest
import trio
import trio.testing
from click.testing import CliRunner
from machines import Counter, CountTo3
from stores import FAST, PG_URL, open_test_store, raw_connection

from trexec import InvalidArgument, durable
from trexec._cli import cli
from trexec.durable._records import (
    AwaitCommit,
    ChildrenCommit,
    DoneCommit,
    NewInstance,
    StopCommit,
)
from trexec.durable._sqlite import SqliteStore

KINDS = {"done": DoneCommit, "stop": StopCommit, "await": AwaitCommit, "children": ChildrenCommit}
_names = itertools.count()


@pytest.fixture
def clock():
    return trio.testing.MockClock()


@pytest.fixture
async def store(request, tmp_path, clock):
    """The durable suite's store, on a clock the test moves (shadows conftest's;
    parametrized over every kind by conftest's ``pytest_generate_tests``)."""
    async with open_test_store(request.param, tmp_path, clock=clock.current_time) as opened:
        await opened.migrate()
        yield opened


# --- building instances in every status, straight through the store ------------------
# Each instance gets a machine of its own, so a claim takes exactly that one.


def _new(parent_id=None):
    return NewInstance(f"m{next(_names)}", 1, "start", "{}", parent_id=parent_id)


async def _claim(store, id_):
    record = await store.get(id_)
    (job,) = (await store.claim([(record.machine, 1)], 1, 30.0, {})).jobs
    assert job.id == id_
    return job


async def _commit(store, job, kind, **fields):
    cls = KINDS[kind]  # fields of other kinds are dropped: "done"/"stop" share callers
    names = {field.name for field in attrs.fields(cls)}
    commit = cls(job.lease, **{k: v for k, v in fields.items() if k in names})
    assert await store.complete([commit]) == ["applied"]


async def make(store, status, parent_id=None):
    """A new instance in ``status``; ``waiting_children`` gets one scheduled child."""
    (id_,) = await store.insert([_new(parent_id)])
    if status == "scheduled":
        return id_
    if status == "cancelled":
        await store.cancel(id_)
        return id_
    job = await _claim(store, id_)
    if status == "done":
        await _commit(store, job, "done", result="1")
    elif status == "stopped":
        await _commit(store, job, "stop", error="boom")
    elif status == "awaiting":
        await _commit(store, job, "await", step="next", state="{}", awaits=("go",))
    elif status == "waiting_children":
        await _commit(store, job, "children", step="next", state="{}", children=(_new(),))
    else:
        assert status == "running"
    assert (await store.get(id_)).status == status
    return id_


async def make_parent(store, children):
    """A parent ``waiting_children`` on one child per status in ``children`` (each
    child brought to that status); returns (parent id, child ids)."""
    (parent,) = await store.insert([_new()])
    job = await _claim(store, parent)
    kids = tuple(_new() for _ in children)
    await _commit(store, job, "children", step="next", state="{}", children=kids)
    ids = [child.id for child in await store.children(parent)]
    for id_, status in zip(ids, children, strict=True):
        if status == "cancelled":
            await store.cancel(id_)
        elif status != "scheduled":
            child = await _claim(store, id_)
            kind = {"done": "done", "stopped": "stop"}[status]
            await _commit(store, child, kind, result="1", error="boom")
    return parent, ids


async def finish(store, id_, kind="done"):
    await _commit(store, await _claim(store, id_), kind, result="1", error="boom")


async def exists(store, ids):
    return [await store.get(id_) is not None for id_ in ids]


def _raw_rows(store, table, ids):
    """How many rows of ``table`` (signals, signal_dedup) belong to ``ids``."""
    if isinstance(store, SqliteStore):
        sql_ids = "SELECT value FROM json_each(?)"
        with raw_connection(store) as conn:
            query = f"SELECT count(*) FROM {table} WHERE instance_id IN ({sql_ids})"
            return conn.execute(query, (json.dumps(ids),)).fetchone()[0]
    with psycopg.connect(PG_URL) as conn:
        query = f"SELECT count(*) FROM {store.schema}.trexec_{table} WHERE instance_id = ANY(%s)"
        return conn.execute(query, (list(ids),)).fetchone()[0]


def _raw_signal(store, id_):
    """A signal row for ``id_`` written behind the store's back (a finished
    instance's inbox is empty through the API)."""
    if isinstance(store, SqliteStore):
        with raw_connection(store) as conn:
            conn.execute(
                "INSERT INTO signals (instance_id, name, payload, created_at)"
                " VALUES (?, 'late', 'null', 0)",
                (id_,),
            )
        return
    with psycopg.connect(PG_URL) as conn:
        conn.execute(
            f"INSERT INTO {store.schema}.trexec_signals (instance_id, name, payload, created_at)"
            " VALUES (%s, 'late', 'null', now())",
            (id_,),
        )


# --- the tests ----------------------------------------------------------------------------


async def test_old_finished_instances_are_pruned_and_young_ones_kept(store, clock):
    old = [await make(store, s) for s in ("done", "stopped", "cancelled")]
    clock.jump(100)
    young = [await make(store, s) for s in ("done", "stopped", "cancelled")]
    clock.jump(10)
    assert await store.prune(50) == 3
    assert await exists(store, old) == [False] * 3
    assert await exists(store, young) == [True] * 3
    assert await store.prune(50) == 0  # idempotent
    clock.jump(100)
    assert await store.prune(50) == 3
    assert await store.list() == []


async def test_older_than_is_strict_and_counts_from_the_last_update(store, clock):
    id_ = await make(store, "scheduled")
    clock.jump(1000)  # inserted long ago, finished just now: young
    await finish(store, id_)
    assert await store.prune(0) == 0  # updated exactly now: not "more than 0 s" ago
    clock.jump(10)
    assert await store.prune(10) == 0
    clock.jump(0.001)
    assert await store.prune(10) == 1


async def test_live_instances_are_never_pruned(store, clock):
    live = [await make(store, s) for s in ("scheduled", "running", "awaiting", "waiting_children")]
    live += [child.id for child in await store.children(live[-1])]
    clock.jump(10_000)
    assert await store.prune(0) == 0
    assert await exists(store, live) == [True] * 5


async def test_only_the_given_statuses_are_pruned(store, clock):
    done, stopped, cancelled = [await make(store, s) for s in ("done", "stopped", "cancelled")]
    clock.jump(100)
    assert await store.prune(0, ("stopped", "cancelled", "stopped")) == 2
    assert await exists(store, [done, stopped, cancelled]) == [True, False, False]
    assert await store.prune(0, ["done"]) == 1


async def test_the_signals_and_dedup_keys_of_pruned_instances_are_gone(store, clock):
    pruned = await make(store, "awaiting")
    kept = await make(store, "awaiting")
    for id_ in (pruned, kept):
        await store.deliver_signal(id_, "other", "1", "d-other")
        await store.deliver_signal(id_, "go", "2", "d-go")
    await finish(store, pruned)  # clears its inbox, keeps its dedup keys
    _raw_signal(store, pruned)
    assert _raw_rows(store, "signals", [pruned]) == 1
    assert _raw_rows(store, "signal_dedup", [pruned]) == 2
    clock.jump(100)
    assert await store.prune(10) == 1
    assert _raw_rows(store, "signals", [pruned]) == 0
    assert _raw_rows(store, "signal_dedup", [pruned]) == 0
    # The live instance keeps its inbox and dedup keys.
    assert [s.name for s in await store.inbox(kept)] == ["other", "go"]
    assert (await store.deliver_signal(kept, "go", "3", "d-go")).duplicate


async def test_a_finished_child_of_a_live_parent_is_kept(store, clock):
    parent, (done, stopped, live) = await make_parent(store, ["done", "stopped", "scheduled"])
    clock.jump(100)
    assert await store.prune(0) == 0
    assert await exists(store, [parent, done, stopped, live]) == [True] * 4
    await finish(store, live)  # the parent is scheduled again: still live
    assert (await store.get(parent)).status == "scheduled"
    clock.jump(100)
    assert await store.prune(0) == 0
    assert [c.status for c in await store.children(parent)] == ["done", "stopped", "done"]


async def test_a_finished_parent_is_pruned_together_with_its_children(store, clock):
    parent, kids = await make_parent(store, ["done", "stopped", "cancelled"])
    # A grandchild: the first kid's own children are pruned with the tree too.
    (grandchild,) = await store.insert([_new(parent_id=kids[0])])
    await finish(store, grandchild)
    await finish(store, parent)
    lone = await make(store, "done")
    clock.jump(100)
    young = await make(store, "done")
    assert await store.prune(50) == 6
    assert await exists(store, [parent, *kids, grandchild, lone]) == [False] * 6
    assert await exists(store, [young]) == [True]


async def test_a_finished_parent_with_a_live_child_is_kept_whole(store, clock):
    parent, (done, live) = await make_parent(store, ["done", "scheduled"])
    await store.cancel(parent)  # children are not cancelled (spec §5.4.8)
    clock.jump(100)
    assert await store.prune(0) == 0
    assert await exists(store, [parent, done, live]) == [True] * 3
    await finish(store, live)
    clock.jump(100)
    assert await store.prune(0) == 3


async def test_a_young_parent_keeps_its_old_children(store, clock):
    parent, kids = await make_parent(store, ["done", "done"])
    clock.jump(100)
    await finish(store, parent)
    assert await store.prune(50) == 0
    assert await exists(store, [parent, *kids]) == [True] * 3


async def test_limit_is_honoured_and_whole_trees_only(store, clock):
    singles = [await make(store, "done") for _ in range(5)]
    clock.jump(100)
    assert await store.prune(0, limit=2) == 2
    assert await exists(store, singles) == [False, False, True, True, True]
    assert await store.prune(0, limit=2) == 2
    assert await store.prune(0, limit=2) == 1
    parent, kids = await make_parent(store, ["done", "done"])
    await finish(store, parent)
    lone = await make(store, "done")
    clock.jump(100)
    assert await store.prune(0, limit=2) == 1  # the 3-instance tree does not fit
    assert await exists(store, [parent, *kids, lone]) == [True, True, True, False]
    assert await store.prune(0, limit=3) == 3


async def test_batches_walk_the_whole_table(store, clock, monkeypatch):
    from trexec.durable import _postgres_ops, _sqlite

    monkeypatch.setattr(_sqlite, "PRUNE_BATCH", 3)
    monkeypatch.setattr(_postgres_ops, "PRUNE_BATCH", 3)
    # Whole batches of roots that cannot be pruned come first: the prune goes past them.
    kept = [await make(store, "scheduled") for _ in range(7)]
    bulk = await store.insert([NewInstance("bulk", 1, "start", "{}")] * 10)
    jobs = (await store.claim([("bulk", 1)], 10, 30.0, {})).jobs
    assert await store.complete([DoneCommit(j.lease, result="1") for j in jobs]) == (
        ["applied"] * 10
    )
    clock.jump(100)
    kept.append(await make(store, "done"))  # young
    assert await store.prune(50) == 10
    assert await exists(store, bulk) == [False] * 10
    assert await exists(store, kept) == [True] * 8
    clock.jump(100)
    assert await store.prune(50, limit=1) == 1


class _Meddling:
    """A connection that runs ``before_lock()`` just before the prune's lock."""

    def __init__(self, conn, before_lock):
        self._conn, self._before_lock = conn, before_lock

    def execute(self, query, params=None):
        from trexec.durable import _postgres_sql as sql

        if query == sql.PRUNE_LOCK:
            self._before_lock()
        return self._conn.execute(query, params)


@pytest.mark.postgres
async def test_postgres_keeps_a_tree_that_changed_before_its_lock(tmp_path, clock):
    """Another transaction gives a finished tree a child, or deletes a tree, between
    the batch's read of the trees and its lock: those trees are left alone."""
    from trexec.durable import _postgres_ops

    async with open_test_store("postgresql", tmp_path, clock=clock.current_time) as store:
        await store.migrate()
        joined, gone, pruned = [await make(store, "done") for _ in range(3)]
        clock.jump(100)
        table = f"{store.schema}.trexec_instances"

        def meddle():
            with psycopg.connect(PG_URL) as conn:
                conn.execute(
                    f"INSERT INTO {table} (machine, version, step, status, state, parent_id,"
                    " run_at, created_at, updated_at)"
                    " VALUES ('m', 1, 'start', 'scheduled', '{}', %s, now(), now(), now())",
                    (joined,),
                )
                conn.execute(f"DELETE FROM {table} WHERE id = %s", (gone,))

        batch = _postgres_ops.prune_batch(0.0, ("done",), 0, None)
        count, cursor = await store._run(lambda c: batch(_Meddling(c, meddle)))
        assert (count, cursor) == (1, None)
        assert await exists(store, [joined, gone, pruned]) == [True, False, False]
        assert len(await store.children(joined)) == 1


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((-1,), {}, "older_than=-1"),
        ((float("nan"),), {}, "older_than=nan"),
        ((float("inf"),), {}, "older_than=inf"),
        (("10",), {}, "older_than='10'"),
        ((True,), {}, "older_than=True"),
        ((0, "done"), {}, "statuses='done'"),
        ((0, ()), {}, "statuses=()"),
        ((0, ("done", "running")), {}, "statuses='running'"),
        ((0, 3), {}, "statuses=3"),
        ((0, [["done"]]), {}, "statuses=['done']"),
        ((0,), {"limit": 0}, "limit=0"),
        ((0,), {"limit": 1.5}, "limit=1.5"),
        ((0,), {"limit": True}, "limit=True"),
    ],
)
async def test_bad_arguments_raise_and_delete_nothing(store, clock, args, kwargs, named):
    id_ = await make(store, "done")
    clock.jump(100)
    with pytest.raises(InvalidArgument, match=re.escape(named)):
        await store.prune(*args, **kwargs)
    async with durable.open_engine(store, workers=0) as engine:
        engine_kwargs = dict(kwargs)
        if len(args) > 1:
            engine_kwargs["statuses"] = args[1]
        with pytest.raises(InvalidArgument, match=re.escape(named)):
            await engine.prune(args[0], **engine_kwargs)
    assert await exists(store, [id_]) == [True]


async def test_engine_prune_deletes_finished_runs(store, clock):
    async with durable.open_engine(store, [CountTo3], **FAST) as engine:
        id_ = await engine.insert(CountTo3, Counter(1), key="order-1")
        await engine.wait(id_, timeout=10)
        assert await engine.prune(10) == 0
        clock.jump(11)
        assert await engine.prune(10, statuses=["done"]) == 1
        with pytest.raises(durable.NoTarget):
            await engine.get(id_)
        with pytest.raises(durable.NoTarget):
            await engine.get("order-1")
    with pytest.raises(durable.DurableError, match="closed"):
        await engine.prune(10)


def test_cli_prune(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"

    async def seed():
        async with durable.open_store(url) as s, durable.open_engine(s, [CountTo3], **FAST) as e:
            done = [await e.insert(CountTo3, Counter(n)) for n in range(2)]
            for id_ in done:
                await e.wait(id_, timeout=10)
            await e.cancel(await e.insert(CountTo3, Counter(), schedule_in=3600))
            return await e.insert(CountTo3, Counter(), schedule_in=3600)

    async def remaining():
        async with durable.open_store(url) as s:
            return [r.id for r in await s.list()]

    def run(*args):
        result = CliRunner().invoke(cli, list(args), env={"TREXEC_STORE": url})
        return result.exit_code, result.output

    live = trio.run(seed)
    code, out = run("prune", "--older-than", "3600")
    assert code == 0 and out == "pruned 0 instances\n"
    code, out = run("prune", "--older-than", "0", "--status", "stopped")
    assert code == 0 and out == "pruned 0 instances\n"
    code, out = run("prune", "--older-than", "0", "--status", "cancelled", "--status", "done")
    assert code == 0 and out == "pruned 3 instances\n"
    assert trio.run(remaining) == [live]
    code, out = run("prune", "--older-than", "0", "--limit", "1")
    assert code == 0 and out == "pruned 0 instances\n"
    code, out = run("prune", "--older-than", "-5")  # a usage error, naming the option
    assert code == 2 and "--older-than" in out and "-5" in out
    code, out = run("prune", "--older-than", "0", "--limit", "0")
    assert code == 2 and "--limit" in out
    code, out = run("prune", "--older-than", "0", "--status", "running")
    assert code == 2 and "--status" in out
    code, out = run("prune")
    assert code == 2 and "--older-than" in out
