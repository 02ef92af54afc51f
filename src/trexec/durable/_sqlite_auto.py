"""The SQLite store's default executor: short writes inline, the rest and the
checkpoints on its thread (spec §5.11.7).

Same interface as :class:`~trexec.durable._sqlite_thread.SqliteThread`, which it
wraps. A write the store marks as short (a claim, a batch of commits, a
heartbeat: every call on the engine's hot path) runs on the Trio thread when
the store's thread is idle, so it costs no hop there and back; the loop pauses
while it runs (well under a millisecond for a batch of 64). Everything else goes
to the store's thread as in the thread executor (spec §5.11.1):

- reads (they can be long, and a started read is interrupted on cancellation);
- writes not marked short (migrations, pruning, the dashboard's writes);
- every call while the thread has one queued or running (calls keep their order,
  and the connection is used by one thread at a time);
- a write that found the file locked by another process: inline, the
  connection waits for nothing (``busy_timeout`` 0), so SQLite returns
  ``SQLITE_BUSY`` at once, before the transaction wrote anything
  (``BEGIN IMMEDIATE``); the call then runs again on the thread, where SQLite's
  own busy wait (``busy_timeout``) blocks that thread, not the loop.

A commit inline must not run SQLite's automatic checkpoint (it copies the WAL
into the database and syncs the file: milliseconds, on the loop), so the
connection's ``wal_autocheckpoint`` is off and every ``CHECKPOINT_EVERY``-th
short write goes to the thread, which checkpoints after it, as every write on
the thread does. (A checkpoint on another connection, concurrent with the
writes, never finishes the WAL, so the WAL is never restarted and grows
without bound: measured.)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import TypeVar

import trio

from ._sqlite_thread import SqliteThread

T = TypeVar("T")

#: Inline writes between two checkpoints (spec §5.11.7).
CHECKPOINT_EVERY = 100


class AutoSqlite:
    """One connection, used inline or on the store's thread (module docstring)."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], name: str, busy_timeout: float = 30.0
    ) -> None:
        self._connect = connect
        self.name = name
        self._busy_ms = int(busy_timeout * 1000)
        self._thread = SqliteThread(self._connect_main, name=name)
        self._closed = False
        #: Inline writes since the last checkpoint.
        self._unchecked = 0
        #: Checkpoints run so far (for tests).
        self.checkpoints = 0
        #: True while the connection may wait for a lock (``busy_timeout`` > 0).
        self._waits = False

    def _connect_main(self) -> sqlite3.Connection:
        connection = self._connect()
        connection.execute("PRAGMA busy_timeout = 0")
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        return connection

    async def start(self) -> None:
        await self._thread.start()

    async def run(
        self, fn: Callable[[sqlite3.Connection], T], *, read: bool = False, short: bool = False
    ) -> T:
        """Run ``fn(connection)`` and return its result: inline if it is a short
        write and the thread is idle, else on the thread (module docstring)."""
        if read or not short:
            return await self._thread.run(self._waiting(fn, write=not read), read=read)
        # A full checkpoint first: every store call is a schedule point.
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise RuntimeError("store is closed")
        thread = self._thread
        if thread.idle and self._unchecked < CHECKPOINT_EVERY and not self._waits:
            try:
                result = fn(thread.connection)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
                # Locked by another connection: nothing was written (BEGIN
                # IMMEDIATE failed, or the transaction rolled back); wait on the thread.
                if thread.connection.in_transaction:
                    thread.connection.execute("ROLLBACK")
            else:
                self._unchecked += 1
                return result
        return await thread.run(self._waiting(fn, write=True))

    def _waiting(
        self, fn: Callable[[sqlite3.Connection], T], *, write: bool
    ) -> Callable[[sqlite3.Connection], T]:
        # On the thread SQLite may wait for a lock; inline it must not. A write
        # there checkpoints after its commit, as SQLite's automatic checkpoint
        # would: nothing else writes on this connection meanwhile, so the
        # checkpoint can finish and the next write restarts the WAL.
        busy_ms = self._busy_ms
        if write:
            self._unchecked = 0

        def op(c: sqlite3.Connection) -> T:
            # Set before and cleared only once the reset worked (a read's
            # interruption may hit it): inline calls wait for a clean reset.
            self._waits = True
            c.execute(f"PRAGMA busy_timeout = {busy_ms}")
            try:
                return fn(c)
            finally:
                if write:
                    with contextlib.suppress(sqlite3.Error):
                        c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self.checkpoints += 1
                c.execute("PRAGMA busy_timeout = 0")
                self._waits = False

        return op

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._thread.close()
