"""Following a run as it trains (``polydl watch``): its state, read from the run directory
without writing to it, and a text frame of its curves drawn with plotext.

A run is *running* while a process holds the OS lock on its ``.polydl-lock`` (the kernel
releases it when that process ends, even after ``kill -9``). When the lock is free the run has
*finished* if ``summary.json`` is there and its last epoch is the configuration's last, and has
*stopped* otherwise (Ctrl-C, a NaN loss, a kill): ``polydl train --resume DIR`` continues it.
The lock is probed with a non-blocking shared flock on a read-only descriptor, let go at once.
``metrics.jsonl`` is read up to its last complete line: a line being appended (or torn by a
kill) is skipped, as :func:`polydl.training.checkpoint.read_metrics` does; a line that parses but
holds the wrong things (``"epoch": "one"``) is a damaged file, named with its line and field.
Every file is opened with :func:`polydl.fsafe.open_regular`: a link, a FIFO or another
non-regular file in place of one of the run's files is a :class:`WatchError`, never a hang.

A frame is the run's header line, three panels against epoch (loss and accuracy, train and
validation, and α, on a log axis when it spans more than a decade; a dotted line where α was
changed on resume or lowered on a plateau, with the change written below; for a run that watches
its metric, a line at its best epoch) and a status line: epoch e/E, the last validation loss and
accuracy, α, the best epoch, and running, finished (or stopped early, and why) or stopped. A
regression (its records have ``val_rmse``, ``val_mae`` and ``val_r2``, no accuracy) has four
panels instead, two by two where they stand side by side: loss, validation RMSE and MAE (the
target's units), validation R² and α; its status line gives the validation RMSE and R², and the
test RMSE and R² once it has finished. plotext is optional: ``pip install 'polydl[watch]'``.
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsafe
from . import checkpoint as ckpt
from .monitor import best_epoch
from .rundir import LOCK, MARKER, is_run_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["WatchError", "RunState", "best_epoch", "read_records", "lock_held", "is_run", "read_run", "header_line", "status_line",
           "run_frame", "require_plotext", "PLOTEXT_MISSING", "RUNNING", "FINISHED", "STOPPED", "SIDE_BY_SIDE"]

RUNNING, FINISHED, STOPPED = "running", "finished", "stopped"
PLOTEXT_MISSING = "polydl watch draws a run's curves with plotext, which is not installed: pip install 'polydl[watch]'"
#: frames at least this wide put the three panels side by side, narrower ones stack them
SIDE_BY_SIDE = 96
#: what an epoch's record of a regression has instead of accuracy
REGRESSION_KEYS = ("val_rmse", "val_mae", "val_r2")
_LOSS = ("loss", (("train_loss", "train", "cyan"), ("val_loss", "val", "orange")))
_ALPHA = ("α", (("lr", None, "green"),))
#: the panels of a frame: (title, ((record key, label, colour), ...)) of a classification, a regression
PANELS = (_LOSS, ("accuracy", (("train_accuracy", "train", "cyan"), ("val_accuracy", "val", "orange"))), _ALPHA)
REGRESSION_PANELS = (_LOSS, ("RMSE / MAE", (("val_rmse", "rmse", "cyan"), ("val_mae", "mae", "orange"))),
                     ("R²", (("val_r2", "val", "orange"),)), _ALPHA)


class WatchError(ValueError):
    """A directory that cannot be watched, or a missing plotting library."""


def require_plotext():
    try:
        import plotext
    except ImportError:
        raise WatchError(PLOTEXT_MISSING) from None
    return plotext


# ---------------------------------------------------------------------------- reading
def _read(path) -> bytes | None:
    """The bytes of one of the run's files (None if it does not exist), read without following a
    link or waiting on a FIFO; anything else that keeps it from being read is a WatchError."""
    try:
        return fsafe.read_regular(path)
    except FileNotFoundError:
        return None
    except fsafe.NotRegularFile as exc:
        raise WatchError(f"cannot read the run: {exc.strerror}") from None
    except OSError as exc:
        raise WatchError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_records(path) -> list[dict]:
    """The records of ``metrics.jsonl`` up to its last complete line (one that ends in a newline
    and parses); nothing if the file does not exist yet. A record with a field of the wrong kind
    is a :class:`WatchError` naming the line and the field."""
    data = _read(path)
    if data is None:
        return []
    try:  # the part after the last newline is still being written
        return ckpt.parse_metrics(data, path, complete_only=True)
    except ckpt.CheckpointError as exc:
        raise WatchError(str(exc)) from None


def lock_held(path) -> bool | None:
    """Whether a process holds the flock on ``path``: True, False (free, or no such file), or
    None where it cannot be told (no flock on this system, a file that cannot be opened). A link,
    a FIFO or another non-regular file there is a :class:`WatchError` (it is never waited on)."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    try:
        fd = fsafe.open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except fsafe.NotRegularFile as exc:
        raise WatchError(f"cannot read the run: {exc.strerror}") from None
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing the descriptor lets go of the shared lock at once
    return False


def is_run(path) -> bool:
    """A polydl run directory: it has the marker, or it is starting (its lock is held)."""
    path = Path(path)
    return path.is_dir() and (is_run_dir(path) or lock_held(path / LOCK) is True)


@dataclass
class RunState:
    """What a run directory holds at one moment."""

    path: Path
    status: str                      # running, finished, stopped
    records: list = field(default_factory=list)
    config: dict = field(default_factory=dict)
    summary: dict | None = None
    pid: int | None = None

    @property
    def epochs(self) -> int | None:
        """The run's length (``epochs`` of ``config.toml``), or None before it is written."""
        e = self.config.get("epochs")
        return e if isinstance(e, int) and not isinstance(e, bool) else None

    @property
    def epoch(self) -> int:
        """The last finished epoch (0 before the first)."""
        return int(self.records[-1].get("epoch", 0)) if self.records else 0

    @property
    def stopped_early(self) -> dict | None:
        """``{"epoch", "reason"}`` of a run that stopped early (its summary says so), else None."""
        s = (self.summary or {}).get("stopped_early")
        return s if isinstance(s, dict) else None

    @property
    def best_epoch(self) -> int | None:
        """The best epoch of the monitored metric of a run that watches it (early stopping, a
        plateau, ``restore_best``), from its records; None otherwise."""
        c = self.config
        if not any(c.get(k) for k in ("early_stopping_patience", "plateau_patience", "restore_best")):
            return None
        return best_epoch(self.records, str(c.get("monitor", "val_loss")), c.get("min_delta", 0.0))

    @property
    def regression(self) -> bool:
        """A regression run: its records (or its summary) have RMSE, MAE and R² instead of accuracy."""
        return (any(k in r for r in self.records for k in REGRESSION_KEYS)
                or (self.summary or {}).get("task") == "regression")

    @property
    def done(self) -> bool:
        """No process trains in it any more."""
        return self.status != RUNNING


def _read_json(path) -> dict | None:
    data = _read(path)
    if data is None:
        return None
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WatchError(f"cannot read {path}: {exc}") from None
    return doc if isinstance(doc, dict) else None


def _read_config(path) -> dict:
    data = _read(path)
    if data is None:
        return {}
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WatchError(f"cannot read {path}: {exc}") from None


def _pid(path) -> int | None:
    try:
        text = fsafe.read_regular(path, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def read_run(path) -> RunState:
    """The state of the run directory ``path`` (a :class:`WatchError` if it is none)."""
    path = Path(path)
    if not is_run(path):
        raise WatchError(f"{path} is not a polydl run directory (it has no {MARKER})")
    held = lock_held(path / LOCK)
    # read the lock first: a run that ends meanwhile has written everything before letting go
    records = read_records(path / ckpt.METRICS)
    config = _read_config(path / ckpt.CONFIG)
    summary = _read_json(path / ckpt.SUMMARY)
    state = RunState(path, RUNNING, records, config, summary)
    if held:
        state.pid = _pid(path / LOCK)
        return state
    if summary is not None and (state.stopped_early or state.epochs is not None and state.epoch >= state.epochs):
        state.status = FINISHED
    elif held is False:  # (where the lock cannot be probed, a run that has not finished may be training)
        state.status = STOPPED
    return state


# ---------------------------------------------------------------------------- text
def _g(v, digits=4) -> str:
    return "n/a" if v is None or not isinstance(v, (int, float)) else f"{v:.{digits}g}"


def _pct(v) -> str:
    return "n/a" if v is None or not isinstance(v, (int, float)) else f"{100 * v:.2f}%"


def header_line(state: RunState) -> str:
    """``runs/panda: moons, hidden [16], adam, α0 0.01 (inverse_time), batch 8, 6 epochs``."""
    c = state.config
    if not c:
        return f"{state.path}: starting"
    parts = [str(c.get("dataset", "?")), f"hidden {c.get('hidden', '?')}", str(c.get("optimizer", "?")),
             f"α0 {_g(c.get('lr'))} ({c.get('schedule', '?')})", f"batch {c.get('batch_size', '?')}",
             f"{c.get('epochs', '?')} epochs"]
    return f"{state.path}: {', '.join(parts)}"


def _status_parts(state: RunState) -> tuple[str, str]:
    total = state.epochs if state.epochs is not None else "?"
    if state.records:
        r = state.records[-1]
        val = (f"val RMSE {_g(r.get('val_rmse'))}  val R² {_g(r.get('val_r2'))}" if state.regression
               else f"val accuracy {_pct(r.get('val_accuracy'))}")
        head = (f"epoch {state.epoch}/{total}  train loss {_g(r.get('train_loss'))}  val loss {_g(r.get('val_loss'))}"
                f"  {val}  α {_g(r.get('lr'))}")
        best = state.best_epoch
        if best is not None:
            monitor = state.config.get("monitor", "val_loss")
            value = next((x.get(monitor) for x in state.records if x.get("epoch") == best), None)
            head += f"  best epoch {best} ({monitor} {_g(value)})"
    else:
        head = f"epoch 0/{total} (no epoch has finished yet)"
    if state.status == RUNNING:
        tail = f"running (pid {state.pid})" if state.pid else "running"
    elif state.status == FINISHED:
        s = state.summary or {}
        early = state.stopped_early
        how = f"stopped early after epoch {early.get('epoch')}: {early.get('reason')}; " if early else ""
        test = (f"test RMSE {_g(s.get('test_rmse'))}, R² {_g(s.get('test_r2'))}" if state.regression
                else f"test accuracy {_pct(s.get('test_accuracy'))}")
        tail = f"finished: {how}{test} (loss {_g(s.get('test_loss'))})"
    else:
        tail = (f"stopped after epoch {state.epoch} of {total} (no process trains it); continue it with "
                f"polydl train --resume {state.path}")
    return head, tail


def status_line(state: RunState, width: int | None = None) -> str:
    """``epoch 7/20  train loss 0.1834  val loss 0.1622  val accuracy 95.56%  α 0.002857  running
    (pid 4242)``: on two lines where one would be wider than ``width``."""
    head, tail = _status_parts(state)
    one = f"{head}  {tail}"
    return one if width is None or len(one) <= width else f"{head}\n{tail}"


def _series(records, key):
    pts = [(r["epoch"], r[key]) for r in records
           if isinstance(r.get("epoch"), int) and isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def _ticks(lo: int, hi: int, n: int = 6) -> list[int]:
    if hi <= lo:
        return [lo]
    step = max(1, math.ceil((hi - lo) / (n - 1)))
    ticks = list(range(lo, hi + 1, step))
    if ticks[-1] != hi:
        ticks.append(hi)
    return ticks


def _event(record: dict) -> str:
    """``α 0.005 → 0.0001 at epoch 4 (lr changed from ... to ...)``: the change of α first; ``α
    lowered on a plateau from epoch 9 (α 0.0025)`` for a plateau."""
    if record.get("event") == "plateau":
        return f"α lowered on a plateau from epoch {record.get('epoch')} (α {_g(record.get('lr'))})"
    text = str(record.get("event") or f"α changed at epoch {record.get('epoch')}")
    head, sep, tail = text.rpartition(": ")
    return f"{tail} ({head})" if sep and tail.startswith("α") else text


def run_frame(state: RunState, width: int = 120, height: int = 30, color: bool = False) -> str:
    """The frame of ``state`` in ``width`` × ``height`` characters; ``color`` keeps plotext's
    ANSI colours (a terminal), else it is plain text (a log)."""
    plt = require_plotext()
    width, height = max(40, int(width)), max(12, int(height))
    events = [r for r in state.records if r.get("lr_changed")][-2:]
    lines = [header_line(state)[:width]]
    tail = [_event(r)[:width] for r in events]
    tail += status_line(state, width).split("\n")
    if state.records:
        lines.append(_plots(plt, state, width, height - len(lines) - len(tail), color))
    else:
        lines.append("(the curves appear when the first epoch has finished)")
    return "\n".join(lines + tail)


def _shares(total: int, n: int) -> list[int]:
    """``total`` characters in ``n`` parts that differ by at most one."""
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _plots(plt, state: RunState, width: int, height: int, color: bool) -> str:
    records = state.records
    panels = REGRESSION_PANELS if state.regression else PANELS
    side = width >= SIDE_BY_SIDE
    rows, cols = ((1, len(panels)) if len(panels) <= 3 else (2, (len(panels) + 1) // 2)) if side else (len(panels), 1)
    height = max(9 * rows, height)
    first = min((r["epoch"] for r in records if isinstance(r.get("epoch"), int)), default=1)
    last = max(state.epochs or 0, state.epoch)
    plt.clear_figure()
    plt.limitsize(False, False)
    plt.subplots(rows, cols)
    plt.plotsize(width, height)
    widths, heights = _shares(width, cols), _shares(height, rows)
    changed = [r["epoch"] - 0.5 for r in records if r.get("lr_changed") and isinstance(r.get("epoch"), int)]
    best = state.best_epoch
    stop = (state.stopped_early or {}).get("epoch")
    for i, (title, keys) in enumerate(panels):
        row, col = divmod(i, cols)
        plt.subplot(row + 1, col + 1)
        plt.theme("clear")
        plt.plotsize(widths[col], heights[row])
        ys = []
        for key, label, colour in keys:
            x, y = _series(records, key)
            ys += y
            if x:
                plt.plot(x, y, label=label, marker="braille", color=colour) if label else \
                    plt.plot(x, y, marker="braille", color=colour)
        for x in changed:
            plt.vline(x, "gray")
        if best is not None and title != "α":
            plt.vline(best, "green")  # the best epoch of the monitored metric
        if isinstance(stop, int):
            plt.vline(stop, "red")  # where it stopped early
        if title == "α" and ys and min(ys) > 0 and max(ys) / min(ys) > 10:
            plt.yscale("log")
        plt.title(title)
        plt.xlim(first - 0.5 if changed else first, max(last, first + 1))
        plt.xticks(_ticks(first, max(last, first + 1)))
        if row == rows - 1:
            plt.xlabel("epoch")
    plt.main()
    text = plt.build().rstrip("\n")
    plt.clear_figure()
    return text if color else plt.uncolorize(text)
