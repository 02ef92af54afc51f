"""A run as data and as a table, for ``trexec ls``/``show`` (spec §6.13)."""

from __future__ import annotations

from typing import Any

import attrs
import cattrs

from ._state import RunState

__all__ = ["describe_run", "explain_run", "is_run", "render_run"]

_converter = cattrs.Converter()


def is_run(instance: Any) -> bool:
    """True if the durable ``instance`` is a workflow run (machine ``workflow:<name>``)."""
    machine = getattr(instance, "machine", "")
    return (
        isinstance(machine, str)
        and machine.startswith("workflow:")
        and (not machine.endswith(":step"))
    )


def describe_run(instance: Any) -> dict[str, Any]:
    """A workflow run instance (from ``engine.get``) as plain data: id, workflow,
    status, phase, error, result, the step table (status, attempts, compensation,
    error per step) and the history. Raises :class:`~trexec.InvalidArgument` if
    ``instance`` is not a workflow run."""
    from .. import _validate

    if not is_run(instance):
        _validate.fail("instance", instance, "a workflow run instance (machine 'workflow:<name>')")
    state = instance.state
    if not isinstance(state, RunState):
        state = _converter.structure(state, RunState)
    return {
        "id": instance.id,
        "workflow": state.workflow,
        "status": instance.status,
        "phase": state.phase,
        "error": instance.error,
        "result": instance.result,
        "failure": None if state.failure is None else str(state.failure),
        "steps": [
            {"step": name, **attrs.asdict(rec, filter=lambda a, v: a.name != "result")}
            for name, rec in state.steps.items()
        ],
        "completed": list(state.completed),
        "history": [attrs.asdict(entry) for entry in state.history],
    }


def explain_run(instance: Any) -> str | None:
    """What a workflow run instance waits for, in plain words (spec §5.16): the
    steps not finished (each with its status and attempts), or None when
    ``instance`` is not a run. ``Engine.explain`` and ``trexec explain`` add it."""
    if not is_run(instance):
        return None
    try:
        info = describe_run(instance)
    except Exception:  # a state no RunState can load: durable's explanation stands
        return None
    phase = info["phase"]
    if instance.status in ("done", "stopped", "cancelled"):
        return f"workflow run of {info['workflow']!r} ended in phase {phase!r}"
    status = {row["step"]: row["status"] for row in info["steps"]}
    after = _graph(instance.state)

    def label(row: dict[str, Any]) -> str:
        # spec §6.6.2: a claimed inline run is running its ready steps itself.
        ready = all(status.get(dep) == "done" for dep in after.get(row["step"], ()))
        if row["status"] == "pending" and instance.status == "running" and ready:
            return "running inline"
        return str(row["status"])

    open_steps = [
        f"{row['step']} ({label(row)}, {row['attempts']} attempt(s))"
        for row in info["steps"]
        if row["status"] not in ("done", "failed", "skipped")
        or row.get("compensation") == "running"
    ]
    if not open_steps:
        return f"workflow run of {info['workflow']!r} ({phase}) has no step left to wait for"
    return (
        f"workflow run of {info['workflow']!r} ({phase}) is waiting for steps:"
        f" {', '.join(open_steps)}"
    )


def _graph(state: Any) -> dict[str, list[str]]:
    after = state.after if isinstance(state, RunState) else state.get("after")
    return after if isinstance(after, dict) else {}


def render_run(instance: Any) -> Any:
    """:func:`describe_run` as a ``rich`` renderable: the step table and the history."""
    from rich.console import Group
    from rich.table import Table

    info = describe_run(instance)
    steps = Table(
        title=f"run {info['id']} · {info['workflow']} · {info['status']} ({info['phase']})"
    )
    for column in ("step", "status", "attempts", "compensation", "error"):
        steps.add_column(column)
    for row in info["steps"]:
        error = row["error"] or row["compensation_error"] or ""
        steps.add_row(
            row["step"], row["status"], str(row["attempts"]), row["compensation"] or "", error
        )
    history = Table(title="history")
    for column in ("#", "event", "step", "detail"):
        history.add_column(column)
    for number, entry in enumerate(info["history"], 1):
        history.add_row(str(number), entry["event"], entry["step"] or "", entry["detail"] or "")
    return Group(steps, history)
