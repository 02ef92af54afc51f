"""Run events: what a workflow run reports while it runs (spec §6.12).

Each event goes to :mod:`trexec.telemetry` as ``("trexec", "workflow", <subject>,
<what>)`` (for example ``("trexec", "workflow", "step", "completed")``) and, when
the engine was opened with ``bus=``, to the run's topic
``trexec.run_topic(run_id)``. The terminal event is followed on the topic by the
matching ``trexec.RunCompleted`` / ``RunFailed`` / ``RunCancelled``, so
``trexec.follow_run(nursery, bus, run_id, recorders)`` drives ``trexec.Recorder``\\ s
from a durable run exactly as from an in-process one.

Events are emitted by the step that observes them, and steps run at least once:
after a crash an event can be emitted twice. Recorders finalize once, on the
first terminal outcome.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import attrs
import trio

from .. import telemetry

__all__ = ["WorkflowEvent"]

logger = logging.getLogger("trexec.workflows")

EventKind = Literal[
    "run_started",
    "step_started",
    "step_completed",
    "step_failed",
    "step_retrying",
    "step_skipped",
    "compensation_started",
    "compensation_completed",
    "compensation_failed",
    "run_completed",
    "run_failed",
    "run_cancelled",
]

# A subscriber that stops reading must not hold a durable step forever: past this
# the event is dropped from the bus (telemetry has it) and a warning is logged.
PUBLISH_TIMEOUT = 10.0


@attrs.frozen
class WorkflowEvent:
    """One event of a workflow run, as published on its RunBus topic.

    ``kind`` is one of ``run_started``, ``step_started``, ``step_completed``,
    ``step_failed``, ``step_retrying``, ``step_skipped``, ``compensation_started``,
    ``compensation_completed``, ``compensation_failed``, ``run_completed``,
    ``run_failed``, ``run_cancelled``; ``step`` and ``attempt`` are set for step and
    compensation events; ``data`` holds the result (completed), the error text
    (failed), or ``{"delay": seconds, "error": repr}`` (retrying).
    """

    run_id: int
    workflow: str
    kind: EventKind
    step: str | None = None
    attempt: int | None = None
    data: Any = None

    @property
    def terminal(self) -> bool:
        """True for ``run_completed``, ``run_failed`` and ``run_cancelled``."""
        return self.kind in ("run_completed", "run_failed", "run_cancelled")


#: kind -> its telemetry event name, ("trexec", "workflow", subject, what).
_NAMES: dict[str, tuple[str, ...]] = {}


def heard(engine: Any) -> bool:
    """False when no event of a run can reach anyone: ``engine`` has no bus and
    no telemetry handler takes workflow events (an inline run then builds none)."""
    return getattr(engine, "bus", None) is not None or telemetry._listening_below(
        ("trexec", "workflow")
    )


async def emit(engine: Any, event: WorkflowEvent) -> None:
    """Send ``event`` to telemetry, then to the engine's bus (if any), followed by the
    run outcome when it is terminal."""
    await emit_fields(
        engine, event.run_id, event.workflow, event.kind, event.step, event.attempt, event.data
    )


async def emit_fields(
    engine: Any,
    run_id: int,
    workflow: str,
    kind: EventKind,
    step: str | None,
    attempt: int | None,
    data: Any,
) -> None:
    """:func:`emit` of the event made of these fields (it is only built when the
    engine has a bus: an inline run emits two events per step)."""
    name = _NAMES.get(kind)
    if name is None:
        name = _NAMES[kind] = ("trexec", "workflow", *kind.split("_", 1))
    if telemetry.listening(name):
        measurements: dict[str, Any] = {}
        if kind == "step_retrying" and isinstance(data, dict):
            measurements["delay"] = data.get("delay")
        metadata = {
            "run_id": run_id,
            "workflow": workflow,
            "step": step,
            "attempt": attempt,
            "data": data,
        }
        telemetry.execute(name, measurements, metadata)
    bus = getattr(engine, "bus", None)
    if bus is None:
        return
    event = WorkflowEvent(run_id, workflow, kind, step, attempt, data)
    topic = _topic(event.run_id)
    messages: list[object] = [event]
    if event.terminal:
        messages.append(_run_outcome(event))
    with trio.move_on_after(PUBLISH_TIMEOUT) as scope:
        for message in messages:
            await bus.publish(topic, message)
    if scope.cancelled_caught:
        logger.warning("run %s: bus subscriber too slow, %s dropped", event.run_id, event.kind)


def _topic(run_id: int) -> str:
    # trexec.run_topic (spec §4.1.5) when the runs module provides it.
    import trexec

    run_topic = getattr(trexec, "run_topic", None)
    return str(run_topic(run_id)) if run_topic is not None else f"run:{run_id}"


def _run_outcome(event: WorkflowEvent) -> object:
    """The in-process run outcome matching a terminal event (spec §4 outcomes)."""
    import trexec

    if event.kind == "run_completed":
        return getattr(trexec, "RunCompleted")(event.data)  # noqa: B009
    if event.kind == "run_failed":
        return getattr(trexec, "RunFailed")([event.data])  # noqa: B009
    return getattr(trexec, "RunCancelled")()  # noqa: B009
