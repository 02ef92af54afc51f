"""``Engine``'s schedule methods (spec §11.6): pause, resume and list the
schedules of the store, whichever engine registered them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _validate
from ._cron import ScheduleInfo, next_tick, to_datetime
from ._schedule_store import ScheduleRow

if TYPE_CHECKING:
    from ._scheduler import Scheduler
    from ._store import Store

__all__ = ["ScheduleControl", "info"]


def info(row: ScheduleRow) -> ScheduleInfo:
    """A row as users see it: ``next_fire_at`` is the first tick after the last
    one fired (in the past: overdue, no engine has fired it yet), None while
    paused."""
    return ScheduleInfo(
        name=row.name,
        cron=row.cron,
        tz=row.tz,
        paused=row.paused,
        next_fire_at=None if row.paused else to_datetime(next_tick(row.cron, row.tz, row.cursor)),
        last_fired_at=None if row.last_fired_at is None else to_datetime(row.last_fired_at),
    )


def _name(value: object) -> str:
    if not isinstance(value, str) or not value:
        _validate.fail("name", value, "the name of a durable.Schedule (a non-empty str)")
    return value


class ScheduleControl:
    """Mixed into :class:`~._engine_api.Engine`."""

    store: Store
    _scheduler: Scheduler | None

    def _check_open(self) -> None:
        raise NotImplementedError  # pragma: no cover - Engine's

    async def pause_schedule(self, name: str) -> None:
        """Stop firing schedule ``name`` in every engine on the store until
        :meth:`resume_schedule`; a pass already firing a tick finishes it.
        Raises :class:`NoTarget` if no engine ever ran a schedule of that name,
        :class:`~trexec.InvalidArgument` if ``name`` is not a str."""
        await self._set_paused(name, True)

    async def resume_schedule(self, name: str) -> None:
        """Fire schedule ``name`` again from its next tick: ticks that fell while
        it was paused never fire (spec §11.6). Resuming a running schedule
        changes nothing. Errors as :meth:`pause_schedule`."""
        await self._set_paused(name, False)

    async def _set_paused(self, name: str, paused: bool) -> None:
        self._check_open()
        await self.store.set_schedule_paused(_name(name), paused)
        if self._scheduler is not None:
            self._scheduler.wake()

    async def schedules(self) -> list[ScheduleInfo]:
        """Every schedule the store knows (any engine's), by name."""
        self._check_open()
        _, rows = await self.store.schedule_rows()
        return [info(row) for row in rows]
