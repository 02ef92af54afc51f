"""Check that a built documentation site browses from disk: every relative link
(``href``/``src``) of every HTML page names a file that exists (spec §9.13).

``nox -s docs`` runs it on ``site/`` after ``mkdocs build``:
``python tests/site_links.py site``. ``tests/test_site_links.py`` tests the checker.
"""

from __future__ import annotations

import html.parser
import pathlib
import sys
import urllib.parse


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def broken_links(site: pathlib.Path) -> list[str]:
    """``page: link`` for each relative link that names no file of ``site`` (a link
    to a directory counts as broken: from disk a browser shows no index.html)."""
    broken = []
    for page in sorted(site.rglob("*.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for link in parser.links:
            parts = urllib.parse.urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("#", "/")):
                continue  # external, same-page anchor, or absolute: not a file link
            target = (page.parent / urllib.parse.unquote(parts.path)).resolve()
            if parts.path and not target.is_file():
                broken.append(f"{page.relative_to(site)}: {link}")
    return broken


def main(argv: list[str]) -> int:
    site = pathlib.Path(argv[1] if len(argv) > 1 else "site")
    if not (site / "index.html").is_file():
        print(f"{site}/index.html does not exist: run `mkdocs build` first", file=sys.stderr)
        return 1
    broken = broken_links(site)
    for line in broken:
        print(f"broken link: {line}", file=sys.stderr)
    pages = len(list(site.rglob("*.html")))
    print(f"{pages} pages, {len(broken)} broken links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
