"""Helpers for the package ``__init__`` files and internal nurseries: public
objects report their public path (spec §0.5), and nested exception groups are
read as their leaves (spec §0.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["fix_modules", "leaves"]


def fix_modules(namespace: Mapping[str, Any], names: Iterable[str], public: str) -> None:
    """Set ``__module__`` to ``public`` on every object ``names`` lists in
    ``namespace`` that lives in one of ``public``'s private modules, as trio does
    (``trexec.durable.Engine``, not ``trexec.durable._engine.Engine``)."""
    private = public + "._"
    for name in names:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith(private):
            obj.__module__ = public


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions in ``exc``, nested groups flattened, in order (``[exc]``
    for an exception that is not a group)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]
