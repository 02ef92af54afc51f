"""Test durable code in virtual time (spec §10): machines and workflows run on a
real engine over an in-memory store that lives on the Trio thread and reads
"now" from ``trio.current_time()``.

    from trexec import testing

    async def test_refund_after_a_day(autojump_clock):
        async with testing.open_test_engine(machines=[Payment]) as engine:
            iid = await engine.insert(Payment, PaymentState(), key="order-1")
            engine.faults.crash_after_step(Payment, "charge")
            inst = await engine.wait(iid)   # a day of Await timeouts: milliseconds
            assert inst.status == "done"

Layout: ``_store`` (the test store: the SQLite store inline, in memory),
``_engine`` (open_test_engine, TestEngine), ``_faults`` (Faults and the store
proxy applying them), ``_determinism`` (trio's scheduler seeded), ``_plugin``
(the pytest plugin: the ``trexec_engine_factory`` fixture).
"""

from __future__ import annotations

from ._engine import TestEngine as TestEngine, open_test_engine as open_test_engine
from ._faults import Faults as Faults
from ._store import open_test_store as open_test_store

__all__ = ["Faults", "TestEngine", "open_test_engine", "open_test_store"]


def _fixup_module_metadata() -> None:
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("trexec.testing._"):
            obj.__module__ = "trexec.testing"


_fixup_module_metadata()
del _fixup_module_metadata
