"""Check that the dashboard's list queries stay index range scans at 1M rows
(spec §12.3): fills a SQLite file and a PostgreSQL schema with 1,000,000
instances, then prints each filter combination's plan and time, newest first,
first page and a deep page (``before`` = the middle id).

    python bench/dashboard_plans.py            # both stores
    python bench/dashboard_plans.py sqlite     # one

Not a ``bench_*.py`` script: ``nox -s bench`` does not run it.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
import uuid

import psycopg
import trio

from trexec import durable
from trexec.durable import _postgres_sql, _sqlite_sql
from trexec.durable._store_rules import list_query

ROWS = 1_000_000
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
COMBOS = [
    {},
    {"status": "done"},
    {"status": "awaiting"},
    {"machine": "m3"},
    {"machine": "m3", "status": "stopped"},
    {"key": "k12340"},
    {"key": "k12340", "status": "done"},
    {"machine": "m7", "key": "k777770"},
    {"status": "running"},  # skewed: only the 2,000 oldest rows
    {"machine": "rare"},  # skewed: only the 2,000 oldest rows
]
#: Rows that are all at one end of the table: a plan that walks the primary key
#: backwards and filters would read almost every row to find them.
SKEW = "UPDATE {} SET status = 'running', machine = 'rare' WHERE id <= 2000"
STATUSES = ["done"] * 6 + ["stopped", "cancelled", "awaiting", "scheduled"]


def queries(
    select: str, mark: str, machines: list[str], hint: str = ""
) -> list[tuple[str, str, list[object]]]:
    """A status alone is read machine by machine (spec §12.3.2): ``machines``
    is what the store's ``MACHINES`` query returned."""
    out = []
    for combo in COMBOS:
        for before in (None, ROWS // 2):
            sql, params = list_query(
                select, mark, limit=51, after_id=None, before_id=before, newest_first=True,
                key_hint=hint, machines=machines,
                status=combo.get("status"), machine=combo.get("machine"), key=combo.get("key"),
            )  # fmt: skip
            out.append((f"{combo} before={before}", sql, params))
    return out


def check_sqlite() -> None:
    path = f"{tempfile.mkdtemp()}/plans.db"

    async def create() -> None:
        async with durable.open_store(f"sqlite:///{path}") as store:
            await store.migrate()

    trio.run(create)
    with sqlite3.connect(path) as c:
        status = "CASE x % 10 " + " ".join(f"WHEN {i} THEN '{s}'" for i, s in enumerate(STATUSES))
        c.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)"
            " INSERT INTO instances (machine, version, step, status, state, key, created_at,"
            f" updated_at) SELECT 'm' || (x % 10), 1, 'start', {status} END, '{{}}',"
            " CASE WHEN x % 10 = 0 THEN 'k' || x END, x, x FROM n",
            (ROWS,),
        )
        c.execute(SKEW.format("instances"))
        start = time.perf_counter()
        machines = [r[0] for r in c.execute(_sqlite_sql.MACHINES)]
        ms = (time.perf_counter() - start) * 1000
        print(f"sqlite machines: {len(machines)} rows {ms:.2f} ms")
        for label, sql, params in queries(
            _sqlite_sql.LIST, "?", machines, " INDEXED BY instances_key"
        ):
            plan = " | ".join(r[3] for r in c.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            start = time.perf_counter()
            rows = c.execute(sql, params).fetchall()
            ms = (time.perf_counter() - start) * 1000
            print(f"sqlite {label}: {len(rows)} rows {ms:.2f} ms :: {plan}")


def check_postgres() -> None:
    schema = f"plans_{uuid.uuid4().hex[:8]}"
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"

    async def create() -> None:
        async with durable.open_store(url) as store:
            await store.migrate()

    trio.run(create)
    try:
        with psycopg.connect(url, autocommit=True) as c:
            statuses = "ARRAY[" + ",".join(f"'{s}'" for s in STATUSES) + "]"
            c.execute(
                "INSERT INTO trexec_instances (machine, version, step, status, state, key,"
                " created_at, updated_at) SELECT 'm' || (x %% 10), 1, 'start',"
                f" ({statuses})[x %% 10 + 1], '{{}}', CASE WHEN x %% 10 = 0 THEN 'k' || x END,"
                " now(), now() FROM generate_series(1, %s) AS x",
                (ROWS,),
            )
            c.execute(SKEW.format("trexec_instances"))
            c.execute("ANALYZE trexec_instances")
            plan = [r[0] for r in c.execute(f"EXPLAIN ANALYZE {_postgres_sql.MACHINES}")]
            print(f"postgres machines: {plan[-1].strip()}")
            machines = [r[0] for r in c.execute(_postgres_sql.MACHINES)]
            for label, sql, params in queries(_postgres_sql.LIST, "%s", machines):
                plan = [r[0] for r in c.execute(f"EXPLAIN ANALYZE {sql}", params)]
                nodes = " | ".join(p.strip() for p in plan if "Scan" in p or "Sort" in p)
                print(f"postgres {label}: {plan[-1].strip()} :: {nodes}")
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    kinds = sys.argv[1:] or ["sqlite", "postgresql"]
    if "sqlite" in kinds:
        check_sqlite()
    if "postgresql" in kinds:
        check_postgres()
