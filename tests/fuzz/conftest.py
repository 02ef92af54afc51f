"""Fuzzing the public surface (issue 20): Hypothesis profiles and a Trio portal.

Profiles: ``fuzz-short`` (the default test run: the whole suite in a few
seconds) and ``fuzz-long`` (``nox -s fuzz``), chosen by ``TREXEC_FUZZ_PROFILE``.

Property tests are synchronous; the durable ones call into one Trio loop that
runs on its own thread and keeps a store and an engine open for the whole module
(``Portal``), so an example costs a few store round trips, not a store.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "durable"))

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "fuzz-short", max_examples=12, deadline=None, suppress_health_check=_SUPPRESS
)
settings.register_profile(
    "fuzz-long", max_examples=400, deadline=None, suppress_health_check=_SUPPRESS
)
settings.load_profile(os.environ.get("TREXEC_FUZZ_PROFILE", "fuzz-short"))

#: A call into the portal that takes longer than this is a hang: the test fails.
CALL_TIMEOUT = 30.0


class Portal:
    """A Trio loop on its own thread; ``call(afn, *args)`` runs ``afn`` there."""

    def __init__(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._ready.set()
                await trio.sleep_forever()

        trio.run(main)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def call(self, afn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        async def bounded() -> Any:
            with trio.fail_after(CALL_TIMEOUT):
                return await afn(*args)

        return trio.from_thread.run(bounded, trio_token=self._token)

    def enter(
        self, cm: contextlib.AbstractAsyncContextManager[Any]
    ) -> tuple[Any, Callable[[], None]]:
        """Enter ``cm`` in a task of the loop; returns its value and ``exit()``."""
        done = trio.Event()
        box: dict[str, Any] = {}

        async def hold(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            async with cm as value:
                task_status.started(value)
                await done.wait()
            box["exited"] = True

        async def start() -> Any:
            assert self._nursery is not None
            return await self._nursery.start(hold)

        value = self.call(start)

        def exit_() -> None:
            async def close() -> None:
                done.set()
                while "exited" not in box:
                    await trio.sleep(0.01)

            self.call(close)

        return value, exit_

    def stop(self) -> None:
        async def cancel() -> None:
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()

        trio.from_thread.run(cancel, trio_token=self._token)
        self._thread.join(10)


@pytest.fixture(scope="session")
def portal() -> Iterator[Portal]:
    started = Portal()
    started.start()
    yield started
    started.stop()


@contextlib.asynccontextmanager
async def _store_and_engine(kind: str, tmp: pathlib.Path, machines: list[Any], workflows: list[Any]
                            ) -> AsyncIterator[Any]:  # fmt: skip
    from stores import open_test_store

    from trexec import durable

    async with open_test_store(kind, tmp) as store:
        await store.migrate()
        async with durable.open_engine(
            store, machines, workflows=workflows, poll_interval=0.02, lease=10.0
        ) as engine:
            yield engine


def open_engine_in(
    portal: Portal, kind: str, tmp: pathlib.Path, machines: list[Any], workflows: list[Any]
) -> tuple[Any, Callable[[], None]]:
    """An engine on a fresh store of ``kind``, open in the portal until ``exit()``."""
    return portal.enter(_store_and_engine(kind, tmp, machines, workflows))
