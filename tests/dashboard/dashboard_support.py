"""Dashboard tests: a real server (``trexec.dashboard.serve`` on hypercorn) over a
real store, driven by httpx and, in the browser tests, by headless Chromium.

``store_url`` is a migrated, empty store of each kind (SQLite file, PostgreSQL
schema of its own); ``dashboard(url, ...)`` serves it on a free port and yields
an httpx client whose base URL is the server.
"""

from __future__ import annotations

import contextlib
import functools
import pathlib
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
import trio

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "durable"))
from stores import PG_URL, STORE_KINDS, drop_schema

from trexec import durable, workflows
from trexec.dashboard import serve


@attrs.define
class Note:
    note: str = ""


class Waiter(durable.Machine):
    """Parks until signal ``go``, then finishes with the payload."""

    name = "waiter"
    State = Note

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        if step == "start":
            return durable.Await(["go"], "finish", ctx.state)
        return durable.Done([s.payload for s in ctx.awaited])


class Other(Waiter):
    name = "other"


def store_url_for(kind: str, tmp_path: pathlib.Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/dashboard.db", None
    schema = f"test_{uuid.uuid4().hex[:12]}"
    return f"{PG_URL}?options=-csearch_path%3D{schema}", schema


@pytest.fixture(params=STORE_KINDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[str]:
    url, schema = store_url_for(request.param, tmp_path)
    try:
        async with durable.open_store(url) as store:
            await store.migrate()
        yield url
    finally:
        if schema is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(drop_schema, schema)


@contextlib.asynccontextmanager
async def dashboard(url: str, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Serve the dashboard of ``url`` on a free port for the block."""
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(serve, url, port=0, **options))
        async with httpx.AsyncClient(base_url=binds[0], timeout=10) as client:
            yield client
        nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def engine_on(url: str, **options: Any) -> AsyncIterator[durable.Engine]:
    options.setdefault("workers", 0)
    async with (
        durable.open_store(url) as store,
        durable.open_engine(store, [Waiter, Other], poll_interval=0.02, **options) as engine,
    ):
        yield engine


gate: trio.Event | None = None


async def reserve(ctx: Any) -> str:
    return "reserved"


async def charge(ctx: Any) -> str:
    if gate is not None:
        await gate.wait()  # the run stays live until the test opens the gate
    return "charged"


async def ship(ctx: Any) -> str:
    return "shipped"


CHECKOUT = workflows.Workflow(
    "checkout",
    [
        workflows.Step("reserve", reserve),
        workflows.Step("charge", charge, after=["reserve"]),
        workflows.Step("ship", ship, after=["charge"]),
        workflows.Step("email", ship, after=["reserve"]),
    ],
)


async def insert_parked(engine: durable.Engine, count: int = 1) -> list[int]:
    """Insert ``count`` Waiters and wait until each is ``awaiting`` its ``go``."""
    ids = [await engine.insert(Waiter, Note()) for _ in range(count)]
    for id_ in ids:
        while (await engine.get(id_)).status != "awaiting":
            await trio.sleep(0.01)
    return ids
