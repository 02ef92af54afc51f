"""``Store.list``'s dashboard filters on both stores, their SQLite plans, and the
pure parts of the dashboard: filter parsing and the step graph (spec §12.3, §12.5)."""

from __future__ import annotations

import sqlite3

import pytest
from dashboard_support import Note, Other, Waiter, engine_on

from trexec import InvalidArgument, durable
from trexec.dashboard._graph import step_graph
from trexec.dashboard._queries import Filters, parse_filters
from trexec.durable import _sqlite_sql
from trexec.durable._store_rules import list_query


async def test_store_list_filters_by_key_and_pages_newest_first(store_url):
    async with engine_on(store_url) as engine:
        a = [await engine.insert(Waiter, Note(), key="k0")]
        await engine.cancel(a[0])  # frees its key: a later instance takes it
        a += [await engine.insert(Waiter, Note(), key=k) for k in ("k1", "k0", None)]
        b = await engine.insert(Other, Note(), key="k2")
        store = engine.store
        ids = lambda records: [r.id for r in records]  # noqa: E731
        assert ids(await store.list(newest_first=True)) == [b, *a[::-1]]
        assert ids(await store.list()) == [*a, b]  # the old default order is kept
        assert ids(await store.list(key="k0", newest_first=True)) == [a[2], a[0]]
        assert ids(await store.list(key="k0", machine="waiter")) == [a[0], a[2]]
        assert ids(await store.list(key="k0", machine="other")) == []
        assert ids(await store.list(key="k0", status="cancelled")) == [a[0]]
        assert ids(await store.list(before_id=a[3], newest_first=True, limit=2)) == [a[2], a[1]]
        assert ids(await store.list(after_id=a[0], before_id=b)) == a[1:]
        assert await store.list(key="nobody") == []


async def test_store_list_merges_machines_and_statuses_in_id_order(store_url):
    """spec §12.3.2: a status alone is read machine by machine, a machine alone
    status by status; the merged pages are the filtered table's, in id order."""
    async with engine_on(store_url) as engine:
        made = []
        for n in range(9):
            machine = (Waiter, Other)[n % 2]
            made.append((await engine.insert(machine, Note()), machine.name))
        for id_, _ in made[::3]:
            await engine.cancel(id_)
        store = engine.store
        everything = await store.list(limit=100)
        ids = lambda records: [r.id for r in records]  # noqa: E731
        for status in ("scheduled", "cancelled", "done"):
            want = [r.id for r in everything if r.status == status]
            assert ids(await store.list(status=status, limit=100)) == want
            assert ids(await store.list(status=status, newest_first=True)) == want[::-1]
            if len(want) > 2:
                page = await store.list(status=status, limit=2, after_id=want[0])
                assert ids(page) == want[1:3]
                page = await store.list(status=status, newest_first=True, before_id=want[-1])
                assert ids(page) == want[-2::-1]
        for machine in ("waiter", "other"):
            want = [r.id for r in everything if r.machine == machine]
            assert ids(await store.list(machine=machine, limit=100)) == want
            assert (
                ids(await store.list(machine=machine, newest_first=True, limit=2))
                == (want[::-1][:2])
            )
        assert await store.list(machine="nobody") == []


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"status": "done"},
        {"machine": "m"},
        {"machine": "m", "status": "done"},
        {"key": "k"},
        {"key": "k", "status": "done"},
        {"key": "k", "machine": "m"},
    ],
)
@pytest.mark.parametrize("before", [None, 10])
def test_sqlite_list_plans_are_index_range_scans_without_a_sort(tmp_path, filters, before):
    """spec §12.3 (PostgreSQL's plans at 1M rows: bench/dashboard_plans.py)."""
    with sqlite3.connect(tmp_path / "plans.db") as c:
        for version in sorted(_sqlite_sql.MIGRATIONS):
            for statement in _sqlite_sql.MIGRATIONS[version]:
                c.execute(statement)
        sql, params = list_query(
            _sqlite_sql.LIST, "?", limit=51, after_id=None, before_id=before,
            newest_first=True, key_hint=" INDEXED BY instances_key",
            status=filters.get("status"), machine=filters.get("machine"), key=filters.get("key"),
            machines=["m", "n"],
        )  # fmt: skip
        plan = " | ".join(row[3] for row in c.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        machines = " | ".join(r[3] for r in c.execute(f"EXPLAIN QUERY PLAN {_sqlite_sql.MACHINES}"))
    if filters or before:
        assert "USING INDEX" in plan or "INTEGER PRIMARY KEY" in plan, plan
    if "key" in filters:
        assert "instances_key" in plan
    if len(filters) == 1 and "key" not in filters:
        # one ordered scan per status, or per machine, each stopping after `limit`:
        # only their few rows are sorted, for the merge
        assert plan.count("MERGE (UNION ALL)") == (6 if "machine" in filters else 1), plan
        assert "SCAN instances" not in plan
        assert plan.count("LIMIT") == 0 and plan.count("TEMP B-TREE") == plan.count("CO-ROUTINE")
    else:
        assert "TEMP B-TREE" not in plan
    # the machines of a status filter: one probe of the index per machine
    assert "SCAN instances" not in machines and "instances_machine_status" in machines


def test_filters_are_parsed_and_checked():
    assert parse_filters({}) == Filters()
    got = parse_filters({"status": "done", "machine": "m", "key": "", "limit": "5", "before": "9"})
    assert got == Filters(status="done", machine="m", limit=5, before=9)
    assert got.query(before=None) == {"status": "done", "machine": "m", "limit": "5"}
    assert parse_filters({"fragment": "1"}, extra=("fragment",)) == Filters()
    for bad in ({"status": "ok"}, {"limit": "501"}, {"before": "0"}, {"fragment": "1"}):
        with pytest.raises(InvalidArgument):
            parse_filters(bad)


def test_the_step_graph_escapes_names_and_survives_a_cycle():
    evil = "<script>x</script>"
    svg = step_graph(
        {"a": "done", evil: "weird", "c": "running"}, {evil: ["a"], "a": ["c"], "c": ["a"]}
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'class="node status-unknown"' in svg  # an unknown status gets no class of its own
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="edge"') == 3


async def test_the_public_entry_points_check_their_arguments():
    from trexec.dashboard import create_app, serve

    with pytest.raises(InvalidArgument, match="store="):
        create_app("sqlite:///x.db")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="port="):
        await serve("sqlite:///x.db", port=70000)
    with pytest.raises(InvalidArgument, match="store_url="):
        await serve(None)  # type: ignore[arg-type]
    assert serve.__module__ == "trexec.dashboard"
    assert durable.Store  # the type create_app takes
