"""The engine's public API (spec §5.3-§5.6): :class:`Engine` and
:class:`InsertSpec`; ``open_engine`` (``_engine.py``) makes one.

An engine owns a :class:`~._ledger.Ledger` (what it holds) and a
:class:`~._steps.StepRunner`; ``_serve.serve`` runs its task tree (picker,
workers, completer, heartbeat, reaper) for the block of ``open_engine``. The
methods here only insert, signal, read and wait, through the store.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import cattrs
import trio

from .. import _instrument, _validate
from .._action_class import structure_problems
from ._exceptions import DurableError, NoTarget
from ._extension import RunStarter
from ._insert import (
    InsertSpec,
    check_concurrency_key,
    check_key,
    check_priority,
    check_target,
    schedule_in_of,
)
from ._ledger import Ledger
from ._machine import Codec, Instance, Machine
from ._ratelimit import RateLimit
from ._records import STATUSES, TERMINAL, Lease, NewInstance
from ._schedule_api import ScheduleControl
from ._scheduler import Scheduler
from ._serve import EngineConfig, serve
from ._steps import Registry, StepRunner, to_instance
from ._store import PRUNE_STATUSES, Store, prune_arguments

__all__ = ["Engine", "InsertSpec"]


#: Engines whose block is running in this process, to say in ``wait``'s timeout
#: message whether any of them runs the machine waited on.
_RUNNING: weakref.WeakSet[Engine] = weakref.WeakSet()


class Engine(ScheduleControl):
    """Inserts, signals, inspects and runs durable instances; made by
    :func:`open_engine`, usable only inside its block. Its schedule methods
    (``pause_schedule``, ``resume_schedule``, ``schedules``) are in
    ``_schedule_api.py``.

    ``store``, ``bus`` and ``workflows`` are what ``open_engine`` was given.
    """

    def __init__(
        self,
        store: Store,
        machines: Sequence[type[Machine]],
        config: EngineConfig,
        *,
        workflows: tuple[Any, ...] = (),
        rate_limits: Mapping[str, RateLimit],
        bus: Any,
    ) -> None:
        self.store = store
        self.bus = bus
        self.workflows = workflows
        self.workers = config.workers
        self.lease = config.lease
        self.config = config
        self._codec = Codec()
        self._registry = Registry()
        self._runs = tuple(dict.fromkeys(self._registry.add(m) for m in machines))
        self._policies = {name: limit.policy() for name, limit in rate_limits.items()}
        self._runner = StepRunner(
            self,
            {key: self._registry.classes[key]() for key in self._runs},
            frozenset(rate_limits),
        )
        self._ledger = Ledger(config.workers + config.batch_size)
        self._open = True
        self._scheduler: Scheduler | None = None
        #: How this engine announces itself in the store (spec §5.16).
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # --- public API -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _running(
        self, tasks: Sequence[Callable[[], Awaitable[object]]]
    ) -> AsyncIterator[None]:
        """Run the engine's task tree (``_serve.serve``) and ``tasks`` (its
        extensions') for ``open_engine``'s block; the engine is closed after."""
        ledger = self._ledger
        # spec §5.5.2: another process's insert/signal/commit wakes the picker at
        # once when the store can tell (PostgreSQL LISTEN/NOTIFY).
        unsubscribe = self.store.subscribe(lambda: ledger.wake.set())
        _RUNNING.add(self)
        try:
            async with serve(
                self.store,
                ledger,
                self._runner,
                self._runs,
                self._policies,
                self.config,
                tasks,
                engine_id=self.id,
            ):
                yield
        finally:
            self._open = False
            _RUNNING.discard(self)
            unsubscribe()

    def _check_open(self) -> None:
        if not self._open:
            raise DurableError("the engine is closed: use it inside its open_engine block")

    def _encode_state(self, machine: type[Machine], state: Any) -> str:
        state_cls = machine.State
        if state_cls is not None and isinstance(state, Mapping):
            # A dict becomes the State object, as action params do (spec §5.3.1).
            try:
                state = self._codec.as_state(state, state_cls)
            except cattrs.BaseValidationError as exc:
                problems = structure_problems(exc)
                _validate.fail(
                    "state", state, f"a {state_cls.__name__} for {machine.__name__}: {problems}"
                )
            except (TypeError, ValueError) as exc:  # raised by State.__init__ itself
                _validate.fail(
                    "state", state, f"a {state_cls.__name__} for {machine.__name__}: {exc}"
                )
        try:
            return self._codec.dumps(state, state_cls)
        except (TypeError, ValueError) as exc:
            _validate.fail("state", state, f"a state {machine.__name__} can store as JSON ({exc})")

    async def _save_state(self, machine: str, version: int, lease: Lease, state: Any) -> bool:
        # spec §5.5.12: ctx.save, a fenced write of the state of a held instance.
        text = self._encode_state(self._registry.classes[(machine, version)], state)
        if not _validate.storable_text(text):
            _validate.fail("state", state, "a state without NUL or lone surrogates")
        return await self.store.save_state(lease, text)

    def _new(self, spec: InsertSpec) -> NewInstance:
        self._registry.add(spec.machine)
        return NewInstance(
            machine=spec.machine.name,
            version=spec.machine.version,
            step=spec.step,
            state=self._encode_state(spec.machine, spec.state),
            scheduled_in=float(spec.schedule_in),
            key=spec.key,
            parent_id=spec.parent_id,
            priority=spec.priority,
            concurrency_key=spec.concurrency_key,
            concurrency_limit=spec.machine.concurrency_limit,
            # spec §14.2: the trace active at insert travels with the instance.
            trace_context=None if _instrument.hooks is None else _instrument.hooks.carrier(),
        )

    async def insert(
        self,
        machine: type[Machine],
        state: Any,
        *,
        step: str = "start",
        schedule_in: float = 0,
        key: str | None = None,
        priority: int = 0,
        concurrency_key: str | None = None,
        scheduled_in: float | None = None,
    ) -> int:
        """Store a new instance, runnable at ``step`` in ``schedule_in`` seconds;
        return its id. Durable once this returns.

        ``priority`` (an int from 0 to 1000): runnable instances are claimed
        higher first, then earliest ``run_at``, then lowest id (spec §11.1).
        ``concurrency_key``: at most ``machine.concurrency_limit`` instances
        sharing it run at once, across every worker and process (spec §11.2).

        ``state`` is a ``machine.State`` object, or a dict cattrs structures into
        one (as action params are). ``scheduled_in`` is the deprecated name of
        ``schedule_in`` (a DeprecationWarning). Raises :class:`DuplicateKey` if
        a live instance holds ``key``, and :class:`~trexec.InvalidArgument` for a
        bad argument (a state that cannot be stored included). Any engine may
        insert any machine (spec §5.1.3).
        """
        delay = schedule_in_of(schedule_in, scheduled_in)
        (id_,) = await self.insert_many(
            [
                InsertSpec(
                    machine,
                    state,
                    step=step,
                    schedule_in=delay,
                    key=key,
                    priority=priority,
                    concurrency_key=concurrency_key,
                )
            ]
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
        self._ledger.wake.set()
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
        target = check_target(id_or_key)
        if not isinstance(name, str) or not name:
            _validate.fail("name", name, "a non-empty str")
        if not _validate.storable_text(name):
            _validate.fail("name", name, "a signal name without NUL or lone surrogates")
        check_key("dedup_key", dedup_key)
        try:
            text = self._codec.dumps(payload)
        except (TypeError, ValueError) as exc:
            _validate.fail("payload", payload, f"a JSON-serializable value ({exc})")
        hooks = _instrument.hooks
        if hooks is not None:
            trace = hooks.carrier()
            if trace is not None:  # spec §14.2: adopts a trace if it had none
                await self.store.attach_trace(target, trace)  # before it can wake
        delivery = await self.store.deliver_signal(target, name, text, dedup_key)
        self._ledger.wake.set()
        return delivery.signal_id

    async def get(self, id_or_key: int | str) -> Instance:
        """The instance with this id (or the live instance holding this key, else
        the latest that held it). Raises :class:`NoTarget` if there is none."""
        self._check_open()
        target = check_target(id_or_key)
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
        self._check_open()
        if status is not None:
            _validate.one_of("status", status, STATUSES)
        check_key("machine", machine)
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
        processes'. Raises :class:`NoTarget` if there is no such instance, and
        ``trio.TooSlowError`` after ``timeout`` seconds, its message naming the
        instance, its last status and, when no engine running in this process
        runs its machine, that too (spec §5.5.6). Never changes it."""
        self._check_open()
        target = check_target(id_or_key)
        deadline = _validate.seconds("timeout", timeout, allow_none=True)
        ledger = self._ledger
        instance: Instance | None = None
        delay = 0.002
        try:
            with trio.fail_after(math.inf if deadline is None else deadline):
                instance = await self.get(target)
                while instance.status not in TERMINAL:
                    event = ledger.waiter(instance.id)
                    try:  # spec §5.5.6: the waiter never outlives this wait
                        instance = await self.get(instance.id)
                        if instance.status in TERMINAL:
                            break
                        with trio.move_on_after(delay):
                            await event.wait()
                    finally:
                        ledger.forget(instance.id, event)
                    delay = min(delay * 2, self.config.poll_interval)
                    instance = await self.get(instance.id)
        except trio.TooSlowError:
            raise trio.TooSlowError(_gave_up(target, deadline, instance)) from None
        return instance

    async def cancel(self, id_or_key: int | str) -> None:
        """Cancel a live instance: it never runs again. If its step is running,
        the cancellation takes effect when the step returns: its outcome is
        discarded (spec §5.4.8); a claim another engine already holds may still
        start the step, whose outcome is discarded the same way. Children are
        not cancelled. The machine's ``cancelled`` hook is called (spec
        §5.4.11): here, before this returns, when no step of the instance was
        running. Raises :class:`NoTarget` if it is unknown or already finished."""
        self._check_open()
        target = check_target(id_or_key)
        # The id comes from the cancel itself: a key may be reused at once.
        id_, previous = await self.store.cancel(target)
        ledger = self._ledger
        if ledger.holds(id_):
            # Claimed here and not committed yet: drop its queued job, discard the
            # outcome of its running step (spec §5.4.8). Nothing else can claim it.
            ledger.cancelled.add(id_)
        ledger.finished(id_)
        ledger.wake.set()
        if previous != "running" and self._runner.hooked:
            # spec §5.4.11: no step of it ran, so no engine will notice: tell it.
            await self._runner.cancelled(id_)

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
        self,
        wf: RunStarter,
        input: Any,
        *,
        schedule_in: float | None = None,
        key: str | None = None,
        priority: int = 0,
        concurrency_key: str | None = None,
    ) -> int:
        """Start a run of workflow ``wf`` with ``input``; return the run's id
        (spec §6.2). ``key`` is the run's business key, unique among live
        instances as ``insert``'s (:class:`DuplicateKey` on a clash; nothing is
        started). ``wf`` says which instances start it
        (:class:`~._extension.RunStarter`), inserted in one transaction: the
        durable core knows nothing of workflows (spec §5.5.10). ``priority``
        and ``concurrency_key`` are the run instance's (spec §11); its step
        instances inherit the priority."""
        self._check_open()
        if not isinstance(wf, RunStarter):
            _validate.fail("wf", wf, "a workflows.Workflow")
        check_priority("priority", priority)
        check_concurrency_key("concurrency_key", concurrency_key)
        # Passed only when set: a RunStarter written before spec §11 still starts runs.
        extra: dict[str, Any] = {}
        if priority:
            extra["priority"] = priority
        if concurrency_key is not None:
            extra["concurrency_key"] = concurrency_key
        specs = wf.run_specs(input, schedule_in=schedule_in, key=key, **extra)
        ids = await self.insert_many(specs)
        return ids[0]

    async def explain(self, id_or_key: int | str) -> str:
        """Why the instance is not moving, in plain words (spec §5.16): its
        awaited signals, parked time, children, lease holder, the live engines
        that run its machine, its result or error; a workflow run's steps when
        the workflow is one of this engine's. Read-only; :class:`NoTarget` for
        an unknown instance."""
        from ._explain import explain_for

        return await explain_for(self.store, await self.get(id_or_key), self.workflows)

    def runs_machine(self, machine: str, version: int) -> bool:
        """True if this engine's block is running and it runs steps of ``machine``
        at ``version``."""
        return self._open and self.workers > 0 and (machine, version) in self._runs


def _gave_up(target: int | str, timeout: float | None, instance: Instance | None) -> str:
    """``Engine.wait``'s timeout message (spec §5.5.6): what it waited for, and why
    it may never finish."""
    after = "" if timeout is None else f" after {timeout:g}s"
    if instance is None:
        return f"engine.wait({target!r}) gave up{after} before reading the instance"
    key = "" if instance.key is None else f", key {instance.key!r}"
    text = (
        f"engine.wait({target!r}) gave up{after}: instance {instance.id} (machine"
        f" {instance.machine!r} v{instance.version}{key}) is still {instance.status!r}"
        f" at step {instance.step!r}"
    )
    if not any(e.runs_machine(instance.machine, instance.version) for e in list(_RUNNING)):
        text += (
            f"; no engine running in this process runs machine {instance.machine!r}"
            f" v{instance.version} (pass it to open_engine with workers > 0)"
        )
    return text
