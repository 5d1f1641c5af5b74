"""``polydl watch DIR``: follow a run (its curves, redrawn as ``metrics.jsonl`` grows) or a study
(its trials) in the terminal until it ends.

The reading and the frames are :mod:`polydl.training.watch` (runs, drawn with plotext) and
:mod:`polydl.tune.watch` (studies, read with Optuna); this module picks one, redraws on a
terminal and prints plain frames otherwise."""
from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path

import click

from ._common import Command, check_path

#: the size of a frame that is not drawn on a terminal (COLUMNS and LINES override it)
LOG_SIZE = (120, 30)
HELP = """Follow a run or a study in the terminal until it ends.

\b
  polydl watch runs/panda          a polydl train run: loss, accuracy and α against epoch
                                   (a regression: loss, RMSE and MAE, R² and α)
  polydl watch runs/study          a polydl tune study: every trial, the best so far

A run is running while a process trains in it (it holds the run's lock), finished when its
last epoch (or the epoch it stopped early after) and summary.json are written, and stopped
otherwise (polydl train --resume DIR continues it). A run that watches its metric has a green
line at its best epoch, a red one where it stopped early, and a gray one where α was lowered on
a plateau (or changed on resume). A study is finished when all its --trials trials have finished and none runs,
stopped when no polydl tune process runs it. polydl watch ends by itself when the run or the
study is no longer running. On a terminal it redraws in place; otherwise (a pipe, a log) it
prints a plain frame each time something changes. Drawing a run needs plotext (pip install
'polydl[watch]'), reading a study Optuna (pip install 'polydl[tune]').
"""


def _open(path: Path):
    """(read, draw) for the run or study in ``path``; draw(state, width, height, terminal)."""
    from polydl.training import watch as run_watch
    from polydl.training.rundir import MARKER
    from polydl.tune import layout

    what = "give a run directory (polydl train --out DIR) or a study directory (polydl tune --out DIR)"
    check_path(path, "a run or study directory")
    if not path.exists():
        raise run_watch.WatchError(f"{path} does not exist; {what}")
    if not path.is_dir():
        raise run_watch.WatchError(f"{path} is a file, not a directory; {what}")
    if layout.is_study_dir(path):
        from polydl.tune import watch as study_watch

        reader = study_watch.StudyWatch(path)

        def draw_study(state, width, height, terminal):
            return study_watch.study_frame(state, width, height) if terminal else study_watch.study_frame(state)

        return reader.read, draw_study
    if run_watch.is_run(path):
        run_watch.require_plotext()

        def draw_run(state, width, height, terminal):
            return run_watch.run_frame(state, width, height, color=terminal)

        return (lambda: run_watch.read_run(path)), draw_run
    raise run_watch.WatchError(f"{path} is neither a polydl run (it has no {MARKER}) nor a polydl study (it "
                               f"has no {layout.STUDY_JSON}); {what}")


class _Screen:
    """Where frames go: redrawn in place on a terminal, one after another otherwise."""

    def __init__(self, terminal: bool):
        self.terminal = terminal
        self.started = False

    def size(self) -> tuple[int, int]:
        if self.terminal:
            cols, lines = shutil.get_terminal_size(LOG_SIZE)
            return cols, max(1, lines - 1)  # the last line keeps the cursor
        return shutil.get_terminal_size(LOG_SIZE)

    def show(self, text: str) -> None:
        out = sys.stdout
        if self.terminal:
            if not self.started:
                out.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear the screen once
                self.started = True
            # home, then each line over the old one (erasing its rest), then erase below
            out.write("\x1b[H" + "".join(line + "\x1b[K\n" for line in text.split("\n")) + "\x1b[J")
        else:
            out.write(text + "\n\n")
        out.flush()

    def close(self) -> None:
        if self.terminal and self.started:
            sys.stdout.write("\x1b[?25h")
            sys.stdout.flush()
            self.started = False


def _finite(ctx, param, value):
    """``--interval nan`` passes a range check (every comparison with NaN is false): refused here."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds; give one from 0.05 to 3600", ctx, param)
    return value


@click.command("watch", cls=Command, help=HELP)
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--once", is_flag=True, help="Draw once and exit (for tests and logs).")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True, metavar="SECONDS",
              callback=_finite, help="Seconds between looks at the directory.")
def watch(directory, once, interval):
    read, draw = _open(directory)
    screen = _Screen(sys.stdout.isatty())
    last = None
    try:
        while True:
            state = read()
            width, height = screen.size()
            text = draw(state, width, height, screen.terminal)
            if text != last:
                screen.show(text)
                last = text
            if once or state.done:
                return
            time.sleep(interval)
    except KeyboardInterrupt:  # leaving the watch: the run or study goes on
        sys.exit(130)
    finally:
        screen.close()
