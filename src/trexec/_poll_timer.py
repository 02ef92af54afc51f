"""The shared wake-up timer of the pollers in one nursery (spec §2.13).

A Trio sleep costs a cancel scope and a deadline-heap entry per call: with
10,000 pollers at 1 s that is ~40 µs a poll, ~40% of a core, before any
polling is done (bench/bench_pollers.py measures it). Pollers in one nursery
instead park on one :class:`PollTimer`: a heap of due times and one task that
sleeps until the earliest and reschedules every parked poller that is due.
The task lives in the pollers' own nursery and ends when its last poller ends,
so nothing outlives the caller's nursery.
"""

from __future__ import annotations

import heapq
import itertools
import math
import weakref
from typing import Any

import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

_timers: weakref.WeakKeyDictionary[trio.Nursery, PollTimer] = weakref.WeakKeyDictionary()


def acquire(nursery: trio.Nursery) -> PollTimer:
    """The timer of ``nursery``'s pollers, started on first use; the caller owns one use
    and must :meth:`PollTimer.release` it (spec §2.13)."""
    timer = _timers.get(nursery)
    if timer is None:
        timer = PollTimer(nursery)
        nursery.start_soon(timer._run, name="trexec poller timer")
        _timers[nursery] = timer
    timer._users += 1
    return timer


class PollTimer:
    __slots__ = ("__weakref__", "_closed", "_heap", "_nursery", "_scope", "_seq", "_users")

    def __init__(self, nursery: trio.Nursery) -> None:
        # Entries are [due, sequence, task]; a cancelled sleep sets task to None.
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._scope: trio.CancelScope | None = None
        self._nursery = weakref.ref(nursery)
        self._users = 0
        self._closed = False

    async def sleep_until(self, when: float) -> None:
        """Like ``trio.sleep_until``: a checkpoint; honours cancellation."""
        if when <= trio.current_time():
            await trio.lowlevel.checkpoint()
            return
        entry: list[Any] = [when, next(self._seq), current_task()]
        heapq.heappush(self._heap, entry)
        scope = self._scope
        if scope is not None and when < scope.deadline:
            scope.deadline = when  # wake the timer task earlier

        def abort(_: Any) -> Abort:
            entry[2] = None
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def release(self) -> None:
        """One user is gone; the last one ends the timer task."""
        self._users -= 1
        if self._users == 0:
            self._closed = True
            nursery = self._nursery()
            if nursery is not None and _timers.get(nursery) is self:
                del _timers[nursery]
            if self._scope is not None:
                self._scope.cancel()

    async def _run(self) -> None:
        heap = self._heap
        while not self._closed:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                task = heapq.heappop(heap)[2]
                if task is not None:
                    reschedule(task)
            with trio.move_on_at(heap[0][0] if heap else math.inf) as self._scope:
                await trio.sleep_forever()
            self._scope = None
