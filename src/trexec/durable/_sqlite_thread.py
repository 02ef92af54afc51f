"""One dedicated thread per SQLite store, fed by a queue (spec §5.11).

Every database call runs on the store's own thread, so the Trio loop never
blocks on disk. A call costs one hop there and one back
(``TrioToken.run_sync_soon`` + ``reschedule``: no task, no channel), which is why
the store batches work per call.

Cancellation (spec §5.11): a call not yet started is dropped; a started write
runs to its commit or rollback and the cancellation is delivered at the
caller's next checkpoint; a started read is interrupted
(``Connection.interrupt``) and raises ``trio.Cancelled``.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import outcome
import trio

T = TypeVar("T")

_QUEUED, _RUNNING, _ABANDONED = 0, 1, 2


class _Request:
    __slots__ = ("fn", "read", "reply", "state")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], read: bool, reply: Any) -> None:
        self.fn = fn
        self.read = read
        self.reply = reply
        self.state = _QUEUED


class SqliteThread:
    """Owns one ``sqlite3.Connection`` and the thread that uses it."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str) -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._current: _Request | None = None
        self._connection: sqlite3.Connection | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._token = trio.lowlevel.current_trio_token()
        self._closed = False
        # Calls handed over (counted on the Trio thread) and finished or dropped
        # (counted on the store's thread): each counter has one writer.
        self._sent = 0
        self._finished = 0

    @property
    def idle(self) -> bool:
        """True when no call is queued or running: the connection is free."""
        return self._sent == self._finished

    @property
    def connection(self) -> sqlite3.Connection:
        """The thread's connection (opened by :meth:`start`)."""
        if self._connection is None:
            raise RuntimeError("store is closed")
        return self._connection

    # --- Trio side ------------------------------------------------------------

    async def start(self) -> None:
        self._thread.start()
        await trio.to_thread.run_sync(self._ready.wait)
        if self._startup_error is not None:
            raise self._startup_error

    async def run(
        self, fn: Callable[[sqlite3.Connection], T], *, read: bool = False, short: bool = False
    ) -> T:
        """Run ``fn(connection)`` on the store's thread and return its result."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise RuntimeError("store is closed")
        task = trio.lowlevel.current_task()
        token = self._token

        def reply(result: outcome.Outcome[T]) -> None:
            token.run_sync_soon(trio.lowlevel.reschedule, task, outcome.Value(result))

        request = _Request(fn, read, reply)
        self._sent += 1
        self._queue.put(request)

        def abort(_: Any) -> trio.lowlevel.Abort:
            with self._lock:
                if request.state == _QUEUED:
                    request.state = _ABANDONED
                    return trio.lowlevel.Abort.SUCCEEDED
                if request.read and self._current is request and self._connection is not None:
                    self._connection.interrupt()
            # The call finishes (or fails as interrupted) on its own; the
            # cancellation is delivered at the next checkpoint.
            return trio.lowlevel.Abort.FAILED

        result: outcome.Outcome[T] = await trio.lowlevel.wait_task_rescheduled(abort)
        error = result.error if isinstance(result, outcome.Error) else None
        if (
            request.read
            and isinstance(error, sqlite3.OperationalError)
            and "interrupt" in str(error)
        ):
            await trio.lowlevel.checkpoint()  # raises the pending Cancelled
        return result.unwrap()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._thread.join)

    # --- store thread ---------------------------------------------------------

    def _main(self) -> None:
        try:
            self._connection = self._connect()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        connection = self._connection
        try:
            while True:
                request = self._queue.get()
                if request is None:
                    return
                with self._lock:
                    if request.state == _ABANDONED:
                        self._finished += 1
                        continue
                    request.state = _RUNNING
                    self._current = request
                result = outcome.capture(request.fn, connection)
                with self._lock:
                    self._current = None
                self._finished += 1
                request.reply(result)
        finally:
            # Drain what was queued after close so no caller waits forever.
            while True:
                try:
                    leftover = self._queue.get_nowait()
                except queue.Empty:
                    break
                if leftover is not None and leftover.state == _QUEUED:
                    leftover.reply(outcome.Error(RuntimeError("store is closed")))
            connection.close()
