"""The built-site link checker (``tests/site_links.py``, run by ``nox -s docs`` on
the real site; spec §9.13): here on a small site written by hand."""

from __future__ import annotations

import pathlib
import re

from site_links import broken_links, main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_file_links_resolve_and_directory_links_do_not(tmp_path: pathlib.Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="cli.html#ls">x</a><a href="api/trexec.html">y</a><a href="#top">z</a>'
        '<a href="https://example.org/">e</a><img src="img/missing.png"><a href="api/">d</a>'
    )
    (tmp_path / "cli.html").write_text('<a href="index.html">home</a>')
    (tmp_path / "api" / "trexec.html").write_text('<a href="../cli.html">cli</a>')
    assert broken_links(tmp_path) == ["index.html: img/missing.png", "index.html: api/"]
    assert main(["site_links", str(tmp_path)]) == 1
    (tmp_path / "index.html").write_text('<a href="cli.html">x</a>')
    assert main(["site_links", str(tmp_path)]) == 0


def test_the_site_is_built_for_browsing_from_disk() -> None:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^use_directory_urls: false$", text, re.MULTILINE)
