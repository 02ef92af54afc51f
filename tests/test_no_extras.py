"""trexec in a fresh venv without extras (issue 16): whatever needs an extra says
so in one line naming it, exits 1, and shows no traceback (spec §0.4)."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ["trio", "trio-util", "attrs", "cattrs", "outcome", "click", "rich"]  # pyproject's
PG = "postgresql://x@127.0.0.1/db"

pytestmark = pytest.mark.slow  # builds a venv (pip's cache makes it ~15 s)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with trexec's core dependencies only (trexec itself from src/)."""
    where = tmp_path_factory.mktemp("bare-venv")
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *CORE],
        check=True,
        capture_output=True,
    )
    missing = "import importlib.util as u; assert not any(map(u.find_spec, {}))"
    subprocess.run([python, "-c", missing.format(["httpx", "hypercorn", "psycopg"])], check=True)
    return python


def run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


CLI = ["-c", "from trexec._cli import main; main()"]
DEMO_HINT = "Error: trexec demo needs the demo extra: pip install 'trexec[demo]'\n"
PG_HINT = "Error: a postgresql:// store needs the postgres extra: pip install 'trexec[postgres]'\n"


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["demo"], DEMO_HINT),
        (["demo", "--store", PG], DEMO_HINT),
        (["ls", "--store", PG], PG_HINT),
        (["migrate", "--store", PG], PG_HINT),
        (["worker", "--import", "json", "--store", PG], "Error: ValueError: no durable."),
    ],
)
def test_a_command_needing_an_extra_says_which_in_one_line(bare_python, tmp_path, args, stderr):
    result = run(bare_python, tmp_path, *CLI, *args)
    assert result.returncode == 1
    assert result.stderr.startswith(stderr) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_library_and_the_http_recipes_name_their_extra(bare_python, tmp_path):
    code = (
        "import trio, trexec\nfrom trexec import durable, workflows\n"
        "async def main():\n"
        f"    async with durable.open_store({PG!r}): pass\n"
        "try:\n    trio.run(main)\n"
        "except trexec.MissingExtra as exc:\n    print(exc)\n"
    )
    result = run(bare_python, tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == PG_HINT.removeprefix("Error: ")
    for recipe in sorted((ROOT / "docs" / "recipes").glob("http_*.py")):
        result = run(bare_python, tmp_path, str(recipe), "http://127.0.0.1:1")
        assert result.returncode == 1
        assert result.stderr == "this recipe needs the http extra: pip install 'trexec[http]'\n"
