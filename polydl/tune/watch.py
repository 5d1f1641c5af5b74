"""Following a study as it grows (``polydl watch OUT``): its trials, read from the storage and
the trials' run directories without writing to either, and a text frame of them.

A study is *finished* when it has its ``--trials`` finished trials (complete, pruned or failed)
and none running; *running* while an owner process lives (a held lock in ``OUT/owners``, or a
running trial whose owner is on another machine); *stopped* otherwise: the same ``polydl tune``
command continues it, and a trial whose owner died (*interrupted*) continues from its
checkpoint. A running trial's last epoch is the last complete line of its
``trials/NNNN/metrics.jsonl``, or, for a trial that trains where ``OUT`` is not seen (a Ray
worker that ships its run directory back at the end), the last epoch its owner reported.

The frame: the study's line, the counts and the round, the best trial so far, each later
round's box, then one row per trial (number, round, status, sampled values, the metric, the
epoch) and a status line. Needs Optuna (``pip install 'polydl[tune]'``).
"""
from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsafe
from ..training.watch import FINISHED, RUNNING, STOPPED, WatchError, read_records
from . import layout
from . import storage as _storage
from .owners import lock_alive, owner_alive

__all__ = ["StudyWatch", "StudyState", "TrialRow", "study_frame", "OPTUNA_MISSING", "STARTING", "INTERRUPTED"]

STARTING = "starting"
INTERRUPTED = "interrupted"
OPTUNA_MISSING = "polydl watch reads a study with Optuna, which is not installed: pip install 'polydl[tune]'"


@dataclass
class TrialRow:
    """One trial as the frame shows it; ``epoch`` is its last finished epoch (of ``epochs``)."""

    number: int
    round: int | None
    status: str               # complete, pruned, failed, running, interrupted, waiting
    params: dict
    value: float | None = None
    epoch: int | None = None
    epochs: int | None = None
    error: str | None = None


@dataclass
class StudyState:
    """What a study holds at one moment."""

    path: Path
    status: str               # starting, running, finished, stopped
    name: str
    url: str
    metric: str
    direction: str
    total: int
    rounds: int
    sampler: str
    keys: list
    rows: list = field(default_factory=list)
    boxes: dict = field(default_factory=dict)
    owners: list = field(default_factory=list)    # pids of the live owners on this machine
    note: str | None = None

    @property
    def done(self) -> bool:
        return self.status in (FINISHED, STOPPED)

    def count(self, *statuses) -> int:
        return sum(r.status in statuses for r in self.rows)

    @property
    def finished(self) -> int:
        return self.count("complete", "pruned", "failed")

    @property
    def best(self) -> TrialRow | None:
        done = [r for r in self.rows if r.status == "complete" and r.value is not None]
        if not done:
            return None
        sign = -1.0 if self.direction == "maximize" else 1.0
        return min(done, key=lambda r: (sign * r.value, r.number))


def _require_optuna():
    try:
        import optuna
    except ImportError:
        raise WatchError(OPTUNA_MISSING) from None
    return optuna


class StudyWatch:
    """The study of the study directory ``path``, read again at each :meth:`read`."""

    def __init__(self, path):
        self.path = Path(path)
        self.optuna = _require_optuna()
        self.doc = layout.read_study_json(self.path)
        self.ref = _storage.of_study_dir(self.doc["storage"], self.path)  # the directory may have moved
        self.study = None
        self.host = socket.gethostname()

    # --------------------------------------------------------------- owners
    def live_owners(self) -> list[int]:
        """The pids of the owner processes on this machine that still hold their locks."""
        out = []
        for p in sorted((self.path / layout.OWNERS).glob("*.lock")):
            if fsafe.is_inside(p, self.path) and lock_alive(p) is not False:
                pid = p.name.split("-", 1)[0]
                out.append(int(pid) if pid.isdigit() else 0)
        return out

    def _open(self, starting: bool):
        """The Optuna study, or None while its first owner has not yet created it."""
        if self.study is not None:
            return self.study
        # an owner opens the storage before it makes OUT/trials: until then, leave the storage to it
        if not (self.path / layout.TRIALS).is_dir() or (self.ref.path is not None and not self.ref.path.exists()):
            if starting:
                return None
            where = self.ref.path if self.ref.path is not None and not self.ref.path.exists() else None
            raise WatchError(f"the study in {self.path} has " + (f"no storage {where}" if where else "no trials yet")
                             + " and no process runs it; start it with polydl tune --out " + str(self.path))
        try:
            storage_obj = self.ref.open(readonly=True)
            study = _storage.retrying(self.optuna.load_study, study_name=self.doc["study_name"],
                                      storage=storage_obj)
        except KeyError:
            if starting:
                return None
            raise WatchError(f"the storage {self.ref.url} has no study '{self.doc['study_name']}' (study.json of "
                             f"{self.path} names it); no process runs it") from None
        self.study = study
        return study

    # --------------------------------------------------------------- reading
    def read(self) -> StudyState:
        owners = self.live_owners()
        doc = self.doc
        optuna = self.optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = self._open(starting=bool(owners))
        state = StudyState(self.path, STARTING, doc["study_name"], self.ref.url, doc["metric"], doc["direction"],
                           int(doc["trials"]), int(doc["rounds"]), doc["sampler"], list(doc["space"]), owners=owners)
        if study is None:
            state.note = "waiting for its owner to create the study"
            return state
        attrs = _storage.retrying(lambda: study.user_attrs)
        settings = attrs.get("polydl_settings") or {}
        state.total = int(settings.get("trials", state.total))
        state.boxes = attrs.get("boxes") or {}
        trials = _storage.retrying(study.get_trials, deepcopy=False)
        TrialState = optuna.trial.TrialState
        names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                 TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
        elsewhere = False
        for t in trials:
            config = t.user_attrs.get("config") if isinstance(t.user_attrs.get("config"), dict) else {}
            epochs = config.get("epochs") if isinstance(config.get("epochs"), int) else None
            row = TrialRow(t.number, t.user_attrs.get("round"), names.get(t.state, t.state.name.lower()),
                           dict(t.params), t.value, epochs=epochs, error=t.user_attrs.get("error"))
            steps = sorted(t.intermediate_values)
            if t.state == TrialState.COMPLETE:
                row.epoch = epochs if epochs is not None else (steps[-1] if steps else None)
            elif t.state in (TrialState.PRUNED, TrialState.FAIL):
                row.epoch = steps[-1] if steps else None
            elif t.state == TrialState.RUNNING:
                alive = owner_alive(t.user_attrs.get("owner"), self.path, self.host, self.ref.url)
                if alive is None:
                    elsewhere = True
                elif alive is False and t.user_attrs.get("owner") is not None:
                    row.status = INTERRUPTED
                records = read_records(layout.trial_dir(self.path, t.number) / "metrics.jsonl")
                if records:
                    row.epoch = records[-1].get("epoch")
                    v = records[-1].get(state.metric)
                    row.value = v if isinstance(v, (int, float)) else None
                elif steps:  # trained where OUT is not seen (a Ray worker): the epochs its owner reported
                    row.epoch, row.value = steps[-1], t.intermediate_values[steps[-1]]
            state.rows.append(row)
        if state.finished >= state.total and not state.count("running", "interrupted", "waiting"):
            state.status = FINISHED
        elif owners or elsewhere:
            state.status = RUNNING
        else:
            state.status = STOPPED
        return state


# ---------------------------------------------------------------------------- text
def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _box(box: dict) -> str:
    if "choices" in box:
        return "{" + ", ".join(map(str, box["choices"])) + "}"
    return f"[{_cell(box.get('low'))}, {_cell(box.get('high'))}]"


def _epoch(row: TrialRow) -> str:
    if row.epoch is None:
        return "-"
    return f"{row.epoch}/{row.epochs}" if row.epochs is not None else str(row.epoch)


def _status(state: StudyState) -> str:
    if state.status == FINISHED:
        return "finished"
    if state.status == STARTING:
        return f"starting: {state.note}"
    if state.status == RUNNING:
        pids = ", ".join(str(p) for p in state.owners if p)
        return f"running (owner pid {pids})" if pids else "running (owners on other machines)"
    interrupted = [r for r in state.rows if r.status == INTERRUPTED]
    more = (f"; interrupted trial{'s' if len(interrupted) > 1 else ''} "
            f"{', '.join(str(r.number) for r in interrupted)} continue{'' if len(interrupted) > 1 else 's'} from "
            "the checkpoint") if interrupted else ""
    return (f"stopped with {state.finished} of {state.total} trials finished (no process runs the study); the same "
            f"polydl tune command continues it{more}")


def study_frame(state: StudyState, width: int | None = None, height: int | None = None) -> str:
    """The frame of ``state``; with ``height``, only the rows that fit (the running trials and the
    latest others), with ``width``, lines cut to it (a terminal); without, every trial (a log)."""
    direction = "minimised" if state.direction == "minimize" else "maximised"
    rounds = f" in {state.rounds} rounds" if state.rounds > 1 else ""
    lines = [f"study '{state.name}' in {state.url}: {state.metric} {direction}, {state.total} trials{rounds} "
             f"({state.sampler} sampling)"]
    if state.status != STARTING:
        counts = ", ".join(f"{state.count(s)} {s}" for s in ("complete", "pruned", "failed"))
        active = state.count("running")
        line = f"{state.finished} of {state.total} trials finished ({counts}), {active} running"
        if state.count(INTERRUPTED):
            line += f", {state.count(INTERRUPTED)} interrupted"
        if state.rounds > 1 and state.rows:
            line += f"; round {max(r.round or 1 for r in state.rows)} of {state.rounds}"
        lines.append(line)
        best = state.best
        if best is None:
            lines.append("best so far: none (no complete trial yet)")
        else:
            values = " ".join(f"{k}={_cell(best.params.get(k))}" for k in state.keys if k in best.params)
            lines.append(f"best so far: trial {best.number} (round {_cell(best.round)}): {state.metric} "
                         f"{_cell(best.value)}  {values}")
        for r in sorted(state.boxes, key=lambda r: int(r)):
            if int(r) > 1:
                box = state.boxes[r]
                lines.append(f"round {r} samples in: " + "  ".join(f"{k} {_box(box[k])}" for k in state.keys if k in box))
    rows = _rows(state, None if height is None else height - len(lines) - 3)
    lines += rows
    lines.append(_status(state))
    if width is not None:
        lines = [x[:width] for x in lines]
    return "\n".join(lines)


def _rows(state: StudyState, room: int | None) -> list[str]:
    if not state.rows:
        return [] if state.status == STARTING else ["(no trial yet)"]
    shown = sorted(state.rows, key=lambda r: r.number)
    hidden = 0
    if room is not None and len(shown) > max(1, room):
        room = max(1, room)
        active = [r for r in shown if r.status in ("running", INTERRUPTED, "waiting")][:room]
        others = [r for r in shown if r.status not in ("running", INTERRUPTED, "waiting")]
        latest = others[len(others) - (room - len(active)):] if room > len(active) else []
        keep = {r.number for r in active + latest}
        hidden = len(shown) - len(keep)
        shown = [r for r in shown if r.number in keep]
    header = ["trial", "round", "status", *state.keys, state.metric, "epoch"]
    cells = [[str(r.number), _cell(r.round), r.status, *(_cell(r.params.get(k)) for k in state.keys),
              _cell(r.value), _epoch(r)] for r in shown]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]

    def fmt(row, errors=None):
        text = "  ".join(c.ljust(w) if i == 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "  " + text + (f"  {errors}" if errors else "")

    out = [fmt(header)]
    out += [fmt(c, r.error) for c, r in zip(cells, shown, strict=True)]
    if hidden:
        out.append(f"  ({hidden} other trial{'s' if hidden > 1 else ''} not shown: polydl tune report "
                   f"{state.path} lists the best)")
    return out
