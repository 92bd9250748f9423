"""The click application: the ``asyncvox`` group and the commands wired into it.

Each command lives in its own module and is a plain ``click.command``; adding one is
writing that module and listing it in ``COMMANDS`` below. Shared pieces (exit codes,
``run``, the client options) are in ``_common``.
"""

from __future__ import annotations

import click

import asyncvox

from ._analysis import export, report
from ._common import EXIT_INTERRUPTED
from ._demo import demo
from ._fetch import fetch
from ._get import get
from ._serve import serve_demo

#: The subcommands, in the order ``--help`` lists them.
COMMANDS: tuple[click.Command, ...] = (demo, export, fetch, get, report, serve_demo)


class _Group(click.Group):
    """The ``asyncvox`` group: Ctrl-C anywhere in a command exits 130 with one line.

    click would say "Aborted!" and exit 1; a Ctrl-C while a command is still opening its
    files (before its event loop runs) is as much an interruption as one mid-fetch.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("asyncvox: interrupted", err=True)
            raise SystemExit(EXIT_INTERRUPTED) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(asyncvox.__version__, prog_name="asyncvox")
def cli() -> None:
    """asyncvox: fetch voice-agent calls fast, retrying what is worth retrying."""


for _command in COMMANDS:
    cli.add_command(_command)
