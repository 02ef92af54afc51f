"""Workflows against machines, same run, same store: steps/s of no-op workflow
steps next to steps/s of a three-step durable machine (issue #15, goal 1).

    python bench/bench_workflows.py [--runs N] [--workers W] [--batch B]
        [--repeat R] [--stores sqlite,postgresql] [--no-dbos]

Workloads (every step a no-op), one engine in one process, W workers, batch B:

* machine: N instances of a three-step machine (``a`` -> ``b`` -> ``c`` -> Done);
* linear: N runs of a three-step chain workflow (``a`` -> ``b`` -> ``c``);
* fan-out: N/4 runs of ``first`` -> 8 parallel steps -> ``last`` (10 steps a run).

Everything is inserted before the clock starts (runs with ``start_workflow``,
with an engine of no workers); the figure is user-visible steps/s (machine
steps, or workflow steps) from the engine's start until every run is finished.
The ratio is workflow steps/s over machine steps/s, measured in the same run.
Each figure is the median of R rounds (3 by default), the workloads' rounds
interleaved on one store. N is 3,000 by default: a round of 1,000 machines
lasts under 0.1 s, and the engine's start and stop then weigh on the machine
figure more than on the workflows' (the ratio read about 10% high).

DBOS (when installed, as in ``nox -s bench``) runs the same linear three-step
no-op workflow in a child process, with its system database on the same kind of
store (a SQLite file; a fresh PostgreSQL database on the same server), in the
same run: the last columns are DBOS steps/s and trexec linear / DBOS.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import pathlib
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

import trio

from trexec import durable, telemetry, workflows

HERE = pathlib.Path(__file__).parent
RESULTS = HERE / "results"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class ThreeSteps(durable.Machine):
    name = "bench_wf_machine"

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        if step == "a":
            return durable.Next("b", None)
        if step == "b":
            return durable.Next("c", None)
        return durable.Done(None)


async def _noop(ctx: workflows.StepContext) -> None:
    return None


LINEAR = workflows.Workflow(
    "bench_linear",
    [
        workflows.Step("a", _noop),
        workflows.Step("b", _noop, after=["a"]),
        workflows.Step("c", _noop, after=["b"]),
    ],
)
FAN = workflows.Workflow(
    "bench_fan",
    [
        workflows.Step("first", _noop),
        *[workflows.Step(f"p{i}", _noop, after=["first"]) for i in range(8)],
        workflows.Step("last", _noop, after=[f"p{i}" for i in range(8)]),
    ],
)


async def _drain(store: durable.Store, machine: str, count: int, workers: int, batch: int,
                 machines: list[Any], wfs: list[workflows.Workflow]) -> float:  # fmt: skip
    finished = trio.Event()
    done = 0

    def count_done(name: Any, measurements: Any, metadata: Any) -> None:
        nonlocal done
        if (
            metadata["machine"] == machine
            and metadata["kind"] in ("done", "stop")
            and metadata["commit"] == "applied"
        ):
            done += 1
            if done == count:
                finished.set()

    detach = telemetry.attach(count_done, prefix=("trexec", "durable", "step", "stop"))
    try:
        started = time.perf_counter()
        async with durable.open_engine(
            store, machines, workflows=wfs, workers=workers, batch_size=batch
        ):
            await finished.wait()
            elapsed = time.perf_counter() - started
    finally:
        detach()
    return elapsed


async def machine_rate(store: durable.Store, n: int, workers: int, batch: int) -> float:
    async with durable.open_engine(store, workers=0) as producer:
        for start in range(0, n, 1000):
            count = min(1000, n - start)
            await producer.insert_many([durable.InsertSpec(ThreeSteps, None, step="a")] * count)
    elapsed = await _drain(store, ThreeSteps.name, n, workers, batch, [ThreeSteps], [])
    return 3 * n / elapsed


async def workflow_rate(
    store: durable.Store, wf: workflows.Workflow, runs: int, workers: int, batch: int
) -> float:
    async with durable.open_engine(store, workers=0, workflows=[wf]) as producer:
        for _ in range(runs):
            await producer.start_workflow(wf, None)
    elapsed = await _drain(store, f"workflow:{wf.name}", runs, workers, batch, [], [wf])
    return len(wf.step_names) * runs / elapsed


async def measure(
    url: str, schema: str | None, runs: int, workers: int, batch: int, repeat: int
) -> dict[str, float]:
    """The median of ``repeat`` rounds of each workload, the rounds interleaved
    (machine, linear, fan-out, machine, ...): one round of a few thousand steps
    lasts a fraction of a second, and a single one is at the mercy of a noisy
    moment of the machine."""
    options: dict[str, Any] = {} if schema is None else {"schema": schema}
    rounds: dict[str, list[float]] = {"machine": [], "linear": [], "fanout": []}
    async with durable.open_store(url, **options) as store:
        for _ in range(repeat):
            rounds["machine"].append(await machine_rate(store, runs, workers, batch))
            rounds["linear"].append(await workflow_rate(store, LINEAR, runs, workers, batch))
            fan_runs = max(1, runs // 4)
            rounds["fanout"].append(await workflow_rate(store, FAN, fan_runs, workers, batch))
    return {name: statistics.median(figures) for name, figures in rounds.items()}


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _dbos_child(workflows: int, system_db: str, out: Any) -> None:
    import asyncio

    sys.path.insert(0, str(HERE))
    import bench_peers_sqlite

    figures = asyncio.run(bench_peers_sqlite.run_dbos(workflows, 0, system_db))
    out.put(figures["steps_per_s"])


def dbos_rate(kind: str, workflows: int) -> float | None:
    """DBOS steps/s for ``workflows`` three-step runs, or None without dbos."""
    if importlib.util.find_spec("dbos") is None:
        return None
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sqlite":
            system_db = f"sqlite:///{tmp}/dbos.sqlite"
        else:
            system_db = PG_URL.rsplit("/", 1)[0] + "/trexec_bench_dbos_wf"
            _recreate_db("trexec_bench_dbos_wf")
        out = ctx.Queue()
        child = ctx.Process(target=_dbos_child, args=(workflows, system_db, out))
        child.start()
        child.join(timeout=900)
        if kind != "sqlite":
            _recreate_db("trexec_bench_dbos_wf", create=False)
        return float(out.get(timeout=1)) if child.exitcode == 0 else None


def _recreate_db(db: str, *, create: bool = True) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{db}"')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS columns")
    args, _rest = parser.parse_known_args(argv)
    rows: list[tuple[str, dict[str, float]]] = []
    for kind in args.stores.split(","):
        if kind == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                figures = trio.run(measure, f"sqlite:///{tmp}/wf.db", None, args.runs,
                                   args.workers, args.batch, args.repeat)  # fmt: skip
        else:
            schema = f"bench_wf_{uuid.uuid4().hex[:8]}"
            try:
                figures = trio.run(
                    measure, PG_URL, schema, args.runs, args.workers, args.batch, args.repeat
                )
            finally:
                _drop_schema(schema)
        dbos = None if args.no_dbos else dbos_rate(kind, args.runs)
        if dbos is not None:
            figures["dbos"] = dbos
        rows.append((kind, figures))
    print("# Workflows against machines\n")
    print(
        f"{args.runs:,} three-step machines, {args.runs:,} linear three-step runs and"
        f" {max(1, args.runs // 4):,} fan-out runs (1 -> 8 -> 1); one process,"
        f" {args.workers} workers, batch {args.batch}; no-op steps/s (higher is better),"
        f" the median of {args.repeat} interleaved rounds of each.\n"
    )
    print(
        "| store | machine steps/s | linear workflow steps/s | ratio | fan-out workflow steps/s"
        " | ratio | DBOS linear steps/s | trexec / DBOS |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, f in rows:
        dbos = f.get("dbos")
        peer = "n/a | n/a" if dbos is None else f"{dbos:,.0f} | {f['linear'] / dbos:.2f}"
        print(
            f"| {kind} | {f['machine']:,.0f} | {f['linear']:,.0f}"
            f" | {f['linear'] / f['machine']:.2f}"
            f" | {f['fanout']:,.0f} | {f['fanout'] / f['machine']:.2f} | {peer} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "workflows.json").write_text(
        json.dumps(
            {
                "runs": args.runs,
                "workers": args.workers,
                "batch": args.batch,
                "repeat": args.repeat,
                "stores": dict(rows),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
