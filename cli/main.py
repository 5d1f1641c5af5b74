"""``polydl``: the command-line front end. Each command lives in a module of its own and is
added to the ``main`` group here."""
from __future__ import annotations

import errno
import os
import sys

import click

import polydl

from ._common import Group

#: the exit status of a command whose standard output was closed (``polydl ... | head -1``), as a
#: Unix tool killed by SIGPIPE has it: 128 + 13
BROKEN_PIPE = 141


def _stdout_closed() -> None:
    """Standard output was closed by its reader: point it at /dev/null (so that Python's last
    flush cannot fail again) and end quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    sys.exit(BROKEN_PIPE)


class PolydlGroup(Group):
    """Turns the errors polydl raises for bad input (``ValueError`` and its subclasses, a missing
    file, an unusable device) into one ``Error: ...`` line on stderr and exit status 2. A closed
    standard output ends any command quietly with exit status 141."""

    def invoke(self, ctx):
        try:
            try:
                rv = super().invoke(ctx)
                sys.stdout.flush()  # output still buffered meets a closed pipe here, not at exit
                return rv
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # BrokenPipeError, or a wrapped one
                    _stdout_closed()
                raise
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except (ValueError, FileNotFoundError, polydl.DeviceError) as exc:
            click.echo(f"Error: {' '.join(str(exc).split())}", err=True)
            sys.exit(2)
        except OSError as exc:  # what no command turned into its own line: still one line, no traceback
            click.echo(f"Error: {os_error_line(exc)}", err=True)
            sys.exit(1)


def os_error_line(exc: OSError) -> str:
    """An ``OSError`` in one line: what failed, on which file, and what to check."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f" {exc.filename}" if exc.filename else ""
    return " ".join(f"cannot use{where}: {reason}; check the path, its permissions and the free space".split())


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
