"""The SQLite store's calls run inline on the Trio thread (spec §5.11.6, §10.1).

Same interface as :class:`~trexec.durable._sqlite_thread.SqliteThread`. Used by
the test store (``trexec.testing``) on a private in-memory database: no thread
means no real time passes while the loop "waits" for the database, so
``trio.testing.MockClock(autojump_threshold=0)`` can jump over every delay, and
no thread timing can reorder anything (spec §10.3). Used on a file with
``open_store("sqlite:///path?inline=true")``: no thread hop per call, at the
price of the loop pausing while each transaction runs (spec §5.11.6).

A file another process writes can be locked: SQLite's own busy wait would
block the loop, so the connection waits for nothing and a call that finds the
file locked is retried after an (awaited, cancellable) pause, up to
``busy_timeout`` seconds. Every call is one transaction that takes its write
lock first (``BEGIN IMMEDIATE``) or only reads, so a locked call has done
nothing and runs again from its start.

Cancellation as on the thread (spec §5.11): a call not yet started is dropped
(it starts only after a checkpoint that raises a pending cancellation); a
started call always runs to its commit or rollback, since it runs to completion
without yielding.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")


class InlineSqlite:
    """Owns one ``sqlite3.Connection`` used from the Trio thread only."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], name: str, busy_timeout: float = 30.0
    ) -> None:
        self._connect = connect
        self.name = name
        self._busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def start(self) -> None:
        await trio.lowlevel.checkpoint()
        self._connection = self._connect()
        # The busy wait happens in run(), awaited: never inside SQLite, on the loop.
        self._connection.execute("PRAGMA busy_timeout = 0")

    async def run(
        self, fn: Callable[[sqlite3.Connection], T], *, read: bool = False, short: bool = False
    ) -> T:
        """Run ``fn(connection)`` now, after one checkpoint, and return its result;
        while another connection holds the file's lock, again after a pause."""
        # A full checkpoint: every store call is a schedule point, as the thread hop is.
        await trio.lowlevel.checkpoint()
        deadline: float | None = None
        pause = 0.001
        while True:
            if self._closed or self._connection is None:
                raise RuntimeError("store is closed")
            try:
                return fn(self._connection)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
                now = trio.current_time()
                deadline = now + self._busy_timeout if deadline is None else deadline
                if now >= deadline:
                    raise
            await trio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._connection is not None:
            self._connection.close()
        await trio.lowlevel.cancel_shielded_checkpoint()
