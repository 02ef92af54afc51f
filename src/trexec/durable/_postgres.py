"""The PostgreSQL store (spec §8): ``open_store("postgresql://...")``.

What users move to when one machine is not enough: any number of worker
processes, on any number of machines, share one database. It has the same
semantics as the SQLite store (``_sqlite.py``), proved by the same test suite;
what differs is how it gets there:

* psycopg 3 and a sync ``psycopg_pool.ConnectionPool`` driven from worker
  threads (``_postgres_conn.py``): one thread call per transaction;
* claims with ``FOR UPDATE SKIP LOCKED``, leases and eligibility on the
  database's clock (``now()``), never a worker's;
* LISTEN/NOTIFY wake-ups (``_postgres_listen.py``): an insert, a signal, a child
  finishing or a release wakes idle workers everywhere at once;
* connection loss is retried with backoff (``Database.run``); a worker that
  dies is recovered by any other worker's reaper when its lease expires.

Each operation's transaction body lives in ``_postgres_ops.py``, its SQL in
``_postgres_sql.py``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any, ClassVar, TypeVar

import psycopg
import psycopg.conninfo
import psycopg.errors
import trio

from .. import _validate
from . import (
    _postgres_claim as claims,
    _postgres_ops as ops,
    _postgres_sql as sql,
    _store_rules as rules,
)
from ._exceptions import StoreError, StoreRejected
from ._postgres_conn import Database, Retry, parse_schema, redact
from ._postgres_listen import Listener
from ._records import (
    Claim,
    Commit,
    CommitStatus,
    Delivery,
    Lease,
    NewInstance,
    RateLimitPolicy,
    Reclaimed,
    Release,
)
from ._sql_observe import ObserveMixin, PostgresObserveSql
from ._sql_store import SqlStore

__all__ = ["PostgresStore"]

T = TypeVar("T")
Conn = psycopg.Connection[Any]

#: This store's schema version: its latest migration (spec §5.2).
SCHEMA_VERSION = max(sql.MIGRATIONS)


class PostgresStore(ObserveMixin, SqlStore):
    """The PostgreSQL store. Open it with ``durable.open_store("postgresql://...")``
    or :meth:`PostgresStore.open`.

    ``schema`` (or ``?options=-csearch_path%3Dname`` in the URL) names the
    PostgreSQL schema holding the store's tables, so several applications can
    share one database (spec §8.2.1); the default is ``public``. ``pool_size``
    bounds the connections (and threads) this store uses at once, plus one for
    LISTEN. ``listen=False`` skips LISTEN/NOTIFY (a producer that never waits).
    ``reconnect_timeout`` is how long a call keeps retrying while the server is
    unreachable before it raises :class:`StoreError` (spec §8.4.1).

    ``clock`` exists for tests only: a callable returning seconds (such as
    ``trio.current_time`` under a ``MockClock``); the database's clock then
    advances exactly as it does from when the store opened. Production code
    leaves it ``None``: "now" is the database's ``now()``.
    """

    _sql: ClassVar[ModuleType] = sql
    _mark: ClassVar[str] = "%s"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = 4,
        listen: bool = True,
        reconnect_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        conninfo, self.schema = parse_schema(url, schema)
        _validate.count("pool_size", pool_size, minimum=1)
        _validate.seconds("reconnect_timeout", reconnect_timeout)
        _validate.seconds("connect_timeout", connect_timeout, allow_zero=False)
        if clock is not None:
            _validate.callable_("clock", clock)
        self.url = redact(url)
        self.conninfo = conninfo
        #: The NOTIFY channel of this schema (spec §8.5.1).
        self.channel = f"trexec_{self.schema}"[:63]
        self._db = Database(
            conninfo,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            reconnect_timeout=reconnect_timeout,
            name=f"trexec:{self.schema}",
        )
        self._listen = listen
        self._listener: Listener | None = None
        self._clock = clock
        self._clock_origin: tuple[float, float] | None = None  # (clock(), db epoch)
        self._closed = False
        self._opened = False
        self._wake = trio.Event()
        self._subscribers: list[Callable[[], object]] = []
        #: How many NOTIFY wake-ups (and reconnections) this store has seen.
        self.wakeups = 0

    # --- lifecycle --------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, **options: Any) -> AsyncIterator[PostgresStore]:
        """Open a store on ``url`` (options as for the constructor); close it on exit.

        Connects (raising :class:`StoreError` if the server cannot be reached
        within ``connect_timeout``) and starts the LISTEN thread; it does not
        migrate. Leaving the block closes every connection and joins the thread.
        """
        store = cls(url, **options)
        await store._open()
        try:
            yield store
        finally:
            await store.close()

    async def _open(self) -> None:
        try:
            await self._db.open()
            self._opened = True
            if self._clock is not None:
                db_now = await self._db.run(lambda c: c.execute(sql.CLOCK_RAW).fetchone())
                assert db_now is not None
                self._clock_origin = (self._clock(), db_now[0])
            if self._listen:
                listener = Listener(self.conninfo, self.channel, self._on_notify)
                await listener.start()
                self._listener = listener
        except psycopg.Error as exc:
            await self.close()
            # One line: libpq adds hints ("Is the server running...") on more.
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise StoreError(f"cannot open {self.url}: {reason}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            if self._listener is not None:
                await self._listener.stop()
            if self._opened:
                await self._db.close()

    def _on_notify(self) -> None:
        self.wakeups += 1
        self._wake.set()
        self._wake = trio.Event()
        for callback in list(self._subscribers):
            callback()

    def subscribe(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` (in Trio, synchronously) whenever the store is notified
        that work may be ready: an insert, a signal that wakes an instance, a
        child finishing, a release or a reclaim, by any process (spec §8.5.1), and
        after the LISTEN connection is re-established. Returns ``unsubscribe()``.

        An engine's picker subscribes to wake at once instead of polling.
        """
        _validate.callable_("callback", callback)
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def wait_for_work(self, timeout: float) -> bool:
        """Wait until the store is notified (see :meth:`subscribe`) or ``timeout``
        seconds pass; True if notified. Without LISTEN it just sleeps."""
        event = self._wake
        with trio.move_on_after(_validate.seconds("timeout", timeout)):
            await event.wait()
            return True
        return False

    # --- the boundary: driver errors become StoreError -----------------------------

    async def _run(
        self,
        fn: Callable[[Conn], T],
        *,
        retry: Retry = "always",
        read: bool = False,
        pipeline: bool = True,
    ) -> T:
        if self._closed or not self._opened:
            raise StoreError(f"{self.url}: the store is {'closed' if self._closed else 'not open'}")
        if self._clock_origin is not None:
            fn = self._with_clock(fn)
        try:
            return await self._db.run(fn, retry=retry, interruptible=read, pipeline=pipeline)
        except (psycopg.IntegrityError, psycopg.DataError) as exc:  # spec §5.5.9
            raise StoreRejected(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    def _with_clock(self, fn: Callable[[Conn], T]) -> Callable[[Conn], T]:
        # The database's clock reads db_origin + (clock() - clock_origin): exactly
        # the test clock's elapsed time, whatever the real time.
        assert self._clock is not None and self._clock_origin is not None
        clock0, db0 = self._clock_origin
        elapsed = self._clock() - clock0

        def op(c: Conn) -> T:
            c.execute(sql.SET_CLOCK_OFFSET, (elapsed, db0))
            return fn(c)

        return op

    def _notify(self, c: Conn) -> None:
        c.execute(sql.NOTIFY, (self.channel,))

    # --- schema (spec §8.2) ---------------------------------------------------------

    async def migrate(self) -> int:
        schema = self.schema

        def op(c: Conn) -> int:
            c.execute(sql.MIGRATE_LOCK, (schema,))
            c.execute(sql.CREATE_SCHEMA.format(schema))
            current = 0
            if c.execute(sql.META_EXISTS).fetchone()[0]:  # type: ignore[index]
                row = c.execute(sql.SCHEMA_VERSION_GET).fetchone()
                current = int(row[0]) if row else 0
            where = f"{self.url} (schema {schema!r})"
            return rules.migrate(c, current, sql.MIGRATIONS, sql.SCHEMA_VERSION_SET, where)

        # The clock offset function does not exist before the first migration.
        try:
            return await self._db.run(op, retry="always")
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    # --- insert (spec §5.3) ------------------------------------------------------------

    async def insert(self, items: Sequence[NewInstance]) -> list[int]:
        if not items:
            return []

        def op(c: Conn) -> list[int]:
            ids = ops.insert_rows(c, items)
            self._notify(c)
            return ids

        # spec §8.4.2: not retried if the connection drops during COMMIT.
        return await self._run(op, retry="unless_committing")

    # --- claim (spec §5.5, §5.9) ---------------------------------------------------------

    async def claim(
        self,
        machines: Sequence[tuple[str, int]],
        limit: int,
        lease: float,
        rate_limits: Mapping[str, RateLimitPolicy],
    ) -> Claim:
        if not machines or limit <= 0:
            return Claim(())
        # spec §8.1.2: a claim reads each result at once; no pipeline.
        op = claims.claim_op(machines, limit, lease, rate_limits)
        return await self._run(op, pipeline=bool(rate_limits))

    async def next_due(self, machines: Sequence[tuple[str, int]]) -> float | None:
        if not machines:
            return None
        params = ([m for m, _ in machines], [v for _, v in machines])

        def op(c: Conn) -> float | None:
            return c.execute(sql.NEXT_DUE, params).fetchone()[0]  # type: ignore[index, no-any-return]

        return await self._run(op, read=True)

    # --- leases (spec §5.8, §8.9) -----------------------------------------------------------

    async def heartbeat(self, leases: Sequence[Lease], lease: float) -> set[int]:
        if not leases:
            return set()
        params = {
            "ids": [held.id for held in leases],
            "tokens": [held.token for held in leases],
            "lease": float(lease),
        }

        def op(c: Conn) -> set[int]:
            kept = {row[0] for row in c.execute(sql.HEARTBEAT, params)}
            return {held.id for held in leases} - kept

        return await self._run(op)

    async def save_state(self, lease: Lease, state: str) -> bool:
        params = (state, lease.id, lease.token)

        def op(c: Conn) -> bool:
            return c.execute(sql.SAVE_STATE, params).fetchone() is not None

        return await self._run(op)

    async def release(self, releases: Sequence[Release]) -> None:
        if not releases:
            return
        params = (
            [r.lease.id for r in releases],
            [r.lease.token for r in releases],
            [int(r.attempted) for r in releases],
            [r.lease.id for r in releases],
        )

        def op(c: Conn) -> None:
            if c.execute(sql.RELEASE, params).fetchall():
                self._notify(c)  # spec §8.5.1: another worker may take them now

        await self._run(op)

    async def reap_expired(self) -> list[Reclaimed]:
        def op(c: Conn) -> list[Reclaimed]:
            rows = c.execute(sql.REAP_EXPIRED).fetchall()
            if rows:
                self._notify(c)  # spec §8.5.1
            return [Reclaimed(*row) for row in rows]

        return await self._run(op)

    # --- complete (spec §5.4) ----------------------------------------------------------------

    async def complete(self, commits: Sequence[Commit]) -> list[CommitStatus]:
        if not commits:
            return []
        # Fenced, so safe to retry even after a COMMIT whose fate is unknown: an
        # applied commit then reports "stale" (spec §8.4.2).
        op = functools.partial(ops.complete, commits=commits, notify=self._notify)
        statuses, _ = await self._run(op, retry="always")
        return statuses

    async def complete_and_claim(
        self,
        commits: Sequence[Commit],
        machines: Sequence[tuple[str, int]],
        limit: int,
        lease: float,
        rate_limits: Mapping[str, RateLimitPolicy],
        *,
        keep: Collection[int] = (),
    ) -> tuple[list[CommitStatus], Claim]:
        """Both in ONE transaction (spec §8.8.3): the commits first, exactly as
        :meth:`complete` (``keep``: spec §5.5.13), then the claim. Retried like
        ``complete``: if a connection drops while ``COMMIT`` is in flight, the
        rows that claim took are not handed out and come back through the
        reaper. A kept row keeps its token, so the retry of a kept commit that
        did apply applies it again, unchanged, and keeps the row again."""
        if not machines or limit <= 0:
            # spec §8.5.2: this engine claims nothing now (shutting down, or full):
            # its next/retry commits notify, or idle engines elsewhere would wait
            # for their poll.
            only = functools.partial(
                ops.complete, commits=commits, notify=self._notify, unclaimed=True
            )
            return (await self._run(only, retry="always"))[0] if commits else [], Claim(())
        claim = claims.claim_op(machines, limit, lease, rate_limits)
        keeping = ops.Keep(keep, limit, lease, machines) if keep else None

        def op(c: Conn) -> tuple[list[CommitStatus], Claim]:
            statuses, kept = (
                ops.complete(c, commits, self._notify, keep=keeping) if commits else ([], [])
            )
            if not kept:
                return statuses, claim(c)
            more = claim(c, limit - len(kept)) if len(kept) < limit else Claim(())
            return statuses, Claim(claims.jobs(c, kept) + more.jobs, more.throttled)

        # spec §8.1.2, §8.8.5: the common batch is two statements, each read at once.
        simple = ops.simple(commits) and not rate_limits
        return await self._run(op, retry="always", pipeline=not simple)

    # --- signals (spec §5.6) -------------------------------------------------------------------

    async def deliver_signal(
        self, target: int | str, name: str, payload: str, dedup_key: str | None
    ) -> Delivery:
        op = functools.partial(
            ops.deliver_signal, target=target, name=name, payload=payload,
            dedup_key=dedup_key, notify=self._notify,
        )  # fmt: skip
        # spec §8.4.2: a retry after an unknown COMMIT could store the signal twice.
        retry: Retry = "always" if dedup_key is not None else "unless_committing"
        return await self._run(op, retry=retry)

    async def cancel(self, target: int | str) -> tuple[int, str]:
        op = functools.partial(ops.cancel, target=target, notify=self._notify)
        return await self._run(op, retry="unless_committing")

    # --- prune (spec §5.15) -----------------------------------------------------------------------

    async def _prune_after(
        self, older_than: float, statuses: Sequence[str], after: int, room: int | None
    ) -> tuple[int, int | None]:
        # Deleting finished trees is idempotent: safe to retry after an unknown
        # COMMIT (that batch's count is then lost, nothing else).
        return await self._run(ops.prune_batch(older_than, statuses, after, room))

    # --- reads (interruptible, spec §8.3.2) ------------------------------------------------------

    _observe_sql = PostgresObserveSql

    async def _observe(self, fn: Callable[[Any, float | None], T], *, write: bool) -> T:
        if write:
            return await self._run(lambda c: fn(c, None), retry="always")
        return await self._read(lambda c: fn(c, None))

    async def _read(self, fn: Callable[[Conn], T]) -> T:
        return await self._run(fn, read=True)

    async def _write(self, fn: Callable[[Conn], T]) -> T:
        return await self._run(fn, retry="always")

    def _now_in(self, c: Conn) -> float:
        return float(c.execute(sql.CLOCK).fetchone()[0])  # type: ignore[index]

    def _insert_in(self, c: Conn, items: Sequence[NewInstance], now: float) -> list[int]:
        ids = ops.insert_rows(c, items)
        self._notify(c)  # spec §8.5.1: idle workers everywhere claim the tick's instances
        return ids


def open_postgres_store(url: str, **options: Any) -> Any:
    """``durable.open_store("postgresql://...", **options)``: see :class:`PostgresStore`."""
    return PostgresStore.open(url, **options)
