"""Durable commands of the ``trexec`` CLI (spec §5.13): migrate, worker, signal,
cancel, prune (``ls`` and ``show`` are in ``trexec/_cli_inspect.py``, which also
reads workflow runs), and what every command shares: the options, the store
check, the one-line errors.

Every command takes ``--store URL`` (default ``sqlite:///trexec.db``, or the
``TREXEC_STORE`` environment variable) and ``--debug``. Errors print one line
(``Error: ...``) and exit with status 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal as signals
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import click
import trio

from .._exceptions import MissingExtra, TrexecError
from ._cron import Schedule
from ._exceptions import StoreError
from ._machine import Machine
from ._store import PRUNE_STATUSES, Store

DEFAULT_STORE = "sqlite:///trexec.db"
_SECONDS = click.FloatRange(min=0, min_open=True)  # a duration that must be positive


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--store URL`` and ``--debug``, as every durable command takes them."""
    fn = click.option(
        "--store",
        "store_url",
        envvar="TREXEC_STORE",
        default=DEFAULT_STORE,
        show_default=True,
        metavar="URL",
        help="Store URL: sqlite:///PATH or postgresql://USER@HOST/DB (env TREXEC_STORE).",
    )(fn)
    return click.option("--debug", is_flag=True, help="Show tracebacks.")(fn)


class DriverLog(logging.Filter):
    """Keeps the PostgreSQL pool's failed connection attempts off the screen (it
    logs each one, over several lines, then gives up with only "pool
    initialization incomplete"); ``last`` is the last attempt's reason."""

    def __init__(self) -> None:
        super().__init__()
        self.last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("error connecting"):
            return True  # any other driver warning is shown as usual
        errors = [a for a in record.args or () if isinstance(a, BaseException)]
        text = str(errors[-1]) if errors else record.getMessage()
        self.last = text.strip().split("\n", 1)[0] or self.last
        return False

    def explain(self, exc: BaseException, message: str) -> str:
        """``message``, plus why the last connection failed when ``exc`` is a
        store error."""
        if self.last is None or not isinstance(exc, StoreError) or self.last in message:
            return message
        return f"{message} (last connection error: {self.last})"


@contextlib.contextmanager
def driver_log(debug: bool) -> Iterator[DriverLog]:
    """Keep failed connection attempts off the screen for the block (``--debug``
    shows them)."""
    log = DriverLog()
    if debug:
        yield log
        return
    logger = logging.getLogger("psycopg.pool")
    logger.addFilter(log)
    try:
        yield log
    finally:
        logger.removeFilter(log)


def check_exists(url: str) -> None:
    """Raise :class:`StoreError` if ``url`` names a SQLite file that does not exist
    (opening it would create it)."""
    from ._open import sqlite_path

    path = sqlite_path(url)
    if path is not None and not os.path.exists(path):
        raise StoreError(
            f"no store at {url} ({os.path.abspath(path)} does not exist): "
            "check --store, or create one with `trexec migrate`"
        )


@contextlib.asynccontextmanager
async def existing_store(url: str) -> AsyncIterator[Store]:
    """Open the store at ``url`` for a command that needs one already there: a
    SQLite file that does not exist is a :class:`StoreError` naming the path, and
    nothing is created (spec §5.13.4)."""
    from ._open import open_store

    check_exists(url)
    async with open_store(url) as store:
        await store.migrate()
        yield store


def error_line(exc: BaseException) -> str:
    """The one line every command prints for an error (after click's ``Error: ``):
    ``<Type>: <first line of the message>``; a missing extra is its hint alone."""
    lines = str(exc).strip().splitlines()
    if isinstance(exc, MissingExtra):
        return lines[0]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def run(debug: bool, main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` under Trio; a trexec error is one line (``Error: ...``), exit
    status 1; ``debug`` shows the traceback instead."""
    with driver_log(debug) as log:
        try:
            trio.run(main)
        except (TrexecError, OSError, ImportError, ValueError) as exc:
            if debug:
                raise
            raise click.ClickException(log.explain(exc, error_line(exc))) from None


def target_of(value: str, as_key: bool) -> int | str:
    """A command's ID|KEY argument: a number is an id unless ``as_key``."""
    return int(value) if value.isdigit() and not as_key else value


def _machines_in(module_name: str) -> tuple[list[type[Machine]], list[Any], list[Schedule]]:
    """Machine subclasses (with a ``name``), workflows and schedules defined in a module."""
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if module_name.endswith(".py"):  # a file name, not a module name
            hint = module_name.removesuffix(".py").replace("/", ".")
            raise ImportError(f"{exc} (--import takes a module name: {hint})") from exc
        raise
    except Exception as exc:  # the module itself fails: a SyntaxError, a NameError...
        raise ImportError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    machines, workflows, schedules = [], [], []
    workflow_type: Any = getattr(importlib.import_module("trexec.workflows"), "Workflow", None)
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Machine) and "name" in vars(value):
            machines.append(value)
        elif workflow_type is not None and isinstance(value, workflow_type):
            workflows.append(value)
        elif isinstance(value, Schedule):
            schedules.append(value)
    return machines, workflows, schedules


@click.command()
@common_options
def migrate(store_url: str, debug: bool) -> None:
    """Create or upgrade the store's schema."""
    from ._open import open_store

    async def main() -> None:
        async with open_store(store_url) as store:
            version = await store.migrate()
        click.echo(f"{store.url}: schema version {version}")

    run(debug, main)


@click.command()
@common_options
@click.option("--import", "modules", multiple=True, required=True, metavar="MODULE",
              help="A module path (e.g. myapp.jobs) whose machines and workflows to run; "
              "repeatable.")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), default=8, show_default=True,
              help="Concurrent steps.")  # fmt: skip
@click.option("--lease", type=_SECONDS, default=30.0, show_default=True, help="Lease in seconds.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Claims per transaction.")  # fmt: skip
@click.option("--chain-steps", type=click.IntRange(min=1), default=8, show_default=True,
              help="Most steps an instance runs in a row on one claim.")  # fmt: skip
@click.option("--grace", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds in-flight steps may take to finish on Ctrl-C.")  # fmt: skip
@click.option("--poll-interval", type=_SECONDS, default=1.0, show_default=True,
              help="Longest idle sleep before looking for due work.")  # fmt: skip
def worker(
    store_url: str,
    debug: bool,
    modules: tuple[str, ...],
    workers: int,
    lease: float,
    batch_size: int,
    chain_steps: int,
    grace: float,
    poll_interval: float,
) -> None:
    """Run the machines and workflows of MODULE until Ctrl-C.

    MODULE is a Python module path, importable from the current directory (as
    `python -c "import MODULE"` would), such as `myapp.jobs` for myapp/jobs.py.
    The worker runs every durable.Machine subclass with a `name` and every
    workflows.Workflow defined at the top level of each --import MODULE, and
    fires every durable.Schedule defined there:

    \b
        trexec worker --import myapp.jobs --store sqlite:///app.db

    Ctrl-C (or SIGTERM) stops it cleanly: in-flight steps finish within --grace,
    everything else it holds is released for another worker.
    """
    from ._engine import open_engine
    from ._open import open_store

    async def main() -> None:
        machines: list[type[Machine]] = []
        workflows: list[Any] = []
        schedules: list[Schedule] = []
        for name in modules:
            found, wfs, timed = _machines_in(name)
            machines += found
            workflows += wfs
            schedules += timed
        if not machines and not workflows:
            names = ", ".join(modules)
            raise ValueError(f"no durable.Machine subclass (with a name) or workflow in {names}")
        with trio.open_signal_receiver(signals.SIGINT, signals.SIGTERM) as stop:
            async with (
                open_store(store_url) as store,
                open_engine(
                    store,
                    machines,
                    workflows=workflows,
                    schedules=schedules,
                    workers=workers,
                    lease=lease,
                    batch_size=batch_size,
                    chain_steps=chain_steps,
                    shutdown_grace=grace,
                    poll_interval=poll_interval,
                ),
            ):
                names = ", ".join(f"{m.name}@{m.version}" for m in machines)
                click.echo(f"worker on {store.url}: {names or '-'}; Ctrl-C stops", err=True)
                async for signum in stop:
                    click.echo(f"received signal {signum}: stopping", err=True)
                    break
        click.echo("worker stopped", err=True)

    run(debug, main)


@click.command(name="signal")
@common_options
@click.argument("target")
@click.argument("name")
@click.option("--payload", default="null", help="JSON payload.", show_default=True)
@click.option("--dedup-key", help="Deliver at most once per instance with this key.")
@click.option("--key", "as_key", is_flag=True, help="TARGET is a business key even if numeric.")
def signal_(
    store_url: str,
    debug: bool,
    target: str,
    name: str,
    payload: str,
    dedup_key: str | None,
    as_key: bool,
) -> None:
    """Send signal NAME to an instance, by id or business key."""
    from ._engine import open_engine

    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--payload") from None

    async def main() -> None:
        async with existing_store(store_url) as store, open_engine(store, workers=0) as engine:
            signal_id = await engine.signal(
                target_of(target, as_key), name, value, dedup_key=dedup_key
            )
        click.echo(f"signal {signal_id} delivered")

    run(debug, main)


@click.command()
@common_options
@click.argument("target")
@click.option("--key", "as_key", is_flag=True, help="TARGET is a business key even if numeric.")
def cancel(store_url: str, debug: bool, target: str, as_key: bool) -> None:
    """Cancel an instance, by id or business key.

    It never runs again; a step running now has its outcome discarded when it
    returns.
    """
    from ._engine import open_engine

    async def main() -> None:
        async with existing_store(store_url) as store, open_engine(store, workers=0) as engine:
            await engine.cancel(target_of(target, as_key))
        click.echo(f"cancelled {target}")

    run(debug, main)


@click.command()
@common_options
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), required=True,
              metavar="SECONDS",
              help="Only instances last updated more than SECONDS ago.")  # fmt: skip
@click.option("--status", "statuses", multiple=True, type=click.Choice(PRUNE_STATUSES),
              help="Only this terminal status; repeatable (default: all three).")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), help="Delete at most this many instances.")
def prune(
    store_url: str,
    debug: bool,
    older_than: float,
    statuses: tuple[str, ...],
    limit: int | None,
) -> None:
    """Delete finished instances last updated more than SECONDS ago.

    Deletes done, stopped and cancelled instances (and their signals) last
    updated more than --older-than SECONDS ago, a parent together with its
    children. Live instances, and the children of a parent that stays, stay.
    """
    from ._engine import open_engine

    async def main() -> None:
        async with existing_store(store_url) as store, open_engine(store, workers=0) as engine:
            count = await engine.prune(older_than, statuses=statuses or PRUNE_STATUSES, limit=limit)
        click.echo(f"pruned {count} instance{'' if count == 1 else 's'}")

    run(debug, main)


def register(group: click.Group) -> None:
    """Add the durable commands (migrate, worker, signal, cancel, prune) to ``group``."""
    for command in (migrate, worker, signal_, cancel, prune):
        group.add_command(command)
