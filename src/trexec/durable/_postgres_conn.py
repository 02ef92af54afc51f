"""PostgreSQL connections used from Trio (spec §8.1-§8.4).

psycopg's async API is asyncio-only, so the store drives the *sync*
``psycopg_pool.ConnectionPool`` from worker threads. Every database operation
is one function ``fn(conn) -> T`` run as one transaction in one thread call:
a transaction is never split across Trio checkpoints, so a cancellation can
never leave one half-done.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, Literal, TypeVar

import psycopg
import psycopg.conninfo
import psycopg.errors
import psycopg_pool
import trio

from .. import _validate

__all__ = ["ConnectionLost", "Database", "parse_schema"]

T = TypeVar("T")
logger = logging.getLogger("trexec.durable.postgres")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*(\S+)")

Retry = Literal["always", "unless_committing", "never"]


class ConnectionLost(psycopg.OperationalError):
    """The connection broke while ``COMMIT`` was in flight: whether the
    transaction committed is unknown, so it was not retried."""


def parse_schema(url: str, schema: str | None) -> tuple[str, str]:
    """Return ``(conninfo, schema)``: the schema named by ``schema=`` or by the URL's
    ``options=-csearch_path=x`` (first entry), else ``"public"`` (spec §8.2).

    An explicit ``schema`` wins over the URL and is written into the conninfo's
    ``search_path`` too, so that plain SQL run on a pool connection sees it.
    Raises :class:`~trexec.InvalidArgument` for a URL psycopg cannot parse or a
    schema name that is not a plain identifier.
    """
    if not isinstance(url, str):
        _validate.fail("url", url, "a postgresql:// URL (str)")
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        _validate.fail("url", url, f"a valid PostgreSQL URL ({exc})")
    options = str(params.get("options") or "")
    if schema is None:
        found = _SEARCH_PATH.search(options)
        # spec §8.2.1: the first entry, read as PostgreSQL reads it: an unquoted
        # name folds to lower case, a quoted one is kept as written.
        first = found.group(1).split(",", 1)[0] if found else "public"
        schema = first[1:-1] if len(first) > 1 and first[0] == first[-1] == '"' else first.lower()
        name = "search_path in the URL's options"
    else:
        name = "schema"
    if not isinstance(schema, str) or not _IDENTIFIER.fullmatch(schema):
        _validate.fail(name, schema, "a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, <= 63 chars)")
    options = _SEARCH_PATH.sub("", options).strip()
    # Quoted, as every statement names the schema ("CREATE SCHEMA \"x\""): a name
    # with capitals must not fold to lower case here alone (spec §8.2.1).
    params["options"] = f'{options} -csearch_path="{schema}"'.strip()
    return psycopg.conninfo.make_conninfo("", **params), schema


class _Abandoned(Exception):
    """Raised in a thread whose caller was cancelled before its transaction began
    (the result is discarded; nothing ran)."""


class _Call:
    """One thread call: remembers its connection so that Trio can interrupt the
    query (``cancel_safe``) and wait for the thread to finish."""

    __slots__ = ("_finished", "_lock", "_token", "_waiting", "committing", "conn", "state")

    def __init__(self) -> None:
        self.conn: psycopg.Connection[Any] | None = None
        self.committing = False
        self.state = "queued"  # -> "running" -> "done", or "queued" -> "abandoned"
        self._waiting = False
        self._lock = threading.Lock()
        self._finished = trio.Event()
        self._token = trio.lowlevel.current_trio_token()

    def run(
        self,
        pool: psycopg_pool.ConnectionPool,
        fn: Callable[[psycopg.Connection[Any]], T],
        pipeline: bool,
    ) -> T:
        with self._lock:
            if self.state == "abandoned":  # spec §8.3.3: cancelled before it began
                raise _Abandoned
            self.state = "running"
        try:
            with pool.connection() as conn:
                self.conn = conn
                if self._waiting:  # cancelled while waiting for a connection
                    raise _Abandoned
                # Writes use pipeline mode: BEGIN, statements whose results are
                # not read and COMMIT travel together, not one round trip each.
                # Reads do not (cancel_safe() cannot interrupt a pipeline).
                with conn.pipeline() if pipeline else nullcontext(), conn.transaction():
                    result = fn(conn)
                    # Leaving the block commits: a failure from here on is ambiguous.
                    self.committing = True
                return result
        finally:
            with self._lock:
                self.state = "done"
                if self._waiting:
                    self._token.run_sync_soon(self._finished.set)

    async def interrupt_and_join(self) -> None:
        """Cancel the running query, then wait until the thread has rolled back."""
        with self._lock:
            if self.state == "queued":
                self.state = "abandoned"
            if self.state != "running":
                return
            self._waiting = True
        conn = self.conn
        if conn is not None and not self.committing:
            try:
                await trio.to_thread.run_sync(conn.cancel_safe)
            except psycopg.Error:
                logger.debug("cancel_safe failed", exc_info=True)
        await self._finished.wait()


def _configure(conn: psycopg.Connection[Any]) -> None:
    # spec §8.1.4: psycopg prepares a statement run five times; with the default
    # plan_cache_mode the server may still re-plan a prepared claim on every
    # run (its LATERAL shape looks cheaper when planned for the actual limit),
    # ~0.3 ms a call. Every statement trexec runs has one good plan whatever
    # its parameters (index scans by key, ordered per-machine scans): keep it.
    conn.execute("SET plan_cache_mode = force_generic_plan")


class Database:
    """A connection pool for one PostgreSQL schema, used from Trio (spec §8.1).

    ``await db.run(fn)`` runs ``fn(conn)`` inside one transaction on a pool
    connection, in a worker thread; at most ``pool_size`` threads run at once
    (a :class:`trio.CapacityLimiter` sized to the pool).
    """

    def __init__(
        self,
        conninfo: str,
        *,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        reconnect_timeout: float = 60.0,
        name: str = "trexec",
    ) -> None:
        self.conninfo = conninfo
        self.reconnect_timeout = reconnect_timeout
        self.limiter = trio.CapacityLimiter(pool_size)
        self.pool: psycopg_pool.ConnectionPool = psycopg_pool.ConnectionPool(
            conninfo,
            # Every connection is opened up front: a backend fork costs milliseconds,
            # too much to pay in the middle of a heartbeat.
            min_size=pool_size,
            max_size=pool_size,
            open=False,
            name=name,
            timeout=connect_timeout,
            # A connection that died while idle (server restart) fails its first
            # statement, before anything was written: run() retries on another.
            kwargs={"autocommit": True},
            configure=_configure,
            reconnect_timeout=reconnect_timeout,
        )

    async def open(self) -> None:
        """Open the pool, waiting until one connection works (raises
        ``psycopg.OperationalError`` if none does within the connect timeout)."""
        await trio.to_thread.run_sync(self._open_sync)

    def _open_sync(self) -> None:
        # spec §8.4.4: one plain connection first. A server that refuses, a host
        # that does not resolve, a database or role that does not exist fail here
        # at once with the server's reason; the pool alone would retry for its
        # whole timeout and then say only "pool initialization incomplete".
        timeout = max(1, math.ceil(self.pool.timeout))
        psycopg.connect(self.conninfo, connect_timeout=timeout).close()
        try:
            self.pool.open(wait=True, timeout=self.pool.timeout)
        except BaseException:
            self.pool.close()
            raise

    async def close(self) -> None:
        """Close every connection and stop the pool's threads (shielded)."""
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self.pool.close)

    async def run(
        self,
        fn: Callable[[psycopg.Connection[Any]], T],
        *,
        retry: Retry = "unless_committing",
        interruptible: bool = False,
        pipeline: bool = True,
    ) -> T:
        """Run ``fn(conn)`` as one transaction and return its result.

        Retries (spec §8.4): a transaction that failed because the connection
        broke, or on a serialization failure or deadlock, rolled back and is run
        again with exponential backoff and jitter for up to ``reconnect_timeout``
        seconds, then the last error propagates. With ``retry="unless_committing"``
        a connection lost *during* ``COMMIT`` raises :class:`ConnectionLost`
        instead (the outcome is unknown; use it for non-idempotent writes);
        ``"always"`` retries that too (idempotent or fenced writes, reads).

        Cancellation (spec §8.3): a write (``interruptible=False``) runs to its
        end once started, like a shielded block, then the cancellation is
        delivered. An ``interruptible`` call cancels its query on the server
        with ``cancel_safe()`` and waits for the rollback before raising
        ``trio.Cancelled``: no transaction is ever abandoned half-done.

        A write runs in pipeline mode unless ``pipeline=False`` (spec §8.1.2):
        for a body that reads every result at once, the pipeline saves only
        BEGIN's round trip and costs more client CPU than that (psycopg polls
        the socket while it waits in pipeline mode).
        """
        delay = 0.05
        deadline = trio.current_time() + self.reconnect_timeout
        logged = False
        while True:
            call = _Call()
            try:
                try:
                    return await trio.to_thread.run_sync(
                        call.run,
                        self.pool,
                        fn,
                        pipeline and not interruptible,
                        limiter=self.limiter,
                        abandon_on_cancel=interruptible,
                    )
                except trio.Cancelled:
                    with trio.CancelScope(shield=True):  # spec §8.3.2
                        await call.interrupt_and_join()
                    raise
            except (psycopg.OperationalError, psycopg.errors.SerializationFailure) as exc:
                if isinstance(
                    exc,
                    psycopg.errors.QueryCanceled
                    | psycopg_pool.TooManyRequests
                    | psycopg_pool.PoolClosed,
                ):
                    raise
                if call.committing and retry != "always":  # spec §8.4.2
                    raise ConnectionLost(f"connection lost during COMMIT: {exc}") from exc
                if retry == "never" or trio.current_time() >= deadline:
                    raise
                if not logged:
                    logger.warning("PostgreSQL unavailable (%s); retrying", exc)
                    logged = True
            await trio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://?"
    if "password" not in params:
        return url
    params["password"] = "***"
    return psycopg.conninfo.make_conninfo("", **params)
