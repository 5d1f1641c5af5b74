"""``polydl``: the command-line front end. Each command lives in a module of its own and is
added to the ``main`` group here."""
from __future__ import annotations

import sys

import click

import polydl


class PolydlGroup(click.Group):
    """Turns expected errors into one ``Error: ...`` line on stderr (exit 2 for bad input)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except (ValueError, KeyError, FileNotFoundError, polydl.DeviceError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            click.echo(f"Error: {msg}", err=True)
            sys.exit(2)


@click.group(cls=PolydlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(polydl.__version__, prog_name="polydl")
def main():
    """polydl: train deep networks on NumPy (CPU) or CuPy (CUDA) with one model definition."""


def _add_commands():
    from importlib import import_module

    for modname in ("train", "plugins_cmd"):
        try:
            mod = import_module(f"{__package__}.{modname}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{modname}":
                continue
            raise
        for cmd in getattr(mod, "COMMANDS", ()):
            main.add_command(cmd)


_add_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
