"""LISTEN/NOTIFY wake-ups for idle workers (spec §8.5).

One dedicated connection per store, on its own thread, blocks in
``conn.notifies(timeout=...)`` and forwards every notification to Trio. The
payload is never data: writers ``NOTIFY`` the store's channel after an insert,
a signal, a child finishing or a release, and an idle worker simply claims again.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import trio

__all__ = ["Listener"]

logger = logging.getLogger("trexec.durable.postgres")


class Listener:
    """Calls ``on_wake()`` in Trio whenever ``channel`` is notified, and also after
    every reconnection (notifications sent while disconnected are lost).

    ``await start()`` returns once ``LISTEN`` is in effect (or raises
    ``psycopg.OperationalError``); later connection losses are logged and
    retried with backoff on the thread. ``await stop()`` ends the thread at once
    (it notifies a private channel only this listener listens on) and joins it.
    """

    def __init__(self, conninfo: str, channel: str, on_wake: Callable[[], object]) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.on_wake = on_wake
        #: Reconnections after the first connection (for tests and logs).
        self.reconnects = 0
        self._stop_channel = f"{channel}_stop_{uuid.uuid4().hex[:12]}"[-63:]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None

    async def start(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        conn = await trio.to_thread.run_sync(self._connect)
        self._thread = threading.Thread(
            target=self._main, args=(conn,), name=f"trexec-listen:{self.channel}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop and join the thread (shielded: it returns within a second at worst)."""
        self._stopping.set()
        thread = self._thread
        if thread is None:
            return
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._wake_thread)
            await trio.to_thread.run_sync(thread.join)

    # --- the thread ---------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        # Keepalives: a silently dead peer (network cut) is noticed in ~10 s.
        conn = psycopg.connect(
            self.conninfo,
            autocommit=True,
            connect_timeout=10,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
        try:
            for name in (self.channel, self._stop_channel):
                conn.execute(f'LISTEN "{name}"')
        except BaseException:
            conn.close()
            raise
        return conn

    def _wake_thread(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                conn.execute("SELECT pg_notify(%s, '')", (self._stop_channel,))
        except psycopg.Error:
            logger.debug("could not notify the LISTEN thread; it stops within a second")

    def _forward(self) -> None:
        assert self._token is not None
        try:
            self._token.run_sync_soon(self.on_wake)
        except trio.RunFinishedError:  # pragma: no cover - stop() joins first
            self._stopping.set()

    def _main(self, conn: psycopg.Connection[Any] | None) -> None:
        delay = 0.1
        while not self._stopping.is_set():
            if conn is None:
                try:
                    conn = self._connect()
                except psycopg.OperationalError as exc:
                    logger.warning("LISTEN reconnection failed (%s); retrying", exc)
                    self._stopping.wait(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.1
                self.reconnects += 1
                logger.info("LISTEN connection re-established")
                self._forward()  # whatever was notified while disconnected is lost: look now
            try:
                self._listen(conn)
            except psycopg.OperationalError as exc:
                if not self._stopping.is_set():
                    logger.warning("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                conn.close()
                conn = None

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stopping.is_set():
            woke = False
            # stop_after=1: forward at once (a packet's worth arrives together). The
            # timeout bounds how long a lost stop notification goes unnoticed.
            for notify in conn.notifies(timeout=1.0, stop_after=1):
                if notify.channel == self._stop_channel:
                    return
                woke = True
            if woke:
                self._forward()
            elif not self._stopping.is_set():
                conn.execute("SELECT 1")  # idle: a dead connection raises here
