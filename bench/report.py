"""Collect the benchmark tables into docs/benchmarks.md and plot them under docs/img/.

Run by ``nox -s bench`` after every ``bench/bench_*.py`` (spec §9.15, §9.16). The
convention a benchmark script follows:

* it prints its results to stdout as Markdown pipe tables (first column: what
  was measured; then one column per figure; ratio columns are headed ``ratio``
  or ``\u00d7``), with any ``#`` heading or sentence it likes around them; the bench
  session keeps that stdout in ``bench/results/<script>.md``;
* it may also write ``bench/results/<name>.json`` (any shape) with the raw
  figures: the report shows it under the script whose name ends with ``<name>``;
* the first line of its module docstring is the title of its section.

Every table becomes a figure. When a figure column's header names trexec, ours
or a baseline, the columns are implementations: one panel per row, one bar per
column. Otherwise the columns are measures: one panel per column, one bar per
row (per implementation). Ratio columns are not plotted. Bars whose
label names trexec are coloured, baselines are grey, and each figure says which
machine measured it and when. Usage: ``python bench/report.py [--failed NAME]...``
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import pathlib
import platform
import re
import sqlite3

import attrs

BENCH = pathlib.Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PAGE = ROOT / "docs" / "benchmarks.md"
IMAGES = ROOT / "docs" / "img"
PG_URL = os.environ.get("TREXEC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")

_RATIO_HEADER = re.compile(r"ratio|\u00d7|\bvs\.?\b|speed-?up|\bx\b|\s/\s", re.IGNORECASE)
_NUMBER = re.compile(r"^[~≈<>]?\s*(-?\d+(?:\.\d+)?)\s*(?:(k|M)\b)?\s*(?P<unit>[^\d\s].*)?$")
_SEPARATOR = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


@attrs.frozen
class Table:
    caption: str
    header: list[str]
    rows: list[list[str]]


# --- the machine ---------------------------------------------------------------


def machine() -> dict[str, str]:
    """What measured the figures: CPU, memory, OS, Python and database versions."""
    cpu = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(pathlib.Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    import trio

    return {
        "CPU": f"{os.cpu_count()} cores ({cpu}){memory}",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Trio": trio.__version__,
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": _postgres_version(),
        "Report written": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _postgres_version() -> str:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"{row[0] if row else '?'} (127.0.0.1, default settings)"
    except Exception as exc:  # the report still describes everything else
        return f"not reachable ({type(exc).__name__})"


# --- reading what the scripts printed -------------------------------------------


def parse_output(text: str) -> list[str | Table]:
    """Split a script's stdout into lines and tables, in order.

    Tables are Markdown pipe tables, or plain tables whose columns are aligned
    with two spaces or more under a header line that holds no figure.
    """
    parts: list[str | Table] = []
    lines = [line.rstrip() for line in text.splitlines()]
    caption = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        is_table = line.lstrip().startswith("|") and i + 1 < len(lines)
        if is_table and _SEPARATOR.match(lines[i + 1].strip()):
            header = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            parts.append(Table(caption, header, rows))
            continue
        aligned = _aligned_table(lines, i)
        if aligned is not None:
            header, rows = aligned
            parts.append(Table(caption, header, rows))
            i += 1 + len(rows)
            continue
        if line.startswith("#") or (line.strip() and not caption):
            caption = line.lstrip("#").strip()  # the last heading, else the first line
        parts.append(line)
        i += 1
    return parts


_TARGET = re.compile(r"^\W*targets?\b", re.IGNORECASE)
_COLUMN_GAP = re.compile(r"\s{2,}")


def _aligned_table(lines: list[str], start: int) -> tuple[list[str], list[list[str]]] | None:
    """A whitespace-aligned table starting at ``lines[start]``, or None."""
    header = _COLUMN_GAP.split(lines[start].strip())
    if len(header) < 2 or any(number(cell) is not None for cell in header):
        return None
    rows = []
    for line in lines[start + 1 :]:
        cells = _COLUMN_GAP.split(line.strip())
        if len(cells) < 2 or not any(number(cell) is not None for cell in cells[1:]):
            break
        if rows and len(cells) != len(rows[0]):
            break
        rows.append(cells)
    if not rows:
        return None
    width = len(rows[0])
    if len(header) == width - 1 and lines[start][:1].isspace():
        header = ["", *header]  # the first column (what was measured) has no heading
    return (header, rows) if len(header) == width else None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def number(cell: str) -> tuple[float, str] | None:
    """``"12,345 steps/s"`` -> ``(12345.0, "steps/s")``; None if not a figure."""
    cleaned = cell.replace("*", "").replace(",", "").replace("\u202f", "").strip()
    match = _NUMBER.match(cleaned)
    if match is None:
        return None
    value = float(match.group(1)) * {"k": 1e3, "M": 1e6}.get(match.group(2) or "", 1)
    unit = (match.group("unit") or "").strip()
    if unit.endswith(("\u00d7", "x")) and len(unit) <= 1:
        return None  # a ratio
    return value, unit


def figure_columns(table: Table) -> list[int]:
    """Columns (after the first) holding figures: mostly numbers, not ratios nor
    parameters of the run (processes, workers, batch size...)."""
    columns = []
    for col in range(1, len(table.header)):
        if _RATIO_HEADER.search(table.header[col]) or col in parameter_columns(table):
            continue
        cells = [row[col] for row in table.rows if col < len(row) and row[col]]
        numeric = [c for c in cells if number(c) is not None]
        if cells and len(numeric) * 2 >= len(cells):
            columns.append(col)
    return columns


_PARAMETER_HEADER = re.compile(
    r"^(processes|procs?|workers|clients|batch( size)?|n|count|size|instances|jobs|rows)$",
    re.IGNORECASE,
)


def parameter_columns(table: Table) -> list[int]:
    """Columns (after the first) that say how a row was run, not what it measured."""
    return [
        col
        for col in range(1, len(table.header))
        if _PARAMETER_HEADER.match(table.header[col].strip())
    ]


def row_label(table: Table, row: list[str]) -> str:
    """The first cell, with the row's parameters: ``pgqueuer, processes 4``."""
    extra = [f"{table.header[c]} {row[c]}" for c in parameter_columns(table) if c < len(row)]
    return ", ".join([row[0], *extra])


# --- plots ----------------------------------------------------------------------


def _is_ours(label: str) -> bool:
    return bool(re.search(r"trexec|\bours\b", label, re.IGNORECASE))


def plot(table: Table, title: str, footer: str, path: pathlib.Path) -> bool:
    """Draw ``table`` to ``path``; False if it holds nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    columns = figure_columns(table)
    rows = [row for row in table.rows if row and any(c < len(row) for c in columns)]
    if not columns or not rows:
        return False
    if any(re.search(r"trexec|\bours\b|baseline", table.header[c], re.I) for c in columns):
        # Columns are implementations: one panel per measured thing (row).
        first = table.header[0].strip()
        panels = [
            (
                f"{first} {row_label(table, row)}"
                if first and number(row[0]) is not None  # "processes 4", not "metric CPU use"
                else row_label(table, row),
                [(table.header[c], row[c]) for c in columns if c < len(row)],
            )
            for row in rows[:12]
        ]
    else:  # columns are measures: one panel per column, one bar per row
        panels = [
            (table.header[c], [(row_label(table, row), row[c]) for row in rows if c < len(row)])
            for c in columns[:6]
        ]
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    width = max(9.0, 5.2 * ncols)
    panel_height = max(2.9, 0.8 + 0.32 * max(len(bars) for _, bars in panels))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, 0.6 + panel_height * nrows), squeeze=False
    )
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (name, bars) in zip(axes.flat, panels, strict=False):
        values = [(label, number(cell)) for label, cell in bars]
        values = [(label, parsed) for label, parsed in values if parsed is not None]
        if not values:
            ax.set_visible(False)
            continue
        labels = [label for label, _ in values]
        heights = [parsed[0] for _, parsed in values]
        unit = next((parsed[1] for _, parsed in values if parsed[1]), "")
        # spec §9.16: trexec coloured, baselines grey, the machine in the caption.
        colours = ["#3f51b5" if _is_ours(label) else "#9e9e9e" for label in labels]
        ax.barh(range(len(values)), heights, color=colours)
        ax.set_yticks(range(len(values)), [_wrap(label) for label in labels], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(_wrap(name, 50), fontsize=9)
        log = min(heights) > 0 and max(heights) / min(heights) > 200
        if log:  # a 1,000x spread would leave the small bars invisible
            ax.set_xscale("log")
        ax.set_xlabel(f"{unit} (log scale)" if log else unit, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        if not log:
            ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _compact(value)))
        for y, height in enumerate(heights):
            ax.annotate(
                _figure(height),
                (height, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
        ax.margins(x=0.18)
    fig.suptitle(_wrap(title, int(width * 10)), fontsize=11)
    fig.text(0.01, 0.005, footer, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _compact(value: float) -> str:
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _wrap(text: str, width: int = 28) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text.replace("`", ""), width)) or text


# --- side-by-side figures across scripts -----------------------------------------

# trexec and its peers are measured by different scripts (the peers are asyncio
# libraries); these figures put their figures on one axis.
COMPARISONS = [
    (
        "Durable no-op steps/s on SQLite: trexec and DBOS",
        ["bench_durable", "bench_peers_sqlite"],
        r"(steps|jobs)/s",
        "steps/s (higher is better)",
    ),
    (
        "Durable no-op steps/s on PostgreSQL: trexec, pgqueuer, procrastinate",
        ["bench_durable_pg", "bench_peers_pg"],
        r"(steps|jobs)/s|ceiling",
        "steps/s (higher is better)",
    ),
]


def comparison_table(stems: list[str], unit: str, axis: str) -> Table | None:
    """One table of every figure whose column header matches ``unit`` in the
    tables the ``stems`` scripts printed; None unless trexec and a baseline are in it."""
    found: list[tuple[str, str, str]] = []  # (how it was run, what, figure)
    for stem in stems:
        captured = RESULTS / f"{stem}.md"
        if not captured.exists():
            continue
        for table in (p for p in parse_output(captured.read_text("utf-8")) if isinstance(p, Table)):
            for col in figure_columns(table):
                if not re.search(unit, table.header[col], re.IGNORECASE):
                    continue
                implementation = re.sub(unit, "", table.header[col], flags=re.IGNORECASE).strip()
                for row in table.rows:
                    if col >= len(row) or number(row[col]) is None:
                        continue
                    run = [f"{table.header[c]} {row[c]}" for c in parameter_columns(table)]
                    name = row[0]
                    if number(row[0]) is not None:  # the first column is a parameter too
                        run.insert(0, f"{table.header[0].strip()} {row[0]}".strip())
                        name = ""
                    what = ", ".join(filter(None, [implementation, name, *run]))
                    found.append((", ".join(run), what, row[col]))
    # Rows run the same way sit together (processes 1: trexec, raw, peers; ...).
    found.sort(key=lambda entry: (entry[0] == "", _natural(entry[0])))
    rows = [[what, figure] for _, what, figure in found]
    ours = [row for row in rows if _is_ours(row[0])]
    if not ours or len(ours) == len(rows):
        return None
    return Table("", ["", axis], rows)


def _natural(text: str) -> list[object]:
    """Sort key putting "processes 4" before "processes 16"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# --- the performance targets ----------------------------------------------------------


def lookup(stem: str, row: str, column: str) -> float | None:
    """The figure in ``stem``'s output at the first row whose label matches ``row``
    and the first column whose header matches ``column`` (regular expressions)."""
    captured = RESULTS / f"{stem}.md"
    if not captured.exists():
        return None
    for table in (p for p in parse_output(captured.read_text("utf-8")) if isinstance(p, Table)):
        cols = [c for c in range(1, len(table.header)) if re.search(column, table.header[c])]
        for cells in table.rows:
            if cols and cols[0] < len(cells) and re.search(row, row_label(table, cells)):
                parsed = number(cells[cols[0]])
                return parsed[0] if parsed else None
    return None


def lookup_text(stem: str, pattern: str) -> float | None:
    """The first group of ``pattern`` in ``stem``'s output, as a number."""
    captured = RESULTS / f"{stem}.md"
    match = re.search(pattern, captured.read_text("utf-8")) if captured.exists() else None
    return float(match.group(1)) if match else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets() -> list[tuple[str, float | None, str, float]]:
    """(target, measured, comparison, bound) for each performance target."""
    pg4 = lookup("bench_durable_pg", r"^4$", r"trexec")
    sqlite = lookup("bench_durable", r"^(?!1$)\d+$", r"trexec")
    return [
        ("actions start+wait, trexec / bare Trio (µs per action)",
         _ratio(lookup("bench_actions", r"^trexec start_action \+ wait_all", r"µs"),
                lookup("bench_actions", r"^trio start_soon", r"µs")), "<=", 1.5),  # #15 goal 5
        ("10,000 pollers at 1 s: CPU, % of one core",
         lookup("bench_pollers", r"^CPU use", r"trexec"), "<", 20.0),
        ("SQLite, batched: steps/s",
         sqlite, ">=", 20_000.0),
        ("SQLite, batched: trexec / DBOS steps/s",
         _ratio(sqlite, lookup("bench_peers_sqlite", r"DBOS", r"^steps/s")), ">", 1.0),
        ("PostgreSQL, 4 processes: trexec / pgqueuer",
         _ratio(pg4, lookup("bench_peers_pg", r"pgqueuer, processes 4", r"jobs/s")), ">=", 1.5),
        ("PostgreSQL, 4 processes: trexec / procrastinate",
         _ratio(pg4, lookup("bench_peers_pg", r"procrastinate, processes 4", r"jobs/s")),
         ">=", 5.0),
        ("PostgreSQL, 4 processes: trexec / raw psycopg ceiling",
         _ratio(pg4, lookup("bench_durable_pg", r"^4$", r"ceiling")), ">=", 0.5),
        ("PostgreSQL: signal -> next step p50, ms",
         lookup_text("bench_durable_pg", r"signal -> next step.*?p50 ([\d.]+) ms"), "<", 5.0),
        # issue #15, goals 1-4
        *[(f"{label}: {shape} workflow / machine steps/s",
           _ratio(lookup("bench_workflows", rf"^{kind}\b", f"^{shape} workflow"),
                  lookup("bench_workflows", rf"^{kind}\b", r"^machine")), ">=", 0.5)
          for kind, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"))
          for shape in ("linear", "fan-out")],
        ("SQLite: linear workflow, trexec / DBOS",
         lookup("bench_workflows", r"^sqlite\b", r"trexec / DBOS"), ">=", 20.0),
        ("PostgreSQL: linear workflow, trexec / DBOS",
         lookup("bench_workflows", r"^postgresql\b", r"trexec / DBOS"), ">=", 5.0),
        ("SQLite, batch 64 (default calls, auto): steps/s",
         lookup("bench_durable", r"^64$", r"trexec"), ">=", 50_000.0),
        ("SQLite, batch 64, every call inline: steps/s",
         lookup("bench_durable", r"^64, inline$", r"trexec"), ">=", 50_000.0),
        *[(f"PostgreSQL, {n} process(es): trexec / raw psycopg ceiling",
           _ratio(lookup("bench_durable_pg", f"^{n}$", r"trexec"),
                  lookup("bench_durable_pg", f"^{n}$", r"ceiling")), ">=", 0.8)
          for n in (1, 2, 4)],
        # The raw loop that also runs steps in a row (spec §5.5.13): the same
        # writes per step as trexec, so the stricter ratio.
        *[(f"PostgreSQL, {n} process(es): trexec / raw loop with steps in a row",
           _ratio(lookup("bench_durable_pg", f"^{n}$", r"trexec"),
                  lookup("bench_durable_pg", f"^{n}$", r"^raw, steps in a row")), ">=", 0.8)
          for n in (1, 2, 4)],
    ]  # fmt: skip


def targets_markdown() -> list[str]:
    checks = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}
    lines = ["| target | measured | goal | met |", "|---|---:|---:|---|"]
    for name, measured, op, bound in targets():
        if measured is None:
            lines.append(f"| {escape(name)} | not measured | {op} {bound:g} | ? |")
            continue
        met = "yes" if checks[op](measured, bound) else "**no**"
        lines.append(f"| {escape(name)} | {_figure(measured)} | {op} {bound:,g} | {met} |")
    return lines


# --- the page -------------------------------------------------------------------


def script_title(script: pathlib.Path) -> tuple[str, str]:
    """(first paragraph, rest) of a bench script's docstring."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError):
        doc = ""
    first, _, rest = doc.strip().partition("\n\n")
    return " ".join(first.split()).rstrip(".") or script.stem, rest.strip("\n").rstrip()


def _demote(line: str) -> str:
    """Script headings sit under the script's own ``##`` section."""
    match = re.match(r"^(#{1,6})\s+(.*)$", line)
    if match is None:
        return line
    return "#" * max(3, min(6, len(match.group(1)) + 2)) + " " + match.group(2)


def _table_markdown(table: Table) -> list[str]:
    width = len(table.header)
    lines = ["| " + " | ".join(map(escape, table.header)) + " |", "|" + "---|" * width]
    for row in table.rows:
        lines.append(
            "| " + " | ".join(escape(cell) for cell in (row + [""] * width)[:width]) + " |"
        )
    return lines


_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")


def escape(text: str) -> str:
    """Text printed by a script, made safe as Markdown: brackets outside code spans
    would read as (broken) links, and ``<`` as HTML. Indented (code) lines are kept."""
    if "\n" in text:
        return "\n".join(escape(line) for line in text.split("\n"))
    if text.startswith(("    ", "\t")):
        return text
    out, last = [], 0
    for match in _CODE_SPAN.finditer(text):
        out += [_escape_plain(text[last : match.start()]), match.group(0)]
        last = match.end()
    out.append(_escape_plain(text[last:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    return text.replace("[", "\\[").replace("]", "\\]").replace("<", "&lt;")


def write_report(failed: list[str]) -> str:
    info = machine()
    footer = (
        f"{info['CPU']} · {info['Python']} · Trio {info['Trio']} · SQLite {info['SQLite']}"
        f" · PostgreSQL {info['PostgreSQL'].split(' (')[0]} · {info['Report written']}"
    )
    out = [
        "# Benchmarks",
        "",
        "<!-- Written by bench/report.py from bench/results/: edit the scripts, not this page. -->",
        "",
        "Every figure below was measured by `nox -s bench` on the machine described here,",
        "with trexec and its baselines run one after the other in the same session.",
        "Absolute figures move from run to run (the machine is shared); compare the ratios.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items()],
        "",
        "## Reproduce",
        "",
        "```console",
        "nox -s bench                   # every bench/bench_*.py; report in bench/results/report/",
        "nox -s bench -- bench_actions  # one script; the others keep their last results",
        "nox -s bench -- --write-report # also refresh this page and docs/img/",
        "```",
        "",
    ]
    scripts = sorted(BENCH.glob("bench_*.py"))
    reported = [
        f"- `{script.name}`: {escape(line.strip())}"
        for script in scripts
        if (RESULTS / f"{script.stem}.md").exists()
        for line in (RESULTS / f"{script.stem}.md").read_text("utf-8").splitlines()
        if _TARGET.match(line)
    ]
    out += [
        "## Targets",
        "",
        "The performance targets trexec sets itself, checked against this run:",
        "",
    ]
    out += [*targets_markdown(), ""]
    if reported:
        out += ["As the scripts report them:", "", *reported, ""]
    notes = BENCH / "optimisations.md"
    if notes.exists():  # hand-written: what each optimisation bought, before/after
        out += [notes.read_text("utf-8").rstrip(), ""]
    json_files = {p.stem: p for p in RESULTS.glob("*.json")} if RESULTS.exists() else {}
    not_measured = []
    for old in [*IMAGES.glob("bench_*.png"), *IMAGES.glob("compare-*.png")]:
        old.unlink()
    side_by_side = []
    for number_, (title, stems, unit, axis) in enumerate(COMPARISONS, start=1):
        table = comparison_table(stems, unit, axis)
        if table is None:
            continue
        side_by_side += [f"### {title}", "", *_table_markdown(table), ""]
        image = IMAGES / f"compare-{number_}.png"
        if _plot_or_note(table, title, footer, image):
            side_by_side += [f"![{title}](img/{image.name})", ""]
    if side_by_side:
        out += ["## Side by side", "", "trexec and its peers, from the sections below.", ""]
        out += side_by_side
    for script in scripts:
        captured = RESULTS / f"{script.stem}.md"
        if script.name not in failed and not captured.exists():
            not_measured.append(script.name)  # spec §9.15
            continue
        title, intro = script_title(script)
        out += [f"## {title}", "", f"`bench/{script.name}`", ""]
        if intro:
            out += [escape(intro), ""]
        if script.name in failed:
            out += [
                f'!!! failure "{script.name} failed in this run"',
                "",
                "    Its figures below, if any, are what it printed before failing.",
                "",
            ]
        if captured.exists():
            when = dt.datetime.fromtimestamp(captured.stat().st_mtime, dt.UTC)
            out += [f"*Measured {when:%Y-%m-%d %H:%M} UTC.*", ""]
            figure = 0
            text: list[str] = []  # plain lines keep their layout in a text block
            parts: list[str | Table | None] = [*parse_output(captured.read_text("utf-8")), None]
            for part in parts:
                if isinstance(part, str) and not part.startswith("#"):
                    text.append(part)
                    continue
                if "\n".join(text).strip():
                    out += ["", "```text", *"\n".join(text).strip("\n").splitlines(), "```", ""]
                text = []
                if part is None:  # the end of the output
                    break
                if isinstance(part, str):
                    out += [_demote(escape(part)), ""]
                    continue
                out += ["", *_table_markdown(part), ""]
                if not any(_is_ours(cell) for cell in [*part.header, *(r[0] for r in part.rows)]):
                    continue  # a peers-only table: its figures are plotted side by side
                figure += 1
                image = IMAGES / f"{script.stem}-{figure}.png"
                caption = part.caption or title
                if _plot_or_note(part, f"{title}: {caption}", footer, image):
                    out += [f"![{caption}](img/{image.name})", ""]
        for stem, path in sorted(json_files.items()):
            if script.stem.endswith(stem) or script.stem == stem:
                raw = json.dumps(json.loads(path.read_text(encoding="utf-8")), indent=2)
                out += ["", f'??? note "Raw figures (bench/results/{path.name})"', ""]
                out += ["    ```json", *("    " + line for line in raw.splitlines()), "    ```", ""]
        out.append("")
    if not_measured:
        out += ["## Not measured yet", "", "These scripts have no results here yet:", ""]
        out += [f"- `bench/{name}`" for name in not_measured]
    return "\n".join(out).rstrip() + "\n"


def _plot_or_note(table: Table, title: str, footer: str, image: pathlib.Path) -> bool:
    try:
        return plot(table, title, footer, image)
    except ImportError:  # matplotlib is installed by the bench session only
        print(f"report: matplotlib is not installed, no plot for {image.name}")
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--failed",
        action="append",
        default=[],
        metavar="SCRIPT",
        help="a bench script that failed in this run (repeatable)",
    )
    parser.add_argument(
        "--write-report",
        action="store_true",
        help="refresh docs/benchmarks.md and docs/img/ (tracked files); by default the"
        " page and its plots go to bench/results/report/, outside the tracked tree",
    )
    args = parser.parse_args(argv)
    global PAGE, IMAGES
    if not args.write_report:
        PAGE = RESULTS / "report" / "benchmarks.md"
        IMAGES = RESULTS / "report" / "img"
        IMAGES.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(write_report(args.failed), encoding="utf-8")
    print(f"report: wrote {PAGE.relative_to(ROOT)} and {IMAGES.relative_to(ROOT)}/bench_*.png")


if __name__ == "__main__":
    main()
