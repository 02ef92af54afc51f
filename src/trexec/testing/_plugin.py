"""The pytest plugin (entry point ``pytest11``, spec §10.5): the
``trexec_engine_factory`` fixture. It defines a fixture and nothing else, so a
project that does not ask for it sees no change."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest


@pytest.fixture
async def trexec_engine_factory() -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await trexec_engine_factory(machines, **kwargs)`` opens
    ``testing.open_test_engine(machines, **kwargs)`` and returns the engine; every
    engine it opened is closed after the test, last first. Needs pytest-trio
    (an async test); take ``autojump_clock`` too for virtual time."""
    import trio

    from trexec import testing

    # Each engine's block runs in a task of this fixture (pytest-trio runs a
    # fixture in its own task), not in the test's: its nursery must be entered
    # and left by the same task.
    async def hold(
        machines: Any,
        kwargs: dict[str, Any],
        stop: trio.Event,
        closed: trio.Event,
        task_status: trio.TaskStatus[testing.TestEngine] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            async with testing.open_test_engine(machines, **kwargs) as engine:
                task_status.started(engine)
                await stop.wait()
        finally:
            closed.set()

    opened: list[tuple[trio.Event, trio.Event]] = []
    async with trio.open_nursery() as nursery:

        async def factory(machines: Any = (), **kwargs: Any) -> testing.TestEngine:
            stop, closed = trio.Event(), trio.Event()
            engine: testing.TestEngine = await nursery.start(hold, machines, kwargs, stop, closed)
            opened.append((stop, closed))
            return engine

        try:
            yield factory
        finally:
            for stop, closed in reversed(opened):
                stop.set()
                await closed.wait()
