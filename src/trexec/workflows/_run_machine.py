"""Run instances: the durable machine that coordinates one run (spec §6.6-§6.11).

A run is one durable instance whose state is a :class:`~._state.RunState` (the
step table). It never runs a step function itself; it dispatches step instances
(``_dispatch.py``) and re-plans whenever one reports:

* ``start``: publish ``run_started``; park awaiting ``step_finished`` / ``cancel``
  signals at ``plan`` (the entry steps were inserted with the run).
* ``plan``: fold the received reports into the step table, dispatch every step
  that became ready, then ``park`` (a ``Next`` that consumes exactly the signals
  just read, spec §5.6) and await again.
* when a step failed (or the run was cancelled) and nothing is running any more:
  ``ScheduleChildren`` of the newest completed step's compensation — ONE commit
  marks the run failed and dispatches its compensation — then ``compensated``
  records how it ended and dispatches the next one, newest first.
* the end: ``Done(results)``, or ``Stop(error)`` naming the failed step.
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

import cattrs

from ..durable import (
    Await,
    Child,
    Context,
    Done,
    InsertSpec,
    Instance,
    Machine,
    Next,
    Outcome,
    Retry,
    ScheduleChildren,
    Stop,
)
from ..durable._effects import SignalSpec, WithEffects
from ._definition import Workflow
from ._dispatch import TERMINAL, get_instance, step_key, step_specs
from ._events import WorkflowEvent, emit, emit_fields, heard
from ._inline import run_inline
from ._state import (
    RunState,
    StepReport,
    adopt,
    apply_report,
    end,
    final_error,
    finish_compensation,
    mark_dispatched,
    plan,
    request_cancel,
    start_compensation,
)
from ._step_machine import (
    RUN_STARTED,
    compensate_cancelled_run,
    infra_retry,
    new_compensation,
    step_machine,
)
from ._watchdog import lost_reports, watch_delay

logger = logging.getLogger("trexec.workflows")
_converter = cattrs.Converter()

STEPS = ("start", "run", "plan", "park", "compensated", "finish", "adopt")
#: The signals a parked run wakes on (spec §6.6, §6.11).
AWAITS = ("step_finished", "cancel")


def run_machine_name(wf: Workflow) -> str:
    """The durable machine name of ``wf``'s runs: ``"workflow:<name>"``."""
    return f"workflow:{wf.name}"


class _RunMachine(Machine):
    workflow: ClassVar[Workflow]
    State = RunState

    async def step(self, step: str, ctx: Context) -> Outcome:
        # The engine decodes a fresh state for every step (§5.1.4): ours to change.
        state: RunState = ctx.state
        if step == "start":
            await self._emit(ctx, "run_started", data=state.input)
            if not state.running:  # spec §6.6.2: an inline run runs its entry steps now
                return await self._advance(state, ctx, consumed=False)
            # spec §6.12.3: its entry steps wait for this commit; wake them with it.
            wake = [
                SignalSpec(step_key(state.run_key, name), RUN_STARTED) for name in state.running
            ]
            return WithEffects(_park(state), signals=wake)
        if step == "run":
            # The next wave of inline steps (spec §6.6.2). Reports and a cancel that
            # came meanwhile are in the inbox: fold them first (folding is
            # idempotent, so a later wake that reads them again changes nothing).
            for signal in ctx.all:
                if signal.name in AWAITS:
                    self._receive(state, signal.name, signal.payload, ctx.id)
            return await self._advance(state, ctx, consumed=False)
        if step == "park":
            return _park(state)
        if step == "plan":
            for signal in ctx.awaited:
                self._receive(state, signal.name, signal.payload, ctx.id)
            if ctx.awaited:
                state.watch = 0
            else:  # the watchdog's timeout (spec §6.14)
                await self._watch(state, ctx)
            return await self._advance(state, ctx, consumed=bool(ctx.awaited))
        if step == "finish":
            return await self._finish(state, ctx)
        if step == "adopt":
            return await self._adopt(state, ctx)
        if step == "compensated":
            await self._compensated(state, ctx)
            return await self._advance(state, ctx, consumed=False)
        return Stop(f"step={step!r}: expected a step of the run machine ({', '.join(STEPS)})")

    async def cancelled(self, instance: Instance, engine: Any) -> None:
        """spec §6.11.2: a run cancelled by ``engine.cancel`` gets its compensator
        when it has something to compensate: the steps of its table (the table
        its last engine step reached, inline steps included) and its step
        instances. A cancelled compensator compensates nothing more."""
        state = instance.state
        if not isinstance(state, RunState) or state.cancelled_run is not None:
            return
        if any(rec.status != "pending" for rec in state.steps.values()):
            await compensate_cancelled_run(engine, self.workflow, instance)

    async def handle(self, error: Exception, ctx: Context) -> Outcome:
        # The run never runs user code: what gets here is an infrastructure error
        # (the store failing a dispatch). Retry, capped, then stop loudly.
        return infra_retry(ctx.state, error)

    def _receive(self, state: RunState, name: str, payload: Any, run_id: int) -> None:
        if name == "cancel":
            request_cancel(state)  # spec §6.11
            return
        try:
            report = _converter.structure(payload, StepReport)
        except Exception:
            logger.warning("run %s: ignored a malformed step report %r", run_id, payload)
            return
        apply_report(state, report)

    async def _advance(
        self,
        state: RunState,
        ctx: Context,
        *,
        consumed: bool,
        run_now: bool = True,
        retries: Sequence[InsertSpec] = (),
    ) -> Outcome:
        wf = self.workflow
        decision = plan(wf, state)
        if decision.kind == "dispatch" and wf.execution == "inline":
            if run_now:
                # spec §6.6.2: run the ready steps here, then commit their outcomes
                # with the run's next move (the step instances of their retries
                # included).
                emit = functools.partial(self._emit_step, ctx) if heard(ctx.engine) else None
                dispatched = await run_inline(wf, state, ctx, decision.steps, emit)
                return await self._advance(
                    state, ctx, consumed=consumed, run_now=False, retries=dispatched
                )
            # Their successors: the next wave, after this commit (spec §6.6.2).
            going_on = Next("run", state)
            return WithEffects(going_on, inserts=retries) if retries else going_on
        if decision.kind == "dispatch":
            # spec §6.6: everything that became ready, at once; the instances are
            # committed before this step's outcome, and keyed, so a re-run of this
            # step after a crash does not dispatch them twice (spec §6.7.3).
            steps = decision.steps
            if ctx.attempt > 1:
                # spec §6.10.2: an earlier try of this step (crashed before its
                # commit) may have dispatched a step that has finished since: its
                # report is on its way; dispatching it again would run it twice.
                # Live ones are left out here too: one that ends between this check
                # and the insert would otherwise free its key.
                steps = tuple([n for n in steps if not await _dispatched(ctx.engine, state, n)])
            # spec §6.6.4: the step instances, the new step table and the parking
            # (consuming the reports just folded) in ONE commit. A step whose
            # instance is live keeps it (the insert is skipped, spec §6.7.3).
            # Built before the state changes: a failure here reaches handle with
            # the table as it was.
            specs = step_specs(wf, ctx.id, state, steps)
            mark_dispatched(state, decision.steps)
            return WithEffects(_park(state), inserts=specs, consume=consumed)
        if decision.kind == "wait":
            if consumed or retries:
                return WithEffects(_park(state), inserts=retries, consume=consumed)
            return _park(state)
        if decision.kind == "complete":
            state.phase = "done"
            results = state.results
            await self._emit(ctx, "run_completed", data=results)
            # spec §6.6.5: the final step table is committed with the end.
            return WithEffects(Done(results), state=state, has_state=True, consume=False)
        if decision.kind == "compensate":
            # spec §6.9: one commit marks the run failed (phase "compensating") and
            # dispatches the compensation of the newest completed step.
            name = decision.steps[0]
            start_compensation(state, name)
            await self._emit(ctx, "compensation_started", step=name, state=state)
            child = Child(
                step_machine(wf),
                new_compensation(state, name, run_id=state.cancelled_run or ctx.id),
                key=step_key(state.run_key, name, "compensation"),
            )
            return ScheduleChildren("compensated", [child], state)
        # "finish": compensations are over; commit the final table, then end.
        end(state)
        return Next("finish", state)

    async def _watch(self, state: RunState, ctx: Context) -> None:
        # spec §6.14: a step instance that ended without reporting fails its step.
        lost = await lost_reports(ctx.engine, state)
        for report in lost:
            if apply_report(state, report) and report.outcome == "failed":
                logger.warning("run %s: step %r %s", ctx.id, report.step, report.error)
                error = f"{report.error_type}: {report.error}"
                await self._emit(ctx, "step_failed", step=report.step, data=error, state=state)
        state.watch = 0 if lost else state.watch + 1

    async def _finish(self, state: RunState, ctx: Context) -> Outcome:
        if state.phase == "done":
            results = state.results
            await self._emit(ctx, "run_completed", data=results)
            return Done(results)
        error = final_error(state)
        if state.cancelled_run is not None:
            # The compensator of a run cancelled by engine.cancel (spec §6.11).
            await self._emit(ctx, "run_cancelled", data=error, state=state)
            return Done({"cancelled_run": state.cancelled_run, "error": error})
        if state.phase == "cancelled":
            await self._emit(ctx, "run_cancelled", data=error)
            # spec §6.11: end as `cancelled`: the engine discards the outcome of a
            # step whose instance was cancelled while it ran.
            assert ctx.engine is not None
            await ctx.engine.cancel(ctx.id)
            return Stop(error)
        await self._emit(ctx, "run_failed", data=error)
        return Stop(error)

    async def _adopt(self, state: RunState, ctx: Context) -> Outcome:
        """The compensator of a run cancelled by ``engine.cancel`` (spec §6.11): once
        no step instance of the run is live, compensate the steps whose instances
        completed, newest first, as the run itself would have."""
        wf = self.workflow
        completed: list[tuple[float, int, str, Any]] = []
        compensated: set[str] = set()
        for name in wf.step_names:
            instance = await get_instance(ctx.engine, step_key(state.run_key, name))
            if instance is not None and instance.status not in TERMINAL:
                # An in-flight step: let it end (it will not start a new one).
                return Retry(state, min(0.02 * 2 ** (ctx.attempt - 1), 1.0))
            if instance is not None and instance.status == "done":
                completed.append((instance.updated_at, instance.id, name, instance.result))
            undo = await get_instance(ctx.engine, step_key(state.run_key, name, "compensation"))
            if undo is not None and undo.status not in TERMINAL:
                return Retry(state, min(0.02 * 2 ** (ctx.attempt - 1), 1.0))
            if undo is not None and undo.status == "done":
                compensated.add(name)
        completed.sort()
        adopt(state, [(name, result) for _, _, name, result in completed], compensated)
        return await self._advance(state, ctx, consumed=False)

    async def _compensated(self, state: RunState, ctx: Context) -> None:
        if not state.to_compensate:
            return
        name = state.to_compensate[0]
        mine = [
            child
            for child in ctx.children
            if getattr(child.state, "step", None) == name
            and getattr(child.state, "kind", None) == "compensation"
        ]
        if not mine:
            logger.warning("run %s: no compensation instance found for %r", ctx.id, name)
            error: str | None = "compensation instance not found"
        else:
            child = max(mine, key=lambda c: c.id)
            error = None if child.status == "done" else (child.error or child.status)
        finish_compensation(state, name, error)  # spec §6.9: a failure is kept
        kind = "compensation_completed" if error is None else "compensation_failed"
        await self._emit(ctx, kind, step=name, data=error, state=state)

    async def _emit_step(self, ctx: Context, kind: Any, step: str, attempt: int, data: Any) -> None:
        await emit_fields(ctx.engine, ctx.id, self.workflow.name, kind, step, attempt, data)

    async def _emit(
        self,
        ctx: Context,
        kind: Any,
        *,
        step: str | None = None,
        data: Any = None,
        state: RunState | None = None,
    ) -> None:
        if not heard(ctx.engine):
            return
        run_id = ctx.id if state is None or state.cancelled_run is None else state.cancelled_run
        await emit(ctx.engine, WorkflowEvent(run_id, self.workflow.name, kind, step, None, data))


def _park(state: RunState) -> Await:
    # Await the next report; the timeout is the watchdog's (spec §6.14).
    return Await(AWAITS, "plan", state, timeout=watch_delay(state))


async def _dispatched(engine: Any, state: RunState, step: str) -> bool:
    # A step instance that is live or done (not lost: spec §6.7.1).
    instance = await get_instance(engine, step_key(state.run_key, step))
    return instance is not None and instance.status not in ("stopped", "cancelled")


_machines: weakref.WeakKeyDictionary[Workflow, type[Machine]] = weakref.WeakKeyDictionary()


def run_machine(wf: Workflow) -> type[Machine]:
    """The run machine class of ``wf`` (one class per workflow object)."""
    cls = _machines.get(wf)
    if cls is None:
        cls = type(
            f"RunMachine[{wf.name}]",
            (_RunMachine,),
            {"name": run_machine_name(wf), "version": wf.version, "workflow": wf},
        )
        _machines[wf] = cls
    return cls
