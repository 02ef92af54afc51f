"""The test store (spec §10.1): the SQLite store, its SQL and rules unchanged, on a
private in-memory database whose calls run inline on the Trio thread and whose
clock is ``trio.current_time``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from ..durable import Store
from ..durable._sqlite import SqliteStore


class TestStore(SqliteStore):
    """``SqliteStore(":memory:", inline=True, clock=trio.current_time)``: one rule
    set with the real stores (spec §10.1). Bound to the Trio run that opened it."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, clock: Callable[[], float] = trio.current_time) -> None:
        super().__init__(":memory:", inline=True, clock=clock)
        self.url = "sqlite:///:memory: (trexec.testing)"
        self._subscribers: dict[int, Callable[[], object]] = {}

    def subscribe(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Every engine sharing this store is woken by every write any of them
        makes (as PostgreSQL's NOTIFY does), so none needs to poll (spec §10.1)."""
        key = id(callback)
        self._subscribers[key] = callback

        def unsubscribe() -> None:
            self._subscribers.pop(key, None)

        return unsubscribe

    def _changed(self) -> None:
        for callback in list(self._subscribers.values()):
            callback()


def _notifying(name: str) -> Any:
    async def write(self: TestStore, *args: Any, **kwargs: Any) -> Any:
        result = await getattr(SqliteStore, name)(self, *args, **kwargs)
        if result != []:  # e.g. a reaper pass that reclaimed nothing changed nothing
            self._changed()
        return result

    write.__name__ = name
    write.__doc__ = getattr(SqliteStore, name).__doc__
    return write


# The writes that can make work runnable or finish an instance.
for _name in ("insert", "complete", "complete_and_claim", "release", "reap_expired",
              "deliver_signal", "cancel", "fire_schedule"):  # fmt: skip
    setattr(TestStore, _name, _notifying(_name))
del _name


@contextlib.asynccontextmanager
async def open_test_store() -> AsyncIterator[Store]:
    """Open an empty in-memory test store for the duration of the block (spec §10.1).

    The store ``testing.open_test_engine`` uses: its calls run on the Trio thread
    and "now" is ``trio.current_time()``, so under
    ``trio.testing.MockClock(autojump_threshold=0)`` every delay passes in
    virtual time. Pass it as ``store=`` to several ``open_test_engine`` calls
    (or to ``durable.open_engine``) to share it; it is gone when the block ends.
    """
    store = TestStore()
    await store._open()
    try:
        yield store
    finally:
        await store.close()
