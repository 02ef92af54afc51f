"""trexec.durable's public surface (spec §0.5): the contract's names exist, are
documented and report ``trexec.durable`` as their module."""

from __future__ import annotations

import types

from trexec import durable

CONTRACT = [
    "Machine",
    "Context",
    "Signal",
    "Outcome",
    "Next",
    "Retry",
    "Await",
    "ScheduleChildren",
    "Child",
    "Done",
    "Stop",
    "open_store",
    "open_engine",
    "Engine",
    "Instance",
    "RateLimit",
    "DuplicateKey",
    "NoTarget",
]


def test_every_contract_name_is_exported():
    assert set(CONTRACT) <= set(durable.__all__)


def test_every_public_name_is_documented_and_reports_its_public_module():
    for name in durable.__all__:
        obj = getattr(durable, name)
        assert obj.__doc__, f"durable.{name} has no docstring"
        if isinstance(obj, type | types.FunctionType):
            assert obj.__module__ == "trexec.durable", f"durable.{name}: {obj.__module__}"
