"""The ``trexec`` command line (spec §7).

Commands live beside what they drive: ``durable/_cli.py`` (migrate, worker, ls,
show, signal, cancel, prune) and ``_demo.py`` (demo); this module only assembles them.
"""

from __future__ import annotations

import click

from ._demo import demo
from .dashboard._cli import dashboard
from .durable._cli import register as _register_durable


@click.group()
@click.version_option(package_name="trexec")
def cli() -> None:
    """trexec: run actions, pollers and durable machines on Trio."""


cli.add_command(demo)
cli.add_command(dashboard)
_register_durable(cli)


def main() -> None:
    """Console entry point."""
    cli()
