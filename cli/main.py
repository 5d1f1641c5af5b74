"""``polydl``: the command-line front end. Each command lives in a module of its own and is
added to the ``main`` group here."""
from __future__ import annotations

import sys

import click

import polydl

from ._common import Group


class PolydlGroup(Group):
    """Turns the errors polydl raises for bad input (``ValueError`` and its subclasses, a missing
    file, an unusable device) into one ``Error: ...`` line on stderr and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except (ValueError, FileNotFoundError, polydl.DeviceError) as exc:
            click.echo(f"Error: {' '.join(str(exc).split())}", err=True)
            sys.exit(2)


@click.group(cls=PolydlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(polydl.__version__, prog_name="polydl")
def main():
    """polydl: train deep networks on NumPy (CPU) or CuPy (CUDA) with one model definition."""


def _add_commands():
    from .evaluate import evaluate, predict
    from .info import info
    from .plugins_cmd import plugins
    from .schedules_cmd import schedules
    from .train import train
    from .watch import watch

    for cmd in (train, evaluate, predict, schedules, info, plugins, watch):
        main.add_command(cmd)
    main.add_command(__import__(f"{__package__}.tune", fromlist=["tune"]).tune)


_add_commands()

if __name__ == "__main__":  # pragma: no cover
    from polydl_cli import run

    run()
