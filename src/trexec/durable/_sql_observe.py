"""What a SQL store keeps for observation (spec §5.16, §14): live engines'
announcements, an instance's trace context, lease expiry and the backlog.

One mixin for both dialects; each names its statements (named parameters,
``now`` being the store's clock on SQLite, unused on PostgreSQL which reads
its own) and implements ``_observe``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from . import _postgres_sql as postgres_sql, _sqlite_sql as sqlite_sql
from ._postgres_sql import NOW, epoch
from ._records import EngineRecord

T = TypeVar("T")

#: An expired announcement is deleted this long after it expired (spec §5.16).
FORGET_AFTER = 3600.0

_ENGINE_COLUMNS = "id, host, pid, machines, holding, started_at, heartbeat_at, expires_at"


class SqliteObserveSql:
    ANNOUNCE = (
        f"INSERT INTO trexec_engines ({_ENGINE_COLUMNS}) VALUES (:id, :host, :pid, :machines,"
        " :holding, :now, :now, :now + :ttl) ON CONFLICT (id) DO UPDATE SET"
        " machines = excluded.machines, holding = excluded.holding,"
        " heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at"
    )
    FORGET = "DELETE FROM trexec_engines WHERE expires_at < :now - :forget"
    WITHDRAW = "DELETE FROM trexec_engines WHERE id = :id"
    ENGINES = (
        f"SELECT {_ENGINE_COLUMNS} FROM trexec_engines WHERE expires_at >= :now"
        " ORDER BY started_at, id"
    )
    ATTACH_TRACE = (
        "UPDATE instances SET trace_context = COALESCE(trace_context, :trace) WHERE id = :id"
    )
    ATTACH_TRACE_BY_KEY = (
        "UPDATE instances SET trace_context = COALESCE(trace_context, :trace)"
        " WHERE key = :id AND status NOT IN ('done', 'stopped', 'cancelled')"
    )
    LEASE = "SELECT lease_expires_at FROM instances WHERE id = :id AND status = 'running'"
    CLOCK = "SELECT :now"
    # spec §12.3.2: machine by machine, each a range of (machine, status, id).
    COUNT_RUNNABLE = (
        f"{sqlite_sql.MACHINES_CTE} SELECT machine, n FROM (SELECT ms.machine,"
        " (SELECT count(*) FROM instances i INDEXED BY instances_machine_status"
        " WHERE i.machine = ms.machine"
        " AND i.status IN ('scheduled', 'awaiting') AND i.run_at <= :now) AS n"
        " FROM ms WHERE ms.machine IS NOT NULL) WHERE n > 0"
    )

    @staticmethod
    def encode(values: Sequence[Any]) -> Any:
        return json.dumps(list(values))

    @staticmethod
    def decode(value: Any) -> list[Any]:
        return list(json.loads(value))


class PostgresObserveSql:
    ANNOUNCE = (
        f"INSERT INTO trexec_engines ({_ENGINE_COLUMNS}) VALUES (%(id)s, %(host)s, %(pid)s,"
        f" %(machines)s, %(holding)s, {NOW}, {NOW}, {NOW} + make_interval(secs => %(ttl)s))"
        " ON CONFLICT (id) DO UPDATE SET machines = excluded.machines,"
        " holding = excluded.holding, heartbeat_at = excluded.heartbeat_at,"
        " expires_at = excluded.expires_at"
    )
    FORGET = (
        f"DELETE FROM trexec_engines WHERE expires_at < {NOW} - make_interval(secs => %(forget)s)"
    )
    WITHDRAW = "DELETE FROM trexec_engines WHERE id = %(id)s"
    ENGINES = (
        f"SELECT id, host, pid, machines, holding, {epoch('started_at')},"
        f" {epoch('heartbeat_at')}, {epoch('expires_at')} FROM trexec_engines"
        f" WHERE expires_at >= {NOW} ORDER BY started_at, id"
    )
    ATTACH_TRACE = (
        "UPDATE trexec_instances SET trace_context = COALESCE(trace_context, %(trace)s)"
        " WHERE id = %(id)s"
    )
    ATTACH_TRACE_BY_KEY = (
        "UPDATE trexec_instances SET trace_context = COALESCE(trace_context, %(trace)s)"
        " WHERE key = %(id)s AND status NOT IN ('done', 'stopped', 'cancelled')"
    )
    LEASE = (
        f"SELECT {epoch('lease_expires_at')} FROM trexec_instances"
        " WHERE id = %(id)s AND status = 'running'"
    )
    CLOCK = f"SELECT {epoch(NOW)}"
    COUNT_RUNNABLE = (
        f"{postgres_sql.MACHINES_CTE} SELECT machine, n FROM (SELECT ms.machine,"
        " (SELECT count(*) FROM trexec_instances i WHERE i.machine = ms.machine"
        f" AND i.status IN ('scheduled', 'awaiting') AND i.run_at <= {NOW}) AS n"
        " FROM ms WHERE ms.machine IS NOT NULL) c WHERE n > 0"
    )

    @staticmethod
    def encode(values: Sequence[Any]) -> Any:
        return list(values)

    @staticmethod
    def decode(value: Any) -> list[Any]:
        return list(value)


class ObserveMixin:
    """The observation methods of :class:`~._store.Store`, in SQL. A dialect
    sets ``_observe_sql`` and implements ``_observe(fn, write=...)``, which
    runs ``fn(connection, now)`` in a transaction (``now``: the store's clock,
    or None where the SQL reads the database's)."""

    _observe_sql: ClassVar[type[SqliteObserveSql] | type[PostgresObserveSql]]

    async def _observe(self, fn: Callable[[Any, float | None], T], *, write: bool) -> T:
        raise NotImplementedError  # pragma: no cover

    async def announce(
        self, engine: str, host: str, pid: int, machines: Sequence[str],
        holding: Sequence[int], ttl: float,
    ) -> None:  # fmt: skip
        q = self._observe_sql
        params = {
            "id": engine, "host": host, "pid": pid, "machines": q.encode(machines),
            "holding": q.encode(holding), "ttl": float(ttl), "forget": FORGET_AFTER,
        }  # fmt: skip

        def op(c: Any, now: float | None) -> None:
            c.execute(q.ANNOUNCE, {**params, "now": now})
            c.execute(q.FORGET, {"now": now, "forget": FORGET_AFTER})

        await self._observe(op, write=True)

    async def withdraw(self, engine: str) -> None:
        q = self._observe_sql
        await self._observe(lambda c, now: c.execute(q.WITHDRAW, {"id": engine}), write=True)

    async def engines(self) -> list[EngineRecord]:
        q = self._observe_sql

        def op(c: Any, now: float | None) -> list[EngineRecord]:
            rows = c.execute(q.ENGINES, {"now": now}).fetchall()
            return [
                EngineRecord(
                    id=r[0],
                    host=r[1],
                    pid=r[2],
                    machines=tuple(q.decode(r[3])),
                    holding=tuple(int(i) for i in q.decode(r[4])),
                    started_at=r[5],
                    heartbeat_at=r[6],
                    expires_at=r[7],
                )
                for r in rows
            ]

        return await self._observe(op, write=False)

    async def attach_trace(self, target: int | str, trace_context: str) -> None:
        q = self._observe_sql
        query = q.ATTACH_TRACE if isinstance(target, int) else q.ATTACH_TRACE_BY_KEY
        params = {"id": target, "trace": trace_context}
        await self._observe(lambda c, now: c.execute(query, params), write=True)

    async def lease_expiry(self, instance_id: int) -> tuple[float | None, float]:
        q = self._observe_sql

        def op(c: Any, now: float | None) -> tuple[float | None, float]:
            row = c.execute(q.LEASE, {"id": instance_id}).fetchone()
            (clock,) = c.execute(q.CLOCK, {"now": now}).fetchone()
            return (None if row is None else row[0]), clock

        return await self._observe(op, write=False)

    async def count_runnable(self) -> dict[str, int]:
        q = self._observe_sql

        def op(c: Any, now: float | None) -> dict[str, int]:
            return {m: int(n) for m, n in c.execute(q.COUNT_RUNNABLE, {"now": now})}

        return await self._observe(op, write=False)
