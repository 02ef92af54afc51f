"""The public surface itself (as trio's test_exports): names, docstrings, module paths."""

from __future__ import annotations

import types

import trexec


def test_every_public_name_exists_and_is_documented():
    for name in trexec.__all__:
        obj = getattr(trexec, name)
        assert obj.__doc__, f"trexec.{name} has no docstring"


def test_public_classes_report_their_public_module():
    for name in trexec.__all__:
        obj = getattr(trexec, name)
        if isinstance(obj, type | types.FunctionType):
            assert obj.__module__ == "trexec", f"trexec.{name} reports {obj.__module__}"
