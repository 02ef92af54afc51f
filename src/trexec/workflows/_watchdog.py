"""The run's watchdog: a step instance that ended without reporting (spec §6.14).

A step instance normally tells its run how it ended (``step_finished``). One
cancelled by hand (``engine.cancel`` on its id or key), or stopped by the engine
(a commit the database refuses, spec §5.5.9; an infrastructure error retried
too often, §6.10.4) never does, and a run waiting for its report would wait for
ever. So a run that waits for running steps parks with a timeout; when it
expires, the run looks at the instances of its running steps and treats one that
ended without a report as that step failing for good.
"""

from __future__ import annotations

from typing import Any

import cattrs

from ._dispatch import get_instance, step_key
from ._state import RunState, StepReport

#: First watchdog delay (seconds) of a waiting run; it doubles on every quiet
#: wake, up to WATCH_MAX, and starts again when a report arrives.
WATCH_MIN = 1.0
WATCH_MAX = 60.0
#: The ``error_type`` of a step whose instance ended without reporting.
LOST = "StepLost"

_converter = cattrs.Converter()


def watch_delay(state: RunState) -> float | None:
    """The Await timeout of a run that waits: None when no step is running."""
    if not state.running:
        return None
    return float(min(WATCH_MIN * 2.0**state.watch, WATCH_MAX))


def lost_report(step: str, instance: Any) -> StepReport | None:
    """The report of ``step`` whose instance is ``instance`` (an ``engine.get``
    record, or None when it is gone), if that instance ended without reporting;
    None while it is live or when it ended ``done`` (its report was sent first).

    spec §6.14: an instance that had committed its outcome (it was about to
    report) counts with that outcome; any other counts as the step failing for
    good, the error naming how it ended.
    """
    if instance is None:
        return StepReport(step, "failed", error_type=LOST, error="its step instance is gone")
    if instance.status not in ("stopped", "cancelled"):
        return None
    task = _task_state(instance.state)
    if task is not None and task.get("outcome") in ("done", "failed", "skipped"):
        return StepReport(
            step,
            task["outcome"],
            int(task.get("attempt") or 1),
            task.get("result"),
            task.get("error_type"),
            task.get("error"),
        )
    how = "cancelled" if instance.status == "cancelled" else f"stopped: {instance.error}"
    attempts = int(task.get("attempt") or 1) if task is not None else 1
    return StepReport(
        step,
        "failed",
        attempts,
        error_type=LOST,
        error=f"its step instance {instance.id} was {how} (it never reported)",
    )


def _task_state(state: Any) -> dict[str, Any] | None:
    # The engine hands a decoded TaskState when it runs the step machine, plain
    # JSON otherwise; a state that cannot be read is no report at all.
    if isinstance(state, dict):
        return state
    try:
        data = _converter.unstructure(state)
    except Exception:
        return None
    return data if isinstance(data, dict) else None


async def lost_reports(engine: Any, state: RunState) -> list[StepReport]:
    """The reports of the running steps of ``state`` whose instance ended without
    reporting (spec §6.14)."""
    reports = []
    for name in state.running:
        instance = await get_instance(engine, step_key(state.run_key, name))
        report = lost_report(name, instance)
        if report is not None:
            reports.append(report)
    return reports
