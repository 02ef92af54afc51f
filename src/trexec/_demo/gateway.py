"""A small payment gateway for the demo: a real HTTP server on 127.0.0.1 (spec §9.2).

A tiny ASGI app served by hypercorn under Trio, in the caller's nursery, on a
free port. Its API, all JSON:

* ``POST /authorizations`` ``{"order": str, "amount_cents": int}`` -> ``201``
  ``{"id", "order", "status": "processing"}``. Idempotent per order: posting the
  same order again returns the same authorization (``200``). The id is
  ``auth-<order>``, the same in every session of the demo.
* ``GET /authorizations/{id}`` -> ``{"id", "order", "status"}``: ``processing``
  until a random delay has passed, then ``approved`` or ``declined``.
* ``POST /authorizations/{id}/capture`` -> ``{"status": "captured"}``; ``409`` if
  the authorization is not approved; ``503`` when a transient fault is injected.
* ``POST /authorizations/{id}/refund`` -> ``{"status": "refunded"}``.

Every decision (delay, approved or declined, whether the first capture fails) is
drawn from ``random.Random(f"{seed}:{order}")``: the same seed gives the same
story whatever the order of requests, and after a restart of the process.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@attrs.define
class Authorization:
    """One authorization held by the gateway (in memory: the gateway is a stand-in)."""

    id: str
    order: str
    amount_cents: int
    ready_at: float
    approved: bool
    capture_faults: int
    status: str = "processing"


@attrs.define
class Gateway:
    """The gateway's ASGI app and its in-memory state.

    ``decline_rate``: share of orders declined; ``fault_rate``: share of orders
    whose first capture answers ``503``; ``delay``: (min, max) seconds an
    authorization stays ``processing``. ``requests`` counts the HTTP requests served.
    """

    seed: int
    decline_rate: float = 0.15
    fault_rate: float = 0.15
    delay: tuple[float, float] = (0.2, 1.2)
    requests: int = 0
    _by_id: dict[str, Authorization] = attrs.field(factory=dict)
    _by_order: dict[str, Authorization] = attrs.field(factory=dict)

    # --- the business rules --------------------------------------------------

    def authorize(self, order: str, amount_cents: int) -> tuple[int, Authorization]:
        if order in self._by_order:  # spec §9.2: idempotent per order
            return 200, self._by_order[order]
        rng = random.Random(f"{self.seed}:{order}")  # spec §9.2: one seed, one story
        auth = Authorization(
            # spec §9.2: the id is the order's, the same in every session: a resumed
            # demo's gateway finds an authorization an earlier session made.
            id=f"auth-{order}",
            order=order,
            amount_cents=amount_cents,
            ready_at=trio.current_time() + rng.uniform(*self.delay),
            approved=rng.random() >= self.decline_rate,
            capture_faults=1 if rng.random() < self.fault_rate else 0,
        )
        self._by_id[auth.id] = auth
        self._by_order[order] = auth
        return 201, auth

    def find(self, auth_id: str) -> Authorization | None:
        """The authorization ``auth_id``; one an earlier session of the demo made
        (the gateway keeps no files) is made again, already decided."""
        if auth_id not in self._by_id and auth_id.startswith("auth-") and len(auth_id) > 5:
            _, auth = self.authorize(auth_id.removeprefix("auth-"), 0)
            auth.ready_at = trio.current_time()
        return self._by_id.get(auth_id)

    def status(self, auth: Authorization) -> str:
        if auth.status == "processing" and trio.current_time() >= auth.ready_at:
            auth.status = "approved" if auth.approved else "declined"
        return auth.status

    # --- HTTP ------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are not served
            return
        self.requests += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        code, payload = self._route(scope["method"], scope["path"].strip("/").split("/"), body)
        data = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _route(self, method: str, parts: list[str], body: bytes) -> tuple[int, dict[str, Any]]:
        if parts == ["authorizations"] and method == "POST":
            try:
                request = json.loads(body)
                code, auth = self.authorize(str(request["order"]), int(request["amount_cents"]))
            except (ValueError, KeyError, TypeError) as exc:
                return 400, {"error": f"bad authorization request: {exc!r}"}
            return code, self._view(auth)
        found = self.find(parts[1]) if len(parts) >= 2 and parts[0] == "authorizations" else None
        if found is None:
            return 404, {"error": f"no such resource: /{'/'.join(parts)}"}
        auth = found
        action = parts[2] if len(parts) == 3 else None
        if method == "GET" and action is None:
            return 200, self._view(auth)
        if method == "POST" and action == "capture":
            return self._capture(auth)
        if method == "POST" and action == "refund":
            auth.status = "refunded"
            return 200, self._view(auth)
        return 405, {"error": f"{method} not allowed here"}

    def _capture(self, auth: Authorization) -> tuple[int, dict[str, Any]]:
        if auth.status == "captured":
            return 200, self._view(auth)
        if self.status(auth) != "approved":
            return 409, {"error": f"authorization {auth.id} is {auth.status}, not approved"}
        if auth.capture_faults > 0:
            auth.capture_faults -= 1
            return 503, {"error": "acquirer unavailable, try again"}
        auth.status = "captured"
        return 200, self._view(auth)

    def _view(self, auth: Authorization) -> dict[str, Any]:
        return {"id": auth.id, "order": auth.order, "status": self.status(auth)}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@asynccontextmanager
async def serve_gateway(gateway: Gateway) -> AsyncIterator[str]:
    """Serve ``gateway`` on a free port of 127.0.0.1; yield its base URL.

    The server runs in a nursery of its own, inside the caller's task tree; on
    leaving the block it shuts down gracefully (cancellation stops it at once).
    Raises ``OSError`` if no port can be bound.
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = None  # the demo's screen is its own; errors surface as HTTP failures
    config.accesslog = None
    config.graceful_timeout = 1.0
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve, gateway, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
        )
        try:
            yield binds[0]
        finally:
            shutdown.set()
