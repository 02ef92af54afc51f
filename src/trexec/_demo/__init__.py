"""``trexec demo``: a checkout on a local payment gateway, durable and resumable (spec §9).

Layout: ``gateway`` (the HTTP payment gateway), ``orders`` (orders and planned
faults), ``checkout`` (the steps), ``journal`` (events, the JSONL file, the
summary), ``ui`` (the screen), ``session`` (start, resume, interrupt); this
file is the command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["demo"]

DEFAULT_STORE = "sqlite:///trexec-demo.db"
DEFAULT_JOURNAL = "trexec-demo.jsonl"
STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


def _check_store(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith(STORE_SCHEMES) or value in STORE_SCHEMES:  # spec §9.1
        raise click.BadParameter(
            f"{value!r}: expected sqlite:///PATH or postgresql://USER@HOST/DB", ctx, param
        )
    return value


def _underlying(exc: BaseException) -> BaseException:
    """The single error inside nested one-error groups (or ``exc`` itself)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@click.command()
@click.option(
    "--orders",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="How many orders to check out.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 1_000),
    default=8,
    show_default=True,
    help="How many steps run at once.",
)
@click.option("--seed", type=int, default=None, help="Replay the same story (default: random).")
@click.option(
    "--store",
    default=DEFAULT_STORE,
    show_default=True,
    envvar="TREXEC_DEMO_STORE",
    callback=_check_store,
    help="Durable store URL: sqlite:///PATH or postgresql://... (env TREXEC_DEMO_STORE).",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(DEFAULT_JOURNAL),
    show_default=True,
    help="JSONL file every run is recorded to (the state file sits beside it).",
)
@click.option("--reset", is_flag=True, help="Forget an interrupted demo and start over.")
@click.option("--plain", is_flag=True, help="Plain lines even on a terminal.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def demo(
    orders: int,
    workers: int,
    seed: int | None,
    store: str,
    journal: Path,
    reset: bool,
    plain: bool,
    debug: bool,
) -> None:
    """Check out orders against a local payment gateway, durably.

    Starts a payment gateway on 127.0.0.1, runs the orders through a checkout
    workflow (reserve, authorize, capture, email and ship) on the durable
    store, and shows the progress. Ctrl-C, then run it again: it resumes.
    """
    import trio
    from rich.console import Console

    from .. import _extras
    from .._exceptions import MissingExtra
    from ..durable._cli import driver_log, error_line

    try:
        for module in ("httpx", "hypercorn"):
            _extras.require(module, "trexec demo", "demo")
    except MissingExtra as exc:
        raise click.ClickException(str(exc)) from None
    from .session import Options, run_demo

    console = Console(highlight=False, soft_wrap=True)
    options = Options(
        orders=orders,
        workers=workers,
        seed=seed,
        store=store,
        journal=journal,
        reset=reset,
        live=console.is_terminal and not plain,
    )
    # Errors are reported once, as one line; the drivers' retry chatter only with --debug.
    with driver_log(debug) as log:
        try:
            code = trio.run(run_demo, options, console)
        except BaseException as exc:
            if _is_interrupt(exc):  # spec §9.1: a second Ctrl-C, no clean stop
                click.echo("trexec demo: interrupted", err=True)
                sys.exit(130)
            error = _underlying(exc)
            if isinstance(error, SystemExit):  # rich, on a closed pipe (`trexec demo | head`)
                raise error from None
            if debug or not isinstance(exc, Exception):
                raise
            raise click.ClickException(log.explain(error, error_line(error))) from None
    sys.exit(code)


def _is_interrupt(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return isinstance(exc, KeyboardInterrupt)
