"""The reads every SQL store makes the same way (spec §5.2), once: a dialect
(``_sqlite.py``, ``_postgres.py``) names its statements and its placeholder,
converts its rows and runs a read on a connection; the rest is here."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, ClassVar, TypeVar

from . import _schedule_store as sched, _store_rules as rules
from ._records import InstanceRecord, NewInstance, SignalRecord
from ._schedule_store import ScheduleRow
from ._store import Store

T = TypeVar("T")


class SqlStore(Store):
    """A :class:`Store` over SQL. Subclasses set ``_sql`` (a module defining
    ``GET_BY_ID``, ``GET_BY_KEY``, ``INBOX``, ``CHILDREN``, ``LIST`` and
    ``MACHINES``, each a statement taking the placeholder ``_mark``), and
    implement ``_read`` (run a read-only function on a connection, mapping
    driver errors) and, if their rows differ from ``_store_rules.record``'s,
    ``_record``."""

    _sql: ClassVar[ModuleType]
    _mark: ClassVar[str]
    #: Appended to ``LIST`` when a key filter is given (spec §12.3).
    _key_hint: ClassVar[str] = ""

    def _record(self, row: Sequence[Any]) -> InstanceRecord:
        return rules.record(row)

    @abc.abstractmethod
    async def _read(self, fn: Callable[[Any], T]) -> T:
        """``fn(connection)`` in a read (interruptible) call."""

    @abc.abstractmethod
    async def _write(self, fn: Callable[[Any], T]) -> T:
        """``fn(connection)`` in ONE write transaction; safe to retry (``fn`` is
        fenced or idempotent)."""

    @abc.abstractmethod
    def _now_in(self, c: Any) -> float:
        """The store's "now" (seconds), inside a call on connection ``c``."""

    @abc.abstractmethod
    def _insert_in(self, c: Any, items: Sequence[NewInstance], now: float) -> list[int]:
        """:meth:`insert`'s rows, inside the caller's write transaction."""

    # --- schedules (spec §11.4): the rules in _schedule_store, the SQL in _sql ----

    async def register_schedules(self, schedules: Sequence[tuple[str, str, str]]) -> None:
        ordered = sorted(schedules)  # one lock order for every engine registering at once

        def op(c: Any) -> None:
            sched.register(c, self._sql, ordered, self._now_in(c))

        await self._write(op)

    async def schedule_rows(self) -> tuple[float, tuple[ScheduleRow, ...]]:
        def op(c: Any) -> tuple[float, tuple[ScheduleRow, ...]]:
            return self._now_in(c), sched.rows(c, self._sql)

        return await self._read(op)

    async def fire_schedule(
        self, name: str, cursor: float, new_cursor: float, items: Sequence[NewInstance]
    ) -> bool:
        def op(c: Any) -> bool:
            now = self._now_in(c)
            insert = lambda: self._insert_in(c, items, now) if items else None  # noqa: E731
            return sched.fire(c, self._sql, name, cursor, new_cursor, now, insert)

        return await self._write(op)

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRow:
        def op(c: Any) -> ScheduleRow:
            return sched.set_paused(c, self._sql, name, paused, self._now_in(c))

        return await self._write(op)

    async def get(self, target: int | str) -> InstanceRecord | None:
        query = self._sql.GET_BY_ID if isinstance(target, int) else self._sql.GET_BY_KEY

        def op(c: Any) -> InstanceRecord | None:
            row = c.execute(query, (target,)).fetchone()
            return None if row is None else self._record(row)

        return await self._read(op)

    async def inbox(self, instance_id: int) -> list[SignalRecord]:
        def op(c: Any) -> list[SignalRecord]:
            return [rules.signal(row) for row in c.execute(self._sql.INBOX, (instance_id,))]

        return await self._read(op)

    async def children(self, instance_id: int) -> list[InstanceRecord]:
        def op(c: Any) -> list[InstanceRecord]:
            return [self._record(row) for row in c.execute(self._sql.CHILDREN, (instance_id,))]

        return await self._read(op)

    async def list(
        self,
        *,
        status: str | None = None,
        machine: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
        key: str | None = None,
        before_id: int | None = None,
        newest_first: bool = False,
    ) -> list[InstanceRecord]:
        def op(c: Any) -> list[InstanceRecord]:
            # spec §12.3.2: a status alone is read machine by machine.
            every = status is not None and machine is None and key is None
            machines = [row[0] for row in c.execute(self._sql.MACHINES)] if every else []
            query, params = rules.list_query(
                self._sql.LIST, self._mark, status=status, machine=machine, key=key,
                limit=limit, after_id=after_id, before_id=before_id,
                newest_first=newest_first, key_hint=self._key_hint, machines=machines,
            )  # fmt: skip
            return [self._record(row) for row in c.execute(query, params)]

        return await self._read(op)
