"""mkdocs hook: pages whose content is gathered from files at build time (spec §9.14).

Two markers, each alone on a line, are replaced before Markdown is rendered:

``<!-- recipes -->``
    one section per ``docs/recipes/*.py``: the title and text of its module
    docstring, a download link, and the file itself embedded with
    ``pymdownx.snippets`` (so the page always shows the file the tests run).
``<!-- changelog.d -->``
    the unreleased fragments under ``changelog.d/``, merged by their
    keep-a-changelog heading (``### Added``, ``### Fixed``...).

The site lists whatever files exist when it is built, so adding a recipe or a
fragment needs no edit here.
"""

from __future__ import annotations

import ast
import pathlib
import re
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPES = ROOT / "docs" / "recipes"
FRAGMENTS = ROOT / "changelog.d"

RECIPES_MARKER = "<!-- recipes -->"
CHANGELOG_MARKER = "<!-- changelog.d -->"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if RECIPES_MARKER in markdown:
        markdown = markdown.replace(RECIPES_MARKER, recipes_markdown())
    if CHANGELOG_MARKER in markdown:
        markdown = markdown.replace(CHANGELOG_MARKER, fragments_markdown())
    return markdown


def recipes_markdown() -> str:
    files = sorted(p for p in RECIPES.glob("*.py") if not p.name.startswith("_"))
    if not files:
        return "*No recipe has been written yet.*\n"
    sections = []
    for path in files:
        title, text = _docstring_parts(path)
        rel = path.relative_to(ROOT).as_posix()
        sections.append(
            f"## {title}\n\n{text}\n\n"
            f"[Download `{path.name}`]({path.name}) (`{rel}` in the repository)\n\n"
            f'```python title="{path.name}"\n--8<-- "{rel}"\n```\n'
        )
    return "\n".join(sections)


def _docstring_parts(path: pathlib.Path) -> tuple[str, str]:
    """(title, rest) of the module docstring; the file name when there is none."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    doc = _SPHINX_ROLE.sub(r"\1", doc)
    first, _, rest = doc.strip().partition("\n")
    title = re.sub(r"^recipe:\s*", "", first.strip().rstrip("."), flags=re.IGNORECASE)
    title = title[:1].upper() + title[1:]
    return title or path.stem.replace("_", " ").capitalize(), rest.strip()


_SPHINX_ROLE = re.compile(r":[a-z]+:(`[^`]+`)")


_HEADING = re.compile(r"^###\s+(.+?)\s*$")


def fragments_markdown() -> str:
    sections: dict[str, list[str]] = {}
    for path in sorted(FRAGMENTS.glob("*.md")):
        heading = "Added"
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _HEADING.match(line)
            if match:
                heading = match.group(1)
            elif line.strip():
                # A fragment written as a plain sentence still shows, as a bullet.
                is_item = line.startswith(("-", "*", " ", "\t"))
                sections.setdefault(heading, []).append(line if is_item else f"- {line}")
    if not sections:
        return "*No unreleased change.*\n"
    return "\n".join(
        f"### {heading}\n\n" + "\n".join(lines) + "\n" for heading, lines in sections.items()
    )
