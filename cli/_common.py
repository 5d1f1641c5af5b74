"""Shared pieces of the polydl commands: one-line usage errors, the checks of user-named paths
(before reading a run, before writing a file), and number formatting."""
from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path

import click

from polydl.checks import did_you_mean
from polydl.fsafe import kind_of
from polydl.training.rundir import shown


def one_line(exc: click.UsageError) -> click.UsageError:
    """A usage error as one ``Error: ...`` line (no usage block): the problem, then the fix, which
    is the closest valid name where there is one and the command's ``--help`` otherwise."""
    ctx = exc.ctx
    if ctx is None or isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return exc  # already one line, or the help text that a bare group prints
    hint = ""
    if isinstance(exc, click.NoSuchOption):
        message = f"No such option '{exc.option_name}'"
        names = [o for p in ctx.command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)]
        hint = did_you_mean(exc.option_name, names)
    else:
        message = exc.format_message().rstrip(".")
    line = click.UsageError(message + (hint or f" (see '{ctx.command_path} --help')"))
    line.exit_code = exc.exit_code
    return line


class Command(click.Command):
    """A command whose usage errors (an unknown option, a bad value) are one ``Error: ...`` line,
    like the errors polydl itself reports."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise one_line(exc) from None


class Group(click.Group):
    """A group with one-line usage errors: ``No such command 'trian'; did you mean 'train'?``."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise one_line(exc) from None

    def resolve_command(self, ctx, args):
        name = click.utils.make_str(args[0])
        if not ctx.resilient_parsing and not name.startswith("-") and self.get_command(ctx, name) is None:
            hint = did_you_mean(name, self.list_commands(ctx)) or f" (see '{ctx.command_path} --help')"
            raise click.UsageError(f"No such command '{name}'{hint}")
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise one_line(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's, raised while it parses or runs
            raise one_line(exc) from None


def check_path(path, what: str):
    """A path from the command line that the system cannot look up (too long, through a file, a
    loop of links): one line, ``cannot use PATH as WHAT: reason``. A path that does not exist
    passes, for the command to say so in its own words."""
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot use {shown(path)} as {what}: {getattr(exc, 'strerror', None) or exc}") from None
    return path


def _mode(path, follow: bool) -> int | None:
    try:
        return (os.stat if follow else os.lstat)(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ValueError(f"cannot write {shown(path)}: {exc.strerror or exc}") from None


def check_output_file(path, overwrite: bool, option: str = "--overwrite"):
    """A user-named file a command is about to write: refused (before any work) if it exists and
    ``overwrite`` is not set, if it is (or links to) a directory, a FIFO or another file that is
    not a regular one, or if its directory does not exist. It is then written by atomic replace:
    a link there is replaced by the file, never written through."""
    out = Path(path)
    mode = _mode(out, follow=False)
    if mode is not None:
        link = stat.S_ISLNK(mode)
        target = _mode(out, follow=True) if link else mode
        if target is not None and not stat.S_ISREG(target):
            via = "a link to " if link else ""
            what = "a directory" if stat.S_ISDIR(target) else f"{kind_of(target)}, not a regular file"
            raise ValueError(f"cannot write {shown(out)}: it is {via}{what}; give the path of a file")
        if not overwrite:
            raise ValueError(f"{shown(out)} already exists; pass {option} to replace it")
    if not out.parent.is_dir():
        why = f"{shown(out.parent)} is not a directory" if os.path.lexists(out.parent) else \
            f"the directory {shown(out.parent)} does not exist"
        raise ValueError(f"cannot write {shown(out)}: {why}")
    return out


@contextmanager
def writing(path):
    """An ``OSError`` while writing ``path`` (a missing directory, no permission, a full disk)
    becomes one ``Error: cannot write PATH: reason`` line, exit status 2."""
    try:
        yield
    except OSError as exc:
        raise ValueError(f"cannot write {shown(path)}: {exc.strerror or exc}") from None


def percent(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def number(x, fmt=".4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def plural(n: int, word: str) -> str:
    """``1 epoch``, ``20 epochs``; ``1 mini-batch``, ``3 mini-batches``."""
    if n == 1:
        return f"{n} {word}"
    return f"{n:,} {word}{'es' if word.endswith(('batch', 'sh', 'ss', 'x')) else 's'}"
