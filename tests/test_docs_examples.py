"""Every Python example in the documentation runs (spec §9.10-§9.12).

The convention, for everyone writing a page under ``docs/`` (and README.md):

* Every fenced block whose language is ``python`` or ``py`` is executed.
  Blocks of one page run in order, in one namespace (``__name__ ==
  "__main__"``), so a later block may use what an earlier one defined.
* Every block is a runnable program, as a reader would paste it into a file:
  a block that awaits calls ``trio.run`` itself. A top-level ``await`` or
  ``async with`` (which a script cannot run) fails the page at its line.
* A block that must not run starts with ``# not-run: <why>`` on its first line.
  It shows up as a skipped test with that reason: nothing is skipped silently.
* A page runs in a fresh subprocess, in an empty temporary directory (SQLite
  files land there), with a time limit. A failure names the page and the line.

Other fences (``console``, ``text``, ``sql``, ``pycon``...) are not run.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import attrs
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE_TIMEOUT = 120.0  # seconds for a whole page; only a hung example comes near it

RUN_LANGUAGES = {"python", "py"}  # spec §9.10: every other fence is not run
NOT_RUN = re.compile(r"#\s*not-run\b:?\s*(?P<reason>.*)$")
_OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")


@attrs.frozen
class Block:
    """One fenced Python block: where it is, its code, and why it is not run (if so)."""

    page: pathlib.Path
    line: int  # 1-based line number of the block's first code line in the page
    code: str
    not_run_reason: str | None

    @property
    def where(self) -> str:
        return f"{_page_id(self.page)}:{self.line}"


def _page_id(page: pathlib.Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else str(page)


def parse_blocks(page: pathlib.Path, text: str | None = None) -> list[Block]:
    """The ``python``/``py`` fenced blocks of a Markdown page, in page order."""
    if text is None:
        text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        opening = _OPENING.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].split(" ", 1)[0].strip("{}.").lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        if language in RUN_LANGUAGES:
            code = textwrap.dedent("\n".join(body)) + "\n"
            first = body[0].strip() if body else ""
            marker = NOT_RUN.match(first)
            reason = marker["reason"].strip() if marker else None
            blocks.append(Block(page, i + 2, code, reason))
        i = j + 1
    return blocks


def documentation_pages() -> list[pathlib.Path]:
    pages = sorted((ROOT / "docs").rglob("*.md"))
    return [ROOT / "README.md", *pages]


def run_page(page: pathlib.Path) -> None:
    """Run a page's blocks in order in one namespace (this runs in the subprocess)."""
    namespace: dict[str, object] = {"__name__": "__main__"}  # spec §9.11: one per page
    for number, block in enumerate(parse_blocks(page), start=1):
        if block.not_run_reason is not None:
            continue
        print(f"--- block {number} at {block.where}", flush=True)
        # spec §9.12: pad with blank lines so tracebacks give the line in the page.
        source = "\n" * (block.line - 1) + block.code
        # spec §9.11: compiled as a script is: a top-level await is a SyntaxError.
        code = compile(source, str(page), "exec")
        started = time.perf_counter()
        exec(code, namespace)
        print(f"--- block {number} ran in {time.perf_counter() - started:.2f} s", flush=True)


# Pages whose examples do not run yet, each with the reason: they are reported as
# XFAIL with that reason (never skipped silently), and as XPASS once they run.
# Fix the page (make the block run, or mark it `# not-run: <why>`), then remove it here.
KNOWN_FAILING: dict[str, str] = {}

PAGES = documentation_pages()
SKIPPED = [b for page in PAGES for b in parse_blocks(page) if b.not_run_reason is not None]


def _marks(page: pathlib.Path) -> list[pytest.MarkDecorator]:
    marks = []
    if _page_id(page) in KNOWN_FAILING:
        marks.append(pytest.mark.xfail(reason=KNOWN_FAILING[_page_id(page)], strict=False))
    if any("postgresql://" in b.code for b in parse_blocks(page) if b.not_run_reason is None):
        marks.append(pytest.mark.postgres)  # `-m "not postgres"` leaves it out
    return marks


RUN_PAGES = [p for p in PAGES if any(b.not_run_reason is None for b in parse_blocks(p))]


@functools.cache
def _isolated(page: pathlib.Path) -> bool:
    """A page that may run beside another: its own directory is all it touches
    (no PostgreSQL database, no network port)."""
    code = "".join(b.code for b in parse_blocks(page) if b.not_run_reason is None)
    return "postgresql://" not in code and not re.search(r"\b(port|serve|listen)\b", code)


#: Pages started ahead of their test (spec §9.11: each in a fresh process and an
#: empty directory), so that two isolated pages run at once on a 2-core machine.
_STARTED: dict[pathlib.Path, subprocess.Popen[str]] = {}


def _start(page: pathlib.Path, cwd: pathlib.Path) -> subprocess.Popen[str]:
    if page not in _STARTED:
        # spec §9.11: a fresh process, an empty directory, no TREXEC_* setting.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TREXEC_")}
        _STARTED[page] = subprocess.Popen(
            [sys.executable, __file__, str(page)],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    return _STARTED[page]


@pytest.fixture(scope="module", autouse=True)
def _no_page_left_running() -> Iterator[None]:
    yield
    for proc in _STARTED.values():
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize(
    "page", [pytest.param(p, marks=_marks(p)) for p in RUN_PAGES], ids=_page_id
)
def test_page_examples_run(
    page: pathlib.Path,
    tmp_path: pathlib.Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    proc = _start(page, tmp_path)
    # Two pages at a time: later isolated pages of this session start while this
    # one runs (they share nothing with it, nor with each other).
    selected = [
        item.callspec.params["page"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_page_examples_run"
    ]
    for later in selected[selected.index(page) + 1 :]:
        if sum(p.poll() is None for p in _STARTED.values()) >= 2:
            break
        if later not in _STARTED and _isolated(later):
            _start(later, tmp_path_factory.mktemp("page"))
    try:
        stdout, stderr = proc.communicate(timeout=PAGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
        pytest.fail(f"{_page_id(page)}: still running after {PAGE_TIMEOUT} s\n{stdout[-3000:]}")
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if proc.returncode != 0:
        pytest.fail(
            f"{_page_id(page)}: an example failed (the last '--- block' line names it)\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}",
            pytrace=False,
        )


if SKIPPED:  # one visible skip per block marked not-run, with its reason

    @pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.where)
    def test_not_run_block_says_why(block: Block) -> None:
        assert block.not_run_reason, f"{block.where}: '# not-run:' needs a reason"  # §9.10
        pytest.skip(f"{block.where}: not run: {block.not_run_reason}")


RECIPES = sorted(p for p in (ROOT / "docs" / "recipes").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_is_run_by_a_test(recipe: pathlib.Path) -> None:
    # spec §9.14: the recipes page shows these files; each one's own test runs it
    # (they need a server or arguments, so they are not run here).
    tests = [p for p in (ROOT / "tests").rglob("*.py") if p.resolve() != pathlib.Path(__file__)]
    assert any(recipe.stem in p.read_text(encoding="utf-8") for p in tests), (
        f"docs/recipes/{recipe.name} is not run by any test: add one"
    )


# --- the harness itself --------------------------------------------------------

SAMPLE = """\
Text.

```python
x = 1
```

```console
$ not python
```

- In a list:

    ```py title="t.py"
    y = x + 1
    ```

````python
# not-run: shows a fragment
```nested```
````
"""


def test_parser_finds_python_blocks_with_page_line_numbers() -> None:
    blocks = parse_blocks(ROOT / "sample.md", SAMPLE)
    assert [(b.line, b.code, b.not_run_reason) for b in blocks] == [
        (4, "x = 1\n", None),
        (14, "y = x + 1\n", None),
        (18, "# not-run: shows a fragment\n```nested```\n", "shows a fragment"),
    ]


def test_failing_example_reports_its_page_line(tmp_path: pathlib.Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nvalue = 41\n```\n\n```python\nassert value == 42\n```\n")
    proc = subprocess.run(
        [sys.executable, __file__, str(page)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert f'File "{page}", line 6' in proc.stderr


@pytest.mark.parametrize(
    "block", ["await trio.sleep(0)", "async with trio.open_nursery():\n    pass"]
)
def test_a_top_level_await_fails_its_page_at_its_line(tmp_path: pathlib.Path, block: str) -> None:
    # spec §9.11: every example is a program a reader can run as a script.
    page = tmp_path / "page.md"
    page.write_text(f"Text.\n\n```python\nimport trio\n{block}\n```\n")
    proc = subprocess.run(
        [sys.executable, __file__, str(page)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert f'File "{page}", line 5' in proc.stderr and "SyntaxError" in proc.stderr


def test_every_runnable_example_compiles_as_a_script() -> None:
    # The whole docs at once, fast: no page relies on a top-level await.
    for page in PAGES:
        for block in parse_blocks(page):
            if block.not_run_reason is None:
                source = "\n" * (block.line - 1) + block.code
                compile(source, str(page), "exec")  # raises SyntaxError naming the line


if __name__ == "__main__":
    run_page(pathlib.Path(sys.argv[1]).resolve())
