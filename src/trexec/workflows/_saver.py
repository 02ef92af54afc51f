"""Outcomes of inline steps stored within the commit window (spec §6.6.6).

A run that runs steps after others it has not committed yet (a chain within its
commit window, or steps still running beside finished ones) holds outcomes that
a crash would lose. The engine's saver stores the run's step table
(``ctx.save``) once the oldest of them is ``commit_window`` old, while the run's
steps go on: one task per engine, a heap of deadlines, no timer per step.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..durable import Context

logger = logging.getLogger("trexec.workflows")


class Unsaved:
    """One engine step of one inline run: whether it holds outcomes not stored."""

    __slots__ = ("ctx", "lost", "queued", "state")

    def __init__(self, ctx: Context, state: Any) -> None:
        self.ctx: Context | None = ctx  # None once the engine step ends
        self.state = state
        self.queued = False  # a save is due
        self.lost = False  # a save found the lease lost

    @property
    def active(self) -> bool:
        """False once the engine step has ended (its commit follows)."""
        return self.ctx is not None

    def close(self) -> None:
        """The engine step ended: nothing to save any more. Its heap entry may
        outlive it by up to a window; it then holds no state."""
        self.ctx = self.state = None

    async def save(self) -> None:
        self.queued = False
        if self.ctx is None:
            return
        try:
            # Encoded at once (before the store call yields): a consistent table.
            if not await self.ctx.save(self.state):
                self.lost = True
        except Exception as exc:  # the run's commit stores them anyway
            logger.warning("run %s: could not save its step table: %r", self.ctx.id, exc)


#: The share of its window by which an entry may be saved early, so that one
#: wake-up of the saver takes every entry due that soon (spec §6.6.6).
EARLY = 0.25


class Saver:
    """The deadlines of every run's oldest unsaved outcome, in one engine.

    Most entries are over before their deadline (the run committed). Each
    wake-up of the saver is a deadline of Trio's (a cancel scope that expires):
    it wakes at the first deadline and takes every entry due within the next
    ``EARLY`` of that entry's window too, so quick runs that follow each other
    cost one wake-up per quarter window, not one each; an entry still running
    is then saved up to that much early, never late.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Unsaved, float]] = []
        self._order = itertools.count()
        self._wake = trio.Event()

    def hold(self, entry: Unsaved, window: float) -> None:
        """Save ``entry`` ``window`` seconds from now (``EARLY`` of it sooner at
        most), unless a save is due already."""
        if entry.queued:
            return
        entry.queued = True
        due = trio.current_time() + window
        heapq.heappush(self._heap, (due, next(self._order), entry, window * EARLY))
        if self._heap[0][2] is entry:
            self._wake.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                now = trio.current_time()
                heap = self._heap
                while heap and heap[0][0] - heap[0][3] <= now:
                    entry = heapq.heappop(heap)[2]
                    if entry.active:
                        nursery.start_soon(entry.save)
                    else:
                        entry.queued = False
                self._wake = trio.Event()
                with trio.move_on_at(self._heap[0][0] if self._heap else math.inf):
                    await self._wake.wait()


_savers: weakref.WeakKeyDictionary[Any, Saver] = weakref.WeakKeyDictionary()


def saver_tasks(engine: Any) -> tuple[Callable[[], Awaitable[object]], ...]:
    """The saver's task for ``engine``, the first time it is asked (one per engine)."""
    if engine in _savers:
        return ()
    saver = _savers[engine] = Saver()
    return (saver.run,)


def saver_of(engine: Any) -> Saver | None:
    """``engine``'s saver (None for an engine that runs no inline workflow)."""
    return _savers.get(engine)
