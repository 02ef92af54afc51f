"""mkdocs hook: turn the Sphinx roles of trexec's docstrings into links (spec §9.13).

trexec's docstrings are written for Python's ``help()`` and for Sphinx
(``:class:`~trexec.Action```); mkdocstrings renders their Markdown, which shows
such a role as ``:class:<code>~trexec.Action</code>``. This hook, run on the
rendered API pages, replaces each role by a cross-reference that mkdocs-autorefs
resolves to the object's entry (or leaves as code if the object has no page, such
as ``trio.Nursery``), and drops the ``::`` that introduces a literal block.
"""

from __future__ import annotations

import html
import re
from typing import Any

_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|exc|data|mod|obj|const):"
    r"<code>(?P<tilde>~?)(?P<target>[\w.]+?)(?P<call>\(\))?</code>"
)
_LITERAL_INTRO = re.compile(r"(?<=\w)::(?=</p>)")

# The module an unqualified name belongs to, by API page.
_MODULES = {
    "api/durable.md": "trexec.durable",
    "api/workflows.md": "trexec.workflows",
    "api/telemetry.md": "trexec.telemetry",
}


def on_page_content(html_text: str, page: Any, **kwargs: Any) -> str:
    src = page.file.src_uri
    if not src.startswith("api/"):
        return html_text
    module = _MODULES.get(src, "trexec")

    def link(match: re.Match[str]) -> str:
        target = match["target"].lstrip(".")
        identifier = target if target.startswith(("trexec", "trio", "outcome")) else None
        if identifier is None:
            identifier = f"{module}.{target}"
        title = target.rsplit(".", 1)[-1] if match["tilde"] else target
        title = html.escape(title + (match["call"] or ""))
        ref = html.escape(identifier)
        return f'<autoref identifier="{ref}" optional><code>{title}</code></autoref>'

    html_text = _ROLE.sub(link, html_text)
    return _LITERAL_INTRO.sub(":", html_text)
