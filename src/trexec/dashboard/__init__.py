"""``trexec dashboard``: a web UI of a durable store (extra ``trexec[dashboard]``, spec §12).

General layout: ``_queries`` reads the store and checks filters (plain data),
``_graph`` draws a workflow run's step graph as SVG, ``_render`` turns data into
HTML with autoescaping Jinja2 templates (``templates/``), ``_app`` is the
Starlette ASGI app (pages, JSON API, guarded writes), ``_server`` opens the store
and serves the app on Trio with hypercorn, and ``_cli`` is the click command.

This module imports none of the extra's packages until ``create_app`` or
``serve`` is first used, so ``trexec --help`` works without the extra; without it
that first use raises ``ImportError`` with the ``pip install`` line to run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import create_app as create_app
    from ._server import serve as serve

__all__ = ["create_app", "serve"]

_WHERE = {"create_app": "._app", "serve": "._server"}
#: The packages of the extra, as ``import`` names them.
EXTRA_MODULES = frozenset({"starlette", "hypercorn", "jinja2", "markupsafe"})
HINT = "pip install 'trexec[dashboard]'"


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """The extra's package whose absence caused ``error``, or None."""
    top = (error.name or "").split(".", 1)[0]
    return top if top in EXTRA_MODULES else None


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'trexec.dashboard' has no attribute {name!r}")
    try:
        module = importlib.import_module(_WHERE[name], __name__)
    except ModuleNotFoundError as exc:
        if (missing := missing_extra(exc)) is None:
            raise
        raise ImportError(f"trexec.dashboard needs {missing}: {HINT}") from None
    value = getattr(module, name)
    value.__module__ = __name__  # the public path in reprs and tracebacks
    globals()[name] = value
    return value
