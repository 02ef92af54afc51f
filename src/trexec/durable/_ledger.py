"""What one engine holds, shared by its tasks (spec §5.5.2-§5.5.4), and the
retry loop every task wraps its store calls in (spec §5.5.8).

The :class:`Ledger` is the engine's only shared mutable state: the leases it
holds, the rows claims in flight asked for, the jobs queued for the workers,
and the events that wake the picker and ``Engine.wait``. Each task
(``_picker.py``, ``_completer.py``, ``_leases.py``) owns the rest of its state.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import trio

from .. import telemetry
from ._exceptions import StoreError, StoreRejected
from ._records import Claim, Job, Lease

logger = logging.getLogger("trexec.durable")
T = TypeVar("T")


class Ledger:
    """The claims one engine holds and the signals between its tasks.

    ``held`` maps each lease held (claimed, not yet committed or released) to
    whether its step started (then a release counts an attempt, spec §5.5.4).
    ``claiming`` counts the rows claims in flight asked for: they count as held
    so the picker and the completer never claim past ``max_held`` together
    (spec §5.5.3). ``wake`` wakes the picker (a local insert, signal, commit or
    reap, spec §5.5.2); ``capacity`` wakes it when held leases are freed.
    """

    def __init__(self, max_held: int) -> None:
        self.max_held = max_held
        self.held: dict[Lease, bool] = {}
        self.claiming = 0
        self.wake = trio.Event()
        self.capacity = trio.Event()
        #: Instances cancelled by this engine while it held them (spec §5.4.8).
        self.cancelled: set[int] = set()
        #: False once the engine's block is left: no new claims.
        self.open = True
        self._waiters: dict[int, list[trio.Event]] = {}
        #: Claimed jobs for the workers, oldest claim first.
        self.jobs: Handoff[Job] = Handoff()

    def free(self) -> int:
        """How many more rows may be claimed now."""
        return self.max_held - len(self.held) - self.claiming

    def holds(self, id_: int) -> bool:
        return any(lease.id == id_ for lease in self.held)

    def waiter(self, id_: int) -> trio.Event:
        """A new event :meth:`finished` sets for ``id_``; pass it to :meth:`forget`
        when done waiting, set or not (spec §5.5.6: no entry outlives its wait)."""
        event = trio.Event()
        self._waiters.setdefault(id_, []).append(event)
        return event

    def forget(self, id_: int, event: trio.Event) -> None:
        events = self._waiters.get(id_)
        if events is not None and event in events:
            events.remove(event)
            if not events:
                del self._waiters[id_]

    def waiting(self) -> int:
        """How many instances ``Engine.wait`` calls are waiting on."""
        return len(self._waiters)

    def finished(self, id_: int) -> None:
        """Wake every ``Engine.wait`` on ``id_``: it became terminal here."""
        for event in self._waiters.pop(id_, ()):
            event.set()

    def accept(self, claim: Claim) -> bool:
        """Hold and queue the claimed jobs; report throttled rows (spec §5.9).
        True if the claim took any job."""
        for skipped in claim.throttled:
            telemetry.execute(
                ("trexec", "durable", "rate_limit", "throttled"),
                {"count": 1, "wait": skipped.wait},
                {"key": skipped.rate_limit, "id": skipped.id},
            )
        if not claim.jobs:
            return False
        telemetry.execute(("trexec", "durable", "pick"), {"count": len(claim.jobs)}, {})
        self.held.update(dict.fromkeys([job.lease for job in claim.jobs], False))
        if not self.jobs.closed:  # shutting down: held, so released
            self.jobs.put_all(claim.jobs)
        return True

    def drop(self, lease: Lease) -> None:
        """``lease`` is no longer held (committed, or never started)."""
        self.held.pop(lease, None)


class Handoff(Generic[T]):
    """An unbounded FIFO between the tasks of one engine (picker -> workers,
    workers -> completer): what a memory channel does here, without its
    per-item bookkeeping (spec §5.5.3: these hand-offs happen for every step).

    :meth:`put` never blocks; :meth:`get_nowait` raises ``trio.WouldBlock``
    when empty; :meth:`get` parks until an item or :meth:`close`. Once closed,
    ``put`` raises ``trio.ClosedResourceError`` and the getters drain what is
    left, then get ``trio.EndOfChannel``."""

    def __init__(self) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._waiting = trio.lowlevel.ParkingLot()
        # Getters woken and not yet running: one at a time, and each wakes the
        # next once it takes an item and more are left. Waking one per item
        # would wake every idle worker for a batch that the first one, running
        # steps that never suspend, takes alone.
        self._waking = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def _wake_one(self) -> None:
        if not self._waking and self._waiting:
            self._waking = 1
            self._waiting.unpark()

    def put(self, item: T) -> None:
        if self.closed:
            raise trio.ClosedResourceError("the engine is shutting down")
        self._items.append(item)
        self._wake_one()

    def put_all(self, items: tuple[T, ...]) -> None:
        if self.closed:
            raise trio.ClosedResourceError("the engine is shutting down")
        self._items.extend(items)
        self._wake_one()

    def get_nowait(self) -> T:
        items = self._items
        if items:
            item = items.popleft()
            if items:
                self._wake_one()
            return item
        if self.closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    def take(self, count: int) -> list[T]:
        """Up to ``count`` items, oldest first, without waiting (none when empty)."""
        items = self._items
        if count >= len(items):
            taken = list(items)
            items.clear()
        else:
            taken = [items.popleft() for _ in range(count)]
            self._wake_one()  # items are left: as get_nowait does
        return taken

    async def get(self) -> T:
        """The next item; a schedule point only when it has to wait."""
        while True:
            try:
                return self.get_nowait()
            except trio.WouldBlock:
                await self._waiting.park()
                # Woken by put, another getter or close; the item may be gone already.
                self._waking = 0

    def clear(self) -> None:
        self._items.clear()

    def close(self) -> None:
        self.closed = True
        self._waiting.unpark_all()


async def retrying(
    operation: str, call: Callable[[], Awaitable[T]], *, rejectable: bool = False
) -> T:
    """``await call()`` until it succeeds: a :class:`StoreError` (database down,
    busy, connection lost) is logged and retried with backoff, never fatal to
    the engine (spec §5.5.8). With ``rejectable`` a :class:`StoreRejected`
    propagates instead (spec §5.5.9)."""
    delay = 0.05
    while True:
        try:
            return await call()
        except StoreError as exc:
            if rejectable and isinstance(exc, StoreRejected):
                raise
            logger.warning("store %s failed (retrying in %.2fs): %s", operation, delay, exc)
            telemetry.execute(
                ("trexec", "durable", "store", "error"),
                {"count": 1},
                {"operation": operation, "error": str(exc)},
            )
            await trio.sleep(delay)
            delay = min(delay * 2, 5.0)


class Service:
    """An engine task with a cancel scope of its own (spec §5.5.1): :meth:`run`
    runs :meth:`_serve` inside it, :meth:`stop` cancels it, and ``done`` is set
    once it ended, however it ended. ``shield`` makes the scope shielded from
    the start (the completer, spec §5.5.4: never toggle it on a running task)."""

    def __init__(self, *, shield: bool = False) -> None:
        self._scope = trio.CancelScope(shield=shield)
        #: Set once the task is gone.
        self.done = trio.Event()

    def stop(self) -> None:
        self._scope.cancel()

    async def run(self) -> None:
        try:
            with self._scope:
                await self._serve()
        finally:
            self._ended()
            self.done.set()

    async def _serve(self) -> None:
        raise NotImplementedError

    def _ended(self) -> None:
        """Called as the task ends, before ``done`` is set."""
