"""The heartbeat and the reaper (spec §5.8): leases this engine holds are
renewed; leases anyone let expire return to runnable."""

from __future__ import annotations

import functools
import logging

from trio_util import periodic

from .. import telemetry
from ._ledger import Ledger, retrying
from ._store import Store

logger = logging.getLogger("trexec.durable")


class Heartbeat:
    """Renews the lease of everything the engine holds every ``interval``."""

    def __init__(self, store: Store, ledger: Ledger, *, interval: float, lease: float) -> None:
        self._store = store
        self._ledger = ledger
        self._interval = interval
        self._lease = lease

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
