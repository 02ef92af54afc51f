"""bench/bench_stateful.py runs and prints the Markdown table bench/report.py reads."""

from __future__ import annotations

import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "bench_stateful.py"


def test_the_stateful_bench_prints_its_table():
    args = [sys.executable, str(BENCH), "--examples", "2", "--steps", "3", "--repeat", "1"]
    proc = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)
    lines = proc.stdout.splitlines()
    header = "| rules | trexec rules/s | RuleBasedStateMachine rules/s | ratio | ratio (CPU time) |"
    rows = lines[lines.index(header) + 2 :][:3]
    assert [row.split("|")[1].strip() for row in rows] == [
        "async rules",
        "async rules, MockClock",
        "sync rules on the loop",
    ]
