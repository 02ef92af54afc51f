"""A concurrent program for the determinism test: run as a script, it prints the
order in which its steps ran (machine steps and workflow steps) as JSON."""

from __future__ import annotations

import json
import sys

import trio
import trio.testing

from trexec import durable, testing, workflows

trace: list[list[object]] = []


class Busy(durable.Machine):
    name = "busy"

    async def step(self, step, ctx):
        trace.append([ctx.id, step, ctx.attempt])
        await trio.sleep(ctx.id % 3)
        if step == "start":
            if ctx.attempt < 2:
                return durable.Retry(ctx.state, delay=ctx.id % 2)
            return durable.Next("more", ctx.state)
        return durable.Done(None)


def branch(name: str):
    async def fn(ctx):
        trace.append([name, ctx.attempt])
        await trio.sleep(1)
        if name == "b" and ctx.attempt < 2:
            raise RuntimeError("once")
        return name

    return fn


steps = [workflows.Step("a", branch("a"))]
steps += [workflows.Step(n, branch(n), after=["a"], retries=1) for n in ("b", "c", "d")]
steps += [workflows.Step("e", branch("e"), after=["b", "c", "d"])]
FANOUT = workflows.Workflow("fanout", steps)


async def main(seed: int) -> None:
    async with testing.open_test_engine([Busy], workflows=[FANOUT], workers=3, seed=seed) as e:
        e.faults.crash_after_step(Busy, "more", times=2)
        ids = [await e.insert(Busy, {}) for _ in range(9)]
        ids += [await e.start_workflow(FANOUT, None) for _ in range(2)]
        for id_ in ids:
            await e.wait(id_)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), clock=trio.testing.MockClock(autojump_threshold=0))
    print(json.dumps(trace))
