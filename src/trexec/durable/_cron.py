"""Cron schedules (spec §11.3): ``Schedule``, ``ScheduleInfo`` and the tick arithmetic.

The cron expression is parsed and iterated by croniter (the pallets-eco
maintained library); local time zones, DST gaps and repeated hours follow its
rules on ``zoneinfo`` datetimes. A *tick* is the UTC instant one cron match falls
on; a tick fires once, as the instance or run with the business key
``schedule:<name>:<tick in ISO 8601 UTC>`` (spec §11.4).

This module is pure: it never reads a clock. The scheduler (``_scheduler.py``)
passes "now" from the store's clock.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any, Literal

import attrs

from .. import _validate
from ._limits import check_priority
from ._machine import Machine, check_machine

__all__ = [
    "CATCH_UP",
    "Schedule",
    "ScheduleInfo",
    "due_ticks",
    "last_tick",
    "next_tick",
    "tick_key",
]

#: What ``Schedule.catch_up`` may be (spec §11.5).
CATCH_UP: tuple[str, ...] = ("latest", "all", "none")
#: At most this many missed ticks fire at once with ``catch_up="all"`` (spec §11.5):
#: a per-minute schedule off for a year must not insert half a million rows in
#: one pass. The rest fire on the next passes, oldest first.
MAX_TICKS_PER_PASS = 1000
#: A tick is on time (not "missed") while it is at most this old (spec §11.5):
#: covers a scheduler pass that woke a little late.
ON_TIME = 60.0

_UTC = dt.UTC


def _croniter() -> Any:
    try:
        import croniter
    except ImportError:  # pragma: no cover - croniter is a dependency
        from .._exceptions import InvalidArgument

        raise InvalidArgument("durable.Schedule needs croniter: pip install 'trexec'") from None
    return croniter.croniter


def _check_cron(cron: object) -> str:
    if not isinstance(cron, str) or not cron.strip():
        _validate.fail("cron", cron, "a cron expression such as '0 3 * * *'")
    try:
        _croniter()(cron, dt.datetime(2000, 1, 1, tzinfo=_UTC))
    except (ValueError, TypeError, KeyError) as exc:
        _validate.fail("cron", cron, f"a valid cron expression ({exc})")
    return cron


def _check_tz(tz: object) -> str:
    if not isinstance(tz, str) or not tz:
        _validate.fail("tz", tz, "an IANA time zone name such as 'UTC' or 'Europe/Paris'")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        _validate.fail("tz", tz, f"an IANA time zone name ({type(exc).__name__})")
    return tz


@attrs.frozen
class Schedule:
    """Insert an instance of ``machine`` (with ``state``), or start a run of
    ``workflow`` (with ``input``), at every tick of ``cron`` in time zone ``tz``
    (spec §11.3). Give it to ``open_engine(schedules=[...])``.

    Exactly one instance or run per tick, whatever the number of engines and
    processes running the schedule: its business key is
    ``schedule:<name>:<tick in ISO 8601 UTC>``. Ticks missed while no engine
    ran the schedule: ``catch_up="latest"`` fires the latest one, ``"all"``
    every one (oldest first), ``"none"`` none. A schedule starts ticking when an
    engine first runs it: ticks before that are never fired.

    Raises :class:`~trexec.InvalidArgument` for a bad ``cron``, an unknown
    ``tz``, an unknown ``catch_up``, or not exactly one of ``machine`` and
    ``workflow``.
    """

    name: str
    cron: str
    machine: type[Machine] | None = attrs.field(default=None, kw_only=True)
    state: Any = attrs.field(default=None, kw_only=True)
    workflow: Any = attrs.field(default=None, kw_only=True)
    input: Any = attrs.field(default=None, kw_only=True)
    tz: str = attrs.field(default="UTC", kw_only=True)
    catch_up: Literal["latest", "all", "none"] = attrs.field(default="latest", kw_only=True)
    step: str = attrs.field(default="start", kw_only=True)
    priority: int = attrs.field(default=0, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "\x00" in self.name:
            _validate.fail("name", self.name, "a non-empty str without NUL characters")
        _check_cron(self.cron)
        _check_tz(self.tz)
        _validate.one_of("catch_up", self.catch_up, CATCH_UP)
        if (self.machine is None) == (self.workflow is None):
            _validate.fail(
                "machine",
                self.machine,
                "exactly one of machine= and workflow= (not both, not none)",
            )
        if self.machine is not None:
            check_machine("machine", self.machine)
        check_priority("priority", self.priority)

    @property
    def target(self) -> str:
        """What a tick starts: the machine's name, or ``workflow:<name>``."""
        if self.machine is not None:
            return self.machine.name
        return f"workflow:{getattr(self.workflow, 'name', self.workflow)!s}"


@attrs.frozen
class ScheduleInfo:
    """A schedule as the store knows it (spec §11.6): ``next_fire_at`` and
    ``last_fired_at`` are UTC datetimes (None: not yet known / never fired)."""

    name: str
    cron: str
    tz: str
    paused: bool
    next_fire_at: dt.datetime | None
    last_fired_at: dt.datetime | None


def to_datetime(timestamp: float) -> dt.datetime:
    """A store timestamp (seconds since the epoch) as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(timestamp, _UTC)


def next_tick(cron: str, tz: str, after: float) -> float:
    """The first tick of ``cron`` in ``tz`` strictly after ``after`` (a timestamp)."""
    zone = zoneinfo.ZoneInfo(tz)
    start = dt.datetime.fromtimestamp(after, zone)
    value: dt.datetime = _croniter()(cron, start).get_next(dt.datetime)
    return value.timestamp()


def due_ticks(
    cron: str, tz: str, catch_up: str, *, since: float, now: float
) -> tuple[list[float], float]:
    """The ticks to fire now (oldest first) and when to look again (spec §11.5).

    ``since`` is the last tick already fired (or when the schedule began: a
    tick at exactly ``since`` never fires). Ticks in ``(since, now]`` are due;
    a due tick older than ``ON_TIME`` seconds was *missed*: ``"all"`` keeps
    every due tick (at most ``MAX_TICKS_PER_PASS`` a pass), ``"latest"`` keeps
    the newest one, ``"none"`` keeps only the ticks that are on time.
    """
    if catch_up == "all":
        due: list[float] = []
        tick = next_tick(cron, tz, since)
        while tick <= now and len(due) < MAX_TICKS_PER_PASS:
            due.append(tick)
            tick = next_tick(cron, tz, tick)
        return due, (now if tick <= now else tick)
    if catch_up == "none":
        since = max(since, now - ON_TIME)
    latest = last_tick(cron, tz, now)
    upcoming = next_tick(cron, tz, now)
    if latest is None or latest <= since:
        return [], upcoming
    return [latest], upcoming


def last_tick(cron: str, tz: str, now: float) -> float | None:
    """The last tick of ``cron`` in ``tz`` at or before ``now`` (a timestamp)."""
    zone = zoneinfo.ZoneInfo(tz)
    start = dt.datetime.fromtimestamp(now, zone) + dt.timedelta(microseconds=1)
    try:
        value: dt.datetime = _croniter()(cron, start).get_prev(dt.datetime)
    except Exception:  # croniter raises when no earlier match exists
        return None
    return value.timestamp()


def tick_key(name: str, tick: float) -> str:
    """The business key of the instance a tick inserts (spec §11.4):
    ``schedule:<name>:<tick in ISO 8601 UTC>``, e.g.
    ``schedule:nightly:2026-12-06T03:00:00Z``."""
    return f"schedule:{name}:{to_datetime(tick).strftime('%Y-%m-%dT%H:%M:%SZ')}"
