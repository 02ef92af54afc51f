"""Optional extras: import a module an extra provides, or say in one line which
extra to install (:class:`~trexec.MissingExtra`)."""

from __future__ import annotations

import importlib
from types import ModuleType

from ._exceptions import MissingExtra

__all__ = ["hint", "require"]

# spec §0.7: the top-level module each extra provides -> the extra that installs it.
EXTRA_OF = {
    "httpx": "http",
    "hypercorn": "demo",
    "opentelemetry": "otel",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
}


def hint(what: str, extra: str) -> str:
    """The one-line message: ``<what> needs the <extra> extra: pip install 'trexec[<extra>]'``."""
    return f"{what} needs the {extra} extra: pip install 'trexec[{extra}]'"


def require(module: str, what: str, extra: str | None = None) -> ModuleType:
    """Import ``module``; if it (not one of its own imports) is not installed, raise
    :class:`~trexec.MissingExtra` naming ``extra`` (by default the extra that
    provides it). ``what`` names the feature for the message ("trexec demo")."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".", 1)[0]
        if exc.name is None or exc.name.split(".", 1)[0] != top:
            raise  # the module is there; something it imports is broken
        raise MissingExtra(hint(what, extra or EXTRA_OF.get(top, top))) from None
