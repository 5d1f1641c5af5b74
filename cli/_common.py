"""Shared pieces of the polydl commands: one-line usage errors and number formatting."""
from __future__ import annotations

import click


class Command(click.Command):
    """A command whose usage errors (a bad option value) are one ``Error: ...`` line, like the
    errors polydl itself reports."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None


def _one_line(exc):
    if exc.ctx is None:
        return exc
    return click.UsageError(f"{exc.format_message()} (see '{exc.ctx.command_path} --help')")


class Group(click.Group):
    """A group with one-line usage errors (an unknown subcommand, a bad option value)."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None


def percent(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def number(x, fmt=".4f") -> str:
    return "n/a" if x is None else format(x, fmt)
