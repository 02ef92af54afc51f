"""Durable machines (spec §5): database-backed state machines on Trio.

    from trexec import durable

    async with durable.open_store("sqlite:///app.db") as store:
        async with durable.open_engine(store, [Payment]) as engine:
            id = await engine.insert(Payment, PaymentState(amount=10))
            instance = await engine.wait(id)

Layout: ``_machine`` (Machine, Context, Signal, Instance), ``_outcomes`` (what a
step returns), ``_engine`` (open_engine, Engine: picker, workers, completer,
heartbeat, reaper), ``_steps`` (one step to its commit), ``_store`` (the store
interface) with ``_sqlite*`` (embedded) and ``_postgres*`` implementations,
``_records`` (what engine and store exchange), ``_cli`` (the CLI commands).
"""

from __future__ import annotations

from ._engine import Engine as Engine, InsertSpec as InsertSpec, open_engine as open_engine
from ._exceptions import (
    DuplicateKey as DuplicateKey,
    DurableError as DurableError,
    EngineCrashed as EngineCrashed,
    NoTarget as NoTarget,
    StoreError as StoreError,
    StoreRejected as StoreRejected,
)
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
    "DurableError", "DuplicateKey", "NoTarget", "StoreError", "StoreRejected", "EngineCrashed",
]  # fmt: skip


def _fixup_module_metadata() -> None:
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("trexec.durable._"):
            obj.__module__ = "trexec.durable"


_fixup_module_metadata()
del _fixup_module_metadata
