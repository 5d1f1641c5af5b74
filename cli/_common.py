"""Shared pieces of the polydl commands: one-line usage errors and ``name=value`` options."""
from __future__ import annotations

import click


class Command(click.Command):
    """A command whose usage errors (a bad option value) are one ``Error: ...`` line, like the
    errors polydl itself reports."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if exc.ctx is None:
                raise
            raise click.UsageError(f"{exc.format_message()} (see '{exc.ctx.command_path} --help')") from None


class Group(click.Group):
    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if exc.ctx is None:
                raise
            raise click.UsageError(f"{exc.format_message()} (see '{exc.ctx.command_path} --help')") from None


def percent(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def number(x, fmt=".4f") -> str:
    return "n/a" if x is None else format(x, fmt)
