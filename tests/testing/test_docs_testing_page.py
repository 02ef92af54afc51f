"""The pytest example of docs/testing.md runs as a foreign project would run it:
its own directory, no trexec conftest, the fixture found through the plugin's
``pytest11`` entry point."""

from __future__ import annotations

import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
from test_docs_examples import ROOT, parse_blocks


def test_the_fixture_example_passes_under_pytest(tmp_path: pathlib.Path) -> None:
    (block,) = [
        b for b in parse_blocks(ROOT / "docs" / "testing.md") if "trexec_engine_factory" in b.code
    ]
    (tmp_path / "test_example.py").write_text(block.code)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
