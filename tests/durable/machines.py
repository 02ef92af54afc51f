"""Machines shared by the durable tests (also imported by worker subprocesses)."""

from __future__ import annotations

import os
import pathlib

import attrs
import trio

from trexec import durable


@attrs.define
class Counter:
    n: int = 0
    log: list[str] = attrs.Factory(list)


class CountTo3(durable.Machine):
    """Three steps then done: start -> middle -> finish -> Done(n)."""

    name = "count_to_3"
    State = Counter

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        state = Counter(ctx.state.n + 1, [*ctx.state.log, step])
        if step == "start":
            return durable.Next("middle", state)
        if step == "middle":
            return durable.Next("finish", state)
        return durable.Done({"n": state.n, "log": state.log})


class SlowOnce(durable.Machine):
    """Step ``start`` writes a marker file then blocks (to be killed); on a later
    attempt it records what it saw and finishes."""

    name = "slow_once"
    State = Counter

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        marker = pathlib.Path(os.environ["TREXEC_TEST_MARKER"])
        if step == "start" and ctx.attempt == 1:
            # The killed attempt's state change must be discarded.
            marker.write_text(str(os.getpid()))
            await trio.sleep_forever()
        return durable.Done({"attempt": ctx.attempt, "n": ctx.state.n, "step": step})


class LoggedSteps(durable.Machine):
    """CountTo3 that also appends ``id step pid`` to ``$TREXEC_TEST_LOG`` as each
    step runs (with several processes, every step must run exactly once), then
    waits until the file ``$TREXEC_TEST_GATE`` exists."""

    name = "logged_steps"
    State = Counter

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        with open(os.environ["TREXEC_TEST_LOG"], "a") as log:  # one short append
            log.write(f"{ctx.id} {step} {os.getpid()}\n")
        gate = pathlib.Path(os.environ["TREXEC_TEST_GATE"])
        while not gate.exists():
            await trio.sleep(0.01)
        return await CountTo3().step(step, ctx)
