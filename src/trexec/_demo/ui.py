"""The demo's screen: live progress and the final table (spec §9.5).

On a terminal: a rich ``Live`` view (a progress bar and a table of orders by
status), refreshed a few times a second. Elsewhere (a pipe, a CI log): plain
lines, one per retry and per finished order, then the same final table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from trio_util import periodic

from .journal import Summary, Tally

REFRESH = 0.2  # seconds between screen updates

_STATUS_ROWS = (
    ("pending", "queued"),
    ("reserve", "reserving stock"),
    ("authorize", "authorizing (polling the gateway)"),
    ("capture", "capturing payment"),
    ("fulfil", "emailing || shipping"),
    ("compensating", "compensating"),
    ("completed", "completed"),
    ("compensated_run", "compensated"),
    ("failed", "failed"),
)


def _status_table(tally: Tally) -> Table:
    counts = tally.counts()
    table = Table(title="orders by status", title_justify="left", expand=False)
    table.add_column("status")
    table.add_column("orders", justify="right")
    for key, label in _STATUS_ROWS:
        if counts[key]:
            table.add_row(label, str(counts[key]))
    table.add_row("retries so far", str(tally.retries), style="dim")
    return table


async def show_progress(console: Console, tally: Tally, *, live: bool) -> None:
    """Show ``tally`` until cancelled (the caller cancels when the demo ends).

    ``live``: the rich view; otherwise plain lines. Each line queued in
    ``tally.lines`` is handled exactly once, the last ones on cancellation too.
    """
    if not live:
        try:
            async for _ in periodic(REFRESH):
                _flush_lines(tally, console.print)
        finally:
            _flush_lines(tally, console.print)
    progress = Progress(
        TextColumn("[bold]checkout"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task("orders", total=len(tally.orders))

    def render() -> RenderableType:
        progress.update(task, completed=tally.finished)
        return Group(progress, _status_table(tally))

    with Live(render(), console=console, auto_refresh=False, transient=False) as screen:
        try:
            async for _ in periodic(REFRESH):
                _flush_lines(tally, screen.console.print, quiet=True)
                screen.update(render(), refresh=True)
        finally:
            _flush_lines(tally, screen.console.print, quiet=True)
            screen.update(render(), refresh=True)


def _flush_lines(tally: Tally, out: Callable[..., None], *, quiet: bool = False) -> None:
    """Print the queued lines; ``quiet`` leaves out the completed orders (the live
    view counts them) and keeps retries, compensations and failures."""
    lines, tally.lines = tally.lines, []
    for kind, line in lines:
        if not (quiet and kind == "completed"):
            out(line, highlight=False, markup=False, soft_wrap=True)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def summary_table(summary: Summary, *, elapsed: float, requests: int) -> Table:
    """The final table: what happened to every order of this demo (``elapsed`` and
    ``requests``, the gateway's HTTP requests, are this session's)."""
    table = Table(title="trexec demo: summary", title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("orders", str(summary.orders))
    table.add_row("completed", str(summary.completed))
    table.add_row("compensated", str(summary.compensated))
    table.add_row("  of which payment declined", str(summary.declined), style="dim")
    if summary.failed:
        table.add_row("failed", str(summary.failed), style="red")
    if summary.unfinished:
        table.add_row("unfinished", str(summary.unfinished), style="yellow")
    table.add_row("retries (transient faults)", str(summary.retries))
    table.add_row("run time p50", _seconds(summary.p50))
    table.add_row("run time p99", _seconds(summary.p99))
    table.add_row("this session", _seconds(elapsed))
    table.add_row("gateway HTTP requests", str(requests), style="dim")
    return table


def print_files(console: Console, files: dict[str, Path]) -> None:
    """Where the demo's files are (absolute paths)."""
    for label, where in files.items():
        console.print(f"{label:<8} {os.path.abspath(where)}", highlight=False, markup=False)
