"""Step instances: the durable machine that runs one step (or one compensation) of
a run, with its retries (spec §6.3, §6.4, §6.10).

A step instance runs ``start`` (one attempt of the step function); a failed
attempt becomes a durable ``Retry(state, delay)``, so the backoff survives a
crash. When the step is over, a forward step moves to ``report``, which signals
``step_finished`` to its run (after the result is committed, so the run never
sees a result that could still be lost) and ends the instance. A compensation
does not report: it is a child of the run, whose barrier wakes the run.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, ClassVar, Literal

import attrs
import cattrs

from ..durable import (
    Await,
    Context,
    Done,
    DuplicateKey,
    InsertSpec,
    Machine,
    Next,
    NoTarget,
    Outcome,
    Retry,
    Stop,
)
from ..durable._effects import SignalSpec, WithEffects
from ._attempt import call_step
from ._definition import StepContext, StepFailure, Workflow
from ._dispatch import TERMINAL, as_run_state, get_instance, run_view, step_key
from ._events import WorkflowEvent, emit
from ._state import RunState, StepReport

_converter = cattrs.Converter()
#: The signal a run sends its entry steps once it has started (spec §6.12.3).
RUN_STARTED = "run_started"
#: After this many engine attempts an infrastructure error (a store that keeps
#: failing) stops the step instance instead of retrying it forever.
MAX_INFRA_ATTEMPTS = 10


@attrs.define
class TaskState:
    """The durable state of a step instance."""

    run_key: str
    step: str
    kind: Literal["step", "compensation"] = "step"
    run_id: int | None = None
    input: Any = None
    results: dict[str, Any] = attrs.field(factory=dict)
    attempt: int = 1
    outcome: Literal["pending", "done", "failed", "skipped"] = "pending"
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    failure: StepFailure | None = None
    #: Infrastructure errors so far (spec §6.10.4), apart from the user's retries.
    infra_errors: int = 0


def infra_retry(state: Any, error: Exception) -> Outcome:
    """The ``handle`` of the workflow machines: only infrastructure errors get
    there (a store failing a dispatch or a signal); retry with a capped
    exponential delay, counting them in the state (the engine's attempt also
    counts the user's retries), then stop loudly (spec §6.10.4)."""
    if state is None:  # the state itself could not be loaded: retrying cannot help
        return Stop(error)
    errors = state.infra_errors + 1
    if errors < MAX_INFRA_ATTEMPTS:
        return Retry(attrs.evolve(state, infra_errors=errors), min(0.1 * 2 ** (errors - 1), 30.0))
    return Stop(error)


def new_task(state: RunState, step: str, *, run_id: int | None) -> TaskState:
    """The first state of a forward step instance of the run in ``state``."""
    return TaskState(state.run_key, step, "step", run_id, state.input, state.results)


def new_compensation(state: RunState, step: str, *, run_id: int) -> TaskState:
    """The first state of the compensation of ``step``, ``ctx.error`` = the failure."""
    return TaskState(
        state.run_key, step, "compensation", run_id, state.input, state.results,
        failure=state.failure,
    )  # fmt: skip


def step_machine_name(wf: Workflow) -> str:
    """The durable machine name of ``wf``'s step instances."""
    return f"workflow:{wf.name}:step"


class _StepMachine(Machine):
    workflow: ClassVar[Workflow]
    State = TaskState

    async def step(self, step: str, ctx: Context) -> Outcome:
        task: TaskState = ctx.state  # decoded afresh for every step (§5.1.4)
        if step == "start":
            return await self._attempt(task, ctx)
        if step == "report":
            return await self._report(task, ctx)
        return Stop(f"step={step!r}: expected 'start' or 'report'")

    async def handle(self, error: Exception, ctx: Context) -> Outcome:
        # Only infrastructure errors get here: the user's are caught in _attempt.
        return infra_retry(ctx.state, error)

    async def _attempt(self, task: TaskState, ctx: Context) -> Outcome:
        wf = self.workflow
        spec = wf.step(task.step)
        if task.kind == "step":
            target = task.run_id if task.run_id is not None else task.run_key
            run = await run_view(ctx.engine, target)
            if run is None or run.status in TERMINAL:
                # spec §6.11: the run was cancelled (or is gone): start nothing, and
                # make sure what it completed gets compensated.
                if run is not None and run.status == "cancelled":
                    cancelled = await get_instance(ctx.engine, run.id)
                    if cancelled is not None:
                        await compensate_cancelled_run(ctx.engine, self.workflow, cancelled)
                status = "gone" if run is None else run.status
                return Stop(f"skipped: run {task.run_key!r} is {status}")
            task.run_id = run.id
            if run.step == "start":
                # spec §6.12.3: the run publishes run_started in its first step, and
                # every step_started comes after it: wait for the run to get there.
                # Its start commit signals "run_started" to its entry steps (a signal
                # that comes before this parks wakes it at once, §5.6); the timeout
                # is a safety net.
                return Await([RUN_STARTED], "start", task, timeout=0.5)
            if run.phase != "running":
                # spec §6.8: a failing or cancelling run dispatches nothing new; a
                # step dispatched just before is skipped, and says so to its run.
                task.outcome = "skipped"
                await self._emit(ctx, task, "step_skipped")
                return self._reported(task, ctx)
        # A compensation always runs once dispatched (spec §6.9): undoing is wanted
        # even if its run was cancelled meanwhile.
        assert task.run_id is not None
        fn = spec.fn if task.kind == "step" else spec.compensate
        assert fn is not None  # a compensation is only dispatched for a step that has one
        step_ctx = StepContext(
            task.run_id, task.step, task.attempt, task.input, dict(task.results), task.failure,
            ctx.engine,
        )  # fmt: skip
        if task.kind == "step":
            await self._emit(ctx, task, "step_started")
        attempted = await call_step(wf, fn, step_ctx)
        if attempted.outcome == "retry":
            # spec §6.4.2: Retry is durable.
            data = {"delay": attempted.delay, "error": attempted.error}
            await self._emit(ctx, task, "step_retrying", data)
            task.attempt += 1
            return Retry(task, attempted.delay)
        if attempted.outcome == "failed":
            task.outcome = "failed"
            task.error_type = attempted.error_type
            task.error = attempted.error
            if task.kind == "compensation":
                await self._parent_cancelled(ctx)
                return Stop(f"{task.error_type}: {task.error}")
            await self._emit(ctx, task, "step_failed", f"{task.error_type}: {task.error}")
            return self._reported(task, ctx)
        result = attempted.result
        task.outcome = "done"
        task.result = result
        if task.kind == "compensation":
            await self._parent_cancelled(ctx)
            return Done(result)
        await self._emit(ctx, task, "step_completed", result)
        return self._reported(task, ctx)

    def _reported(self, task: TaskState, ctx: Context) -> Outcome:
        # spec §6.6.4: the step's outcome and its report to the run in ONE commit
        # (the run never sees a result that could still be lost, and a report is
        # never lost after the result commits). If the run is no longer live at
        # commit time, the fallback parks the instance at "report", which finds
        # out why (spec §6.11.2).
        assert task.run_id is not None and task.outcome != "pending"
        report = StepReport(
            task.step, task.outcome, task.attempt, task.result, task.error_type, task.error
        )
        signal = SignalSpec(
            # No dedup key: this report cannot repeat, it is written by the one
            # commit that ends the instance (the fallback's report has one).
            task.run_id,
            "step_finished",
            _converter.unstructure(report),
        )
        # A failed or skipped step also stores its outcome in its state: a run
        # whose watchdog reads the stopped instance before it takes this report
        # counts it with that outcome (spec §6.14.2), not as lost. (A done
        # instance is never taken for lost.)
        ended = task.outcome != "done"
        return WithEffects(
            _ended(task),
            signals=[signal],
            # `report` reads neither the input nor the results so far: the fallback's
            # state leaves them out (it is encoded with every step's commit).
            fallback=Next("report", attrs.evolve(task, input=None, results={})),
            state=task if ended else None,
            has_state=ended,
        )

    async def _report(self, task: TaskState, ctx: Context) -> Outcome:
        assert ctx.engine is not None and task.run_id is not None
        outcome = task.outcome
        if outcome == "pending":  # cannot happen: start only moves on with an outcome
            return Stop("report without an outcome")
        report = StepReport(
            task.step, outcome, task.attempt, task.result, task.error_type, task.error
        )
        try:
            # spec §6.10: at least once; the dedup key drops a repeat of this report.
            await ctx.engine.signal(
                task.run_id,
                "step_finished",
                _converter.unstructure(report),
                dedup_key=f"report:{ctx.id}",
            )
        except NoTarget:
            # The run ended meanwhile: engine.cancel (spec §6.11) leaves what it
            # completed, this step included, to a compensator.
            run = await get_instance(ctx.engine, task.run_id)
            if run is not None and run.status == "cancelled":
                await compensate_cancelled_run(ctx.engine, self.workflow, run)
        return _ended(task)

    async def _parent_cancelled(self, ctx: Context) -> None:
        # A run cancelled by engine.cancel while compensating (spec §6.11): its
        # remaining compensations go to the compensator.
        if ctx.parent_id is None:
            return
        parent = await get_instance(ctx.engine, ctx.parent_id)
        if parent is not None and parent.status == "cancelled":
            await compensate_cancelled_run(ctx.engine, self.workflow, parent)

    async def _emit(self, ctx: Context, task: TaskState, kind: Any, data: Any = None) -> None:
        assert task.run_id is not None
        event = WorkflowEvent(task.run_id, self.workflow.name, kind, task.step, task.attempt, data)
        await emit(ctx.engine, event)


def _ended(task: TaskState) -> Outcome:
    # How a reported forward step instance ends.
    if task.outcome == "done":
        return Done(task.result)
    if task.outcome == "skipped":
        return Stop("skipped: the run stopped dispatching new steps")
    return Stop(f"{task.error_type}: {task.error}")


async def compensate_cancelled_run(engine: Any, wf: Workflow, run: Any) -> None:
    """Make sure the run cancelled by ``engine.cancel`` gets its compensator: one
    run-machine instance keyed ``"<run key>/cancelled"`` starting at ``adopt``
    (spec §6.11). Idempotent: the key, and the compensator skipping compensations
    already done, make a second one harmless."""
    from ._run_machine import run_machine

    state = as_run_state(run.state)
    key = step_key(state.run_key, "cancelled", "compensator")
    if await get_instance(engine, key) is not None:
        return
    state.cancelled_run = run.id
    with contextlib.suppress(DuplicateKey):
        await engine.insert_many([InsertSpec(run_machine(wf), state, step="adopt", key=key)])


_machines: weakref.WeakKeyDictionary[Workflow, type[Machine]] = weakref.WeakKeyDictionary()


def step_machine(wf: Workflow) -> type[Machine]:
    """The step-instance machine class of ``wf`` (one class per workflow object)."""
    cls = _machines.get(wf)
    if cls is None:
        cls = type(
            f"StepMachine[{wf.name}]",
            (_StepMachine,),
            {"name": step_machine_name(wf), "version": wf.version, "workflow": wf},
        )
        _machines[wf] = cls
    return cls
