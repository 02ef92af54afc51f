"""The state of a run and its pure transition logic (spec §6.5-§6.8).

Everything here is plain data and pure functions: no engine, no I/O. The run
machine (``_run_machine.py``) stores a :class:`RunState` as its durable state and
calls these functions to decide what to do next, so every scheduling rule can be
read (and is tested) without a database.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ._definition import StepFailure, Workflow

# spec §6.5: a step's status in its run.
StepStatus = Literal["pending", "running", "done", "failed", "skipped"]
CompensationStatus = Literal["running", "done", "failed"]
# spec §6.5: running -> (failing | cancelling) -> compensating -> failed | cancelled;
# running -> done.
Phase = Literal["running", "failing", "cancelling", "compensating", "done", "failed", "cancelled"]

LIVE_PHASES = ("running", "failing", "cancelling", "compensating")
PHASES = (*LIVE_PHASES, "done", "failed", "cancelled")
STEP_STATUSES = ("pending", "running", "done", "failed", "skipped")


@attrs.define
class StepRecord:
    """One row of a run's step table."""

    status: StepStatus = "pending"
    attempts: int = 0
    result: Any = None
    error: str | None = None
    compensation: CompensationStatus | None = None
    compensation_error: str | None = None
    #: Seconds the step's function took, for a step that ran inline (spec §6.6.2);
    #: a step instance's time is its own row's.
    duration: float | None = None


@attrs.define
class HistoryEntry:
    """One line of a run's history, in the order the run saw it."""

    event: str
    step: str | None = None
    detail: str | None = None


@attrs.define
class RunState:
    """The durable state of a run instance: its input, the step table, the order in
    which steps completed, the phase, and (once it fails) the failure and the
    compensations left to run."""

    workflow: str
    run_key: str
    input: Any
    steps: dict[str, StepRecord]
    completed: list[str] = attrs.field(factory=list)
    phase: Phase = "running"
    failure: StepFailure | None = None
    to_compensate: list[str] = attrs.field(factory=list)
    history: list[HistoryEntry] = attrs.field(factory=list)
    #: Set on the compensator of a run cancelled with ``engine.cancel``: the id of
    #: that run (spec §6.11).
    cancelled_run: int | None = None
    #: Infrastructure errors so far (spec §6.10.4).
    infra_errors: int = 0
    #: step -> the steps it runs after: the run's graph, for viewers that do not
    #: import the workflow (the dashboard, spec §12.5). Empty in older runs.
    after: dict[str, list[str]] = attrs.field(factory=dict)
    #: Quiet watchdog wakes since the last report: the next one waits longer (§6.14).
    watch: int = 0
    #: The run's priority: every step instance it dispatches inherits it (spec §11.1).
    priority: int = 0

    def __trexec_to_json__(self) -> dict[str, Any]:
        """Plain JSON data: what cattrs would make, less the fields of a step record
        or a history line that are None, and the run's fields that hold their
        default (spec §6.5.3)."""
        data: dict[str, Any] = {
            "workflow": self.workflow,
            "run_key": self.run_key,
            "input": self.input,
            "steps": {name: _record_json(rec) for name, rec in self.steps.items()},
            "completed": list(self.completed),
            "phase": self.phase,
            "history": [
                {"event": h.event, "step": h.step}
                if h.detail is None
                else {"event": h.event, "step": h.step, "detail": h.detail}
                for h in self.history
            ],
            "after": {name: list(deps) for name, deps in self.after.items()},
        }
        failure = self.failure
        if failure is not None:
            data["failure"] = {
                "step": failure.step,
                "type": failure.type,
                "message": failure.message,
            }
        if self.to_compensate:
            data["to_compensate"] = list(self.to_compensate)
        if self.cancelled_run is not None:
            data["cancelled_run"] = self.cancelled_run
        if self.infra_errors:
            data["infra_errors"] = self.infra_errors
        if self.watch:
            data["watch"] = self.watch
        if self.priority:
            data["priority"] = self.priority
        return data

    @classmethod
    def __trexec_from_json__(cls, data: Any) -> RunState:
        """The run state stored as ``data``; raises TypeError, ValueError or
        KeyError for data that is not one (spec §5.1.5: poison goes to handle)."""
        if not isinstance(data, dict):
            raise TypeError(f"run state={data!r}: expected a JSON object")
        # The keys are the fields' names; one this version does not know (written
        # by a newer one) is left out, as cattrs would.
        fields = {k: v for k, v in data.items() if k in _RUN_FIELDS}
        steps = {name: _step_record(name, rec) for name, rec in data["steps"].items()}
        fields["steps"] = steps
        failure = data.get("failure")
        if failure is not None:
            fields["failure"] = StepFailure(**failure)
        if "history" in data:
            fields["history"] = [_history_entry(h) for h in data["history"]]
        state = cls(**fields)
        if state.phase not in PHASES:
            raise ValueError(f"phase={state.phase!r}: expected one of {PHASES}")
        return state

    @property
    def results(self) -> dict[str, Any]:
        """name -> result of every done step, in completion order."""
        return {name: self.steps[name].result for name in self.completed}

    @property
    def running(self) -> list[str]:
        """Steps dispatched and not reported yet."""
        return [name for name, rec in self.steps.items() if rec.status == "running"]


_RUN_FIELDS = frozenset(a.name for a in attrs.fields(RunState))


def _step_record(name: str, data: Any) -> StepRecord:
    # Positional, keys this version does not know left out (as cattrs would):
    # a run decodes its whole table at every step.
    if not isinstance(data, dict):
        raise TypeError(f"step {name!r}={data!r}: expected a JSON object")
    get = data.get
    rec = StepRecord(
        get("status", "pending"), get("attempts", 0), get("result"), get("error"),
        get("compensation"), get("compensation_error"), get("duration"),
    )  # fmt: skip
    if rec.status not in STEP_STATUSES:
        raise ValueError(f"step {name!r} status={rec.status!r}: expected one of {STEP_STATUSES}")
    return rec


def _history_entry(data: Any) -> HistoryEntry:
    if not isinstance(data, dict):
        raise TypeError(f"history line={data!r}: expected a JSON object")
    return HistoryEntry(data["event"], data.get("step"), data.get("detail"))


def _record_json(rec: StepRecord) -> dict[str, Any]:
    data: dict[str, Any] = {"status": rec.status, "attempts": rec.attempts}
    if rec.result is not None:
        data["result"] = rec.result
    if rec.error is not None:
        data["error"] = rec.error
    if rec.compensation is not None:
        data["compensation"] = rec.compensation
    if rec.compensation_error is not None:
        data["compensation_error"] = rec.compensation_error
    if rec.duration is not None:
        data["duration"] = rec.duration
    return data


@attrs.frozen
class StepReport:
    """What a step instance tells its run when it ends (the payload of the
    ``step_finished`` signal)."""

    step: str
    outcome: Literal["done", "failed", "skipped"]
    attempts: int = 1
    result: Any = None
    error_type: str | None = None
    error: str | None = None


@attrs.frozen
class Plan:
    """What the run does next: ``dispatch`` the ``steps``; ``wait`` for reports;
    ``complete`` (every step done); ``compensate`` the first of ``steps``; or
    ``finish`` (failed or cancelled, compensations over)."""

    kind: Literal["dispatch", "wait", "complete", "compensate", "finish"]
    steps: tuple[str, ...] = ()


_WAIT = Plan("wait")


def new_run_state(wf: Workflow, run_key: str, input: Any, priority: int = 0) -> RunState:
    """A run that has not started: every step pending."""
    return RunState(
        priority=priority,
        workflow=wf.name,
        run_key=run_key,
        input=input,
        steps={name: StepRecord() for name in wf.step_names},
        after={name: list(wf.step(name).after) for name in wf.step_names},
    )


def ready_steps(wf: Workflow, state: RunState) -> list[str]:
    """Pending steps whose dependencies are all done, in dependency order.

    spec §6.6: a step is ready as soon as *its* dependencies are done, whatever
    else is still running (no waves); a join waits for all of its dependencies.
    """
    if state.phase != "running":  # spec §6.8: a failing run dispatches nothing new
        return []
    return _scan(wf, state)[1]


def _scan(wf: Workflow, state: RunState) -> tuple[bool, list[str]]:
    # Whether every step is done, and the ready steps, in one pass: a run plans at
    # every step (plain loops: this is its hottest code).
    steps = state.steps
    all_done = True
    ready = []
    for name, after in wf.dependencies:
        status = steps[name].status
        if status == "done":
            continue
        all_done = False
        if status != "pending":
            continue
        for dep in after:
            if steps[dep].status != "done":
                break
        else:
            ready.append(name)
    return all_done, ready


def mark_dispatched(state: RunState, steps: list[str] | tuple[str, ...]) -> None:
    """Record ``steps`` as running (dispatched, no report yet)."""
    for name in steps:
        state.steps[name].status = "running"
        state.history.append(HistoryEntry("dispatched", name))


def apply_report(state: RunState, report: StepReport) -> bool:
    """Fold one step report into the run. Returns False (and changes nothing) for a
    report the run already has: step instances run at least once, so a report can
    arrive twice (spec §6.10)."""
    if report.outcome == "done":
        return apply_done(state, report.step, report.attempts, report.result)
    rec = state.steps.get(report.step)
    if rec is None or rec.status not in ("pending", "running"):
        return False
    rec.attempts = max(rec.attempts, report.attempts)
    if report.outcome == "skipped":
        rec.status = "skipped"
        state.history.append(HistoryEntry("skipped", report.step))
    else:
        rec.status = "failed"
        rec.error = f"{report.error_type}: {report.error}"
        state.history.append(HistoryEntry("failed", report.step, rec.error))
        if state.phase == "running":  # spec §6.8: the first final failure fails the run
            state.phase = "failing"
            state.failure = StepFailure(report.step, report.error_type or "", report.error or "")
    return True


def apply_done(state: RunState, step: str, attempts: int, result: Any) -> bool:
    """:func:`apply_report` of a ``done`` report, without building one (an
    inline run folds every step it runs, spec §6.6.2)."""
    rec = state.steps.get(step)
    if rec is None or rec.status not in ("pending", "running"):
        return False
    rec.attempts = max(rec.attempts, attempts)
    rec.status = "done"
    rec.result = result
    state.completed.append(step)
    state.history.append(HistoryEntry("completed", step))
    return True


def request_cancel(state: RunState) -> bool:
    """Cancel a live run that is not compensating yet: it dispatches nothing new and,
    once its running steps have reported, compensates what completed (spec §6.11).
    Returns False if there was nothing to cancel."""
    if state.phase not in ("running", "failing"):
        return False
    if state.phase == "running":
        state.failure = StepFailure(None, "Cancelled", "the run was cancelled")
    state.phase = "cancelling"
    state.history.append(HistoryEntry("cancel requested"))
    return True


def plan(wf: Workflow, state: RunState) -> Plan:
    """Decide the run's next move from its state alone (spec §6.6-§6.9)."""
    if state.phase == "running":
        all_done, ready = _scan(wf, state)
        if all_done:
            return Plan("complete")
        return Plan("dispatch", tuple(ready)) if ready else _WAIT
    if state.phase in ("failing", "cancelling"):
        if state.running:  # spec §6.8: let in-flight steps report before compensating
            return Plan("wait")
        # spec §6.9: every completed step that has a compensation (and was not
        # compensated yet), newest first; the failed step never completed.
        state.to_compensate = [
            name
            for name in reversed(state.completed)
            if wf.step(name).compensate is not None and state.steps[name].compensation is None
        ]
        state.phase = "compensating"
    if state.phase == "compensating":
        if state.to_compensate:
            return Plan("compensate", (state.to_compensate[0],))
        return Plan("finish")
    return Plan("wait")


def start_compensation(state: RunState, step: str) -> None:
    """Record that ``step``'s compensation was dispatched."""
    state.steps[step].compensation = "running"
    state.history.append(HistoryEntry("compensating", step))


def finish_compensation(state: RunState, step: str, error: str | None) -> None:
    """Record the end of ``step``'s compensation (``error`` when it finally failed:
    kept on the run, never dropped, spec §6.9) and move to the next one."""
    rec = state.steps[step]
    if error is None:
        rec.compensation = "done"
        state.history.append(HistoryEntry("compensated", step))
    else:
        rec.compensation = "failed"
        rec.compensation_error = error
        state.history.append(HistoryEntry("compensation failed", step, error))
    if state.to_compensate and state.to_compensate[0] == step:
        state.to_compensate.pop(0)


def final_error(state: RunState) -> str:
    """The ``error`` of a failed or cancelled run: the failure, then every
    compensation that failed."""
    parts = [str(state.failure) if state.failure is not None else "run failed"]
    for name, rec in state.steps.items():
        if rec.compensation_error is not None:
            parts.append(f"compensation of step {name!r} failed: {rec.compensation_error}")
    return "; ".join(parts)


def end(state: RunState) -> Literal["failed", "cancelled"]:
    """Close a run whose compensations are over: ``failed`` or ``cancelled``."""
    cancelled = state.failure is not None and state.failure.step is None
    state.phase = "cancelled" if cancelled else "failed"
    state.history.append(HistoryEntry(state.phase))
    return state.phase


def adopt(state: RunState, completed: list[tuple[str, Any]], compensated: set[str]) -> None:
    """Rebuild the step table of a run cancelled with ``engine.cancel`` from its last
    table and what its step instances say (spec §6.11): ``completed`` (name,
    result), oldest first, and the steps whose compensation already ran. The run
    then compensates."""
    for rec in state.steps.values():
        if rec.status == "running":
            rec.status = "skipped"
    # The steps the run's table already holds done come first (an inline step
    # has no instance, spec §6.6.2), then those whose instance completed since.
    order = [name for name in state.completed if state.steps[name].status == "done"]
    for name, result in completed:
        rec = state.steps[name]
        rec.status, rec.result = "done", result
        if name not in order:
            order.append(name)
    state.completed = order
    for name in compensated:
        state.steps[name].compensation = "done"
    state.failure = StepFailure(None, "Cancelled", "the run was cancelled")
    state.phase = "cancelling"
    state.history.append(HistoryEntry("cancelled by engine.cancel; compensating"))
