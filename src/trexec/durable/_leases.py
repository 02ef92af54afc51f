"""The heartbeat and the reaper (spec §5.8): leases this engine holds are
renewed; leases anyone let expire return to runnable."""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Sequence

from trio_util import periodic

from .. import _instrument, telemetry
from ._exceptions import StoreError
from ._ledger import Ledger, retrying
from ._store import Store

logger = logging.getLogger("trexec.durable")


class Heartbeat:
    """Renews the lease of everything the engine holds every ``interval``, and
    the engine's announcement (spec §5.16) with it."""

    def __init__(
        self, store: Store, ledger: Ledger, *, interval: float, lease: float,
        engine: str = "", machines: Sequence[tuple[str, int]] = (),
    ) -> None:  # fmt: skip
        self._store = store
        self._ledger = ledger
        self._interval = interval
        self._lease = lease
        self.engine = engine
        self._machines = [f"{name}@{version}" for name, version in machines]
        self.announced = False

    async def _announce(self) -> None:
        # spec §5.16: valid for three heartbeats, so one slow renewal is not a death.
        holding = sorted(lease.id for lease in self._ledger.held)
        await self._store.announce(
            self.engine, socket.gethostname(), os.getpid(), self._machines, holding,
            3 * self._interval,
        )  # fmt: skip
        self.announced = True
        hooks = _instrument.hooks
        if hooks is not None:  # spec §14.3: the backlog gauge, counted here
            hooks.backlog(self.engine, await self._store.count_runnable())

    async def withdraw(self) -> None:
        """Remove the announcement (clean shutdown); a failure is only logged."""
        hooks = _instrument.hooks
        if hooks is not None:
            hooks.engine_stopped(self.engine)
        if not self.announced:
            return
        try:
            await self._store.withdraw(self.engine)
        except StoreError as exc:  # it expires by itself (spec §5.16)
            logger.warning("could not withdraw engine %s's announcement: %s", self.engine, exc)

    async def run(self) -> None:
        # Start to start (trio-util's periodic): a slow renewal does not push the
        # next one later, so leases are renewed every interval (spec §5.8).
        held = self._ledger.held
        async for _ in periodic(self._interval):
            if held:
                renew = functools.partial(self._store.heartbeat, list(held), self._lease)
                lost = await retrying("heartbeat", renew)
                if lost:
                    logger.debug("heartbeat: lease lost for %s", sorted(lost))
            try:
                await self._announce()
            except StoreError as exc:
                # Never retried here: lease renewals must not wait behind it; the
                # next heartbeat announces again (spec §5.16.3).
                logger.debug("heartbeat: announcing engine %s failed: %s", self.engine, exc)


class Reaper:
    """Returns instances whose lease expired (any engine's) to runnable every
    ``interval``, and wakes the picker when it did."""

    def __init__(self, store: Store, ledger: Ledger, *, interval: float) -> None:
        self._store = store
        self._ledger = ledger
        self._interval = interval

    async def run(self) -> None:
        # The first pass runs at once: an engine starting after a crash returns
        # the crashed worker's expired leases without waiting an interval.
        async for _ in periodic(self._interval):
            reclaimed = await retrying("reap_expired", self._store.reap_expired)
            if reclaimed:
                # spec §5.8: expired leases return to runnable with attempt + 1.
                logger.warning("reaper: reclaimed %d expired instance(s)", len(reclaimed))
                telemetry.execute(
                    ("trexec", "durable", "reaper", "reclaimed"),
                    {"count": len(reclaimed)},
                    {"ids": [r.id for r in reclaimed]},
                )
                self._ledger.wake.set()
