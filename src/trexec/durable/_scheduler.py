"""The scheduler (spec §11.4): an engine background task that fires the ticks of
``open_engine(schedules=[...])``.

Each pass reads the schedules table and the store's "now" (so under
``trexec.testing`` and a ``MockClock`` schedules run in virtual time, spec
§11.7), fires the due ticks of each schedule it runs (``_cron.due_ticks``) with
one ``Store.fire_schedule`` each (compare-and-set on the cursor plus the
inserts, one transaction: exactly one engine inserts a tick), then sleeps until
the next tick, at most ``MAX_SLEEP`` (so a cron edit or a resume made by another
process is seen), or until ``pause_schedule``/``resume_schedule`` wake it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from ._cron import Schedule, due_ticks, tick_key
from ._exceptions import DuplicateKey
from ._insert import InsertSpec
from ._ledger import retrying
from ._records import NewInstance
from ._schedule_store import ScheduleRow

if TYPE_CHECKING:
    from ._engine_api import Engine

__all__ = ["MAX_SLEEP", "Scheduler"]

logger = logging.getLogger("trexec.durable")

#: The longest a scheduler sleeps between passes, in seconds (spec §11.4).
MAX_SLEEP = 60.0


class Scheduler:
    """Fires ``schedules`` for ``engine``; ``make_items(schedule, key)`` builds
    the rows of one tick. ``wake()`` starts a pass at once."""

    def __init__(
        self,
        engine: Engine,
        schedules: Sequence[Schedule],
        make_items: Callable[[Schedule, str], list[NewInstance]],
        *,
        max_sleep: float = MAX_SLEEP,
    ) -> None:
        self._engine = engine
        self._store = engine.store
        self.schedules = {s.name: s for s in schedules}
        self._items = make_items
        self._max_sleep = max_sleep
        self._wake = trio.Event()
        #: Ticks this scheduler inserted (each exactly once across all engines).
        self.fired = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        self._warn_unrun()
        while True:
            now, rows = await retrying("schedule_rows", self._store.schedule_rows)
            by_name = {row.name: row for row in rows}
            wait = self._max_sleep
            for schedule in self.schedules.values():
                row = by_name.get(schedule.name)
                if row is None:  # deleted from the table by hand: register it again
                    await self.register()
                    wait = 0.0
                    continue
                if row.paused:
                    continue
                wait = min(wait, await self._pass(schedule, row, now) - now)
            self._wake = trio.Event()
            with trio.move_on_after(max(wait, 0.0)):
                await self._wake.wait()

    async def register(self) -> None:
        """Add this engine's schedules to the store's table (spec §11.3)."""
        entries = [(s.name, s.cron, s.tz) for s in self.schedules.values()]
        await retrying("register_schedules", lambda: self._store.register_schedules(entries))

    async def _pass(self, schedule: Schedule, row: ScheduleRow, now: float) -> float:
        """Fire what is due of one schedule; return when to look again. The
        table's cron and tz rule (the latest an engine registered, spec §11.3)."""
        due, again = due_ticks(row.cron, row.tz, schedule.catch_up, since=row.cursor, now=now)
        if due:
            await self._fire(schedule, row.cursor, due)
        return again

    async def _fire(self, schedule: Schedule, cursor: float, due: list[float]) -> None:
        items = [
            item for tick in due for item in self._items(schedule, tick_key(schedule.name, tick))
        ]

        async def fire() -> bool:
            return await self._store.fire_schedule(schedule.name, cursor, due[-1], items)

        try:
            if await retrying("fire_schedule", fire):
                self.fired += len(due)
            return
        except DuplicateKey:
            pass
        # A live instance already holds a tick's key (inserted by hand): fire tick
        # by tick so only that tick is skipped; the cursor still passes it.
        for tick in due:
            fired = await self._fire_one(schedule, cursor, tick)
            if not fired:
                return  # another engine moved the cursor
            cursor = tick

    async def _fire_one(self, schedule: Schedule, cursor: float, tick: float) -> bool:
        key = tick_key(schedule.name, tick)
        items = self._items(schedule, key)
        store = self._store
        try:
            fired = await retrying(
                "fire_schedule", lambda: store.fire_schedule(schedule.name, cursor, tick, items)
            )
        except DuplicateKey:
            logger.warning("schedule %r: a live instance holds key %r; tick skipped",
                           schedule.name, key)  # fmt: skip
            return await retrying(
                "fire_schedule", lambda: store.fire_schedule(schedule.name, cursor, tick, [])
            )
        self.fired += fired
        return fired

    def _warn_unrun(self) -> None:
        # spec §11.3: a schedule whose work this engine does not run is reported
        # once (another process may run it: a warning, not an error).
        engine = self._engine
        for schedule in self.schedules.values():
            machines: Sequence[Any]
            if schedule.machine is not None:
                machines = [schedule.machine]
            else:
                machines = list(getattr(schedule.workflow, "engine_machines", list)())
            missing = [m for m in machines if not engine.runs_machine(m.name, m.version)]
            if missing:
                logger.warning(
                    "schedule %r inserts %s, which this engine does not run (workers=0 or"
                    " not given to open_engine): its ticks wait for an engine that does",
                    schedule.name, schedule.target,
                )  # fmt: skip


def tick_items(engine: Engine, schedule: Schedule, key: str) -> list[NewInstance]:
    """The rows one tick of ``schedule`` inserts, with business key ``key``:
    its machine's instance, or the instances that start one workflow run."""
    if schedule.machine is not None:
        spec = InsertSpec(
            schedule.machine, schedule.state, step=schedule.step, key=key,
            priority=schedule.priority,
        )  # fmt: skip
        return [engine._new(spec)]
    specs = schedule.workflow.run_specs(schedule.input, key=key, priority=schedule.priority)
    return [engine._new(s) for s in specs]
