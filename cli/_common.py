"""Shared pieces of the polydl commands: one-line usage errors, the checks before writing a
user-named file, and number formatting."""
from __future__ import annotations

from contextlib import contextmanager

import click

from polydl.checks import did_you_mean


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


def check_output_file(path, overwrite: bool, option: str = "--overwrite"):
    """A user-named file a command is about to write: refused (before any work) if it exists and
    ``overwrite`` is not set, if it is a directory, or if its directory does not exist."""
    from pathlib import Path

    out = Path(path)
    if out.is_dir():
        raise ValueError(f"cannot write {out}: it is a directory")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists; pass {option} to replace it")
    if not out.parent.is_dir():
        raise ValueError(f"cannot write {out}: the directory {out.parent} does not exist")
    return out


@contextmanager
def writing(path):
    """An ``OSError`` while writing ``path`` (a missing directory, no permission, a full disk)
    becomes one ``Error: cannot write PATH: reason`` line, exit status 2."""
    try:
        yield
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None


def percent(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def number(x, fmt=".4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def plural(n: int, word: str) -> str:
    """``1 epoch``, ``20 epochs``; ``1 mini-batch``, ``3 mini-batches``."""
    if n == 1:
        return f"{n} {word}"
    return f"{n:,} {word}{'es' if word.endswith(('batch', 'sh', 'ss', 'x')) else 's'}"
