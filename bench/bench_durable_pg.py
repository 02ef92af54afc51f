"""Durable engine on PostgreSQL: no-op steps/s with 1, 2 and 4 worker processes,
a raw-psycopg ceiling measured in the same run, and signal -> next-step latency.

    python bench/bench_durable_pg.py [--store postgresql://...] [--instances N]
                                     [--workers W] [--batch B] [--processes 1,2,4]
                                     [--signals N] [--peers]

Workload: N instances of a three-step machine (``a`` -> ``b`` -> ``c`` -> Done,
each step a no-op) are inserted first; then P worker processes (each one
``open_store`` + ``open_engine`` with W workers and batch size B) drain them;
figure = steps/s from the moment the workers start until every instance is
done (insert and process start-up excluded).

The ceiling is the least a durable queue must do per step, written by hand with
psycopg: one transaction claims a batch of B rows (``FOR UPDATE SKIP LOCKED``)
and one transaction completes the batch, until every row has taken three
steps, in P processes. Since trexec runs a machine's steps in a row on one
claim (spec §5.5.13: one row write per step, not two), a second raw loop does
the same: it claims a batch, then commits each of its three steps in a
transaction of its own, the rows kept ``running`` until the last. Peer queues
(pgqueuer, procrastinate) are measured by ``bench_peers_pg.py``; pass
``--peers`` to run it here too (needs them installed: ``nox -s bench``).

Each run uses a fresh schema in the target database, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import pathlib
import statistics
import sys
import time
import uuid
from typing import Any

import psycopg
import trio

from trexec import durable

ROOT = pathlib.Path(__file__).parent
RESULTS = ROOT / "results"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
POLL = 1.0  # worker poll interval: wake-ups far faster than this come from NOTIFY


# --- raw psycopg ceiling -----------------------------------------------------------


def _raw_setup(url: str, schema: str, jobs: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {schema}.jobs (id bigserial PRIMARY KEY, status text NOT NULL,"
            " state text NOT NULL, run_at timestamptz NOT NULL DEFAULT now(),"
            " lease_token bigint NOT NULL DEFAULT 0, lease_expires_at timestamptz,"
            " steps int NOT NULL DEFAULT 0)"
        )
        conn.execute(f"CREATE INDEX ON {schema}.jobs (run_at, id) WHERE status = 'scheduled'")
        conn.execute(
            f"INSERT INTO {schema}.jobs (status, state)"
            " SELECT 'scheduled', '{}' FROM generate_series(1, %s)",
            (jobs,),
        )
        conn.execute(f"ANALYZE {schema}.jobs")


def _raw_worker(
    url: str,
    schema: str,
    batch: int,
    chained: bool,
    start: mp.synchronize.Event,  # type: ignore[name-defined]
) -> None:
    """Claim a batch, then commit its three steps. ``chained``: as trexec runs
    them (spec §5.5.13), the first two keep the rows ``running`` (lease renewed,
    same token), the third is done: four transactions per batch instead of
    three claims and three commits, one row write per step instead of two."""
    claim = (
        f"UPDATE {schema}.jobs j SET status = 'running', lease_token = lease_token + 1,"
        " lease_expires_at = now() + interval '30 seconds'"
        f" FROM (SELECT id FROM {schema}.jobs WHERE status = 'scheduled' AND run_at <= now()"
        " ORDER BY run_at, id LIMIT %s FOR UPDATE SKIP LOCKED) c"
        " WHERE j.id = c.id RETURNING j.id, j.lease_token, j.state"
    )
    if chained:
        complete = (
            f"UPDATE {schema}.jobs j SET steps = steps + 1, state = c.state,"
            " status = CASE WHEN steps + 1 >= 3 THEN 'done' ELSE 'running' END,"
            " lease_expires_at = CASE WHEN steps + 1 >= 3 THEN NULL"
            " ELSE now() + interval '30 seconds' END"
        )
    else:
        complete = (
            f"UPDATE {schema}.jobs j SET steps = steps + 1, state = c.state, run_at = now(),"
            " status = CASE WHEN steps + 1 >= 3 THEN 'done' ELSE 'scheduled' END,"
            " lease_expires_at = NULL"
        )
    complete += (
        " FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS c(id, token, state)"
        " WHERE j.id = c.id AND j.lease_token = c.token AND j.status = 'running'"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        start.wait()
        while True:
            with conn.transaction():
                rows = conn.execute(claim, (batch,)).fetchall()
            if not rows:
                return
            args = ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
            for _ in range(3 if chained else 1):
                with conn.transaction():
                    conn.execute(complete, args)


def _run_processes(target, args, processes: int) -> float:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=target, args=(*args, start)) for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every process imports and connects before the clock starts
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join(timeout=300)
        if p.exitcode != 0:
            raise RuntimeError(f"worker exited with {p.exitcode}")
    return time.perf_counter() - t0


def measure_raw(url: str, jobs: int, batch: int, processes: int, *, chained: bool = False) -> float:
    schema = f"bench_raw_{uuid.uuid4().hex[:8]}"
    _raw_setup(url, schema, jobs)
    try:
        return 3 * jobs / _run_processes(_raw_worker, (url, schema, batch, chained), processes)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# --- trexec ------------------------------------------------------------------------


class ThreeSteps(durable.Machine):
    name = "bench_pg_three_steps"

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        if step == "a":
            return durable.Next("b", None)
        if step == "b":
            return durable.Next("c", None)
        return durable.Done(None)


class Awaiter(durable.Machine):
    """Parks on signal "go"; the next step reports when it ran (CLOCK_MONOTONIC,
    shared by every process on the machine)."""

    name = "bench_pg_awaiter"

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        if step == "start":
            return durable.Await(["go"], "woken", None)
        return durable.Done({"t": time.monotonic()})


def _schema_url(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


async def _engine_process(url: str, workers: int, batch: int, start: Any, stop: Any) -> None:
    async with durable.open_store(url) as store:
        await trio.to_thread.run_sync(start.wait)
        async with durable.open_engine(
            store, [ThreeSteps, Awaiter], workers=workers, batch_size=batch, poll_interval=POLL
        ):  # the engine's picker subscribes to the store's NOTIFY wake-ups
            await trio.to_thread.run_sync(stop.wait)


def _engine_worker(url: str, workers: int, batch: int, start: Any, stop: Any) -> None:
    trio.run(_engine_process, url, workers, batch, start, stop)


def _all_done(conn: psycopg.Connection[Any], schema: str) -> bool:
    # Stops at the first unfinished row: a count(*) of the done rows polled every
    # 10 ms cost the server ~0.5 ms a poll (heap visits), CPU the raw loop does
    # not pay.
    row = conn.execute(
        f"SELECT NOT EXISTS (SELECT 1 FROM {schema}.trexec_instances WHERE status <> 'done')"
    ).fetchone()
    return bool(row and row[0])


async def _insert(url: str, machine: type[durable.Machine], n: int) -> list[int]:
    async with durable.open_store(url) as store, durable.open_engine(store, workers=0) as engine:
        ids: list[int] = []
        for start in range(0, n, 1000):
            specs = [
                durable.InsertSpec(machine, None, step="a") for _ in range(min(1000, n - start))
            ]
            ids += await engine.insert_many(specs)
        return ids


def measure_trexec(url: str, instances: int, workers: int, batch: int, processes: int) -> float:
    schema = f"bench_trexec_{uuid.uuid4().hex[:8]}"
    surl = _schema_url(url, schema)
    try:
        trio.run(_insert, surl, ThreeSteps, instances)
        ctx = mp.get_context("spawn")
        start, stop = ctx.Event(), ctx.Event()
        procs = [
            ctx.Process(target=_engine_worker, args=(surl, workers, batch, start, stop))
            for _ in range(processes)
        ]
        for p in procs:
            p.start()
        time.sleep(1.5)  # every process imports and connects before the clock starts
        try:
            # One connection for the whole count: a new one per poll would fork a
            # server backend 100 times a second, CPU taken from the workers measured.
            with psycopg.connect(url, autocommit=True) as counter:
                t0 = time.perf_counter()
                start.set()
                while not _all_done(counter, schema):
                    time.sleep(0.01)
                elapsed = time.perf_counter() - t0
        finally:  # a failed count must not leave the workers waiting forever
            start.set()
            stop.set()
            for p in procs:
                p.join(timeout=60)
        return 3 * instances / elapsed
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# --- signal -> next step latency ------------------------------------------------------


async def _latency(url: str, signals: int) -> list[float]:
    latencies: list[float] = []
    async with durable.open_store(url) as store, durable.open_engine(store, workers=0) as engine:
        for _ in range(signals):
            id_ = await engine.insert(Awaiter, None)
            while (await engine.get(id_)).status != "awaiting":
                await trio.sleep(0.005)
            t0 = time.monotonic()
            await engine.signal(id_, "go")
            done = await engine.wait(id_, timeout=30)
            latencies.append(done.result["t"] - t0)
    return latencies


def measure_latency(url: str, signals: int) -> tuple[float, float]:
    """Signal sent by this process, next step run by a worker *process* woken
    by NOTIFY (it polls only every POLL seconds)."""
    schema = f"bench_latency_{uuid.uuid4().hex[:8]}"
    surl = _schema_url(url, schema)
    trio.run(_insert, surl, ThreeSteps, 0)  # migrates
    ctx = mp.get_context("spawn")
    start, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_engine_worker, args=(surl, 8, 16, start, stop))
    proc.start()
    start.set()
    try:
        latencies = sorted(trio.run(_latency, surl, signals))
    finally:
        stop.set()
        proc.join(timeout=60)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return p50, p99


# --- the table --------------------------------------------------------------------------


def _peers(
    url: str, instances: int, batch: int, processes: list[int]
) -> dict[int, dict[str, float]]:
    """pgqueuer/procrastinate jobs/s by process count, from bench_peers_pg.py: run
    here with --peers, else read from its last results file if there is one."""
    sys.path.insert(0, str(ROOT))
    found: dict[int, dict[str, float]] = {}
    rows: list[dict[str, Any]] = []
    try:
        import bench_peers_pg  # type: ignore[import-not-found]

        rows = bench_peers_pg.measure(instances, processes, batch)
    except Exception as exc:  # peers not installed: say so in the table
        print(f"  peers not measured in this run ({type(exc).__name__}: {exc})")
    for row in rows:
        found.setdefault(int(row["processes"]), {})[str(row["peer"])] = float(row["jobs_per_s"])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", default=DEFAULT_URL, help="a postgresql:// URL")
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=32, help="step tasks per process")
    parser.add_argument("--batch", type=int, default=32, help="claim/complete batch size")
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--signals", type=int, default=100)
    parser.add_argument("--peers", action="store_true", help="also run bench_peers_pg.py")
    args = parser.parse_args(argv)
    url, processes = args.store, [int(p) for p in args.processes.split(",")]
    print(
        f"durable on PostgreSQL: {args.instances} three-step no-op instances,"
        f" {args.workers} workers/process, batch {args.batch}"
    )
    rows = []
    for n in processes:
        ours = measure_trexec(url, args.instances, args.workers, args.batch, n)
        raw = measure_raw(url, args.instances, args.batch, n)
        chained = measure_raw(url, args.instances, args.batch, n, chained=True)
        rows.append((n, ours, raw, chained))
        print(f"  {n} proc: trexec {ours:,.0f} steps/s, raw psycopg {raw:,.0f} steps/s,"
              f" raw with steps in a row {chained:,.0f} steps/s", flush=True)  # fmt: skip
    peers = _peers(url, args.instances, args.batch, processes) if args.peers else {}
    p50, p99 = measure_latency(url, args.signals)
    print()
    print("| processes | trexec steps/s | raw psycopg ceiling | trexec / ceiling"
          " | raw, steps in a row | trexec / raw in a row"
          " | pgqueuer jobs/s | procrastinate jobs/s |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, ours, raw, chained in rows:
        peer = peers.get(n, {})
        pgq = f"{peer['pgqueuer']:,.0f}" if "pgqueuer" in peer else "(--peers)"
        pro = f"{peer['procrastinate']:,.0f}" if "procrastinate" in peer else "(--peers)"
        print(f"| {n} | {ours:,.0f} | {raw:,.0f} | {ours / raw:.0%} | {chained:,.0f}"
              f" | {ours / chained:.0%} | {pgq} | {pro} |")  # fmt: skip
    print()
    print(f"signal -> next step in another process (NOTIFY), {args.signals} signals:"
          f" p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
          f" (poll interval {POLL:.0f} s)")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "durable_pg.json").write_text(
        json.dumps(
            {
                "rows": [
                    {"processes": n, "trexec": o, "raw": r, "raw_in_a_row": c}
                    for n, o, r, c in rows
                ],
                "peers": peers,
                "latency_p50": p50,
                "latency_p99": p99,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
