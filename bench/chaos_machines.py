"""What the chaos run (bench/chaos.py) runs: three machines and one workflow.

Every step of the machines below returns a state whose ``seq`` is one more than
the committed state it was given. A trigger the harness installs on
``trexec_instances`` inserts ``(instance id, seq, step)`` into ``chaos_ledger``
whenever an outcome commit changes an instance's state: in the SAME transaction
as that commit. A step outcome committed twice (two commits made from the same
committed state, e.g. a stale worker's commit slipping past fencing) writes the
same ``(id, seq)`` twice; a committed outcome that was lost leaves a gap.
"""

from __future__ import annotations

from typing import Any

import attrs

from trexec import durable
from trexec.workflows import Backoff, Step, Workflow


@attrs.define
class Ledgered:
    n: int
    seq: int = 0
    log: list[str] = attrs.Factory(list)

    def then(self, step: str) -> Ledgered:
        return Ledgered(self.n, self.seq + 1, [*self.log, step])


class ChaosSteps(durable.Machine):
    """start -> s1 -> s2 -> s3 -> Done({"log": ...}): four commits."""

    name = "chaos_steps"
    State = Ledgered

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        state = ctx.state.then(step)
        following = {"start": "s1", "s1": "s2", "s2": "s3"}.get(step)
        if following is not None:
            return durable.Next(following, state)
        return durable.Done({"n": state.n, "log": state.log, "seq": state.seq})


class ChaosChild(durable.Machine):
    """One step: Done({"child_of": parent})."""

    name = "chaos_child"
    State = Ledgered

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        return durable.Done({"child_of": ctx.parent_id, "seq": ctx.state.then(step).seq})


class ChaosParent(durable.Machine):
    """start -> two children -> gathered -> await "go" (sent twice, one dedup key)
    -> gone -> Done: the result counts the children done and the "go" received."""

    name = "chaos_parent"
    State = Ledgered

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        state = ctx.state.then(step)
        if step == "start":
            kids = [durable.Child(ChaosChild, Ledgered(state.n)) for _ in range(2)]
            return durable.ScheduleChildren("gathered", kids, state)
        if step == "gathered":
            state.log.append(f"children:{sum(c.status == 'done' for c in ctx.children)}")
            return durable.Await(["go"], "gone", state)
        if step == "gone":
            state.log.append(f"go:{len(ctx.awaited)}")
            return durable.Next("end", state)
        return durable.Done({"n": state.n, "log": state.log, "seq": state.seq})


async def _a(ctx: Any) -> Any:
    return {"a": ctx.input["n"]}


async def _b(ctx: Any) -> Any:
    return {"b": ctx.results["a"]["a"] * 2}


async def _c(ctx: Any) -> Any:
    if ctx.input["fail"]:
        raise ValueError("planned failure")
    return {"c": ctx.results["b"]["b"] + 1}


async def _undo(ctx: Any) -> Any:
    return {"undone": ctx.step}


SAGA = Workflow(
    "chaos_saga",
    [
        Step("a", _a, compensate=_undo),
        Step("b", _b, after=["a"], compensate=_undo),
        Step("c", _c, after=["b"], retries=1, backoff=Backoff(0.01, 0.05)),
    ],
)
MACHINES = [ChaosSteps, ChaosChild, ChaosParent]

#: The committed seq of each machine's instances at the end.
FINAL_SEQ = {"chaos_steps": 4, "chaos_child": 1, "chaos_parent": 4}


def expected(n: int) -> tuple[str, Any]:
    """(kind, expected outcome) of instance number ``n``."""
    if n % 3 == 0:
        return "steps", {"n": n, "log": ["start", "s1", "s2", "s3"], "seq": 4}
    if n % 3 == 1:
        log = ["start", "gathered", "children:2", "gone", "go:1", "end"]
        return "parent", {"n": n, "log": log, "seq": 4}
    if n % 6 == 5:
        return "saga", ("stopped", "step 'c' failed: ValueError: planned failure")
    return "saga", ("done", {"a": {"a": n}, "b": {"b": 2 * n}, "c": {"c": 2 * n + 1}})
