"""Table growth: durable no-op steps/s when the instances table already holds 0 to
1M finished rows, on PostgreSQL and SQLite, and again after pruning them.

    python bench/bench_table_growth.py [--rows 0,10000,100000,1000000] [--instances N]
                                       [--workers W] [--batch B]
                                       [--stores postgresql,sqlite] [--postgres URL]

Workload, for each row count R and each store: a fresh store (a new PostgreSQL
schema, a new SQLite file) is migrated and R finished (``done``) instances of
the benchmark's own machine are written straight in SQL, one statement
(``INSERT ... SELECT`` over ``generate_series`` on PostgreSQL, over a recursive
CTE on SQLite), then ``ANALYZE``. N instances of a three-step machine (``a`` ->
``b`` -> ``c`` -> Done, each step a no-op) are inserted and one engine (W
workers, batch size B) drains them; figure = steps/s from the engine's start
until every instance is done (insert time excluded). Then ``store.prune(0)``
deletes every finished row (the R and the N just run; its time is reported)
and the same N-instance run is measured again.

What keeps throughput flat: every query on the hot path reads a partial index
holding only the rows it can want. Claims and ``next_due`` read the runnable
index (``status IN ('scheduled', 'awaiting')``), the reaper the leases index
(``status = 'running'``), a live business key the live-key unique index;
completions, heartbeats and releases go by primary key. Finished rows are in
none of the partial indexes, so a claim is an index scan over live rows
whatever the table's size; only the primary key and the status and key indexes
grow (a logarithmic cost per insert). Pruning bounds the tables' size on disk,
not the engine's speed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sqlite3
import sys
import tempfile
import time
import uuid

import trio
from bench_durable import ThreeSteps, steps_per_second  # the same workload

from trexec import durable

HERE = pathlib.Path(__file__).parent
RESULTS = HERE / "results"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


# --- finished rows, written straight in SQL ------------------------------------------

PG_FILL = (
    "INSERT INTO trexec_instances (machine, version, step, status, state, result,"
    " attempt, created_at, updated_at)"
    " SELECT %s, 1, 'c', 'done', 'null', 'null', 1,"
    " now() - interval '1 day', now() - interval '1 day' FROM generate_series(1, %s)"
)
SQLITE_FILL = (
    "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
    " INSERT INTO instances (machine, version, step, status, state, result, attempt,"
    " created_at, updated_at) SELECT ?, 1, 'c', 'done', 'null', 'null', 1, ?, ? FROM n"
)


def fill_postgres(url: str, schema: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if rows:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute(PG_FILL, (ThreeSteps.name, rows))
        conn.execute(f'ANALYZE "{schema}".trexec_instances')


def fill_sqlite(path: str, rows: int) -> None:
    then = time.time() - 86400
    with sqlite3.connect(path, isolation_level=None) as conn:
        if rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(SQLITE_FILL, (rows, ThreeSteps.name, then, then))
            conn.execute("COMMIT")
        conn.execute("ANALYZE")
    conn.close()


def postgres_size(url: str, schema: str) -> float:
    """The instances table with its indexes, in MB."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size(%s)", (f'"{schema}".trexec_instances',)
        ).fetchone()
    return (row[0] if row else 0) / 1e6


# --- one measurement ----------------------------------------------------------------------


async def measure(
    kind: str, url: str, rows: int, instances: int, workers: int, batch: int, tmp: str
) -> dict[str, float]:
    """Fill, run, prune, run again, on a fresh store of ``kind``."""
    schema = f"bench_growth_{uuid.uuid4().hex[:8]}"
    path = f"{tmp}/growth-{rows}.db"
    options = {"schema": schema} if kind == "postgresql" else {}
    target = url if kind == "postgresql" else f"sqlite:///{path}"
    try:
        async with durable.open_store(target, **options) as store:
            await store.migrate()
            t0 = time.perf_counter()
            if kind == "postgresql":
                await trio.to_thread.run_sync(fill_postgres, url, schema, rows)
            else:
                await trio.to_thread.run_sync(fill_sqlite, path, rows)
            fill = time.perf_counter() - t0
            size = await trio.to_thread.run_sync(postgres_size, url, schema) if options else 0.0
            before = await steps_per_second(store, instances, workers, batch)
            t0 = time.perf_counter()
            pruned = await store.prune(0)
            prune = time.perf_counter() - t0
            after = await steps_per_second(store, instances, workers, batch)
    finally:
        if kind == "postgresql":
            await trio.to_thread.run_sync(_drop, url, schema)
    assert pruned == rows + instances, (pruned, rows, instances)
    return {
        "rows": rows,
        "fill_s": fill,
        "size_mb": size,
        "steps_per_s": before,
        "prune_s": prune,
        "pruned": pruned,
        "steps_per_s_after_prune": after,
    }


def _drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- the tables -------------------------------------------------------------------------

TITLES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
#: Flat means: with the most finished rows, at least this share of the empty table's steps/s.
GOAL = 0.8


def print_table(kind: str, runs: list[dict[str, float]], instances: int) -> None:
    print(f"## {TITLES[kind]}\n")
    print(
        f"{instances:,} three-step no-op instances per run; steps/s (higher is better)"
        " with R finished rows already in the table, then after `prune(0)` deleted them.\n"
    )
    print("| finished rows in the table | steps/s | steps/s after prune | prune s |")
    print("|---|---:|---:|---:|")
    for run in runs:
        print(
            f"| trexec, {int(run['rows']):,} finished rows | {run['steps_per_s']:,.0f}"
            f" | {run['steps_per_s_after_prune']:,.0f} | {run['prune_s']:.2f} |"
        )
    first = runs[0]["steps_per_s"]
    if len(runs) > 1 and first:
        last = runs[-1]
        print(
            f"\nWith {int(last['rows']):,} finished rows: {last['steps_per_s'] / first:.0%}"
            " of the empty table's steps/s; prune deleted"
            f" {int(last['pruned']):,} rows in {last['prune_s']:.1f} s"
            f" ({last['pruned'] / max(last['prune_s'], 1e-9):,.0f} rows/s)."
        )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", default="0,10000,100000,1000000",
                        help="finished row counts to measure, comma-separated")  # fmt: skip
    parser.add_argument("--instances", type=int, default=2000, help="instances per run")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32, help="claim/complete batch size")
    parser.add_argument("--stores", default="postgresql,sqlite")
    parser.add_argument("--postgres", default=DEFAULT_URL, help="a postgresql:// URL")
    args = parser.parse_args(argv)
    rows = [int(r.replace("_", "")) for r in args.rows.split(",")]
    kinds = [k.strip() for k in args.stores.split(",")]
    for kind in kinds:
        if kind not in TITLES:
            parser.error(f"--stores: unknown store {kind!r} (postgresql, sqlite)")
    print("# Table growth\n")
    print(
        f"One engine, {args.workers} workers, batch size {args.batch}; the finished rows"
        " belong to the benchmark's own machine.\n"
    )
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            runs = []
            for count in rows:
                run = trio.run(
                    measure, kind, args.postgres, count, args.instances, args.workers,
                    args.batch, tmp,
                )  # fmt: skip
                runs.append(run)
                print(
                    f"  {TITLES[kind]}, {count:,} finished rows: {run['steps_per_s']:,.0f} steps/s,"
                    f" {run['steps_per_s_after_prune']:,.0f} after a {run['prune_s']:.1f} s prune",
                    file=sys.stderr,
                    flush=True,
                )
            results[kind] = runs
            print_table(kind, runs, args.instances)
    flat = [
        (TITLES[kind], runs[-1]["steps_per_s"] / runs[0]["steps_per_s"], int(runs[-1]["rows"]))
        for kind, runs in results.items()
        if len(runs) > 1 and runs[0]["steps_per_s"]
    ]
    if flat:
        figures = ", ".join(f"{name} {ratio:.0%} with {rows:,}" for name, ratio, rows in flat)
        met = "met" if all(ratio >= GOAL for _, ratio, _ in flat) else "NOT met"
        print(
            f"Target: steps/s with the most finished rows >= {GOAL:.0%} of the empty"
            f" table's: {figures} finished rows: {met}."
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "table_growth.json").write_text(
        json.dumps(
            {
                "instances": args.instances,
                "workers": args.workers,
                "batch": args.batch,
                "stores": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
