"""Start and wait for N no-op actions: trexec vs bare Trio vs asyncio (spec §1).

    python bench/bench_actions.py [--n 10000] [--repeat 3]

Rows (best of ``--repeat``, all measured in this process):

- ``trexec start_action + wait_all``: the figure we care about;
- ``trexec start_action(timeout=...)``: the same with a per-attempt timeout scope;
- ``trio start_soon + memory channel``: bare Trio, each task sends its result;
- ``asyncio TaskGroup``: ``create_task`` per action, results read after the group;
- ``anyio task group on trio``: ``start_soon`` per action in an anyio task group,
  run by the trio backend (anyio is installed by ``nox -s bench`` only; the row
  is left out when it is missing).

The ratio column divides each row's time by the bare Trio time.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Callable

import trio

import trexec


async def noop(params: object, context: object) -> None:
    return None


async def trexec_actions(n: int) -> None:
    async with trio.open_nursery() as nursery:
        handles = [trexec.start_action(nursery, noop) for _ in range(n)]
        results = await trexec.wait_all(handles)
    assert len(results) == n


async def trexec_actions_timeout(n: int) -> None:
    async with trio.open_nursery() as nursery:
        handles = [trexec.start_action(nursery, noop, timeout=60.0) for _ in range(n)]
        results = await trexec.wait_all(handles)
    assert len(results) == n


async def bare_trio(n: int) -> None:
    send, receive = trio.open_memory_channel[object](math.inf)

    async def task() -> None:
        send.send_nowait(await noop(None, None))

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(task)
        results = [await receive.receive() for _ in range(n)]
    assert len(results) == n


async def asyncio_taskgroup(n: int) -> None:
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(noop(None, None)) for _ in range(n)]
    results = [task.result() for task in tasks]
    assert len(results) == n


async def anyio_on_trio(n: int) -> None:
    import anyio

    results: list[object] = []

    async def task() -> None:
        results.append(await noop(None, None))

    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(task)
    assert len(results) == n


def best_of(repeat: int, run: Callable[[], object]) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="actions per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per row (best is kept)")
    args = parser.parse_args()
    n, repeat = args.n, args.repeat

    rows = [
        ("trexec start_action + wait_all", best_of(repeat, lambda: trio.run(trexec_actions, n))),
        (
            "trexec start_action(timeout=60)",
            best_of(repeat, lambda: trio.run(trexec_actions_timeout, n)),
        ),
        ("trio start_soon + memory channel", best_of(repeat, lambda: trio.run(bare_trio, n))),
        ("asyncio TaskGroup", best_of(repeat, lambda: asyncio.run(asyncio_taskgroup(n)))),
    ]
    try:
        import anyio
    except ImportError:
        print("anyio is not installed: its row is left out (nox -s bench installs it)")
    else:
        run_anyio = lambda: anyio.run(anyio_on_trio, n, backend="trio")  # noqa: E731
        rows.append(("anyio task group on trio", best_of(repeat, run_anyio)))
    baseline = rows[2][1]
    print(f"start + wait of {n:,} no-op actions, best of {repeat}")
    print(f"{'':34} {'total s':>9} {'µs/action':>10} {'actions/s':>10} {'vs trio':>8}")
    for label, seconds in rows:
        print(
            f"{label:34} {seconds:9.4f} {seconds / n * 1e6:10.1f} "
            f"{n / seconds:10,.0f} {seconds / baseline:7.2f}x"
        )


if __name__ == "__main__":
    main()
