"""The reads every SQL store makes the same way (spec §5.2), once: a dialect
(``_sqlite.py``, ``_postgres.py``) names its statements and its placeholder,
converts its rows and runs a read on a connection; the rest is here."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, ClassVar, TypeVar

from . import _store_rules as rules
from ._records import InstanceRecord, SignalRecord
from ._store import Store

T = TypeVar("T")


class SqlStore(Store):
    """A :class:`Store` over SQL. Subclasses set ``_sql`` (a module defining
    ``GET_BY_ID``, ``GET_BY_KEY``, ``INBOX``, ``CHILDREN`` and ``LIST``, each a
    statement taking the placeholder ``_mark``), and implement ``_read`` (run a
    read-only function on a connection, mapping driver errors) and, if their
    rows differ from ``_store_rules.record``'s, ``_record``."""

    _sql: ClassVar[ModuleType]
    _mark: ClassVar[str]
    #: Appended to ``LIST`` when a key filter is given (spec §12.3).
    _key_hint: ClassVar[str] = ""

    def _record(self, row: Sequence[Any]) -> InstanceRecord:
        return rules.record(row)

    @abc.abstractmethod
    async def _read(self, fn: Callable[[Any], T]) -> T:
        """``fn(connection)`` in a read (interruptible) call."""

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
        query, params = rules.list_query(
            self._sql.LIST, self._mark, status=status, machine=machine, key=key, limit=limit,
            after_id=after_id, before_id=before_id, newest_first=newest_first,
            key_hint=self._key_hint,
        )  # fmt: skip

        def op(c: Any) -> list[InstanceRecord]:
            return [self._record(row) for row in c.execute(query, params)]

        return await self._read(op)
