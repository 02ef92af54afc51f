"""Memory of a long-running worker: resident set size (RSS) of one engine process
after 10,000 and after 100,000 instances ran to completion (issue #15, goal 6).

    python bench/bench_memory.py [--instances N] [--store sqlite:///path]

Workload: one-step no-op machines, inserted 1,000 a transaction by the same
process while its engine (8 workers, batch 64) runs them; RSS is read from
/proc/self/statm when the count of finished instances crosses each mark. Flat
means the figure at 100k is within a few MB of the one at 10k: the engine keeps
nothing per finished instance (a waiter included: every 100th instance is
awaited with ``engine.wait``, which must leave no entry behind).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile

import trio

from trexec import durable

RESULTS = pathlib.Path(__file__).parent / "results"


class OneStep(durable.Machine):
    name = "bench_memory_one_step"

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        return durable.Done(None)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def run(url: str, instances: int, marks: list[int]) -> dict[int, float]:
    figures: dict[int, float] = {}
    async with (
        durable.open_store(url) as store,
        durable.open_engine(store, [OneStep], workers=8, batch_size=64) as engine,
    ):
        done = 0
        for start in range(0, instances, 1000):
            ids = await engine.insert_many([durable.InsertSpec(OneStep, None)] * 1000)
            # A waiter per 100 instances; each must leave nothing behind.
            for id_ in ids[::100]:
                await engine.wait(id_, timeout=60)
            await engine.wait(ids[-1], timeout=60)
            done = start + 1000
            for mark in marks:
                if done == mark:
                    figures[mark] = rss_mb()
        assert not engine._ledger._waiters, "a waiter was left behind"
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--store", default=None)
    args = parser.parse_args(argv)
    marks = [m for m in (10_000, args.instances) if m <= args.instances]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.store or f"sqlite:///{tmp}/memory.db"
        figures = trio.run(run, url, args.instances, marks)
    print("# Worker memory over time\n")
    print(f"One engine process, one-step no-op instances, {url.split(':')[0]} store.\n")
    print("| instances finished | RSS MB |")
    print("|---|---|")
    for mark in marks:
        print(f"| {mark:,} | {figures[mark]:.1f} |")
    growth = figures[marks[-1]] - figures[marks[0]]
    print(f"\nGrowth from {marks[0]:,} to {marks[-1]:,}: {growth:+.1f} MB.")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps({str(k): v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
