"""The read-only commands of the ``trexec`` CLI: ``ls``, ``show``, ``explain``
(spec §5.13, §5.16) and ``schedules`` (spec §11.6).

They sit above ``durable`` and ``workflows``: a workflow run is shown as its
step table (spec §6.13). They never create a store: a SQLite URL whose file does
not exist is an error naming the path (spec §5.13.4).
"""

from __future__ import annotations

import json
import types
from typing import Any

import click

from .durable._cli import common_options, existing_store, run
from .durable._records import STATUSES, InstanceRecord

__all__ = ["explain", "ls", "schedules", "show"]

_COUNT_CAP = 100_000  # rows past the page counted at most (then "more than N")


def _console() -> Any:
    """A console as wide as the terminal; in a pipe or a file, wide enough for a
    table of whole keys (rich would cut a pipe's output to 80 columns)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 160))


def _table(records: list[InstanceRecord]) -> Any:
    from rich.table import Table

    # spec §11: priority ("prio") and concurrency key ("ckey") of each instance.
    table = Table("id", "machine", "step", "status", "attempt", "key", "parent", "prio", "ckey")
    # spec §5.13.5: a key (and a machine) is shown whole, so it can be typed back.
    table.columns[1].no_wrap = True
    table.columns[1].min_width = max((len(f"{r.machine}@{r.version}") for r in records), default=7)
    table.columns[5].no_wrap = True
    table.columns[5].min_width = max((len(r.key or "") for r in records), default=3)
    table.columns[8].no_wrap = True
    table.columns[8].min_width = max((len(r.concurrency_key or "") for r in records), default=4)
    for r in records:
        table.add_row(
            str(r.id),
            f"{r.machine}@{r.version}",
            r.step,
            r.status,
            str(r.attempt),
            r.key or "",
            "" if r.parent_id is None else str(r.parent_id),
            str(r.priority),
            r.concurrency_key or "",
        )
    return table


async def _count_after(store: Any, after: int, status: str | None, machine: str | None) -> int:
    """How many instances past id ``after`` match (counted a page at a time)."""
    count = 0
    while count < _COUNT_CAP:
        page = await store.list(status=status, machine=machine, limit=1000, after_id=after)
        count += len(page)
        if len(page) < 1000:
            break
        after = page[-1].id
    return count


@click.command(name="ls")
@common_options
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@click.option("--machine", metavar="NAME",
              help="Only this machine, or the runs of this workflow (its name).")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Show at most this many instances.")  # fmt: skip
@click.option("--after", "after_id", type=int, metavar="ID", help="Only ids greater than ID.")
def ls(
    store_url: str,
    debug: bool,
    status: str | None,
    machine: str | None,
    limit: int,
    after_id: int | None,
) -> None:
    """List instances by id, a page at a time.

    Shows at most --limit rows and says how many more there are; --after ID
    (the last id shown) shows the next page. --machine takes a machine name
    or a workflow's name (its runs).
    """

    async def main() -> None:
        async with existing_store(store_url) as store:
            wanted = machine
            records = await store.list(
                status=status, machine=wanted, limit=limit, after_id=after_id
            )
            if not records and machine and not machine.startswith("workflow:"):
                # spec §5.13.5: a workflow's runs are instances of "workflow:<name>"
                wanted = f"workflow:{machine}"
                records = await store.list(
                    status=status, machine=wanted, limit=limit, after_id=after_id
                )
            more = 0
            if len(records) == limit:
                more = await _count_after(store, records[-1].id, status, wanted)
        _console().print(_table(records))
        if more:
            many = f"more than {_COUNT_CAP}" if more >= _COUNT_CAP else str(more)
            click.echo(
                f"{many} more instance{'' if more == 1 else 's'}: "
                f"--after {records[-1].id} shows the next page (--limit sets its size)"
            )

    run(debug, main)


def _as_run(record: InstanceRecord) -> Any:
    """A stored run as ``describe_run`` takes it (state and result as data)."""
    return types.SimpleNamespace(
        id=record.id,
        machine=record.machine,
        status=record.status,
        error=record.error,
        result=None if record.result is None else json.loads(record.result),
        state=json.loads(record.state),
    )


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"


async def _run_view(store: Any, record: InstanceRecord) -> Any:
    """The run's step table (step, status, attempts, duration, error, compensation)
    and its history, as ``workflows.render_run`` shows them (spec §6.13.2)."""
    from rich.console import Group
    from rich.table import Table

    from .workflows._describe import describe_run
    from .workflows._dispatch import step_key

    info = describe_run(_as_run(record))
    run_key = json.loads(record.state)["run_key"]
    steps = Table(
        title=f"run {info['id']} · {record.key} · {info['workflow']} · "
        f"{info['status']} ({info['phase']})",
        title_justify="left",
    )
    for column in ("step", "status", "attempts", "duration", "error", "compensation"):
        steps.add_column(column)
    for row in info["steps"]:
        # A step's time runs from its dispatch to its end (retries and their backoff included).
        # A step that ran inline in its run has its own (spec §6.6.2).
        duration = row.get("duration")
        if duration is None:
            instance = await store.get(step_key(run_key, row["step"]))
            if instance is not None and instance.status in ("done", "stopped"):
                duration = instance.updated_at - instance.created_at
        compensation = row["compensation"] or ""
        if row["compensation_error"]:
            compensation += f": {row['compensation_error']}"
        steps.add_row(
            row["step"],
            row["status"],
            str(row["attempts"]),
            _seconds(duration),
            row["error"] or "",
            compensation,
        )
    history = Table("#", "event", "step", "detail", title="history", title_justify="left")
    for number, entry in enumerate(info["history"], 1):
        history.add_row(str(number), entry["event"], entry["step"] or "", entry["detail"] or "")
    return Group(steps, f"error: {info['error'] or '-'}", history)


def _json(text: str | None) -> str:
    return "-" if text is None else json.dumps(json.loads(text), indent=2, sort_keys=True)


@click.command()
@common_options
@click.argument("target", metavar="ID|KEY")
@click.option(
    "--key", "as_key", is_flag=True, help="Read ID|KEY as a business key even if numeric."
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw state and result as JSON.")
def show(store_url: str, debug: bool, target: str, as_key: bool, as_json: bool) -> None:
    """Show one instance, by id or business key.

    For a workflow run: each step's status, attempts, duration, error and
    compensation, then the run's history. For any other instance (or with
    --json): state, step, attempt, error, result, inbox and children.
    """
    from rich.table import Table

    from .durable._exceptions import NoTarget
    from .workflows._describe import is_run

    async def main() -> None:
        async with existing_store(store_url) as store:
            record = await store.get(int(target) if target.isdigit() and not as_key else target)
            if record is None:
                raise NoTarget(f"{target!r}: no such instance")
            console = _console()
            if is_run(record) and not as_json:
                console.print(_table([record]))
                console.print(await _run_view(store, record))
                return
            inbox = await store.inbox(record.id)
            children = await store.children(record.id)
        console.print(_table([record]))
        console.print(f"awaits: {', '.join(record.awaits) or '-'}")
        console.print(f"error: {record.error or '-'}")
        console.print(f"state: {_json(record.state)}", markup=False)
        console.print(f"result: {_json(record.result)}", markup=False)
        signals_table = Table("signal", "name", "payload", "dedup_key", title="inbox")
        for s in inbox:
            signals_table.add_row(str(s.id), s.name, s.payload, s.dedup_key or "")
        console.print(signals_table)
        if children:
            console.print("children:")
            console.print(_table(children))

    run(debug, main)


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


@click.command(name="schedules")
@common_options
def schedules(store_url: str, debug: bool) -> None:
    """List the store's cron schedules.

    One row per schedule: its cron expression and time zone, whether it is
    paused, its next tick and when a tick last fired (UTC).
    """
    from rich.table import Table

    from .durable._schedule_api import info

    async def main() -> None:
        async with existing_store(store_url) as store:
            _, rows = await store.schedule_rows()
        table = Table("name", "cron", "tz", "paused", "next fire", "last fired")
        for row in map(info, rows):
            table.add_row(
                row.name, row.cron, row.tz, "yes" if row.paused else "no",
                _when(row.next_fire_at), _when(row.last_fired_at),
            )  # fmt: skip
        _console().print(table)
        if not rows:
            click.echo("no schedules: open_engine(schedules=[...]) registers them")

    run(debug, main)


@click.command()
@common_options
@click.argument("target", metavar="ID|KEY")
@click.option(
    "--key", "as_key", is_flag=True, help="Read ID|KEY as a business key even if numeric."
)
def explain(store_url: str, debug: bool, target: str, as_key: bool) -> None:
    """Say why an instance is not moving.

    Waiting for signals, parked until a time, waiting for children, runnable
    with no live engine running its machine, running under another engine's
    lease, a workflow run waiting for steps, or finished (and how). Read-only.
    """
    from .durable._exceptions import NoTarget
    from .durable._explain import explain_instance
    from .durable._machine import Codec
    from .durable._steps import Registry, to_instance
    from .workflows._describe import explain_run

    async def main() -> None:
        async with existing_store(store_url) as store:
            record = await store.get(int(target) if target.isdigit() and not as_key else target)
            if record is None:
                raise NoTarget(f"{target!r}: no such instance")
            instance = to_instance(Codec(), Registry(), record)
            text = await explain_instance(store, instance, [explain_run])
        click.echo(text)

    run(debug, main)
