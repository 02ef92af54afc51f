"""The ``trexec dashboard`` command (spec §12.1)."""

from __future__ import annotations

import signal as signals
from typing import Any

import click
import trio

from ..durable._cli import DEFAULT_STORE, run

__all__ = ["dashboard"]


@click.command(short_help="Serve a web dashboard of the store (read only by default).")
@click.option("--store", "store_url", envvar="TREXEC_STORE", default=DEFAULT_STORE,
              show_default=True,
              help="Store URL (env TREXEC_STORE): sqlite:///path or postgresql://...")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0: every one; think twice).")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8484, show_default=True,
              help="TCP port (0: any free port).")  # fmt: skip
@click.option("--allow-write", is_flag=True,
              help="Enable the cancel and signal buttons and POST endpoints.")  # fmt: skip
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def dashboard(store_url: str, host: str, port: int, allow_write: bool, debug: bool) -> None:
    """Serve a web dashboard of the store until Ctrl-C: instances (filter by
    status, machine, key), each instance's state, inbox and children, a workflow
    run's step table and graph, updated live. Read only unless --allow-write.
    Needs the extra: pip install 'trexec[dashboard]'."""
    from . import HINT, missing_extra

    try:
        from ._server import serve
    except ModuleNotFoundError as exc:
        if (missing := missing_extra(exc)) is None or debug:
            raise
        raise click.ClickException(f"trexec dashboard needs {missing}: {HINT}") from None

    async def stop() -> None:
        with trio.open_signal_receiver(signals.SIGINT, signals.SIGTERM) as received:
            async for _ in received:
                return

    class Announce:
        """Receives the bound URLs from ``serve`` (a ``trio.TaskStatus``)."""

        def started(self, urls: list[str]) -> None:
            mode = "read-write" if allow_write else "read-only"
            click.echo(f"dashboard of {store_url} ({mode}) on {', '.join(urls)}; Ctrl-C stops")

    async def main() -> None:
        status: Any = Announce()
        await serve(
            store_url,
            host=host,
            port=port,
            allow_write=allow_write,
            shutdown_trigger=stop,
            task_status=status,
        )
        click.echo("dashboard stopped")

    run(debug, main)
