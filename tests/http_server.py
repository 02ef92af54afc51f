"""A real local HTTP server for tests: hypercorn serving a tiny ASGI app under Trio.

The app keeps *resources* whose status moves along a script as they are polled:

* ``POST /resources`` with an optional JSON body
  ``{"steps": [["processing", 2], ["pending_review", 1], ["approved", null]],
  "errors": 0, "delay": 0.0}`` creates one and answers ``201 {"id", "status"}``.
  Each step ``[status, n]`` is served for ``n`` GETs (``null``: for ever), so
  the sequence a poller sees does not depend on timing.
* ``GET /resources/<id>`` answers ``200 {"id", "status"}``, or ``503`` for each
  of the first ``errors`` GETs (a flaky gateway), or ``404``; each answer is
  sent after ``delay`` seconds.

Use the ``http_server`` fixture (a :class:`ResourceServer`, ``.url`` is the
base URL), or ``async with serve_resources() as server:`` anywhere.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

DEFAULT_STEPS = [["processing", 2], ["pending_review", 1], ["approved", None]]


@attrs.define
class Resource:
    id: str
    steps: list[list[Any]]
    errors: int = 0
    delay: float = 0.0
    gets: int = 0  # successful GETs served so far

    def status(self) -> str:
        served = self.gets
        for status, count in self.steps:
            if count is None or served < count:
                return str(status)
            served -= count
        return str(self.steps[-1][0])


@attrs.define
class ResourceServer:
    """The ASGI app and its state; ``url`` is set once it listens."""

    url: str = ""
    resources: dict[str, Resource] = attrs.Factory(dict)
    requests: list[tuple[str, str]] = attrs.Factory(list)
    _ids: Any = attrs.Factory(lambda: itertools.count(1))

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any
    ):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        method, path = scope["method"], scope["path"]
        self.requests.append((method, path))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload, delay = self._route(method, path, body)
        if delay:
            await trio.sleep(delay)
        data = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any, float]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["resources"]:
            options = json.loads(body) if body else {}
            resource = Resource(
                id=str(next(self._ids)),
                steps=options.get("steps", DEFAULT_STEPS),
                errors=options.get("errors", 0),
                delay=options.get("delay", 0.0),
            )
            self.resources[resource.id] = resource
            return 201, {"id": resource.id, "status": resource.status()}, 0.0
        if method == "GET" and len(parts) == 2 and parts[0] == "resources":
            resource = self.resources.get(parts[1])
            if resource is None:
                return 404, {"error": f"no resource {parts[1]}"}, 0.0
            if resource.errors > 0:
                resource.errors -= 1
                return 503, {"error": "unavailable"}, resource.delay
            status = resource.status()
            resource.gets += 1
            return 200, {"id": resource.id, "status": status}, resource.delay
        return 404, {"error": f"no route {method} {path}"}, 0.0


@asynccontextmanager
async def serve_resources() -> AsyncIterator[ResourceServer]:
    """Serve a fresh :class:`ResourceServer` on 127.0.0.1 (a free port) while inside."""
    app = ResourceServer()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        app.url = binds[0]
        try:
            yield app
        finally:
            stop.set()


@pytest.fixture
async def http_server() -> AsyncIterator[ResourceServer]:
    async with serve_resources() as server:
        yield server


def refused_url() -> str:
    """A base URL where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
