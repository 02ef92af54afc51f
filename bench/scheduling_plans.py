"""Check that the claim stays index-backed at 1M rows with priorities and
concurrency keys (spec §11.1, §11.2): fills a SQLite file and a PostgreSQL
schema with 1,000,000 runnable instances (priorities 0..9, a tenth of them with
one of 1,000 concurrency keys, a tenth due only tomorrow), then prints the plan
and time of each statement a claim runs. docs/scheduling.md quotes the output.

    python bench/scheduling_plans.py            # both stores
    python bench/scheduling_plans.py sqlite     # one

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
from trexec.durable import _postgres_sql as pg, _sqlite_sql as lite
from trexec.durable._sql_observe import PostgresObserveSql, SqliteObserveSql

ROWS = 1_000_000
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def check_sqlite() -> None:
    path = f"{tempfile.mkdtemp()}/plans.db"

    async def create() -> None:
        async with durable.open_store(f"sqlite:///{path}") as store:
            await store.migrate()

    trio.run(create)
    now = time.time()
    with sqlite3.connect(path) as c:
        c.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)"
            " INSERT INTO instances (machine, version, step, status, state, run_at, priority,"
            " concurrency_key, created_at, updated_at) SELECT 'm', 1, 'start', 'scheduled', '{}',"
            " CASE WHEN x % 10 = 3 THEN ? + 86400 ELSE ? - 1000 + x / 1000.0 END, x % 10,"
            " CASE WHEN x % 10 = 1 THEN 'k' || (x % 1000) END, 0, 0 FROM n",
            (ROWS, now, now),
        )
        c.execute("ANALYZE")
        machines = "VALUES (?, ?)"
        statements = [
            ("top priority", lite.RUNNABLE_TOP_PRIORITY, []),
            (
                "candidates at priority 9",
                lite.CLAIM_CANDIDATES.format(machines),
                [9, now, "m", 1, 64],
            ),
            ("next priority below 9", lite.RUNNABLE_PRIORITY_BELOW, [9]),
            ("a key's running rows", lite.KEY_RUNNING, ["k1"]),
            ("next_due", lite.NEXT_DUE.format(machines), ["m", 1]),
            ("reaper (rolled back)", lite.REAP_EXPIRED, [now, now, now]),
            ("backlog per machine", SqliteObserveSql.COUNT_RUNNABLE, {"now": now}),
        ]
        for label, sql, params in statements:
            plan = " | ".join(r[3] for r in c.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            start = time.perf_counter()
            rows = c.execute(sql, params).fetchall()
            ms = (time.perf_counter() - start) * 1000
            c.rollback()
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
            c.execute(
                "INSERT INTO trexec_instances (machine, version, step, status, state, run_at,"
                " priority, concurrency_key, created_at, updated_at)"
                " SELECT 'm', 1, 'start', 'scheduled', '{}', CASE WHEN x %% 10 = 3"
                " THEN now() + interval '1 day' ELSE now() - interval '1 hour'"
                " + x * interval '1 ms' END, x %% 10,"
                " CASE WHEN x %% 10 = 1 THEN 'k' || (x %% 1000) END, now(), now()"
                " FROM generate_series(1, %s) AS x",
                (ROWS,),
            )
            c.execute("ANALYZE trexec_instances")
            params = {"machines": ["m"], "versions": [1], "limit": 64, "lease": 30.0}
            for label, sql, args in [
                ("claim (one statement)", pg.CLAIM, params),
                ("claim with rate limits: candidates", pg.CLAIM_CANDIDATES, params),
                ("a key's running rows", pg.KEYS_RUNNING, (["k1", "k2"],)),
                ("next_due", pg.NEXT_DUE, (["m"], [1])),
                ("reaper", pg.REAP_EXPIRED, ()),
                ("backlog per machine", PostgresObserveSql.COUNT_RUNNABLE, {}),
            ]:
                c.execute("BEGIN")
                plan = [r[0] for r in c.execute(f"EXPLAIN ANALYZE {sql}", args)]
                c.execute("ROLLBACK")
                nodes = " | ".join(
                    p.strip() for p in plan if "Scan" in p or "Sort" in p or "Limit" in p
                )
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
