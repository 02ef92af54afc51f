"""``open_test_engine`` and :class:`TestEngine` (spec §10.2)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Iterable
from typing import Any

from .. import _validate
from ..durable import Engine, Machine, Store, open_engine
from ._determinism import seeded
from ._faults import Faults, FaultyStore
from ._store import TestStore, open_test_store

__all__ = ["TestEngine", "open_test_engine"]

#: The ``open_engine`` keywords ``open_test_engine`` passes on as ``options``.
_OPTIONS = tuple(
    name
    for name, p in inspect.signature(open_engine).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "workflows"
)


#: The test engine's defaults that differ from ``open_engine``'s (virtual seconds).
DEFAULTS = {"lease": 3600.0, "poll_interval": 3600.0}


class TestEngine(Engine):
    """A :class:`~trexec.durable.Engine` (every method of spec §5 and §6) over a
    test store, with ``faults`` (a :class:`Faults`) to inject crashes, lost
    leases and failing commits. Made by :func:`open_test_engine`."""

    __test__ = False  # not a pytest test class
    faults: Faults


@contextlib.asynccontextmanager
async def open_test_engine(
    machines: Iterable[type[Machine]] = (),
    *,
    workflows: Iterable[Any] = (),
    seed: int = 0,
    store: Store | None = None,
    **options: Any,
) -> AsyncIterator[TestEngine]:
    """Run a real engine on an in-memory test store for the duration of the block
    (spec §10.2); yield it as a :class:`TestEngine`.

    ``options`` are any :func:`~trexec.durable.open_engine` keywords (``workers``,
    ``lease``, ``rate_limits``, ...); ``lease`` and ``poll_interval`` default to
    an hour here, since each timer tick costs real CPU time. ``store`` is a
    store from :func:`open_test_store` to share between engines; by default the
    engine opens its own, gone after the block. ``engine.faults`` injects
    crashes, lost leases and failing commits (:class:`Faults`). Under
    ``trio.testing.MockClock(autojump_threshold=0)`` every delay (``Retry``,
    ``Await`` timeouts, ``scheduled_in``, workflow backoff, leases, heartbeats,
    the reaper) passes in virtual time. The same program with the same ``seed``
    runs its steps in the same order with the same results (spec §10.3).

    Raises :class:`~trexec.InvalidArgument` for a bad argument, as
    ``open_engine`` does.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        _validate.fail("seed", seed, "an int")
    if store is not None and not isinstance(store, TestStore):
        _validate.fail("store", store, "None or a store from testing.open_test_store()")
    for name, value in options.items():
        if name not in _OPTIONS:
            _validate.fail(name, value, f"an open_engine option: {', '.join(_OPTIONS)}")
    if isinstance(machines, str | bytes) or not isinstance(machines, Iterable):
        _validate.fail("machines", machines, "an iterable of durable.Machine subclasses")
    classes = tuple(machines)
    # Every timer tick costs real CPU however fast virtual time runs, so the
    # defaults tick rarely (spec §10.2): the test store wakes every engine on
    # every write, so polling only bounds how soon `wait` sees another engine's
    # commit; a longer lease only delays crash recovery, in virtual time.
    for name, default in DEFAULTS.items():
        options.setdefault(name, default)
    extended: list[Any] = []
    given: Any = workflows
    if isinstance(given, Iterable) and not isinstance(given, str | bytes):
        given = tuple(given)  # read twice: for the faults, then by open_engine
        # A workflow's run and step machines can be given faults too (spec §10.4).
        extended = [m for wf in given for m in _engine_machines(wf)]
    runs = (*classes, *extended) if options.get("workers", 1) else ()
    with seeded(seed):
        async with contextlib.AsyncExitStack() as stack:
            if store is None:
                store = await stack.enter_async_context(open_test_store())
            faults = Faults(m for m in runs if isinstance(m, type) and issubclass(m, Machine))
            proxy = FaultyStore(store, faults)
            async with open_engine(proxy, classes, workflows=given, **options) as engine:
                # The engine is built by open_engine; becoming a TestEngine only
                # adds `faults` (no state, no override), so open_engine stays as is.
                engine.__class__ = TestEngine
                test_engine: TestEngine = engine  # type: ignore[assignment]
                test_engine.faults = faults
                yield test_engine


def _engine_machines(extension: Any) -> list[Any]:
    # The durable.Extension protocol (spec §5.5.10); anything else is left to
    # open_engine's checks.
    machines = getattr(extension, "engine_machines", None)
    return list(machines()) if callable(machines) else []
