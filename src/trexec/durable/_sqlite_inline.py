"""The SQLite store's calls run inline on the Trio thread (spec §10.1).

Same interface as :class:`~trexec.durable._sqlite_thread.SqliteThread`; used by
the test store (``trexec.testing``) on a private in-memory database. No thread
means no real time passes while the loop "waits" for the database, so
``trio.testing.MockClock(autojump_threshold=0)`` can jump over every delay, and
no thread timing can reorder anything (spec §10.3).

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

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str) -> None:
        self._connect = connect
        self.name = name
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def start(self) -> None:
        await trio.lowlevel.checkpoint()
        self._connection = self._connect()

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, read: bool = False) -> T:
        """Run ``fn(connection)`` now, after one checkpoint, and return its result."""
        # A full checkpoint: every store call is a schedule point, as the thread hop is.
        await trio.lowlevel.checkpoint()
        if self._closed or self._connection is None:
            raise RuntimeError("store is closed")
        return fn(self._connection)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._connection is not None:
            self._connection.close()
        await trio.lowlevel.cancel_shielded_checkpoint()
