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

    __slots__ = ("active", "ctx", "lost", "queued", "state")

    def __init__(self, ctx: Context, state: Any) -> None:
        self.ctx = ctx
        self.state = state
        self.active = True  # False once the engine step ends (its commit follows)
        self.queued = False  # a save is due
        self.lost = False  # a save found the lease lost

    async def save(self) -> None:
        self.queued = False
        if not self.active:
            return
        try:
            # Encoded at once (before the store call yields): a consistent table.
            if not await self.ctx.save(self.state):
                self.lost = True
        except Exception as exc:  # the run's commit stores them anyway
            logger.warning("run %s: could not save its step table: %r", self.ctx.id, exc)


class Saver:
    """The deadlines of every run's oldest unsaved outcome, in one engine."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Unsaved]] = []
        self._order = itertools.count()
        self._wake = trio.Event()

    def hold(self, entry: Unsaved, window: float) -> None:
        """Save ``entry`` ``window`` seconds from now, unless a save is due already."""
        if entry.queued:
            return
        entry.queued = True
        heapq.heappush(self._heap, (trio.current_time() + window, next(self._order), entry))
        if self._heap[0][2] is entry:
            self._wake.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                now = trio.current_time()
                while self._heap and self._heap[0][0] <= now:
                    entry = heapq.heappop(self._heap)[2]
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
