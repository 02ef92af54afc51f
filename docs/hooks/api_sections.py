"""mkdocs hook: the ``trexec`` API page, grouped by area (spec §9.13).

``trexec`` re-exports some sixty names from small private modules. Listed
alphabetically they read like an index; this hook replaces the marker
``<!-- api: trexec -->`` by one section per area of the spec (actions, pollers,
sequences, runs), then the errors, each with a ``::: trexec.NAME`` entry per
public name in the order its module's ``__all__`` gives. The grouping comes from
the package itself at build time (which private module's ``__all__`` holds the
name, and the ``§N`` its docstring cites), so a new name needs no edit here; a
name that fits no area goes to "Other", never missing.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from typing import Any

MARKER = "<!-- api: trexec -->"

AREAS = {
    1: "Actions (§1)",
    2: "Resource pollers (§2)",
    3: "Command sequences (§3)",
    4: "Runs and recorders (§4)",
}
ERRORS = "Errors"
OTHER = "Other"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, api_markdown())
    return markdown


def api_markdown() -> str:
    trexec = importlib.import_module("trexec")
    private = sorted(
        (module for name, module in sys.modules.items() if name.startswith("trexec._")),
        key=lambda module: module.__name__,
    )
    sections: dict[str, list[tuple[bool, str]]] = {
        title: [] for title in [*AREAS.values(), ERRORS, OTHER]
    }
    for name in trexec.__all__:
        obj = getattr(trexec, name)
        if isinstance(obj, types.ModuleType):
            continue  # trexec.durable, .workflows, .telemetry have pages of their own
        title, listed = _section(name, obj, private)
        sections[title].append((not listed, name))  # names of an __all__ come first
    out = []
    for title, entries in sections.items():
        if entries:
            out.append(f"## {title}\n")
            out += [
                f"::: trexec.{name}\n    options:\n      heading_level: 3\n"
                for _, name in sorted(entries, key=lambda entry: entry[0])
            ]
    return "\n".join(out)


def _section(name: str, obj: object, private: list[types.ModuleType]) -> tuple[str, bool]:
    """The section ``name`` goes to, and whether a module's ``__all__`` lists it."""
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return ERRORS, True
    for module in private:
        if name in getattr(module, "__all__", ()):
            return _area(module), True
    code = getattr(obj, "__code__", None)  # a function not listed in an __all__
    for module in private:
        if code is not None and code.co_filename == getattr(module, "__file__", None):
            return _area(module), False
    return OTHER, False


def _area(module: types.ModuleType) -> str:
    match = re.search(r"§(\d+)", module.__doc__ or "")
    return AREAS.get(int(match.group(1)), OTHER) if match else OTHER
