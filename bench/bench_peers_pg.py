"""Peer baselines on PostgreSQL: pgqueuer and procrastinate draining no-op jobs,
and DBOS running three-step no-op workflows with a PostgreSQL system database.

Same server, same machine, same run as trexec's bench_durable_pg.py. Each peer
gets its own database (created here, dropped at the end) so that nothing
collides with trexec's schema. Workload: N no-op jobs enqueued in batches, then
1, 2 and 4 worker processes drain the queue; figure = jobs/s from the first
worker start until the queue is empty (enqueue time excluded). DBOS: N/5
three-step workflows started at once in one process and awaited; its row counts
steps (jobs/s = steps/s), to compare with trexec workflows
(bench_workflows.py measures both side by side).

Peers are installed only in the bench session (`nox -s bench`), never as
trexec dependencies. Usage: python bench/bench_peers_pg.py [--jobs N] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import pathlib
import time

import psycopg

RESULTS = pathlib.Path(__file__).parent / "results"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _dsn(db: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{db}"


def _recreate_db(db: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')


def _drop_db(db: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


# --- pgqueuer -------------------------------------------------------------------


async def _pgq_setup(dsn: str, jobs: int) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    await queries.install()
    for start in range(0, jobs, 1000):
        n = min(1000, jobs - start)
        await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
    await conn.close()


async def _pgq_worker(dsn: str, batch: int) -> None:
    from datetime import timedelta

    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(dsn)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job: object) -> None:
        return None

    await qm.run(
        batch_size=batch,
        mode=QueueExecutionMode.drain,
        dequeue_timeout=timedelta(seconds=0.2),
        log_aggregation_interval=timedelta(0),
    )
    await conn.close()


def _pgq_process(dsn: str, batch: int, start: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    start.wait()
    asyncio.run(_pgq_worker(dsn, batch))


# --- procrastinate --------------------------------------------------------------


def _procrastinate_app(dsn: str):  # type: ignore[no-untyped-def]
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        return None

    return app, noop


async def _proc_setup(dsn: str, jobs: int) -> None:
    app, noop = _procrastinate_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, jobs, 1000):
            n = min(1000, jobs - start)
            await noop.batch_defer_async(*({} for _ in range(n)))


async def _proc_worker(dsn: str, concurrency: int) -> None:
    app, _ = _procrastinate_app(dsn)
    async with app.open_async():
        await app.run_worker_async(queues=["bench"], wait=False, concurrency=concurrency)


def _proc_process(dsn: str, concurrency: int, start: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    import logging

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    start.wait()
    asyncio.run(_proc_worker(dsn, concurrency))


# --- driver ---------------------------------------------------------------------


def _drain(target, args, processes: int) -> float:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=target, args=(*args, start)) for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(1.5)  # let every process import and connect before the clock starts
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join(timeout=300)
        if p.exitcode != 0:
            raise RuntimeError(f"worker exited with {p.exitcode}")
    return time.perf_counter() - t0


def measure(jobs: int, processes: list[int], batch: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, setup, worker, worker_arg in (
        ("pgqueuer", _pgq_setup, _pgq_process, batch),
        ("procrastinate", _proc_setup, _proc_process, batch),
    ):
        db = f"trexec_bench_{name}"
        for n in processes:
            _recreate_db(db)
            asyncio.run(setup(_dsn(db), jobs))
            elapsed = _drain(worker, (_dsn(db), worker_arg), n)
            rows.append({"peer": name, "processes": n, "jobs": jobs, "jobs_per_s": jobs / elapsed})
            print(f"  {name:14} {n} proc: {jobs / elapsed:9.0f} jobs/s", flush=True)
        _drop_db(db)
    return rows


def _dbos_process(dsn: str, workflows: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    import bench_peers_sqlite

    out.put(asyncio.run(bench_peers_sqlite.run_dbos(workflows, 0, dsn))["steps_per_s"])


def measure_dbos(workflows: int) -> dict[str, object]:
    """DBOS (system database on this server): three-step no-op workflows."""
    db = "trexec_bench_dbos"
    _recreate_db(db)
    try:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        p = ctx.Process(target=_dbos_process, args=(_dsn(db), workflows, out))
        p.start()
        p.join(timeout=900)
        if p.exitcode != 0:
            raise RuntimeError(f"DBOS exited with {p.exitcode}")
        rate = float(out.get(timeout=1))
    finally:
        _drop_db(db)
    print(f"  {'DBOS':14} 1 proc: {rate:9.0f} steps/s", flush=True)
    return {"peer": "DBOS workflows (steps)", "processes": 1, "jobs": 3 * workflows,
            "jobs_per_s": rate}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--processes", default="1,2,4")
    args = parser.parse_args(argv)
    processes = [int(p) for p in args.processes.split(",")]
    print(f"peers on PostgreSQL: drain {args.jobs} no-op jobs, batch {args.batch}")
    rows = measure(args.jobs, processes, args.batch)
    rows.append(measure_dbos(max(1, args.jobs // 5)))
    print()
    print("| peer | processes | jobs/s |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {row['peer']} | {row['processes']} | {row['jobs_per_s']:,.0f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers_pg.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
