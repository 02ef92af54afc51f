"""The ``trexec`` command line (spec §7).

Commands live beside what they drive: ``durable/_cli.py`` (migrate, worker,
signal, cancel, prune), ``_cli_inspect.py`` (ls, show, schedules: they read workflow runs
too) and ``_demo`` (demo); this module only assembles them.
"""

from __future__ import annotations

import click

from ._cli_inspect import explain, ls, schedules, show
from ._demo import demo
from .dashboard._cli import dashboard
from .durable._cli import register as _register_durable

# spec §7.1: -h everywhere; click's contexts pass it on to every subcommand.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="trexec")
def cli() -> None:
    """trexec: run actions, pollers, durable machines and workflows on Trio.

    New here? `trexec demo` runs a checkout on a local payment gateway. Every
    durable command takes --store URL (default sqlite:///trexec.db, env
    TREXEC_STORE); `trexec COMMAND -h` explains each.
    """


cli.add_command(demo)
cli.add_command(dashboard)
_register_durable(cli)
cli.add_command(ls)
cli.add_command(show)
cli.add_command(schedules)
cli.add_command(explain)


def main() -> None:
    """Console entry point."""
    cli()
