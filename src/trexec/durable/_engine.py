"""The engine (spec §5.3-§5.5): ``open_engine`` and :class:`Engine`'s public API.

Inside ``open_engine`` five kinds of task (``_tasks.py``) share one nursery:

* the *picker* claims batches (sized to free capacity) and hands each job to
  the workers over a memory channel; when nothing is runnable it sleeps until
  ``store.next_due`` or a local wake-up (an insert, signal or commit made by
  this engine), at most ``poll_interval``;
* ``workers`` *worker* tasks run steps (``_steps.StepRunner``);
* the *completer* groups the outcomes of steps that finish close together into
  one ``store.complete`` transaction (an instance proceeds only after it);
* the *heartbeat* renews the lease of everything this engine holds;
* the *reaper* returns instances whose lease expired to runnable.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import attrs
import trio

from .. import _validate
from ._exceptions import DurableError, EngineCrashed, NoTarget
from ._machine import Codec, Instance, Machine, check_machine
from ._ratelimit import RateLimit
from ._records import TERMINAL, Commit, Job, Lease, NewInstance
from ._steps import MAX_DELAY, Registry, StepRunner, to_instance
from ._store import PRUNE_STATUSES, Store, prune_arguments
from ._tasks import EngineTasks

__all__ = ["Engine", "InsertSpec", "open_engine"]


def _key(name: str, value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value or "\x00" in value):
        _validate.fail(name, value, "None or a non-empty str without NUL characters")
    return value


def _target(value: object) -> int | str:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or value in ("", 0)
        or (isinstance(value, str) and "\x00" in value)
    ):
        _validate.fail("id_or_key", value, "an instance id (int > 0) or a business key (str)")
    if isinstance(value, int) and value < 0:
        _validate.fail("id_or_key", value, "an instance id (int > 0) or a business key (str)")
    return value


def _step(name: str, value: object) -> str:
    # spec §5.1.4: a NUL cannot be stored by every store (PostgreSQL text).
    if not isinstance(value, str) or not value or "\x00" in value:
        _validate.fail(name, value, "a non-empty str naming a step (no NUL characters)")
    return value


@attrs.frozen
class InsertSpec:
    """One instance for :meth:`Engine.insert_many`: ``machine`` (a Machine class),
    its ``state``, first ``step``, delay ``scheduled_in`` (seconds), business
    ``key`` and ``parent_id`` (makes it a child of that instance, spec §5.7)."""

    machine: type[Machine]
    state: Any
    step: str = "start"
    scheduled_in: float = 0.0
    key: str | None = None
    parent_id: int | None = None

    def __attrs_post_init__(self) -> None:
        check_machine("machine", self.machine)
        _step("step", self.step)
        _validate.seconds("scheduled_in", self.scheduled_in)
        if self.scheduled_in > MAX_DELAY:  # spec §5.1.4: past every store's timestamps
            _validate.fail("scheduled_in", self.scheduled_in, f"seconds <= {MAX_DELAY:g}")
        _key("key", self.key)
        if self.parent_id is not None:
            _validate.count("parent_id", self.parent_id, minimum=1)


class Engine(EngineTasks):
    """Inserts, signals, inspects and runs durable instances; made by
    :func:`open_engine`, usable only inside its block.

    ``store``, ``bus`` and ``workflows`` are what ``open_engine`` was given.
    """

    def __init__(
        self,
        store: Store,
        machines: Sequence[type[Machine]],
        *,
        workflows: tuple[Any, ...],
        workers: int,
        lease: float,
        rate_limits: Mapping[str, RateLimit],
        bus: Any,
        batch_size: int,
        poll_interval: float,
        shutdown_grace: float,
        heartbeat_interval: float,
        reap_interval: float,
    ) -> None:
        self.store = store
        self.bus = bus
        self.workflows = workflows
        self.workers = workers
        self.lease = lease
        self._codec = Codec()
        self._registry = Registry()
        self._runs = tuple(dict.fromkeys(self._registry.add(m) for m in machines))
        self._policies = {name: limit.policy() for name, limit in rate_limits.items()}
        self._runner = StepRunner(
            self,
            {key: self._registry.classes[key]() for key in self._runs},
            frozenset(rate_limits),
        )
        self._batch_size = batch_size
        self._max_held = workers + batch_size
        self._poll_interval = poll_interval
        self._grace = shutdown_grace
        self._heartbeat_interval = heartbeat_interval
        self._reap_interval = reap_interval
        # Leases this engine holds (claimed, not yet committed or released), and
        # whether their step started (then a release counts an attempt).
        self._held: dict[Lease, bool] = {}
        self._claiming = 0  # rows asked for by claims in flight (spec §5.5.3)
        self._wake = trio.Event()
        self._capacity = trio.Event()
        self._waiters: dict[int, trio.Event] = {}
        self._cancelled: set[int] = set()
        self._jobs_send, self._jobs_receive = trio.open_memory_channel[Job](math.inf)
        self._commits_send, self._commits_receive = trio.open_memory_channel[
            tuple[Commit, Job, str, float]
        ](math.inf)
        self._completer_done = trio.Event()
        # spec §5.5.4: shielded from the start, so that finished outcomes are
        # committed even when the block is cancelled from outside; _shutdown
        # cancels it after its bounded wait. (Never toggle `shield` on a running
        # task: a checkpoint in flight would see its cancellation vanish.)
        self._completer_scope = trio.CancelScope(shield=True)
        self._picker_done = trio.Event()
        self._open = True
        self._nursery: trio.Nursery | None = None

    # --- public API -------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise DurableError("the engine is closed: use it inside its open_engine block")

    def _encode_state(self, machine: type[Machine], state: Any) -> str:
        try:
            return self._codec.dumps(state, machine.State)
        except (TypeError, ValueError) as exc:
            _validate.fail("state", state, f"a state {machine.__name__} can store as JSON ({exc})")

    def _new(self, spec: InsertSpec) -> NewInstance:
        self._registry.add(spec.machine)
        return NewInstance(
            machine=spec.machine.name,
            version=spec.machine.version,
            step=spec.step,
            state=self._encode_state(spec.machine, spec.state),
            scheduled_in=float(spec.scheduled_in),
            key=spec.key,
            parent_id=spec.parent_id,
        )

    async def insert(
        self,
        machine: type[Machine],
        state: Any,
        *,
        step: str = "start",
        scheduled_in: float = 0,
        key: str | None = None,
    ) -> int:
        """Store a new instance, runnable at ``step`` in ``scheduled_in`` seconds;
        return its id. Durable once this returns.

        Raises :class:`DuplicateKey` if a live instance holds ``key``, and
        :class:`~trexec.InvalidArgument` for a bad argument (a state that cannot be
        stored included). Any engine may insert any machine (spec §5.1.3).
        """
        (id_,) = await self.insert_many(
            [InsertSpec(machine, state, step=step, scheduled_in=scheduled_in, key=key)]
        )
        return id_

    async def insert_many(self, items: Iterable[InsertSpec]) -> list[int]:
        """Insert several instances in ONE transaction, all or none (a
        :class:`DuplicateKey` or :class:`NoTarget` parent inserts nothing); return
        their ids in order."""
        self._check_open()
        if isinstance(items, str | bytes) or not isinstance(items, Iterable):
            _validate.fail("items", items, "an iterable of durable.InsertSpec")
        specs = list(items)
        for spec in specs:
            if not isinstance(spec, InsertSpec):
                _validate.fail("items", spec, "a durable.InsertSpec")
        rows = [self._new(spec) for spec in specs]
        if not rows:
            return []
        ids = await self.store.insert(rows)
        self._wake.set()
        return ids

    async def signal(
        self,
        id_or_key: int | str,
        name: str,
        payload: Any = None,
        *,
        dedup_key: str | None = None,
    ) -> int:
        """Append a signal to an instance's inbox; return the signal's id (for a
        duplicate ``dedup_key``, the first signal's id: nothing new is stored).

        Durable before it returns; a signal sent before the instance parks on its
        name is not lost (spec §5.6). Raises :class:`NoTarget` for an unknown or
        finished target, :class:`~trexec.InvalidArgument` for a bad argument (a
        payload that cannot be stored as JSON included).
        """
        self._check_open()
        target = _target(id_or_key)
        if not isinstance(name, str) or not name:
            _validate.fail("name", name, "a non-empty str")
        if "\x00" in name:
            _validate.fail("name", name, "a signal name without NUL characters")
        _key("dedup_key", dedup_key)
        try:
            text = self._codec.dumps(payload)
        except (TypeError, ValueError) as exc:
            _validate.fail("payload", payload, f"a JSON-serializable value ({exc})")
        delivery = await self.store.deliver_signal(target, name, text, dedup_key)
        self._wake.set()
        return delivery.signal_id

    async def get(self, id_or_key: int | str) -> Instance:
        """The instance with this id (or the live instance holding this key, else
        the latest that held it). Raises :class:`NoTarget` if there is none."""
        self._check_open()
        target = _target(id_or_key)
        record = await self.store.get(target)
        if record is None:
            what = "id" if isinstance(target, int) else "key"
            raise NoTarget(f"{what}={target!r}: no such instance")
        return to_instance(self._codec, self._registry, record)

    async def children(self, id_or_key: int | str) -> list[Instance]:
        """The children of an instance, oldest first."""
        instance = await self.get(id_or_key)
        records = await self.store.children(instance.id)
        return [to_instance(self._codec, self._registry, r) for r in records]

    async def list(
        self,
        *,
        status: str | None = None,
        machine: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[Instance]:
        """Instances by increasing id, filtered by ``status``/``machine``."""
        from ._records import STATUSES

        self._check_open()
        if status is not None:
            _validate.one_of("status", status, STATUSES)
        _key("machine", machine)
        _validate.count("limit", limit, minimum=1)
        if after_id is not None:
            _validate.count("after_id", after_id)
        records = await self.store.list(
            status=status, machine=machine, limit=limit, after_id=after_id
        )
        return [to_instance(self._codec, self._registry, r) for r in records]

    async def wait(self, id_or_key: int | str, timeout: float | None = None) -> Instance:
        """Wait until the instance is terminal (``done``, ``stopped``,
        ``cancelled``) and return it. Woken at once by this engine's commits;
        polls the store with backoff (up to ``poll_interval``) for other
        processes'. Raises ``trio.TooSlowError`` after ``timeout`` seconds,
        :class:`NoTarget` if there is no such instance. Never changes it."""
        self._check_open()
        target = _target(id_or_key)
        deadline = _validate.seconds("timeout", timeout, allow_none=True)
        delay = 0.002
        with trio.fail_after(math.inf if deadline is None else deadline):
            instance = await self.get(target)
            while instance.status not in TERMINAL:
                event = self._waiters.setdefault(instance.id, trio.Event())
                instance = await self.get(instance.id)
                if instance.status in TERMINAL:
                    break
                with trio.move_on_after(delay):
                    await event.wait()
                delay = min(delay * 2, self._poll_interval)
                instance = await self.get(instance.id)
        return instance

    async def cancel(self, id_or_key: int | str) -> None:
        """Cancel a live instance: it never runs again. If its step is running,
        the cancellation takes effect when the step returns: its outcome is
        discarded (spec §5.4.8); a claim another engine already holds may still
        start the step, whose outcome is discarded the same way. Children are
        not cancelled. Raises :class:`NoTarget` if it is unknown or already
        finished."""
        self._check_open()
        target = _target(id_or_key)
        # The id comes from the cancel itself: a key may be reused at once.
        id_, _ = await self.store.cancel(target)
        if any(lease.id == id_ for lease in self._held):
            # Claimed here and not committed yet: drop its queued job, discard the
            # outcome of its running step (spec §5.4.8). Nothing else can claim it.
            self._cancelled.add(id_)
        self._notify(id_)
        self._wake.set()

    async def prune(
        self,
        older_than: float,
        *,
        statuses: Iterable[str] = PRUNE_STATUSES,
        limit: int | None = None,
    ) -> int:
        """Delete finished instances last updated more than ``older_than``
        seconds ago (by the store's clock), with their signals; return how many
        were deleted (spec §5.15). Run it from any engine (``workers=0`` too),
        as often as you like: pruning is idempotent.

        Only instances whose status is in ``statuses`` (terminal statuses only;
        default all three) are candidates, and only whole trees are deleted: an
        old enough finished instance without a parent goes together with all its
        children (and theirs), unless one of them is still live; then the tree
        is kept. A live instance is never deleted, and a finished child stays as
        long as its parent does. At most ``limit`` instances are deleted (None:
        all that qualify); a tree bigger than what remains of ``limit`` is left
        for a later call.

        The store deletes in batches of whole trees, one transaction each, so a
        large prune never holds locks for long; if it raises or is cancelled,
        the batches committed before stay deleted. Deleted instances are gone:
        ``get`` raises :class:`NoTarget` for their ids, and a business key
        finds only the instances that remain. Raises
        :class:`~trexec.InvalidArgument` for a bad argument.
        """
        self._check_open()
        older, chosen, most = prune_arguments(older_than, statuses, limit)
        return await self.store.prune(older, chosen, most)

    async def start_workflow(
        self, wf: Any, input: Any, *, schedule_in: float | None = None, key: str | None = None
    ) -> int:
        """Start a run of workflow ``wf`` with ``input``, keyed ``key`` (a business
        key unique among live instances); return the run's id (spec §6.2).
        Implemented by ``trexec.workflows``."""
        self._check_open()
        from ..workflows import _engine_hooks  # type: ignore[attr-defined, unused-ignore]

        return await _engine_hooks.start_workflow(self, wf, input, schedule_in=schedule_in, key=key)  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def open_engine(
    store: Store,
    machines: Iterable[type[Machine]] = (),
    *,
    workflows: Iterable[Any] = (),
    workers: int = 8,
    lease: float = 30.0,
    rate_limits: Mapping[str, RateLimit] | None = None,
    bus: Any = None,
    batch_size: int = 64,
    poll_interval: float = 1.0,
    shutdown_grace: float = 10.0,
    heartbeat_interval: float | None = None,
    reap_interval: float | None = None,
) -> AsyncIterator[Engine]:
    """Run an engine on ``store`` for the duration of the block (spec §5.5).

    Migrates the schema, then runs ``workers`` worker tasks for ``machines``
    (and ``workflows``); ``workers=0`` only inserts and signals. Claims take up
    to ``batch_size`` instances at once and completions are grouped up to
    ``batch_size`` per transaction. Each claim holds a ``lease`` (seconds)
    renewed every ``heartbeat_interval`` (default ``lease / 3``); every engine
    reaps expired leases every ``reap_interval`` (default ``lease / 2``).

    Leaving the block stops picking, lets in-flight steps finish for up to
    ``shutdown_grace`` seconds (not at all if the block raised), cancels the
    rest and releases every claim still held, so another engine picks them up
    at once. Raises :class:`~trexec.InvalidArgument` for a bad argument; an
    internal failure surfaces as the single underlying exception.
    """
    if not isinstance(store, Store):
        _validate.fail("store", store, "a store from durable.open_store(url)")
    if isinstance(machines, str | bytes) or not isinstance(machines, Iterable):
        _validate.fail("machines", machines, "an iterable of durable.Machine subclasses")
    classes = [check_machine("machines", m) for m in machines]
    # spec §0.3: a bad argument is InvalidArgument naming it, never a bare TypeError.
    if isinstance(workflows, str | bytes) or not isinstance(workflows, Iterable):
        _validate.fail("workflows", workflows, "an iterable of workflows.Workflow")
    wfs = tuple(workflows)
    if wfs:
        from ..workflows import _engine_hooks  # type: ignore[attr-defined, unused-ignore]

        classes += list(_engine_hooks.machines_for(wfs))
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
    if bus is not None and not callable(getattr(bus, "publish", None)):
        _validate.fail("bus", bus, "None or a trexec.RunBus")
    engine = Engine(
        store,
        classes,
        workflows=wfs,
        workers=workers,
        lease=lease,
        rate_limits=limits,
        bus=bus,
        batch_size=batch_size,
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
    await store.migrate()
    # spec §5.5.2: another process's insert/signal/commit wakes the picker at once
    # when the store can tell (PostgreSQL LISTEN/NOTIFY).
    unsubscribe = store.subscribe(lambda: engine._wake.set())
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            picker = engine._start(nursery)
            workers_scope = trio.CancelScope()
            workers_done = trio.Event()

            async def run_workers() -> None:
                try:
                    await engine._run_workers(workers_scope)
                finally:
                    workers_done.set()

            async def run_completer() -> None:
                try:
                    with engine._completer_scope:
                        await engine._completer()
                finally:
                    engine._completer_done.set()

            if engine.workers and engine._runs:
                nursery.start_soon(run_workers)
                nursery.start_soon(run_completer)
            else:
                workers_done.set()
                engine._completer_done.set()
                engine._commits_send.close()
            try:
                yield engine
            except BaseException as exc:
                body_error = exc
                await engine._shutdown(picker, workers_scope, workers_done, graceful=False)
                raise
            else:
                await engine._shutdown(picker, workers_scope, workers_done, graceful=True)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _collapse(group, body_error) from None
    finally:
        engine._open = False
        unsubscribe()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _collapse(
    group: BaseExceptionGroup[BaseException], body: BaseException | None = None
) -> BaseException:
    """The single exception an internal nursery raised (spec §0.4). The body's own
    exception (``body``) is raised as it is, even an ExceptionGroup (spec §5.5.5):
    trio's cancel scopes re-derive groups, so its leaves are what identify it."""
    leaves = _leaves(group)
    for exc in leaves:
        if isinstance(exc, KeyboardInterrupt):
            return exc
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if isinstance(body, BaseExceptionGroup):
        mine = {id(leaf) for leaf in _leaves(body)}
        others = [e for e in real if id(e) not in mine]
        if len(others) < len(real):
            real = [body, *others]
    if len(real) == 1:
        return real[0]
    if not real:
        return leaves[0]
    crashed = EngineCrashed(f"{len(real)} engine tasks failed: {real!r}", real)
    crashed.__cause__ = group
    return crashed
