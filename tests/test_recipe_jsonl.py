"""The recipe docs/recipes/record_run_jsonl.py: records a run, prints its timeline.

The recipe's sleeps are set to 0 (step=0): no MockClock needed, no real sleeps."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys
from types import ModuleType

import trexec

RECIPE = pathlib.Path(__file__).parent.parent / "docs" / "recipes" / "record_run_jsonl.py"


def load_recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recipe_record_run_jsonl", RECIPE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs classes need their module registered
    spec.loader.exec_module(module)
    return module


async def test_recipe_records_a_completed_run_and_prints_its_timeline(tmp_path):
    recipe = load_recipe()
    path = tmp_path / "run.jsonl"
    lines = await recipe.main(path, step=0)
    labels = [line.split()[1] for line in lines[1:]]
    assert labels == ["started", "reserved", "charged", "shipped", "completed"]
    assert lines[-1].endswith("{'order': 'ok'}")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[1]["event"] == {"type": "Reserved", "sku": "tea", "quantity": 2}


async def test_recipe_records_a_failed_run(tmp_path):
    recipe = load_recipe()
    path = tmp_path / "run.jsonl"
    outcome = await recipe.record(path, fail=True, step=0)
    assert outcome == trexec.RunFailed(["card declined"])
    run_id = json.loads(path.read_text().splitlines()[0])["run_id"]
    lines = recipe.timeline(path, run_id)
    assert [line.split()[1] for line in lines[1:]] == ["started", "reserved", "failed"]


def test_recipe_runs_as_a_script_and_appends_runs_to_one_file(tmp_path):
    for args in ([], ["--fail"]):
        proc = subprocess.run(
            [sys.executable, str(RECIPE), "shared.jsonl", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        assert proc.stdout.startswith("run ")
    kinds = [
        json.loads(line)["kind"] for line in (tmp_path / "shared.jsonl").read_text().splitlines()
    ]
    assert kinds.count("started") == 2
    assert kinds.count("outcome") == 2
