"""Inline steps: a run runs its ready steps itself (spec §6.6.2).

The steps that became ready together run at the same time, in the worker that
holds the run, inside the run's engine step; the run folds their outcomes into
its step table and commits them with its next move. A crash before that commit
re-runs them (at least once, spec §6.3.3). A step that fails with retries left
moves to a step instance dispatched by the same commit (due after the backoff):
its retries are durable ``Retry``\\ s there (spec §6.4.2), as are compensations.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from ..durable import Context, InsertSpec
from ._attempt import Attempted, call_step
from ._definition import StepContext, Workflow
from ._dispatch import step_key
from ._saver import Unsaved, saver_of
from ._state import (
    RunState,
    StepReport,
    apply_done,
    apply_report,
    mark_dispatched,
    ready_steps,
)
from ._step_machine import new_task, step_machine

#: ``emit(kind, step, attempt, data)``: publish one event of the run (spec §6.12).
Emit = Callable[[Any, str, int, Any], Awaitable[None]]


async def run_inline(
    wf: Workflow, state: RunState, ctx: Context, steps: Sequence[str], emit: Emit | None
) -> list[InsertSpec]:
    """Run the first attempt of each of ``steps`` (ready, pending) at the same time,
    folding each outcome into ``state`` as it comes. While some of them still run,
    a step that becomes ready starts at once (spec §6.6.1: no waves); once none
    runs, the steps made ready run too while within the workflow's commit window
    of the call's start (spec §6.6.6); then the call returns, and the run
    commits. Returns the step instances to
    dispatch in that commit: one per step that failed with retries left, due
    after its backoff, while the run is still running (a failing run skips it, as
    the instance would, spec §6.8.1). ``emit`` is None when no event can reach
    anyone (``_events.heard``)."""
    retries: list[tuple[str, Attempted]] = []
    started: set[str] = set()
    running = 0
    window = wf.commit_window
    saver = saver_of(ctx.engine) if window > 0 else None
    unsaved = Unsaved(ctx, state)

    # `one` gets itself as `again` to start successors: were it to name itself,
    # its closure would hold it, a reference cycle that only the garbage
    # collector frees (with the state and context it holds). A run's engine
    # step then fed the collector, whose passes took 7% of the workflow bench.
    async def one(name: str, nursery: trio.Nursery | None, again: Any) -> None:
        nonlocal running
        # spec §6.3.1: every step finished so far, its dependencies included.
        step_ctx = StepContext(ctx.id, name, 1, state.input, state.results, None, ctx.engine)
        if emit is not None:
            await emit("step_started", name, 1, None)
        began = time.perf_counter()
        outcome = await call_step(wf, wf.step(name).fn, step_ctx)
        state.steps[name].duration = time.perf_counter() - began
        running -= 1
        if outcome.outcome == "done":
            apply_done(state, name, 1, outcome.result)
            if emit is not None:
                await emit("step_completed", name, 1, outcome.result)
        elif outcome.outcome == "failed":
            report = StepReport(name, "failed", 1, None, outcome.error_type, outcome.error)
            apply_report(state, report)
            if emit is not None:
                await emit("step_failed", name, 1, f"{outcome.error_type}: {outcome.error}")
        else:
            retries.append((name, outcome))
            data = {"delay": outcome.delay, "error": outcome.error}
            if emit is not None:
                await emit("step_retrying", name, 1, data)
        if nursery is not None and running > 0:
            if saver is not None:
                saver.hold(unsaved, window)  # others still run: store it meanwhile
            if unsaved.lost:
                return
            for successor in ready_steps(wf, state):
                if successor not in started:
                    started.add(successor)
                    running += 1
                    nursery.start_soon(again, successor, nursery, again)

    async def group(names: Sequence[str]) -> None:
        # Until none of them (and none of the successors they start) runs.
        nonlocal running
        running = len(names)
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(one, name, nursery, one)

    began = trio.current_time()
    try:
        while steps:
            started.update(steps)
            if len(steps) == 1:  # the common case: no nursery
                running = 1
                await one(steps[0], None, None)
            else:
                await group(steps)
            # spec §6.6.6: the steps made ready within the commit window run before
            # the commit; the saver stores what they follow if they outlast it.
            if saver is None or retries or unsaved.lost:
                break
            steps = [name for name in ready_steps(wf, state) if name not in started]
            if not steps or trio.current_time() - began >= window:
                break
            saver.hold(unsaved, window)
    finally:
        unsaved.close()
    specs = []
    for name, outcome in retries:
        if state.phase != "running":
            # spec §6.8.1: a failing run starts nothing new, a retry included.
            apply_report(state, StepReport(name, "skipped", 1))
            if emit is not None:
                await emit("step_skipped", name, 2, None)
            continue
        task = attrs.evolve(new_task(state, name, run_id=ctx.id), attempt=2)
        specs.append(
            InsertSpec(
                step_machine(wf),
                task,
                schedule_in=outcome.delay,
                key=step_key(state.run_key, name),
                priority=state.priority,  # spec §11.1
            )
        )
        mark_dispatched(state, [name])
        state.steps[name].attempts = 1
    return specs
