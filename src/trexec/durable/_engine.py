"""``open_engine`` (spec §5.5.1): checks its arguments, collects the machines of
the extensions it is given (spec §5.5.10), makes the :class:`Engine`
(``_engine_api.py``) and runs its task tree (``_serve.py``) for the duration of
the block."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from .. import _validate
from ._cron import Schedule
from ._engine_api import Engine as Engine
from ._extension import Extension, RunStarter
from ._insert import InsertSpec as InsertSpec
from ._machine import Machine, check_machine
from ._ratelimit import RateLimit
from ._scheduler import MAX_SLEEP, Scheduler, tick_items
from ._serve import EngineConfig
from ._store import Store

__all__ = ["Engine", "InsertSpec", "open_engine"]


def _extensions(name: str, value: object) -> tuple[Extension, ...]:
    # spec §0.3: a bad argument is InvalidArgument naming it, never a bare TypeError.
    one = "a workflows.Workflow" if name == "workflows" else "a durable.Extension"
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        _validate.fail(name, value, f"an iterable of {one[2:]}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, Extension):
            _validate.fail(name, item, one)
    return items


def _machines_of(extensions: Iterable[Extension]) -> list[type[Machine]]:
    machines: list[type[Machine]] = []
    for extension in extensions:
        machines += [check_machine("machines", m) for m in extension.engine_machines()]
    return machines


def _schedules(value: object) -> tuple[Schedule, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        _validate.fail("schedules", value, "an iterable of durable.Schedule")
    items = tuple(value)
    names: set[str] = set()
    for item in items:
        if not isinstance(item, Schedule):
            _validate.fail("schedules", item, "a durable.Schedule")
        if item.name in names:  # spec §11.3: a name is one row of the schedules table
            _validate.fail("schedules", item.name, "unique schedule names (this one repeats)")
        names.add(item.name)
        if item.workflow is not None and not isinstance(item.workflow, RunStarter):
            _validate.fail(
                f"Schedule({item.name!r}).workflow", item.workflow, "a workflows.Workflow"
            )
    return items


def _scheduler(engine: Engine, schedules: tuple[Schedule, ...]) -> Scheduler:
    for schedule in schedules:
        # Build one tick's rows now: a state or input that cannot be stored is
        # InvalidArgument from open_engine, not a failure at the first tick.
        tick_items(engine, schedule, f"schedule:{schedule.name}:check")
    make = lambda schedule, key: tick_items(engine, schedule, key)  # noqa: E731
    # A test engine polls rarely (virtual time costs real CPU per wake-up): so may
    # its scheduler, which still wakes exactly at each tick.
    max_sleep = max(MAX_SLEEP, engine.config.poll_interval)
    return Scheduler(engine, schedules, make, max_sleep=max_sleep)


@contextlib.asynccontextmanager
async def open_engine(
    store: Store,
    machines: Iterable[type[Machine]] = (),
    *,
    workflows: Iterable[Extension] = (),
    extensions: Iterable[Extension] = (),
    schedules: Iterable[Schedule] = (),
    workers: int = 8,
    lease: float = 30.0,
    rate_limits: Mapping[str, RateLimit] | None = None,
    bus: Any = None,
    batch_size: int = 64,
    poll_interval: float = 1.0,
    shutdown_grace: float = 10.0,
    heartbeat_interval: float | None = None,
    reap_interval: float | None = None,
    chain_steps: int = 8,
) -> AsyncIterator[Engine]:
    """Run an engine on ``store`` for the duration of the block (spec §5.5).

    Migrates the schema, then runs ``workers`` worker tasks for ``machines``
    (and the machines of ``workflows`` and ``extensions``, spec §5.5.10: each
    item an :class:`Extension`, such as a ``workflows.Workflow``, whose
    background tasks also run in the engine); ``workers=0`` only inserts and
    signals. Claims take up to ``batch_size`` instances at once and completions
    are grouped up to ``workers + batch_size`` per transaction. Each claim holds a
    ``lease`` (seconds) renewed every ``heartbeat_interval`` (default
    ``lease / 3``); every engine reaps expired leases every ``reap_interval``
    (default ``lease / 2``). An instance whose step returns a plain ``Next``
    may run up to ``chain_steps`` steps in a row on the worker that holds it,
    each step committed before the next starts, instead of going back to the
    queue after each (spec §5.5.13; 1: always back to the queue).

    Leaving the block stops picking, lets in-flight steps finish for up to
    ``shutdown_grace`` seconds (not at all if the block raised), cancels the
    rest and releases every claim still held, so another engine picks them up
    at once. Raises :class:`~trexec.InvalidArgument` for a bad argument; an
    internal failure surfaces as the single underlying exception; the block's
    own exception always wins (spec §5.5.5).
    """
    if not isinstance(store, Store):
        _validate.fail("store", store, "a store from durable.open_store(url)")
    if isinstance(machines, str | bytes) or not isinstance(machines, Iterable):
        _validate.fail("machines", machines, "an iterable of durable.Machine subclasses")
    classes = [check_machine("machines", m) for m in machines]
    wfs = _extensions("workflows", workflows)
    others = _extensions("extensions", extensions)
    classes += _machines_of(wfs + others)
    timed = _schedules(schedules)
    _validate.count("workers", workers)
    lease = _validate.seconds("lease", lease, allow_zero=False)
    if rate_limits is not None and not isinstance(rate_limits, Mapping):
        _validate.fail("rate_limits", rate_limits, "a mapping of name to durable.RateLimit")
    limits = dict(rate_limits or {})
    for name, limit in limits.items():
        if not isinstance(name, str) or not name or ":" in name:
            _validate.fail("rate_limits", name, "a non-empty name without ':'")
        if not isinstance(limit, RateLimit):
            _validate.fail(f"rate_limits[{name!r}]", limit, "a durable.RateLimit")
    _validate.count("batch_size", batch_size, minimum=1)
    _validate.count("chain_steps", chain_steps, minimum=1)
    if bus is not None and not callable(getattr(bus, "publish", None)):
        _validate.fail("bus", bus, "None or a trexec.RunBus")
    config = EngineConfig(
        workers=workers,
        lease=lease,
        batch_size=batch_size,
        chain_steps=chain_steps,
        poll_interval=_validate.seconds("poll_interval", poll_interval, allow_zero=False),
        shutdown_grace=_validate.seconds("shutdown_grace", shutdown_grace),
        heartbeat_interval=_validate.seconds(
            "heartbeat_interval", heartbeat_interval, allow_none=True, allow_zero=False
        )
        or lease / 3,
        reap_interval=_validate.seconds(
            "reap_interval", reap_interval, allow_none=True, allow_zero=False
        )
        or lease / 2,
    )
    engine = Engine(store, classes, config, workflows=wfs, rate_limits=limits, bus=bus)
    tasks: list[Callable[[], Awaitable[object]]] = []
    for extension in wfs + others:
        tasks += extension.engine_tasks(engine)
    if timed:
        engine._scheduler = _scheduler(engine, timed)
        tasks.append(engine._scheduler.run)
    await store.migrate()
    if engine._scheduler is not None:
        # Registered before the block: engine.schedules() lists them at once.
        await engine._scheduler.register()
    async with engine._running(tasks):
        yield engine
