"""Events through recorders: start_run + Run.emit vs bare memory channels (spec §4).

    python bench/bench_recorders.py [--n 20000] [--repeat 3]

One producer emits ``--n`` events; each of 1 or 10 consumers takes every one.

- ``trexec start_run, k recorders``: ``await run.emit(i)`` in ``run_fn``, with k
  recorders whose ``event`` appends to a list (a ``MemoryRecorder``): the figure
  we care about, including starting and finalizing the run;
- ``bare memory channels, k consumers``: the baseline, measured in the same run:
  one ``trio`` memory channel (same buffer, 128) per consumer, the producer
  ``await send.send(i)`` on each, each consumer ``async for`` over its channel.

The ratio divides trexec's events/s by the baseline's with the same fan-out
(1.00 = as fast as hand-written channels; higher is faster). A last row records
to a ``JsonlRecorder`` (JSON encoding plus batched writes to a temporary file,
fsynced at the end), against the same one-consumer baseline.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import tempfile
import time
from collections.abc import Callable

import trio

import trexec

BUFFER = 128


async def bare_channels(n: int, consumers: int) -> None:
    channels = [trio.open_memory_channel[int](BUFFER) for _ in range(consumers)]
    counts = [0] * consumers

    async def consume(k: int, receive: trio.MemoryReceiveChannel[int]) -> None:
        async with receive:
            async for _ in receive:
                counts[k] += 1

    async with trio.open_nursery() as nursery:
        for k, (_, receive) in enumerate(channels):
            nursery.start_soon(consume, k, receive)
        for i in range(n):
            for send, _ in channels:
                await send.send(i)
        for send, _ in channels:
            await send.aclose()
    assert counts == [n] * consumers


async def trexec_run(n: int, recorders: int) -> None:
    memory = [trexec.MemoryRecorder() for _ in range(recorders)]

    async def run_fn(run: trexec.Run) -> None:
        for i in range(n):
            await run.emit(i)

    async with trio.open_nursery() as nursery:
        await trexec.start_run(nursery, run_fn, recorders=memory, buffer=BUFFER)
    assert all(len(m.events) == n for m in memory)


async def trexec_jsonl(n: int, path: pathlib.Path) -> None:
    async def run_fn(run: trexec.Run) -> None:
        for i in range(n):
            await run.emit({"i": i})

    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(
            nursery, run_fn, recorders=[trexec.JsonlRecorder(path)], buffer=BUFFER
        )
    assert not handle.recorder_errors


def best_of(repeat: int, run: Callable[[], object]) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="events per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (best is kept)")
    args = parser.parse_args()
    n, repeat = args.n, args.repeat

    print(f"# {n:,} events, one producer, best of {repeat}\n")
    print("| fan-out | trexec events/s | bare channels events/s | ratio |")
    print("|---|---:|---:|---:|")
    for k in (1, 10):
        ours = best_of(repeat, lambda k=k: trio.run(trexec_run, n, k))
        base = best_of(repeat, lambda k=k: trio.run(bare_channels, n, k))
        label = f"{k} recorder{'s' if k > 1 else ''}"
        print(f"| {label} | {n / ours:,.0f} | {n / base:,.0f} | {base / ours:.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "bench.jsonl"
        ours = best_of(repeat, lambda: trio.run(trexec_jsonl, n, path))
        base = best_of(repeat, lambda: trio.run(bare_channels, n, 1))
        print(f"| 1 JsonlRecorder | {n / ours:,.0f} | {n / base:,.0f} | {base / ours:.2f} |")


if __name__ == "__main__":
    main()
