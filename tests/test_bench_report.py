"""bench/report.py (spec §9.15, §9.16): reading the scripts' tables, writing the page."""
# ruff: noqa: RUF001  (benchmark tables print ratios with the multiplication sign)

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
assert _spec is not None and _spec.loader is not None
report = importlib.util.module_from_spec(_spec)
sys.modules["bench_report"] = report
_spec.loader.exec_module(report)

OUTPUT = """\
# Start + wait of 10,000 actions
warming up...

| implementation | actions/s | µs per action | ratio |
|---|---:|---:|---|
| trexec start_action + wait_all | 24,512 | 40.8 | 0.61× |
| bare trio | 40,100 | 24.9 | 1.00× |

## Latency
| measure | trexec | baseline (asyncio) | ratio |
|---|---|---|---|
| p50 | 1.2 ms | 0.8 ms | 1.5x |
| p99 | n/a | 3 ms | |

target: CPU use < 20% of one core -> met
"""


def test_output_splits_into_lines_and_tables_with_their_captions():
    parts = report.parse_output(OUTPUT)
    tables = [p for p in parts if isinstance(p, report.Table)]
    assert [t.caption for t in tables] == ["Start + wait of 10,000 actions", "Latency"]
    assert tables[0].header == ["implementation", "actions/s", "µs per action", "ratio"]
    assert tables[0].rows[1] == ["bare trio", "40,100", "24.9", "1.00×"]
    assert "# Start + wait of 10,000 actions" in parts


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("24,512", (24512.0, "")),
        ("1.2 ms", (1.2, "ms")),
        ("12µs", (12.0, "µs")),
        ("3.5k steps/s", (3500.0, "steps/s")),
        ("**7**", (7.0, "")),
        ("0.61×", None),
        ("1.5x", None),
        ("n/a", None),
        ("", None),
    ],
)
def test_number_reads_figures_and_refuses_ratios(cell, expected):
    assert report.number(cell) == expected


ALIGNED = """\
start + wait of 10,000 no-op actions, best of 5
                                     total s  µs/action  actions/s  vs trio
trexec start_action + wait_all        0.2414       24.1     41,425    1.73x
trio start_soon + memory channel      0.1393       13.9     71,765    1.00x
  pgqueuer        1 proc:      3009 jobs/s
target: CPU use < 20% of one core -> met
"""


def test_whitespace_aligned_tables_are_read_too():
    parts = report.parse_output(ALIGNED)
    (table,) = [p for p in parts if isinstance(p, report.Table)]
    assert table.caption == "start + wait of 10,000 no-op actions, best of 5"
    assert table.header == ["", "total s", "µs/action", "actions/s", "vs trio"]
    assert table.rows[0] == ["trexec start_action + wait_all", "0.2414", "24.1", "41,425", "1.73x"]
    assert report.figure_columns(table) == [1, 2, 3]
    # A progress line whose "header" holds a figure is not a table.
    assert "  pgqueuer        1 proc:      3009 jobs/s" in parts


def test_parameter_columns_label_rows_instead_of_being_plotted():
    (table,) = report.parse_output(
        "| peer | processes | jobs/s |\n|---|---:|---:|\n| pgqueuer | 4 | 3,301 |\n"
    )
    assert report.figure_columns(table) == [2]
    assert report.row_label(table, table.rows[0]) == "pgqueuer, processes 4"


def test_side_by_side_table_puts_trexec_and_peers_on_one_axis(tmp_path, monkeypatch):
    (tmp_path / "bench_durable.md").write_text(
        "| batch size | trexec steps/s | raw loop steps/s | ratio |\n|---|---|---|---|\n"
        "| 64 | 9,961 | 136,856 | 0.07 |\n"
    )
    (tmp_path / "bench_peers.md").write_text("| peer | steps/s |\n|---|---|\n| DBOS | 56 |\n")
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    table = report.comparison_table(["bench_durable", "bench_peers"], r"steps/s", "steps/s")
    assert table.rows == [
        ["trexec, batch size 64", "9,961"],
        ["raw loop, batch size 64", "136,856"],
        ["DBOS", "56"],
    ]
    # Without a baseline (or without trexec) there is nothing to compare.
    assert report.comparison_table(["bench_peers"], r"steps/s", "steps/s") is None


def test_targets_are_checked_against_the_figures_printed(tmp_path, monkeypatch):
    (tmp_path / "bench_actions.md").write_text(ALIGNED)
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    lines = report.targets_markdown()
    actions = next(line for line in lines if line.startswith("| actions"))
    assert actions.endswith("| 1.73 | <= 1.5 | **no** |")  # 24.1 / 13.9 µs
    assert "| not measured |" in next(line for line in lines if "pgqueuer" in line)


def test_printed_text_is_escaped_outside_code_spans():
    assert report.escape("usage: [--n 10000] `x[0]` <b>") == r"usage: \[--n 10000\] `x[0]` &lt;b>"
    assert report.escape("Usage:\n\n    run.py [--n N]") == "Usage:\n\n    run.py [--n N]"


def test_ratio_and_text_columns_are_not_plotted():
    first, second = [p for p in report.parse_output(OUTPUT) if isinstance(p, report.Table)]
    assert report.figure_columns(first) == [1, 2]
    assert report.figure_columns(second) == [1, 2]


def test_report_lists_measured_failed_and_unmeasured_scripts(tmp_path, monkeypatch):
    bench = tmp_path / "bench"
    (bench / "results").mkdir(parents=True)
    for name, doc in [("bench_a", "Actions: start and wait."), ("bench_b", "B."), ("bench_c", "")]:
        (bench / f"{name}.py").write_text(f'"""{doc}"""\n')
    (bench / "results" / "bench_a.md").write_text(OUTPUT)
    (bench / "results" / "a.json").write_text('{"actions_per_s": 24512}')
    monkeypatch.setattr(report, "BENCH", bench)
    monkeypatch.setattr(report, "RESULTS", bench / "results")
    monkeypatch.setattr(report, "IMAGES", tmp_path / "img")
    monkeypatch.setattr(report, "_plot_or_note", lambda *args: False)  # no matplotlib here

    page = report.write_report(failed=["bench_b.py"])

    assert "## Actions: start and wait" in page
    assert "| trexec start_action + wait_all | 24,512 | 40.8 | 0.61× |" in page
    assert "### Start + wait of 10,000 actions" in page  # the script's heading, demoted
    assert '??? note "Raw figures (bench/results/a.json)"' in page
    assert '!!! failure "bench_b.py failed in this run"' in page
    assert "- `bench/bench_c.py`" in page.split("## Not measured yet")[1]
    assert "- `bench_a.py`: target: CPU use &lt; 20% of one core -> met" in page
    for key in ("CPU", "Python", "SQLite", "PostgreSQL", "Report written"):
        assert f"| {key} |" in page
