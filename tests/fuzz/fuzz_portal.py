"""A Trio loop on its own thread for the synchronous property tests (issue 20).

The durable property tests call into one Trio loop that keeps a store and an
engine open for the whole module (``Portal``), so an example costs a few store
round trips, not a store.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "durable"))


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
