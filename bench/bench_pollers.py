"""Benchmark: many concurrent resource pollers (spec §2) against a bare Trio loop.

    python bench/bench_pollers.py [--pollers 10000] [--interval 1.0] [--seconds 5]

For N pollers polling every ``interval`` seconds, measured over ``seconds`` of
steady state (after one interval of staggered starts):

* CPU use: process CPU time / wall time (target: < 20% of one core for
  10,000 pollers at 1 s);
* per-poll cost: CPU time / polls made;
* lateness of each poll: actual start minus the start it was due at, p50 and p99.

The baseline is the loop a user would write by hand, one task per resource:
``while True: await poll(); await trio.sleep(interval)`` (its lateness is
measured against ``end of the previous poll + interval``). Both run in the
same process, one after the other, with the same poll function.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Awaitable, Callable

import trio

import trexec


class Stats:
    def __init__(self) -> None:
        self.polls = 0
        self.lateness: list[float] = []
        self.measuring = False


async def run_pollers(count: int, interval: float, seconds: float, stats: Stats) -> float:
    send, _receive = trio.open_memory_channel[trexec.InjectedEvent](math.inf)

    def make_poll() -> Callable[[], Awaitable[int]]:
        due = [trio.current_time()]

        async def poll() -> int:
            now = trio.current_time()
            if stats.measuring:
                stats.polls += 1
                stats.lateness.append(now - due[0])
            due[0] = now + interval  # start to start
            return 1

        return poll

    def handler(response: int) -> object:
        return trexec.CONTINUE

    return await _measure(
        lambda nursery: trexec.start_poller(
            nursery,
            poll_fn=make_poll(),
            handler=handler,
            interval=interval,
            timeout=seconds + 3 * interval + 10,
            events=send,
            on_timeout="ignore",
        ),
        count,
        interval,
        seconds,
        stats,
    )


async def run_baseline(count: int, interval: float, seconds: float, stats: Stats) -> float:
    async def loop() -> None:
        due = trio.current_time()

        async def poll() -> int:
            nonlocal due
            now = trio.current_time()
            if stats.measuring:
                stats.polls += 1
                stats.lateness.append(now - due)
            return 1

        while True:
            await poll()
            due = trio.current_time() + interval  # sleeps after the poll
            await trio.sleep(interval)

    return await _measure(lambda nursery: nursery.start_soon(loop), count, interval, seconds, stats)


async def _measure(
    start_one: Callable[[trio.Nursery], object],
    count: int,
    interval: float,
    seconds: float,
    stats: Stats,
) -> float:
    """Start ``count`` pollers spread over one interval, then measure; return CPU share."""
    async with trio.open_nursery() as nursery:
        batches = 100
        for batch in range(batches):
            for _ in range(count // batches + (batch < count % batches)):
                start_one(nursery)
            await trio.sleep(interval / batches)
        await trio.sleep(interval)  # settle
        stats.measuring = True
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await trio.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        stats.measuring = False
        nursery.cancel_scope.cancel()
    return (cpu1 - cpu0) / (wall1 - wall0)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pollers", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    ours, base = Stats(), Stats()
    ours_cpu = trio.run(run_pollers, args.pollers, args.interval, args.seconds, ours)
    base_cpu = trio.run(run_baseline, args.pollers, args.interval, args.seconds, base)

    def per_poll(cpu: float, stats: Stats) -> float:
        return cpu * args.seconds / max(stats.polls, 1) * 1e6

    rows = [
        ("CPU use (% of one core)", ours_cpu * 100, base_cpu * 100, ".1f"),
        ("polls in window", ours.polls, base.polls, ",.0f"),
        ("CPU per poll (µs)", per_poll(ours_cpu, ours), per_poll(base_cpu, base), ".1f"),
        ("lateness p50 (ms)", percentile(ours.lateness, 50) * 1e3,
         percentile(base.lateness, 50) * 1e3, ".2f"),
        ("lateness p99 (ms)", percentile(ours.lateness, 99) * 1e3,
         percentile(base.lateness, 99) * 1e3, ".2f"),
    ]  # fmt: skip
    print(
        f"{args.pollers} pollers polling every {args.interval}s, measured over "
        f"{args.seconds}s of steady state (trio {trio.__version__})\n"
    )
    print("| metric | trexec pollers | bare trio loop | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours_value, base_value, spec in rows:
        ratio = ours_value / base_value if base_value else math.nan
        print(f"| {name} | {ours_value:{spec}} | {base_value:{spec}} | {ratio:.2f} |")
    if args.pollers >= 10_000 and args.interval <= 1.0:
        verdict = "met" if ours_cpu < 0.20 else "NOT met"
        print(f"\nTarget: CPU use < 20% of one core for 10,000 pollers at 1 s: {verdict}.")


if __name__ == "__main__":
    main()
