"""The embedded SQLite store (spec §5.11): ``open_store("sqlite:///path")``.

stdlib ``sqlite3`` with one dedicated thread per store (``_sqlite_thread.py``;
by default the engine's short writes run on the Trio thread while uncontended,
``_sqlite_auto.py``, spec §5.11.7), WAL journal, ``BEGIN IMMEDIATE`` for every
write (a deferred transaction that upgrades to a write would get SQLITE_BUSY
without waiting), ``busy_timeout`` so several processes can share one file.
``synchronous=NORMAL`` by default: in WAL mode a commit survives a process
crash, and an OS crash or power loss may lose the last commits (never corrupt
the file); pass ``synchronous="FULL"`` to make each commit survive power loss
too, at several times the cost per commit.
The SQL itself lives in ``_sqlite_sql.py``, the write operations that run it in
``_sqlite_ops.py``; this module opens transactions and says which are short.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any, ClassVar, TypeVar

from .. import _validate
from . import _sqlite_ops as ops, _sqlite_sql as sql, _store_rules as rules
from ._exceptions import StoreError, StoreRejected
from ._records import (
    Claim,
    Commit,
    CommitStatus,
    Delivery,
    InstanceRecord,
    Job,
    Lease,
    NewInstance,
    RateLimitPolicy,
    Reclaimed,
    Release,
    SignalRecord,
)
from ._sql_observe import ObserveMixin, SqliteObserveSql
from ._sql_store import SqlStore
from ._sqlite_auto import AutoSqlite
from ._sqlite_inline import InlineSqlite
from ._sqlite_thread import SqliteThread
from ._store import PRUNE_BATCH, prune_selection

T = TypeVar("T")
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Where the store's calls run (spec §5.11.7).
CALLS = ("auto", "thread", "inline")
#: An insert of more rows than this is not a short write (spec §5.11.7).
SHORT_INSERT = 256

#: This store's schema version: its latest migration (spec §5.2).
SCHEMA_VERSION = max(sql.MIGRATIONS)


class SqliteStore(ObserveMixin, SqlStore):
    """The embedded store. Open it with ``durable.open_store("sqlite:///path")``.

    ``clock`` (default ``time.time``) is the store's only source of "now"; tests
    may inject one. See the module docstring for ``synchronous``.

    ``calls`` says where the store's calls run (spec §5.11.7): ``"auto"`` (the
    default) runs the engine's short writes on the Trio thread while nothing
    else uses the connection and everything else on the store's thread
    (``_sqlite_auto.py``); ``"thread"`` runs every call on the store's thread
    (``_sqlite_thread.py``: the loop never pauses for the database);
    ``"inline"`` runs every call on the Trio thread (``_sqlite_inline.py``:
    spec §5.11.6; the test store, §10.1). ``inline=True`` is ``calls="inline"``
    and ``inline=False`` is ``calls="thread"``. With ``synchronous`` ``FULL`` or
    ``EXTRA`` (a disk sync per commit) ``"auto"`` runs every call on the thread.
    """

    _sql: ClassVar[ModuleType] = sql
    _mark: ClassVar[str] = "?"
    # spec §12.3: a key is the narrowest filter; SQLite (no statistics) would
    # pass over its index for the status index.
    _key_hint: ClassVar[str] = " INDEXED BY instances_key"

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "NORMAL",
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 30.0,
        inline: bool | None = None,
        calls: str = "auto",
    ) -> None:
        if inline is not None:
            calls = "inline" if inline else "thread"
        if calls not in CALLS:
            _validate.fail("calls", calls, '"auto", "thread" or "inline"')
        if calls == "auto" and synchronous not in ("OFF", "NORMAL"):
            calls = "thread"  # a sync per commit must not pause the loop
        self.url = f"sqlite:///{path}"
        self.path = path
        self._clock = clock
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self.calls = calls
        name = f"trexec-sqlite:{path}"
        self._thread: SqliteThread | InlineSqlite | AutoSqlite
        if calls == "inline":
            self._thread = InlineSqlite(self._connect, name, busy_timeout)
        elif calls == "auto":
            self._thread = AutoSqlite(self._connect, name, busy_timeout)
        else:
            self._thread = SqliteThread(self._connect, name=name)
        self._closed = False

    @property
    def inline(self) -> bool:
        """True when every call runs on the Trio thread (spec §5.11.6)."""
        return self.calls == "inline"

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
        )
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        connection.execute("PRAGMA foreign_keys = OFF")
        return connection

    async def _open(self) -> None:
        try:
            await self._thread.start()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.url}: {exc}") from exc

    async def _run(
        self, fn: Callable[[sqlite3.Connection], T], *, read: bool = False, short: bool = False
    ) -> T:
        # The one boundary where driver errors become durable errors. ``short``:
        # a write on the engine's hot path, well under a millisecond (spec §5.11.7).
        if self._closed:
            raise StoreError(f"{self.url}: the store is closed")
        try:
            return await self._thread.run(fn, read=read, short=short)
        except (sqlite3.IntegrityError, sqlite3.DataError) as exc:  # spec §5.5.9
            raise StoreRejected(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        except RuntimeError as exc:
            if not self._closed:
                raise
            # Closed while this call waited for its turn (spec §5.2: StoreError).
            raise StoreError(f"{self.url}: the store is closed") from exc

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._thread.close()

    # --- schema -----------------------------------------------------------------

    async def migrate(self) -> int:
        def op(c: sqlite3.Connection) -> int:
            with ops.write(c):
                current = 0
                if c.execute(sql.TABLE_EXISTS, ("trexec_meta",)).fetchone():
                    row = c.execute(sql.SCHEMA_VERSION_GET).fetchone()
                    current = int(row[0]) if row else 0
                return rules.migrate(c, current, sql.MIGRATIONS, sql.SCHEMA_VERSION_SET, self.url)

        return await self._run(op)

    # --- insert (spec §5.3) --------------------------------------------------------

    async def insert(self, items: Sequence[NewInstance]) -> list[int]:
        def op(c: sqlite3.Connection) -> list[int]:
            with ops.write(c):
                return ops.insert_rows(c, items, self._clock())

        return await self._run(op, short=len(items) <= SHORT_INSERT)

    # --- claim (spec §5.5, §5.9) ---------------------------------------------------

    async def claim(
        self,
        machines: Sequence[tuple[str, int]],
        limit: int,
        lease: float,
        rate_limits: Mapping[str, RateLimitPolicy],
    ) -> Claim:
        if not machines or limit <= 0:
            return Claim(())

        def op(c: sqlite3.Connection) -> Claim:
            with ops.write(c):
                return self._claim_in(c, self._clock(), machines, limit, lease, rate_limits)

        return await self._run(op, short=True)

    def _claim_in(
        self,
        c: sqlite3.Connection,
        now: float,
        machines: Sequence[tuple[str, int]],
        limit: int,
        lease: float,
        rate_limits: Mapping[str, RateLimitPolicy],
    ) -> Claim:
        """The claim (spec §5.5), inside the caller's write transaction."""
        rows = ops.candidates(c, now, machines, limit)
        if not rows:
            return Claim(())
        ids, throttled = ops.take_tokens(c, rows, rate_limits, now)
        claimed = []
        if ids:
            claim_rows = sql.CLAIM_ROWS.format(ops.placeholders(len(ids)))
            by_id = {r[0]: r for r in c.execute(claim_rows, (now + lease, now, *ids))}
            claimed = [by_id[id_] for id_ in ids]  # in claim order (spec §11.1)
        return Claim(self._jobs(c, claimed), tuple(throttled))

    def _jobs(self, c: sqlite3.Connection, claimed: Sequence[Any]) -> tuple[Job, ...]:
        """The jobs of claimed rows (``CLAIM_ROWS`` columns): each with its
        inbox and, if it has any, its children."""
        if not claimed:
            return ()
        ids = [row[0] for row in claimed]
        inbox: dict[int, list[SignalRecord]] = {}
        if ops.any_signal(c):
            query = sql.CLAIM_INBOX.format(ops.placeholders(len(ids)))
            for iid, *signal in c.execute(query, ids):
                inbox.setdefault(iid, []).append(rules.signal(signal))
        jobs = []
        make_job, make_lease = Job._make, Lease._make
        for row in claimed:
            id_, token, machine, version, step, attempt, state, key, parent_id, awaits = row[:10]
            children: tuple[InstanceRecord, ...] = ()
            if row[10]:  # child_count
                children = tuple(ops.record(r) for r in c.execute(sql.CHILDREN, (id_,)))
            waits = () if awaits == "[]" else tuple(json.loads(awaits))
            signals = tuple(inbox[id_]) if id_ in inbox else ()
            # As _store_rules.job, from tuples: this runs for every claimed row.
            jobs.append(
                make_job((id_, token, machine, version, step, attempt, state, key, parent_id,
                          waits, signals, children, row[11], make_lease((id_, token))))
            )  # fmt: skip
        return tuple(jobs)

    async def next_due(self, machines: Sequence[tuple[str, int]]) -> float | None:
        if not machines:
            return None
        values, params = ops.machine_filter(machines)
        query = sql.NEXT_DUE.format(values)

        def op(c: sqlite3.Connection) -> float | None:
            (run_at,) = c.execute(query, params).fetchone()
            return None if run_at is None else max(0.0, run_at - self._clock())

        return await self._run(op, read=True)

    # --- leases (spec §5.8) --------------------------------------------------------

    async def heartbeat(self, leases: Sequence[Lease], lease: float) -> set[int]:
        if not leases:
            return set()

        def op(c: sqlite3.Connection) -> set[int]:
            lost = set()
            with ops.write(c):
                expires = self._clock() + lease
                for held in leases:
                    if c.execute(sql.HEARTBEAT, (expires, held.id, held.token)).rowcount == 0:
                        lost.add(held.id)
            return lost

        return await self._run(op, short=True)

    async def save_state(self, lease: Lease, state: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            with ops.write(c):
                params = (state, self._clock(), lease.id, lease.token)
                return c.execute(sql.SAVE_STATE, params).rowcount == 1

        return await self._run(op, short=True)

    async def release(self, releases: Sequence[Release]) -> None:
        if not releases:
            return

        def op(c: sqlite3.Connection) -> None:
            with ops.write(c):
                now = self._clock()
                for r in releases:
                    c.execute(sql.RELEASE, (now, int(r.attempted), now, r.lease.id, r.lease.token))

        await self._run(op, short=True)

    async def reap_expired(self) -> list[Reclaimed]:
        def op(c: sqlite3.Connection) -> list[Reclaimed]:
            with ops.write(c):
                now = self._clock()
                rows = c.execute(sql.REAP_EXPIRED, (now, now, now)).fetchall()
            return [Reclaimed(*row) for row in rows]

        return await self._run(op, short=True)

    # --- complete (spec §5.4) -------------------------------------------------------

    async def complete(self, commits: Sequence[Commit]) -> list[CommitStatus]:
        if not commits:
            return []

        def op(c: sqlite3.Connection) -> list[CommitStatus]:
            with ops.write(c):
                now = self._clock()
                return ops.complete_many(c, commits, now)

        return await self._run(op, short=True)

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
        """Both in ONE transaction and one hop (spec §5.5.3); ``keep`` as
        :meth:`Store.complete_and_claim` (spec §5.5.13)."""
        if not machines or limit <= 0:
            return await self.complete(commits), Claim(())

        def op(c: sqlite3.Connection) -> tuple[list[CommitStatus], Claim]:
            with ops.write(c):
                now = self._clock()
                statuses, kept = ops.complete_keeping(c, commits, keep, limit, now, now + lease)
                claim = Claim(())
                if len(kept) < limit:
                    claim = self._claim_in(c, now, machines, limit - len(kept), lease, rate_limits)
                if kept:
                    claim = Claim(self._jobs(c, kept) + claim.jobs, claim.throttled)
                return statuses, claim

        return await self._run(op, short=True)

    # --- signals (spec §5.6) ---------------------------------------------------------

    async def deliver_signal(
        self, target: int | str, name: str, payload: str, dedup_key: str | None
    ) -> Delivery:
        def op(c: sqlite3.Connection) -> Delivery:
            with ops.write(c):
                now = self._clock()
                return ops.deliver(c, ops.target(c, target), name, payload, dedup_key, now)

        return await self._run(op, short=True)

    async def cancel(self, target: int | str) -> tuple[int, str]:
        def op(c: sqlite3.Connection) -> tuple[int, str]:
            with ops.write(c):
                now = self._clock()
                id_, status, _ = ops.target(c, target)
                parent_id = c.execute(sql.FENCE, (id_,)).fetchone()[2]
                c.execute(sql.CANCEL, (now, id_))
                ops.finish(c, id_, parent_id, now)
                return id_, status

        return await self._run(op, short=True)

    # --- prune (spec §5.15) --------------------------------------------------------------

    async def _prune_after(
        self, older_than: float, statuses: Sequence[str], after: int, room: int | None
    ) -> tuple[int, int | None]:
        # One write transaction (one hop) per batch: other writers get the file between.
        return await self._run(self._prune_batch(older_than, statuses, after, room))

    def _prune_batch(
        self, older_than: float, statuses: Sequence[str], after: int, room: int | None
    ) -> Callable[[sqlite3.Connection], tuple[int, int | None]]:
        """One batch: up to PRUNE_BATCH roots with ``id > after``; returns (deleted,
        the cursor for the next batch, None once every root was examined)."""
        limit = PRUNE_BATCH if room is None else min(PRUNE_BATCH, room)
        status_list = json.dumps(list(statuses))

        def op(c: sqlite3.Connection) -> tuple[int, int | None]:
            with ops.write(c):
                params = (after, self._clock() - older_than, status_list, limit)
                roots = [row[0] for row in c.execute(sql.PRUNE_ROOTS, params)]
                if not roots:
                    return 0, None
                members = c.execute(sql.PRUNE_TREES, (json.dumps(roots),)).fetchall()
                ids = json.dumps(prune_selection(roots, members, room))
                c.execute(sql.PRUNE_SIGNALS, (ids,))
                c.execute(sql.PRUNE_DEDUP, (ids,))
                count = c.execute(sql.PRUNE_INSTANCES, (ids,)).rowcount
            return count, roots[-1] if len(roots) == limit else None

        return op

    # --- reads -------------------------------------------------------------------------

    def _record(self, row: Sequence[Any]) -> InstanceRecord:
        return ops.record(row)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(fn, read=True)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def op(c: sqlite3.Connection) -> T:
            with ops.write(c):
                return fn(c)

        return await self._run(op)

    def _now_in(self, c: sqlite3.Connection) -> float:
        return self._clock()

    def _insert_in(
        self, c: sqlite3.Connection, items: Sequence[NewInstance], now: float
    ) -> list[int]:
        return ops.insert_rows(c, items, now)

    _observe_sql = SqliteObserveSql

    async def _observe(self, fn: Callable[[Any, float | None], T], *, write: bool) -> T:
        def op(c: sqlite3.Connection) -> T:
            now = self._clock()
            if not write:
                return fn(c, now)
            with ops.write(c):
                return fn(c, now)

        return await self._run(op, read=not write)


@asynccontextmanager
async def open_sqlite_store(
    path: str,
    *,
    synchronous: str = "NORMAL",
    clock: Callable[[], float] = time.time,
    inline: bool | None = None,
    calls: str = "auto",
) -> Any:
    """Open the store at ``path`` (``:memory:`` is not supported: use a file)."""
    store = SqliteStore(
        path, synchronous=synchronous.upper(), clock=clock, inline=inline, calls=calls
    )
    await store._open()
    try:
        yield store
    finally:
        await store.close()
