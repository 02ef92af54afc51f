"""Durable machines (spec §5): database-backed state machines on Trio.

    from trexec import durable

    async with durable.open_store("sqlite:///app.db") as store:
        async with durable.open_engine(store, [Payment]) as engine:
            id = await engine.insert(Payment, PaymentState(amount=10))
            instance = await engine.wait(id)

Layout (the full map is docs/spec.md §13): ``_machine`` (Machine, Context,
Signal, Instance), ``_outcomes`` (what a step returns), ``_engine``
(open_engine) and ``_engine_api`` (Engine's API), ``_serve`` (the engine's task
tree: ``_picker``, ``_completer``, ``_leases``, sharing a ``_ledger``),
``_steps`` (one step to its commit), ``_extension`` (how workflows and other
layers plug in), ``_store`` (the store interface) with ``_store_rules`` (the
rules every store shares) and the ``_sqlite*`` (embedded) and ``_postgres*``
dialects, ``_records`` (what engine and store exchange), ``_cli`` (the CLI).
"""

from __future__ import annotations

from .._public import fix_modules as _fix_modules
from ._cron import Schedule as Schedule, ScheduleInfo as ScheduleInfo
from ._engine import Engine as Engine, InsertSpec as InsertSpec, open_engine as open_engine
from ._exceptions import (
    DuplicateKey as DuplicateKey,
    DurableError as DurableError,
    EngineCrashed as EngineCrashed,
    NoTarget as NoTarget,
    StoreError as StoreError,
    StoreRejected as StoreRejected,
)
from ._extension import Extension as Extension, RunStarter as RunStarter
from ._machine import (
    Context as Context,
    Instance as Instance,
    Machine as Machine,
    Signal as Signal,
)
from ._open import open_store as open_store
from ._outcomes import (
    Await as Await,
    Child as Child,
    Done as Done,
    Next as Next,
    Outcome as Outcome,
    Retry as Retry,
    ScheduleChildren as ScheduleChildren,
    Stop as Stop,
)
from ._ratelimit import RateLimit as RateLimit
from ._store import Store as Store

__all__ = [
    "Machine", "Context", "Signal", "Instance",
    "Outcome", "Next", "Retry", "Await", "ScheduleChildren", "Child", "Done", "Stop",
    "open_store", "Store", "open_engine", "Engine", "InsertSpec", "RateLimit",
    "Extension", "RunStarter", "Schedule", "ScheduleInfo",
    "DurableError", "DuplicateKey", "NoTarget", "StoreError", "StoreRejected", "EngineCrashed",
]  # fmt: skip


_fix_modules(globals(), __all__, "trexec.durable")
del _fix_modules
