"""An example system with a planted bug, for tests/stateful/.

A warehouse runs as a task in the example's nursery and answers requests over a
memory channel (so every call is a real Trio round trip). ``stock`` units;
``reserve`` takes one if any is available, ``release`` gives one back.

The planted bug: ``release`` of a reservation that a watcher has already seen
(``snapshot(watcher=True)`` marks every current reservation as seen) credits the
unit twice. Overselling then takes five calls in a particular order (e.g.
reserve, start a watcher, release, reserve, reserve) and only a watcher (a
poller) can see it.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import trio


@attrs.frozen
class Snapshot:
    stock: int
    available: int
    reserved: int


class Warehouse:
    def __init__(self, stock: int) -> None:
        self.stock = stock
        self.available = stock
        self.reservations: list[bool] = []  # one per reservation: seen by a watcher?
        self._send, self._receive = trio.open_memory_channel[Any](math.inf)

    async def serve(self) -> None:
        async for operation, reply in self._receive:
            reply.send_nowait(getattr(self, "_" + operation[0])(*operation[1:]))

    async def _call(self, *operation: Any) -> Any:
        reply_send, reply_receive = trio.open_memory_channel[Any](1)
        await self._send.send((operation, reply_send))
        return await reply_receive.receive()

    async def reserve(self) -> bool:
        return bool(await self._call("reserve"))

    async def release(self) -> bool:
        return bool(await self._call("release"))

    async def snapshot(self, *, watcher: bool = False) -> Snapshot:
        result: Snapshot = await self._call("snapshot", watcher)
        return result

    def _reserve(self) -> bool:
        if self.available == 0:
            return False
        self.available -= 1
        self.reservations.append(False)
        return True

    def _release(self) -> bool:
        if not self.reservations:
            return False
        seen = self.reservations.pop()
        self.available += 2 if seen else 1  # the planted bug
        return True

    def _snapshot(self, watcher: bool) -> Snapshot:
        if watcher:
            self.reservations = [True] * len(self.reservations)
        return Snapshot(self.stock, self.available, len(self.reservations))
