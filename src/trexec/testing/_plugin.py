"""The pytest plugin (entry point ``pytest11``, spec §10.5): the
``trexec_engine_factory`` fixture. It defines a fixture and nothing else, so a
project that does not ask for it sees no change."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest


@pytest.fixture
async def trexec_engine_factory() -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await trexec_engine_factory(machines, **kwargs)`` opens
    ``testing.open_test_engine(machines, **kwargs)`` and returns the engine; every
    engine it opened is closed after the test, last first. Needs pytest-trio
    (an async test); take ``autojump_clock`` too for virtual time."""
    from trexec import testing

    async with contextlib.AsyncExitStack() as stack:

        async def factory(machines: Any = (), **kwargs: Any) -> testing.TestEngine:
            return await stack.enter_async_context(testing.open_test_engine(machines, **kwargs))

        yield factory
