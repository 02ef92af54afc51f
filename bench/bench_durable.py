"""Durable engine on SQLite: no-op steps/s, batched and unbatched, against a raw
sqlite3 claim+complete loop measured in the same run.

    python bench/bench_durable.py [--store sqlite:///path] [--instances N] [--workers W]

Workload: N instances of a three-step machine (``a`` -> ``b`` -> ``c`` -> Done,
each step a no-op) are inserted first (one transaction); then an engine with W
workers drains them; figure = steps/s from the engine's start until every
instance is done (insert time excluded). Run once with batch claims and grouped
completions (``batch_size=64``) with the store's default calls (``auto``, spec
§5.11.7: the engine's short writes inline while uncontended), again with every
call on the store's thread (``?calls=thread``, spec §5.11.1: a hop there and
back per call) and with every call inline on the Trio thread (``?calls=inline``,
spec §5.11.6), and once with ``batch_size=1`` (claims of one row; the completer still commits up to
``workers + 1`` outcomes at once, spec §5.5.3, and a plain ``Next`` keeps its
lease, spec §5.5.13).

Baseline (the ceiling): the least a durable queue must do per step, written by
hand with stdlib sqlite3 in one thread, same file settings (WAL,
synchronous=NORMAL): one ``BEGIN IMMEDIATE`` transaction claims a batch of rows
(``UPDATE ... RETURNING``) and one completes the batch, until every row has
taken three steps.

Latency: signal -> next step, in one process on the same store: an instance
parks on ``Await(["go"])``; the figure is the time from ``engine.signal`` until
its next step starts (the step reads the clock), p50 and p99 over ``--signals``.

``--store postgresql://...`` runs ``bench_durable_pg.py`` instead.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sqlite3
import statistics
import sys
import tempfile
import time

import trio

from trexec import durable, telemetry

HERE = pathlib.Path(__file__).parent
RESULTS = HERE / "results"


class ThreeSteps(durable.Machine):
    name = "bench_three_steps"

    async def step(self, step, ctx):
        if step == "a":
            return durable.Next("b", None)
        if step == "b":
            return durable.Next("c", None)
        return durable.Done(None)


async def steps_per_second(store: durable.Store, instances: int, workers: int, batch: int) -> float:
    """Insert ``instances`` ThreeSteps (1,000 a transaction), then drain them with
    one engine; steps/s from the engine's start until every instance is done."""
    async with durable.open_engine(store, workers=0) as producer:
        for start in range(0, instances, 1000):
            count = min(1000, instances - start)
            await producer.insert_many([durable.InsertSpec(ThreeSteps, None, step="a")] * count)
    finished = trio.Event()
    done = 0

    def count_done(name, measurements, metadata):
        nonlocal done
        if metadata["kind"] == "done" and metadata["commit"] == "applied":
            done += 1
            if done == instances:
                finished.set()

    detach = telemetry.attach(count_done, prefix=("trexec", "durable", "step", "stop"))
    try:
        started = time.perf_counter()
        async with durable.open_engine(store, [ThreeSteps], workers=workers, batch_size=batch):
            await finished.wait()
            elapsed = time.perf_counter() - started
    finally:
        detach()
    return 3 * instances / elapsed


async def trexec_steps_per_second(url: str, instances: int, workers: int, batch: int) -> float:
    async with durable.open_store(url) as store:
        return await steps_per_second(store, instances, workers, batch)


class Awaiter(durable.Machine):
    """Parks on signal "go"; the next step reports when it ran."""

    name = "bench_awaiter"

    async def step(self, step, ctx):
        if step == "start":
            return durable.Await(["go"], "woken", None)
        return durable.Done({"t": time.perf_counter()})


async def signal_latencies(url: str, signals: int) -> list[float]:
    latencies = []
    async with (
        durable.open_store(url) as store,
        durable.open_engine(store, [Awaiter], workers=8) as engine,
    ):
        for _ in range(signals):
            id_ = await engine.insert(Awaiter, None)
            while (await engine.get(id_)).status != "awaiting":
                await trio.sleep(0.001)
            sent = time.perf_counter()
            await engine.signal(id_, "go")
            done = await engine.wait(id_, timeout=30)
            latencies.append(done.result["t"] - sent)
    return sorted(latencies)


def raw_sqlite_steps_per_second(path: str, instances: int, batch: int) -> float:
    """Claim a batch in one transaction, complete it in another: the ceiling."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("PRAGMA synchronous = NORMAL")
    c.execute(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, step INTEGER NOT NULL, status TEXT NOT NULL,"
        " state TEXT NOT NULL, run_at REAL NOT NULL, token INTEGER NOT NULL DEFAULT 0,"
        " lease REAL)"
    )
    c.execute("CREATE INDEX jobs_runnable ON jobs (run_at) WHERE status = 'scheduled'")
    c.execute("BEGIN IMMEDIATE")
    c.executemany(
        "INSERT INTO jobs (step, status, state, run_at) VALUES (0, 'scheduled', 'null', 0)",
        [()] * instances,
    )
    c.execute("COMMIT")
    steps = 0
    started = time.perf_counter()
    while True:
        now = time.time()
        c.execute("BEGIN IMMEDIATE")
        rows = c.execute(
            "UPDATE jobs SET status = 'running', token = token + 1, lease = ?"
            " WHERE id IN (SELECT id FROM jobs WHERE status = 'scheduled' AND run_at <= ?"
            " ORDER BY run_at LIMIT ?) RETURNING id, step, token, state",
            (now + 30, now, batch),
        ).fetchall()
        c.execute("COMMIT")
        if not rows:
            break
        c.execute("BEGIN IMMEDIATE")
        for id_, step, token, _state in rows:
            status = "done" if step == 2 else "scheduled"
            c.execute(
                "UPDATE jobs SET step = ?, status = ?, state = 'null', lease = NULL"
                " WHERE id = ? AND token = ? AND status = 'running'",
                (step + 1, status, id_, token),
            )
        c.execute("COMMIT")
        steps += len(rows)
    elapsed = time.perf_counter() - started
    c.close()
    assert steps == 3 * instances
    return steps / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="store URL (default: a temp SQLite file)")
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--signals", type=int, default=200, help="latency samples")
    args, _rest = parser.parse_known_args(argv)
    if args.store and args.store.startswith(("postgresql", "postgres")):
        sys.path.insert(0, str(HERE))
        import bench_durable_pg

        bench_durable_pg.main([*(argv if argv is not None else sys.argv[1:])])
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        # Warm-up, not measured: the first engine in a process ran ~15% slower.
        trio.run(trexec_steps_per_second, f"sqlite:///{tmp}/warm-up.db", 2000, args.workers, 64)
        for batch, calls in ((64, "auto"), (64, "thread"), (64, "inline"), (1, "auto")):
            url = args.store or f"sqlite:///{tmp}/trexec-{batch}-{calls}.db"
            if calls != "auto":  # spec §5.11.7: where the store's calls run
                url += ("&" if "?" in url else "?") + f"calls={calls}"
            ours = trio.run(trexec_steps_per_second, url, args.instances, args.workers, batch)
            raw = raw_sqlite_steps_per_second(
                f"{tmp}/raw-{batch}-{calls}.db", args.instances, batch
            )
            rows.append((batch, calls, ours, raw))
        latencies = trio.run(signal_latencies, args.store or f"sqlite:///{tmp}/latency.db",
                             args.signals)  # fmt: skip
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print("# Durable engine on SQLite\n")
    print(
        f"{args.instances:,} three-step no-op instances, {args.workers} workers,"
        " WAL + synchronous=NORMAL; steps/s (higher is better).\n"
    )
    print("| batch size | trexec steps/s | raw sqlite3 loop steps/s | ratio |")
    print("|---|---|---|---|")
    for batch, calls, ours, raw in rows:
        label = str(batch) if calls == "auto" else f"{batch}, {calls}"
        print(f"| {label} | {ours:,.0f} | {raw:,.0f} | {ours / raw:.2f} |")
    print("\n# Signal to next step on SQLite\n")
    print(f"{len(latencies)} signals, one process, 8 workers; milliseconds (lower is better).\n")
    print("| | p50 ms | p99 ms |")
    print("|---|---|---|")
    print(f"| trexec signal -> next step | {p50 * 1000:.2f} | {p99 * 1000:.2f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "durable.json").write_text(
        json.dumps(
            {
                "instances": args.instances,
                "workers": args.workers,
                "runs": [
                    {"batch": b, "calls": k, "trexec_steps_per_s": o, "raw_sqlite3_steps_per_s": r}
                    for b, k, o, r in rows
                ],
                "latency_p50_ms": p50 * 1000,
                "latency_p99_ms": p99 * 1000,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
