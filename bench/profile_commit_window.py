"""Inline workflows with ``commit_window=0`` against the default window, next to a
three-step machine: engine steps (applied commits), process CPU time (every
thread) per user-visible step, and steps/s (SQLite; bench/optimisations.md).

    python bench/profile_commit_window.py [--runs N]

Not part of ``nox -s bench``: a profile for the write-up of the commit window,
whose comparable figures are bench/bench_workflows.py's.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import attrs
import trio
from bench_workflows import FAN, LINEAR, ThreeSteps

from trexec import durable, telemetry, workflows


def with_window(wf: workflows.Workflow, window: float) -> workflows.Workflow:
    return attrs.evolve(wf, commit_window=window)


async def measure(label: str, wf: workflows.Workflow | None, runs: int) -> None:
    machines = [] if wf else [ThreeSteps]
    flows = [wf] if wf else []
    steps_per_run = len(wf.steps) if wf else 3
    with tempfile.TemporaryDirectory() as tmp:
        async with durable.open_store(f"sqlite:///{tmp}/profile.db") as store:
            async with durable.open_engine(store, machines, workers=0, workflows=flows) as producer:
                if wf:
                    ids = [await producer.start_workflow(wf, None) for _ in range(runs)]
                else:
                    spec = durable.InsertSpec(ThreeSteps, None, step="a")
                    ids = await producer.insert_many([spec] * runs)
            commits = 0

            def count(name: object, measurements: object, metadata: dict[str, object]) -> None:
                nonlocal commits
                commits += metadata.get("commit") == "applied"

            detach = telemetry.attach(count, prefix=("trexec", "durable", "step", "stop"))
            wall, cpu = time.perf_counter(), time.process_time()
            async with durable.open_engine(
                store, machines, workflows=flows, workers=8, batch_size=64
            ) as engine:
                for id_ in ids:
                    await engine.wait(id_, timeout=300)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            detach()
    steps = runs * steps_per_run
    print(
        f"| {label} | {runs:,} | {commits:,} | {cpu / steps * 1e6:.0f} | {steps / wall:,.0f} |",
        flush=True,
    )


async def main(runs: int) -> None:
    print("| workload | runs | applied commits | CPU µs per step | steps/s |")
    print("|---|---:|---:|---:|---:|")
    await measure("three-step machine", None, runs)
    for window in (0.0, 0.01):
        await measure(f"linear, commit_window={window}", with_window(LINEAR, window), runs)
    for window in (0.0, 0.01):
        await measure(f"fan-out, commit_window={window}", with_window(FAN, window), runs // 4)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    trio.run(main, parser.parse_args().runs)
