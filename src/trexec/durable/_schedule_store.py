"""The schedules table's transactions, once for every SQL store (spec §11.4):
each function runs inside the caller's write transaction on a DB-API connection
``c`` with the dialect's statements ``q`` (``_sqlite_sql`` / ``_postgres_sql``).

A row per schedule name: its ``cron`` and ``tz`` (the latest an engine
registered), ``paused``, and ``cursor``, the last tick fired (or when the
schedule was first registered). Firing a tick is ONE transaction that moves the
cursor with compare-and-set and inserts the tick's instances: of several
engines racing for a tick, exactly one changes anything (spec §11.4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import attrs

from ._exceptions import NoTarget

__all__ = ["ScheduleRow", "fire", "register", "rows", "set_paused"]


@attrs.frozen
class ScheduleRow:
    """One row of the schedules table; times are store timestamps (seconds)."""

    name: str
    cron: str
    tz: str
    paused: bool
    cursor: float
    last_fired_at: float | None


def _row(values: Sequence[Any]) -> ScheduleRow:
    name, cron, tz, paused, cursor, last = values
    return ScheduleRow(name, cron, tz, bool(paused), float(cursor), last)


def register(c: Any, q: ModuleType, schedules: Sequence[tuple[str, str, str]], now: float) -> None:
    """Add each ``(name, cron, tz)`` not yet known with its cursor at ``now`` (no
    tick before a schedule existed ever fires); give a known one a changed cron
    or tz, keeping its cursor and paused flag (spec §11.3)."""
    for name, cron, tz in schedules:
        c.execute(q.SCHEDULE_ADD, (name, cron, tz, now, now))
        c.execute(q.SCHEDULE_RETIME, (cron, tz, now, name, cron, tz))


def rows(c: Any, q: ModuleType) -> tuple[ScheduleRow, ...]:
    """Every schedule, by name."""
    return tuple(_row(values) for values in c.execute(q.SCHEDULE_ROWS).fetchall())


def fire(
    c: Any,
    q: ModuleType,
    name: str,
    cursor: float,
    new_cursor: float,
    now: float,
    insert: Callable[[], object],
) -> bool:
    """Move ``name``'s cursor from ``cursor`` to ``new_cursor`` and, only if that
    happened, ``insert()`` the ticks' instances, in the caller's transaction
    (spec §11.4). False, having changed nothing, if the cursor was no longer
    ``cursor`` (another engine fired first) or the schedule is paused."""
    # RETURNING, not rowcount: PostgreSQL writes run in pipeline mode.
    if c.execute(q.SCHEDULE_ADVANCE, (new_cursor, now, now, name, cursor)).fetchone() is None:
        return False
    insert()
    return True


def set_paused(c: Any, q: ModuleType, name: str, paused: bool, now: float) -> ScheduleRow:
    """Pause or resume ``name``; return its row. Resuming moves the cursor to
    ``now`` if it is older: ticks that fell while paused never fire (spec §11.6).
    Raises :class:`NoTarget` for a name no engine ever registered."""
    flag = int(paused)
    found = c.execute(q.SCHEDULE_PAUSE, (flag, now, now, flag, now, name)).fetchone()
    if found is None:
        raise NoTarget(f"schedule {name!r}: no such schedule in this store")
    return _row(found)
