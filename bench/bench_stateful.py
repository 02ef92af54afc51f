"""Property-based command sequences: TrioStateMachine vs a sync RuleBasedStateMachine (spec §3.1).

    python bench/bench_stateful.py [--examples 200] [--steps 50] [--repeat 3]

Both machines do the same work per rule (update a counter and a dict) with one
invariant, under the same Hypothesis settings (generate phase only, no
database, derandomized), in this process, alternately (best of ``--repeat`` each). A rule per
second counts every rule and initializer run, whole Hypothesis run included
(drawing the steps is most of the baseline's cost). Rows:

- ``async rules``: ``async def`` rules and invariant on the example's Trio run
  (system clock: one round trip through Trio's I/O thread per step);
- ``async rules, MockClock``: the same with ``MockClock(autojump_threshold=0)``
  (no thread hop at all);
- ``sync rules on the loop``: plain ``def`` rules in a TrioStateMachine.

The last column compares rules per CPU second (all threads of the process),
which a busy machine disturbs less than the wall clock; it leaves out the
latency of the hops through Trio's I/O thread (the system-clock row).

Goal: at least 0.5x the baseline's rules per second.
"""

from __future__ import annotations

import argparse
import time

import trio
import trio.testing
from hypothesis import HealthCheck, Phase, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from trexec.stateful import TrioStateMachine

COUNT = [0]


class SyncMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        COUNT[0] += 1
        self.total = 0
        self.seen: dict[int, int] = {}

    @rule(n=st.integers(0, 9))
    def add(self, n: int) -> None:
        COUNT[0] += 1
        self.total += n
        self.seen[n] = self.seen.get(n, 0) + 1

    @rule()
    def reset(self) -> None:
        COUNT[0] += 1
        self.total = 0
        self.seen.clear()

    @invariant()
    def consistent(self) -> None:
        assert self.total >= 0


class AsyncMachine(TrioStateMachine):
    @initialize()
    async def start(self) -> None:
        COUNT[0] += 1
        self.total = 0
        self.seen: dict[int, int] = {}

    @rule(n=st.integers(0, 9))
    async def add(self, n: int) -> None:
        COUNT[0] += 1
        self.total += n
        self.seen[n] = self.seen.get(n, 0) + 1

    @rule()
    async def reset(self) -> None:
        COUNT[0] += 1
        self.total = 0
        self.seen.clear()

    @invariant()
    async def consistent(self) -> None:
        assert self.total >= 0


class AsyncMockClockMachine(AsyncMachine):
    clock = trio.testing.MockClock(autojump_threshold=0)


class SyncOnLoopMachine(TrioStateMachine):
    start = SyncMachine.start
    add = SyncMachine.add
    reset = SyncMachine.reset
    consistent = SyncMachine.consistent


def config(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        phases=[Phase.generate],
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def rules_per_second(machine: type, run_settings: settings) -> tuple[float, float]:
    """Rules per wall-clock second and per CPU second (the process: all threads)."""
    COUNT[0] = 0
    started, cpu = time.perf_counter(), time.process_time()
    run_state_machine_as_test(machine, settings=run_settings)
    cpu = time.process_time() - cpu
    return COUNT[0] / (time.perf_counter() - started), COUNT[0] / max(cpu, 1e-9)


def compare(machine: type, run_settings: settings, repeat: int) -> tuple[float, ...]:
    """Best rules/s (wall, CPU) of ``machine`` and of the baseline, measured alternately."""
    ours, ours_cpu, base, base_cpu = 0.0, 0.0, 0.0, 0.0
    for _ in range(repeat):
        wall, cpu = rules_per_second(SyncMachine, run_settings)
        base, base_cpu = max(base, wall), max(base_cpu, cpu)
        wall, cpu = rules_per_second(machine, run_settings)
        ours, ours_cpu = max(ours, wall), max(ours_cpu, cpu)
    return ours, base, ours_cpu / base_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="examples per run")
    parser.add_argument("--steps", type=int, default=50, help="steps per example")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (best is kept)")
    args = parser.parse_args()

    run_settings = config(args.examples, args.steps)
    rows = [
        ("async rules", AsyncMachine),
        ("async rules, MockClock", AsyncMockClockMachine),
        ("sync rules on the loop", SyncOnLoopMachine),
    ]
    print(
        f"# {args.examples} examples of up to {args.steps} steps, best of {args.repeat}\n\n"
        "| rules | trexec rules/s | RuleBasedStateMachine rules/s | ratio | ratio (CPU time) |\n"
        "|---|---:|---:|---:|---:|"
    )
    for label, machine in rows:
        mine, baseline, cpu_ratio = compare(machine, run_settings, args.repeat)
        print(
            f"| {label} | {mine:,.0f} | {baseline:,.0f} | {mine / baseline:.2f} | {cpu_ratio:.2f} |"
        )
    print("\nGoal: trexec at least 0.5x the synchronous machine's rules per second.")


if __name__ == "__main__":
    main()
