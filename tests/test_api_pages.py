"""Each public package's API page lists exactly its public names (spec §9.13):
adding or removing a name without its docs entry fails here."""

from __future__ import annotations

import importlib
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"

#: Package -> its API page, whose ``::: package`` block lists ``members:``.
PAGES = {
    "trexec.durable": "durable.md",
    "trexec.workflows": "workflows.md",
    "trexec.telemetry": "telemetry.md",
}


def listed_members(page: str, package: str) -> list[str]:
    text = (API / page).read_text()
    block = text.split(f"::: {package}\n", 1)[1]
    members = re.search(r"\n\s+members:\n((?:\s+- \w+\n)+)", block)
    assert members, f"docs/api/{page}: the ::: {package} block lists no members"
    return re.findall(r"- (\w+)", members.group(1))


@pytest.mark.parametrize("package", sorted(PAGES))
def test_the_api_page_lists_every_public_name_once(package):
    module = importlib.import_module(package)
    listed = listed_members(PAGES[package], package)
    assert len(listed) == len(set(listed)), f"docs/api/{PAGES[package]} repeats a name"
    missing = sorted(set(module.__all__) - set(listed))
    extra = sorted(set(listed) - set(module.__all__))
    assert not missing, f"public in {package} but not on docs/api/{PAGES[package]}: {missing}"
    assert not extra, f"on docs/api/{PAGES[package]} but not public in {package}: {extra}"


def test_the_trexec_page_lists_every_public_name():
    """``trexec``'s page is built by a hook from ``trexec.__all__`` (grouped by area)."""
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import api_sections
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))
    import trexec

    assert "<!-- api: trexec -->" in (API / "trexec.md").read_text()
    rendered = api_sections.api_markdown()
    for name in trexec.__all__:
        if not isinstance(getattr(trexec, name), type(trexec)):  # subpackages have pages
            assert f"::: trexec.{name}\n" in rendered, f"trexec.{name} is missing from the API page"
