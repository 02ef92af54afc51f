"""The dispatcher (seed 003, SquidMesh.Runtime.Dispatcher): turn "these steps of
this run should run" into durable step instances (spec §6.7).

Dispatching a step inserts one step instance (``_step_machine.py``) keyed
``"<run key>/<step>"``. All the instances of one call are inserted by ONE
``engine.insert_many`` transaction: all of them, or none. The business key makes
dispatch idempotent: a step whose instance is still live is not dispatched
twice (spec §6.7.3).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import attrs
import cattrs

from .. import _validate
from ..durable import DuplicateKey, Engine, InsertSpec, NoTarget
from ._definition import Workflow
from ._exceptions import DispatchError
from ._state import LIVE_PHASES, RunState

__all__ = ["DispatchMetadata", "RunDispatched", "dispatch_run", "dispatch_steps"]

_converter = cattrs.Converter()
TERMINAL = ("done", "stopped", "cancelled")


@attrs.frozen
class DispatchMetadata:
    """One dispatched step: the run, the step, ``kind`` (``"step"`` or
    ``"compensation"``), the durable id and business key of the step instance, and
    the delay before it may run (``schedule_in``, seconds)."""

    run_id: int
    step: str
    kind: Literal["step", "compensation"]
    instance_id: int
    key: str
    schedule_in: float = 0.0


@attrs.frozen
class RunDispatched:
    """Event: ``metadata`` (one step) was dispatched for run ``run_id``."""

    run_id: int
    metadata: DispatchMetadata


def step_key(run_key: str, step: str, kind: str = "step") -> str:
    """The business key of a step instance (spec §6.7.3)."""
    return f"{run_key}/{step}" if kind == "step" else f"{run_key}/{step}/{kind}"


def check_target(engine: object, run_id: object) -> int:
    """Raise InvalidArgument unless ``engine`` is a durable Engine and ``run_id`` a run id."""
    if not isinstance(engine, Engine):
        _validate.fail("engine", engine, "a durable.Engine (from durable.open_engine)")
    if isinstance(run_id, bool) or not isinstance(run_id, int) or run_id < 1:
        _validate.fail("run_id", run_id, "a run id (int >= 1)")
    return run_id


def check_json(name: str, value: object) -> None:
    """Raise InvalidArgument unless ``value`` can be stored as JSON."""
    try:
        json.dumps(value, allow_nan=False)  # spec §5.1.4: NaN cannot be stored
    except RecursionError:
        _validate.fail(name, "<a value nested too deeply>", "a JSON-serializable value")
    except (TypeError, ValueError) as exc:
        _validate.fail(name, value, f"a JSON-serializable value ({exc})")


async def dispatch_run(
    engine: Any, run_id: int, *, schedule_in: float | None = None
) -> tuple[list[DispatchMetadata], list[RunDispatched]]:
    """Dispatch the ready steps of run ``run_id`` (spec §6.7.1): the steps whose
    dependencies are done and that have no step instance yet — for a new run, its
    entry steps — or whose instance was lost (stopped before reporting, or
    cancelled by hand). A run of an ``execution="inline"`` workflow runs its
    pending steps itself: only its lost step instances (retries) are dispatched
    again. ``schedule_in`` (seconds) delays them.

    Returns ``(metadata, events)``: one :class:`DispatchMetadata` and one
    :class:`RunDispatched` per dispatched step (both empty when nothing is ready).
    All or none: raises :class:`DispatchError` (nothing dispatched) if the run is
    unknown, not a workflow run of ``engine.workflows``, or no longer live.
    """
    check_target(engine, run_id)
    delay = _validate.seconds("schedule_in", schedule_in, allow_none=True) or 0.0
    wf, state = await load_run(engine, run_id)
    wanted = [
        name
        for name in wf.step_names
        if state.steps[name].status in ("pending", "running")
        and all(state.steps[dep].status == "done" for dep in wf.step(name).after)
    ]
    if state.phase != "running":  # spec §6.8: a failing run dispatches nothing new
        wanted = []
    if wf.execution == "inline":
        # spec §6.7.1: an inline run runs its pending steps itself; only the step
        # instances of its retries can be lost.
        wanted = [name for name in wanted if state.steps[name].status == "running"]
    lost = []
    for name in wanted:
        if state.steps[name].status == "running":
            # Dispatched before: only a lost instance (none, stopped, cancelled) is
            # dispatched again; a done one has reported or is about to.
            instance = await get_instance(engine, step_key(state.run_key, name))
            if instance is not None and instance.status not in ("stopped", "cancelled"):
                continue
        lost.append(name)
    return await insert_steps(engine, wf, run_id, state, lost, delay, skip_live=True)


async def dispatch_steps(
    engine: Any, run_id: int, steps: Iterable[str]
) -> tuple[list[DispatchMetadata], list[RunDispatched]]:
    """Dispatch the named steps of run ``run_id`` now, whatever the state of their
    dependencies (spec §6.7.2). Repeated names are dispatched once.

    Returns ``(metadata, events)`` as :func:`dispatch_run`. All or none: raises
    :class:`DispatchError` (nothing dispatched) for an unknown or finished run, a
    name that is not a step of its workflow, or a step whose instance is still
    live; :class:`~trexec.InvalidArgument` if ``steps`` is not an iterable of str.
    """
    check_target(engine, run_id)
    if isinstance(steps, str) or not isinstance(steps, Iterable):
        _validate.fail("steps", steps, "an iterable of step names")
    given = list(steps)
    for name in given:  # before dict.fromkeys: an unhashable item is a TypeError there
        if not isinstance(name, str):
            _validate.fail("steps item", name, "a step name (str)")
    names = list(dict.fromkeys(given))
    wf, state = await load_run(engine, run_id)
    unknown = [name for name in names if name not in state.steps]
    if unknown:
        raise DispatchError(
            f"steps={unknown!r}: expected steps of workflow {wf.name!r}, "
            f"one of {list(wf.step_names)!r}"
        )
    return await insert_steps(engine, wf, run_id, state, names, 0.0, skip_live=False)


async def load_run(engine: Any, run_id: int) -> tuple[Workflow, RunState]:
    """The workflow and committed state of a live run (``engine`` and ``run_id``
    checked by the caller); DispatchError otherwise."""
    instance = await get_instance(engine, run_id)
    if instance is None:
        raise DispatchError(f"run_id={run_id!r}: expected the id of an existing run")
    wf = workflow_of(engine, instance.machine, instance.version)
    if wf is None:
        raise DispatchError(
            f"run_id={run_id!r} is a {instance.machine!r} instance: expected a run of a "
            "workflow given to open_engine(workflows=...)"
        )
    state = as_run_state(instance.state)
    if instance.status in TERMINAL or state.phase not in LIVE_PHASES:
        raise DispatchError(
            f"run_id={run_id!r} is {instance.status!r}: expected a live run to dispatch to"
        )
    return wf, state


def workflow_of(engine: Any, machine: str, version: int) -> Workflow | None:
    """The workflow of ``engine.workflows`` whose run machine is ``machine``."""
    from ._run_machine import run_machine_name

    for wf in getattr(engine, "workflows", ()):
        if isinstance(wf, Workflow) and run_machine_name(wf) == machine and wf.version == version:
            return wf
    return None


def as_run_state(state: Any) -> RunState:
    # An engine that does not run the machine hands the state out as plain JSON.
    return state if isinstance(state, RunState) else _converter.structure(state, RunState)


def step_specs(
    wf: Workflow, run_id: int, state: RunState, steps: Sequence[str], delay: float = 0.0
) -> list[InsertSpec]:
    """One step-instance insert per name of ``steps``, keyed ``<run key>/<step>``."""
    from ._step_machine import new_task, step_machine

    return [
        InsertSpec(
            step_machine(wf),
            new_task(state, name, run_id=run_id),
            schedule_in=delay,
            key=step_key(state.run_key, name),
            priority=state.priority,  # spec §11.1: steps inherit the run's
        )
        for name in steps
    ]


async def insert_steps(
    engine: Any,
    wf: Workflow,
    run_id: int,
    state: RunState,
    steps: Sequence[str],
    delay: float,
    *,
    skip_live: bool,
) -> tuple[list[DispatchMetadata], list[RunDispatched]]:
    """Insert one step instance per name of ``steps`` in one transaction.

    A key clash means a step instance is still live: with ``skip_live`` that step
    is left out and the rest inserted (again in one transaction); without it the
    call raises :class:`DispatchError` and inserts nothing (spec §6.7.3).
    """
    pending = list(steps)
    clashes = 0
    # Each round inserts everything, or drops the steps found live and tries again.
    while pending:
        specs = step_specs(wf, run_id, state, pending, delay)
        try:
            ids = await engine.insert_many(specs)
        except DuplicateKey:
            live = [name for name in pending if await _is_live(engine, state.run_key, name)]
            clashes += 1
            if not live and clashes < 3:
                continue  # the holder ended between the insert and the check: again
            if not live:
                raise  # a clash that does not go away: let the caller see it
            if not skip_live:
                raise DispatchError(
                    f"steps={live!r} of run {run_id!r} are still running: "
                    "expected steps without a live step instance"
                ) from None
            pending = [name for name in pending if name not in live]
            continue
        metadata = [
            DispatchMetadata(run_id, name, "step", instance_id, spec.key or "", delay)
            for name, instance_id, spec in zip(pending, ids, specs, strict=True)
        ]
        return metadata, [RunDispatched(run_id, m) for m in metadata]
    return [], []


async def _is_live(engine: Any, run_key: str, step: str) -> bool:
    instance = await get_instance(engine, step_key(run_key, step))
    return instance is not None and instance.status not in TERMINAL


async def get_instance(engine: Any, target: int | str) -> Any:
    """``engine.get(target)``, or None when there is no such instance."""
    try:
        return await engine.get(target)
    except NoTarget:
        return None


@attrs.frozen
class RunView:
    """What a step instance needs to know about its run before it starts."""

    id: int
    status: str
    step: str
    phase: str | None


async def run_view(engine: Any, target: int | str) -> RunView | None:
    """The run ``target``'s id, status, step and phase, or None when there is no
    such instance: one read, the state's JSON parsed without building a
    ``RunState`` (a step instance reads this before every attempt)."""
    record = await engine.store.get(target)
    if record is None:
        return None
    try:
        phase = json.loads(record.state).get("phase")
    except (ValueError, AttributeError):  # not a run's state: no phase
        phase = None
    return RunView(record.id, record.status, record.step, phase)
