"""trexec.testing's public surface (contract §7, spec §0.5): the contract's names
exist, are documented and report ``trexec.testing`` as their module."""

from __future__ import annotations

import types

from trexec import testing

CONTRACT = ["open_test_engine", "open_test_store", "TestEngine", "Faults"]


def test_every_contract_name_is_exported():
    assert set(CONTRACT) <= set(testing.__all__)


def test_every_public_name_is_documented_and_reports_its_public_module():
    for name in testing.__all__:
        obj = getattr(testing, name)
        assert obj.__doc__, f"testing.{name} has no docstring"
        if isinstance(obj, type | types.FunctionType):
            assert obj.__module__ == "trexec.testing", f"testing.{name}: {obj.__module__}"


def test_the_faults_methods_are_the_contracts():
    for name in ("crash_after_step", "fail_commits", "lose_lease"):
        assert getattr(testing.Faults, name).__doc__


def test_the_pytest_plugin_is_registered_under_pytest11():
    from importlib.metadata import entry_points

    (plugin,) = [e for e in entry_points(group="pytest11") if e.value.startswith("trexec")]
    assert plugin.value == "trexec.testing._plugin"
