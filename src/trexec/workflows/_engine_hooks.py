"""What a workflow does for the durable engine (spec §6.2): the machines a set of
workflows needs, and a run's start. ``Workflow.engine_machines`` and
``Workflow.start_run`` (the ``durable.Extension``/``RunStarter`` protocols,
spec §5.5.10) call these; the durable core never imports workflows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import _validate
from ..durable import Engine, InsertSpec, Machine, NoTarget
from ._definition import Workflow
from ._dispatch import check_json, check_target, step_key
from ._exceptions import DispatchError, InvalidWorkflow
from ._run_machine import run_machine
from ._state import mark_dispatched, new_run_state
from ._step_machine import new_task, step_machine
from ._uuid7 import uuid7


def machines_for(workflows: Iterable[Workflow]) -> list[type[Machine]]:
    """The durable machine classes that run ``workflows``: a run machine
    (``"workflow:<name>"``) and a step machine (``"workflow:<name>:step"``) each.

    The same workflow object always gives the same classes. Raises
    :class:`InvalidWorkflow` for a non-Workflow or two workflows sharing a name.
    """
    if isinstance(workflows, Workflow) or not isinstance(workflows, Iterable):
        _validate.fail("workflows", workflows, "an iterable of workflows.Workflow")
    machines: list[type[Machine]] = []
    seen: dict[str, Workflow] = {}
    for wf in workflows:
        if not isinstance(wf, Workflow):
            raise InvalidWorkflow(f"workflows item={wf!r}: expected a workflows.Workflow")
        if seen.get(wf.name, wf) is not wf:
            raise InvalidWorkflow(
                f"workflows: two workflows are named {wf.name!r}: expected unique names"
            )
        if wf.name in seen:
            continue
        seen[wf.name] = wf
        machines += [run_machine(wf), step_machine(wf)]
    return machines


def _run_key(key: object) -> str | None:
    # spec §6.2.3: step instances are keyed "<run key>/<step>", so a business key
    # with "/" could take another run's step key.
    if key is not None and (
        not isinstance(key, str)
        or not key.strip()
        or "/" in key
        or not _validate.storable_text(key)
    ):
        _validate.fail("key", key, "None or a non-empty str without '/' (e.g. 'order-0001')")
    return key


async def start_workflow(
    engine: Engine,
    wf: Workflow,
    input: Any,
    *,
    schedule_in: float | None = None,
    key: str | None = None,
) -> int:
    """Start a run of ``wf`` with ``input``; return the run's durable id (spec §6.2).

    The run instance (and, with ``execution="instances"``, its entry-step
    instances) are inserted in ONE transaction (spec §6.7.4): if the first
    dispatch fails, the run does not exist either.
    ``schedule_in`` (seconds) delays the whole run. ``input`` must be
    JSON-serializable. ``key`` is the run's business key, unique among live
    instances as ``insert``'s (default ``run:<workflow>:<uuid>``, a time-ordered
    uuid): ``engine.get``, ``trexec show`` and signals find the run by it. Raises
    :class:`~trexec.durable.DuplicateKey` if a live instance holds ``key`` (nothing
    is started), :class:`~trexec.InvalidArgument` for a bad argument.
    """
    ids: list[int] = await engine.insert_many(
        run_specs(wf, input, schedule_in=schedule_in, key=key)
    )
    return ids[0]


def run_specs(
    wf: Workflow,
    input: Any,
    *,
    schedule_in: float | None = None,
    key: str | None = None,
    priority: int = 0,
    concurrency_key: str | None = None,
) -> list[InsertSpec]:
    """The instances that start a run of ``wf`` (spec §6.7.4): the run first,
    then (``execution="instances"``) its entry steps; inserted together, in one
    transaction. The run
    instance takes ``priority`` and ``concurrency_key``; its steps inherit the
    priority (spec §11.1)."""
    if not isinstance(wf, Workflow):
        _validate.fail("wf", wf, "a workflows.Workflow")
    check_json("input", input)
    delay = _validate.seconds("schedule_in", schedule_in, allow_none=True) or 0.0
    run_key = _run_key(key) or f"run:{wf.name}:{uuid7().hex}"  # spec §6.2.3: time-ordered
    state = new_run_state(wf, run_key, input, priority)
    # spec §6.6.2: an inline run runs its entry steps in its first step.
    entry = wf.entry_steps if wf.execution == "instances" else ()
    mark_dispatched(state, entry)
    run = InsertSpec(
        run_machine(wf),
        state,
        step="start",
        schedule_in=delay,
        key=run_key,
        priority=priority,
        concurrency_key=concurrency_key,
    )
    specs = [run]
    specs += [
        InsertSpec(
            step_machine(wf),
            new_task(state, name, run_id=None),
            schedule_in=delay,
            key=step_key(run_key, name),
            priority=priority,
        )
        for name in entry
    ]
    return specs


async def cancel_run(engine: Any, run_id: int) -> None:
    """Ask run ``run_id`` to cancel itself (spec §6.11): it dispatches no new step,
    waits for its running steps, runs the compensations of the completed ones
    (newest first), then ends ``cancelled``. Durable before it returns. Raises
    :class:`DispatchError` if the run is unknown or already over."""
    check_target(engine, run_id)
    try:
        await engine.signal(run_id, "cancel", None, dedup_key="cancel")
    except NoTarget:
        raise DispatchError(f"run_id={run_id!r}: expected a live run to cancel") from None
