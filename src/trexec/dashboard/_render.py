"""HTML rendering: Jinja2 templates with autoescaping on (spec §12.4).

Every value reaches the page through a template, so every value is escaped; the
only markup inserted as is comes from :func:`._graph.step_graph`, which escapes
the names it holds itself.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import jinja2
import markupsafe

from ..durable._records import STATUSES
from ._graph import step_graph
from ._queries import MAX_LIMIT

__all__ = ["render"]


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("trexec.dashboard", "templates"),
    autoescape=True,  # every template is HTML
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(ts=_ts, pretty=_pretty, compact=_compact)
_env.globals.update(statuses=STATUSES, max_limit=MAX_LIMIT)


def render(name: str, **context: Any) -> str:
    """Render template ``name`` (``instances``, ``instance``, ``error``, or a live
    fragment ``_instances``/``_instance``) with ``context``."""
    detail = context.get("i")
    if name.endswith("instance") and detail is not None and detail.get("run"):
        run = detail["run"]
        statuses = {s["step"]: str(s.get("status", "unknown")) for s in run["steps"]}
        context["graph"] = markupsafe.Markup(step_graph(statuses, run["after"]))
    else:
        context.setdefault("graph", "")
    return _env.get_template(f"{name}.html").render(**context)
