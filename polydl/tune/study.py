"""The owner of a study: ``tune(settings)`` opens (or creates) the Optuna study, asks trials,
hands them to an executor and tells the study what became of them.

One process owns its trials and is the only one that talks to the study about them (Optuna's
ask-and-tell interface); its workers train and report back. ``trials`` is the total for the
study: several owners on one storage together end it with exactly that many finished trials
(see :mod:`polydl.tune.storage` for the lock that makes this so). Round ``r`` of a
coarse-to-fine search starts only when every trial of round ``r − 1`` has finished.

The value told to the study is the metric of the trial's final epoch (``val_loss``, minimised,
or ``val_accuracy``, maximised): the weights the run directory keeps, which ``polydl evaluate``
scores. After each epoch the metric is reported as an intermediate value (step = epoch); with
``prune="median"`` Optuna's ``MedianPruner`` stops trials below the median and they are told
``PRUNED``. A trial that fails (a NaN loss, a configuration the training layer rejects) is told
``FAIL`` with its one-line reason in the user attr ``error``, and the search goes on.

Crash recovery: each owner holds a shared flock on ``OUT/owners/PID-TOKEN.lock`` (its workers
too) and records ``{"host", "pid", "token", "lock"}`` in its trials' user attr ``owner``. A
``RUNNING`` trial of this machine whose owner lock is free has lost its owner (``kill -9``, a
crash, a reboot): the next owner on the study adopts it under its own trial number and
continues its run directory from the checkpoint (``training.resume``). Trials that finished
are never run again. Trials of owners on other machines are left to them.
"""
from __future__ import annotations

import dataclasses
import errno
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsafe, training
from ..training.config import ConfigError, TrainConfig
from . import layout
from . import storage as _storage
from .owners import Owner, lock_path, owner_alive
from .space import Space, SpaceError

__all__ = ["TuneSettings", "TuneReporter", "TuneResult", "TrialInfo", "TuneError", "TuneInterrupted", "tune",
           "METRICS", "SAMPLERS", "PRUNERS", "MIN_TRIALS_PER_ROUND", "require_optuna",
           "study_differences", "OPTUNA_MISSING"]

METRICS = {"val_loss": "minimize", "val_accuracy": "maximize"}
SAMPLERS = ("random", "tpe")
PRUNERS = ("median",)
MIN_TRIALS_PER_ROUND = 2
OPTUNA_MISSING = "polydl tune needs Optuna: pip install 'polydl[tune]'"
SETTINGS = "polydl_settings"
POLL = 0.2
#: base configuration keys that may differ between the owners of one study
PER_OWNER = ("out", "device", "plot")


class TuneError(ConfigError):
    """Settings of a search that cannot be used, or a study they do not match."""


class TuneInterrupted(Exception):
    """Ctrl-C or SIGTERM: running trials saved their checkpoints; the same call continues.
    ``signal`` is the signal's number (``signal.SIGINT`` or ``signal.SIGTERM``)."""

    def __init__(self, message: str, signal: int = 2):
        super().__init__(message)
        self.signal = signal


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise TuneError(OPTUNA_MISSING) from None
    return optuna


@dataclass
class TuneSettings:
    """A search: the base configuration, the space, and how to search it.

    ``seed`` seeds the sampling (default: the base configuration's ``seed``); ``study_name``
    defaults to the name of ``out``; ``storage`` to ``out/study.db``."""

    base: TrainConfig
    space: Space
    trials: int
    out: str | Path
    rounds: int = 1
    sampler: str = "random"
    prune: str | None = None
    metric: str = "val_loss"
    storage: str | None = None
    study_name: str | None = None
    seed: int | None = None
    executor: str = "local"
    workers: int | None = None
    executor_options: dict = field(default_factory=dict)

    @property
    def sampling_seed(self) -> int:
        return int(self.base.seed if self.seed is None else self.seed)

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    @property
    def name(self) -> str:
        return self.study_name or Path(os.path.abspath(self.out)).name

    def check(self) -> None:
        """Raise :class:`TuneError` for settings that cannot run (before anything is written)."""
        from .executors.registry import check_options

        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise TuneError(f"--trials must be >= 1 (the number of trials of the whole study), not {self.trials!r}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise TuneError(f"--rounds must be >= 1, not {self.rounds!r}")
        if self.study_name is not None and (not isinstance(self.study_name, str) or not self.study_name.strip()):
            raise TuneError(f"--study-name must be a name, not {self.study_name!r}; give one, or leave it out for "
                            "the name of --out")
        if self.rounds > 1 and self.trials < MIN_TRIALS_PER_ROUND * self.rounds:
            raise TuneError(f"--rounds {self.rounds} needs at least {MIN_TRIALS_PER_ROUND * self.rounds} trials "
                            f"({MIN_TRIALS_PER_ROUND} per round), not --trials {self.trials}; use fewer rounds or "
                            "more trials")
        if self.metric not in METRICS:
            raise TuneError(f"--metric must be one of {', '.join(METRICS)}, not {self.metric!r}")
        if self.sampler not in SAMPLERS:
            raise TuneError(f"--sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}")
        if self.sampler == "tpe" and self.rounds > 1:
            raise TuneError("--sampler tpe decides where to sample from all the trials so far and takes no --rounds; "
                            "use --sampler random --rounds R for coarse to fine")
        if self.prune is not None and self.prune not in PRUNERS:
            raise TuneError(f"--prune must be {' or '.join(PRUNERS)}, not {self.prune!r}")
        try:  # the executor's own checks: an option it does not take, a value out of range
            check_options(self.executor, {"workers": self.workers, **self.executor_options})
        except ValueError as exc:
            raise TuneError(str(exc)) from None
        if isinstance(self.seed, bool) or (self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0)):
            raise TuneError(f"--seed must be a whole number >= 0, not {self.seed!r}")
        if not isinstance(self.space, Space) or not len(self.space):
            raise TuneError("the search space is empty")
        if self.base.val_split == 0 and "val_split" not in self.space and not _has_own_validation(self.base):
            raise TuneError(f"--metric {self.metric} needs validation data, but val_split is 0; give --val-split 0.1")

    def identity(self) -> dict:
        """What defines the study, recorded in it and compared when it is opened again."""
        base = {k: v for k, v in self.base.to_dict().items() if k not in PER_OWNER}
        return {"metric": self.metric, "direction": self.direction, "rounds": self.rounds, "trials": self.trials,
                "sampler": self.sampler, "seed": self.sampling_seed, "prune": self.prune, "base": base}

    def study_json(self, ref) -> dict:
        return {"storage": ref.url, "study_name": self.name, "metric": self.metric, "direction": self.direction,
                "space": self.space.to_dict(), "rounds": self.rounds, "trials": self.trials,
                "sampler": self.sampler, "seed": self.sampling_seed}


def _has_own_validation(cfg: TrainConfig) -> bool:
    return str(cfg.dataset).lower().endswith(".npz")


# ---------------------------------------------------------------------------- reporting
@dataclass
class TrialInfo:
    """A trial that just finished, for progress lines."""

    number: int
    round: int
    rounds: int
    params: dict
    described: str
    state: str                  # complete, pruned, failed
    metric: str
    value: float | None
    best_value: float | None
    best_number: int | None
    finished: int
    total: int
    error: str | None = None
    epoch: int | None = None


class TuneReporter:
    """Progress callbacks of :func:`tune`; the base class reports nothing."""

    def start(self, info: dict) -> None: ...
    def trial_end(self, info: TrialInfo) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class TuneResult:
    study_name: str
    storage: str
    out: Path
    counts: dict
    best_number: int | None
    best_value: float | None
    best_params: dict
    metric: str


# ---------------------------------------------------------------------------- comparing studies
def study_differences(settings: TuneSettings, attrs: dict) -> list[str]:
    """What differs between ``settings`` and the study whose user attrs are ``attrs``."""
    out = []
    there_space = attrs.get("polydl_space")
    if there_space is not None:
        try:
            other = Space.from_dict(there_space, config_keys=False)
            out += settings.space.differences(other, here="here", there="in the study")
        except SpaceError:
            out.append("the study's space cannot be read")
    there = attrs.get(SETTINGS) or {}
    here = settings.identity()
    for key in ("metric", "rounds", "trials", "sampler", "seed", "prune"):
        if key == "trials" and settings.rounds == 1 and there.get("rounds") == 1:
            continue  # a random search may be extended
        if key in there and there[key] != here[key]:
            out.append(f"{key} {_show(here[key])} here, {_show(there[key])} in the study")
    if "base" in there:
        a, b = here["base"], there["base"]
        for key in sorted(set(a) | set(b)):
            if key not in PER_OWNER and a.get(key) != b.get(key):
                out.append(f"base {key} {_show(a.get(key))} here, {_show(b.get(key))} in the study")
    return out


def _show(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _mismatch(name, url, diffs) -> TuneError:
    return TuneError(f"the study '{name}' in {url} was made with different settings: {'; '.join(diffs)}; search "
                     "with the study's settings, or choose another --study-name or --out")


def _check_existing(storage_obj, settings: TuneSettings, ref) -> bool:
    """Raise unless the storage's study of this name (if any) matches; True if it exists."""
    try:
        study_id = storage_obj.get_study_id_from_name(settings.name)
    except KeyError:
        return False
    attrs = storage_obj.get_study_user_attrs(study_id)
    if "polydl_space" not in attrs:
        raise TuneError(f"the study '{settings.name}' in {ref.url} was not made by polydl tune (it has no search "
                        "space); choose another --study-name")
    diffs = study_differences(settings, attrs)
    if diffs:
        raise _mismatch(settings.name, ref.url, diffs)
    return True


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise TuneError(f"the study directory {out} is a file; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not layout.is_study_dir(out):
        raise TuneError(f"{out} exists and is not a polydl study (it has no {layout.STUDY_JSON}); choose another --out")


def _is_inside(path: Path | None, out: Path) -> bool:
    if path is None:
        return False
    try:
        path.resolve().relative_to(out.resolve())
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------------------- the search
class _Running:
    def __init__(self, trial, number, rnd, params, run_dir, reported=()):
        self.trial = trial
        self.number = number
        self.round = rnd
        self.params = params
        self.run_dir = run_dir
        self.reported = set(reported)
        self.stop_sent = None
        self.last_epoch = None


class _Search:
    def __init__(self, settings: TuneSettings, ref, study, sampler, executor, owner, reporter, out):
        import optuna

        self.optuna = optuna
        self.s = settings
        self.ref = ref
        self.study = study
        self.sampler = sampler
        self.executor = executor
        self.owner = owner
        self.reporter = reporter
        self.out = out
        self.base = settings.base.to_dict()
        self.running: dict[int, _Running] = {}
        self.notes: set[str] = set()

    # --------------------------------------------------------------- helpers
    def _round(self, number: int) -> int:
        return self.sampler.round_of(number) if hasattr(self.sampler, "round_of") else 1

    def _trials(self, states=None):
        return _storage.retrying(self.study.get_trials, deepcopy=False, states=states)

    def _note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.add(message)
            self.reporter.note(message)

    def _best(self):
        done = [t for t in self._trials((self.optuna.trial.TrialState.COMPLETE,)) if t.value is not None]
        if not done:
            return None, None
        sign = 1.0 if self.s.direction == "minimize" else -1.0
        best = min(done, key=lambda t: (sign * t.value, t.number))
        return best.value, best.number

    def _lock(self):
        return _storage.locked(self.ref, self.out)

    # --------------------------------------------------------------- new trials
    def ask(self):
        """Ask the next trial of the study (under the owners' lock); None when there is none
        to ask now (all asked, or the next round waits for this one)."""
        TrialState = self.optuna.trial.TrialState
        with self._lock():
            n = len(self._trials())
            if n >= self.s.trials:
                return None
            if hasattr(self.sampler, "ready") and not self.sampler.ready(self.study, n):
                return None
            trial = _storage.retrying(self.study.ask)
            number = trial.number
            run_dir = str(layout.trial_dir(self.out, number).resolve())
            _storage.retrying(trial.set_user_attr, "owner", self.owner.attr())
            _storage.retrying(trial.set_user_attr, "run_dir", run_dir)
            if number >= self.s.trials:  # asked at the same moment as an owner on another machine
                message = f"trial {number} is beyond the study's --trials {self.s.trials} (asked at the same moment " \
                          "by another owner); not run"
                _storage.retrying(trial.set_user_attr, "error", message)
                _storage.retrying(self.study.tell, trial, state=TrialState.FAIL, skip_if_finished=True)
                return None
            if not hasattr(self.sampler, "round_of"):
                _storage.retrying(trial.set_user_attr, "round", 1)
            params = _storage.retrying(self.s.space.suggest, trial)
        return self._start(trial, number, params, run_dir, resume=False)

    def _start(self, trial, number, params, run_dir, resume, config=None):
        from .executors import TrialTask

        rnd = self._round(number)
        place = layout.trial_dir(self.out, number)
        if place.is_symlink() or not fsafe.is_inside(place, self.out):
            run = _Running(trial, number, rnd, params, run_dir)
            self._finish(run, "failed", error=f"{place} is a link, not a directory of the study; remove it")
            return "skipped"
        if config is None:
            attempted = self.s.space.apply(self.base, params)
            attempted["out"] = run_dir
            try:
                config = training.from_dict(attempted).to_dict()
            except ValueError as exc:
                _storage.retrying(trial.set_user_attr, "config", attempted)
                run = _Running(trial, number, rnd, params, run_dir)
                self._finish(run, "failed", error=" ".join(str(exc).split()))
                return "skipped"
        _storage.retrying(trial.set_user_attr, "config", config)
        frozen = _storage.retrying(self.study._storage.get_trial, trial._trial_id)
        run = _Running(trial, number, rnd, params, run_dir, reported=frozen.intermediate_values)
        self.running[number] = run
        if resume:  # epochs that finished after the last owner's last report
            from ..training import checkpoint as ckpt

            try:  # read as a regular file only; a damaged one is the resumed run's to report
                records = ckpt.read_metrics(Path(run_dir) / ckpt.METRICS)
            except (OSError, ValueError):
                records = []
            for record in records:
                value, epoch = record.get(self.s.metric), record.get("epoch")
                if not isinstance(value, (int, float)) or isinstance(epoch, bool) or not isinstance(epoch, int):
                    continue
                if epoch not in run.reported and math.isfinite(value):
                    _storage.retrying(trial.report, float(value), int(record["epoch"]))
                    run.reported.add(record["epoch"])
        self.executor.submit(TrialTask(number, config, run_dir, resume=resume, decide=bool(self.s.prune)))
        return run

    # --------------------------------------------------------------- orphans
    def orphans(self) -> list:
        TrialState = self.optuna.trial.TrialState
        out = []
        for t in self._trials((TrialState.RUNNING,)):
            if t.number in self.running:
                continue
            attr = t.user_attrs.get("owner")
            if attr is None and not self.ref.local:
                continue
            if attr is not None and attr.get("token") == self.owner.token:
                continue
            if owner_alive(attr, self.out, self.owner.host, self.ref.url) is False:
                out.append(t)
        return out

    def adopt(self):
        """Take over a RUNNING trial whose owner died: continue it from its checkpoint."""
        TrialState = self.optuna.trial.TrialState
        candidates = self.orphans()
        if not candidates:
            return None
        with self._lock():
            for t in candidates:
                fresh = _storage.retrying(self.study._storage.get_trial, t._trial_id)
                if fresh.state != TrialState.RUNNING or fresh.user_attrs.get("owner") != t.user_attrs.get("owner"):
                    continue  # another owner took it a moment ago
                if owner_alive(fresh.user_attrs.get("owner"), self.out, self.owner.host, self.ref.url) is not False:
                    continue
                trial = self.optuna.trial.Trial(self.study, t._trial_id)
                _storage.retrying(trial.set_user_attr, "owner", self.owner.attr())
                params = _storage.retrying(self.s.space.suggest, trial)  # the ones it has, and any it lacks
                # paths are OUT's, never read from the storage (which may come from someone else)
                run_dir = str(layout.trial_dir(self.out, t.number).resolve())
                if fresh.user_attrs.get("run_dir") != run_dir:
                    _storage.retrying(trial.set_user_attr, "run_dir", run_dir)
                old = fresh.user_attrs.get("owner")
                old = old if isinstance(old, dict) else {}
                config = fresh.user_attrs.get("config")
                pid = old.get("pid") if isinstance(old.get("pid"), int) else "?"
                self.reporter.note(f"trial {t.number}: its owner (pid {pid}) is gone; continuing it "
                                   f"from its checkpoint in {run_dir}")
                lock = lock_path(self.out, old)
                if lock is not None and old.get("host") == self.owner.host:
                    fsafe.unlink_inside(lock, self.out)  # its other trials are orphans without it: a missing lock is free
                if isinstance(config, dict):
                    return self._start(trial, t.number, params, run_dir, resume=True, config={**config, "out": run_dir})
                return self._start(trial, t.number, params, run_dir, resume=True)
        return None

    # --------------------------------------------------------------- events
    def on_event(self, ev) -> None:
        run = self.running.get(ev.number)
        if run is None:
            return
        if ev.kind == "note":
            self._note(ev.message)
        elif ev.kind == "epoch":
            run.last_epoch = ev.epoch
            self._judge(run, ev)
            if self.s.prune and run.stop_sent is None:  # the trial waits for this answer (TrialTask.decide)
                self.executor.proceed(ev.number, int(ev.epoch))
        elif ev.kind == "done":
            value = (ev.record or {}).get(self.s.metric)
            if value is None:
                self._finish(run, "failed", error=f"the run has no {self.s.metric} (no validation data)")
            elif not math.isfinite(value):
                self._finish(run, "failed", error=f"{self.s.metric} is {value} after the last epoch")
            else:
                self._finish(run, "complete", value=float(value), epoch=ev.epoch)
        elif ev.kind == "stopped":
            self._finish(run, "pruned", epoch=run.stop_sent if run.stop_sent is not None else ev.epoch)
        elif ev.kind == "failed":
            self._finish(run, "failed", error=ev.message or "the trial failed")
        elif ev.kind == "interrupted":
            self.running.pop(ev.number, None)

    def _judge(self, run: _Running, ev) -> None:
        """Report an epoch's value to the study; stop the trial where the pruner says so."""
        value = (ev.record or {}).get(self.s.metric)
        if value is None or not math.isfinite(value) or ev.epoch in run.reported:
            return
        _storage.retrying(run.trial.report, float(value), int(ev.epoch))
        run.reported.add(ev.epoch)
        if self.s.prune and run.stop_sent is None and _storage.retrying(run.trial.should_prune):
            run.stop_sent = ev.epoch
            self.executor.stop(ev.number)

    def _finish(self, run: _Running, state: str, value=None, error=None, epoch=None) -> None:
        TrialState = self.optuna.trial.TrialState
        if error is not None:
            _storage.retrying(run.trial.set_user_attr, "error", error)
        if state == "complete":
            _storage.retrying(self.study.tell, run.trial, value, skip_if_finished=True)
        elif state == "pruned":
            _storage.retrying(self.study.tell, run.trial, state=TrialState.PRUNED, skip_if_finished=True)
            frozen = _storage.retrying(self.study._storage.get_trial, run.trial._trial_id)
            value = frozen.value
        else:
            _storage.retrying(self.study.tell, run.trial, state=TrialState.FAIL, skip_if_finished=True)
        self.running.pop(run.number, None)
        best_value, best_number = self._best()
        finished = sum(1 for t in self._trials() if t.state.is_finished())
        self.reporter.trial_end(TrialInfo(
            number=run.number, round=run.round, rounds=self.s.rounds, params=dict(run.params),
            described=self.s.space.describe(run.params), state=state, metric=self.s.metric, value=value,
            best_value=best_value, best_number=best_number, finished=min(finished, self.s.trials),
            total=self.s.trials, error=error, epoch=epoch))

    # --------------------------------------------------------------- the loop
    def fill(self) -> None:
        while self.executor.free() > 0:
            started = self.adopt() or self.ask()
            if started is None:
                return

    def finished(self) -> bool:
        """Nothing left for this owner: every trial asked and none RUNNING on this machine
        (trials of live owners here might still need adopting if they die)."""
        if self.running:
            return False
        trials = self._trials()
        if len(trials) < self.s.trials:
            return False
        for t in trials:
            if t.state == self.optuna.trial.TrialState.RUNNING:
                attr = t.user_attrs.get("owner")
                if attr is None and not self.ref.local:
                    continue  # being asked on another machine
                if owner_alive(attr, self.out, self.owner.host, self.ref.url) is not None:  # this machine's: wait for it (or adopt it)
                    return False
        return True

    def run(self) -> None:
        waited = False
        while True:
            for ev in self.executor.poll(POLL if self.running else 0.0):
                self.on_event(ev)
            self.fill()
            if self.finished():
                return
            if not self.running:
                if not waited:
                    waited = True
                    self._waiting_note()
                time.sleep(POLL)
            else:
                waited = False

    def _waiting_note(self) -> None:
        n = len(self._trials())
        if n < self.s.trials and hasattr(self.sampler, "ready") and not self.sampler.ready(self.study, n):
            self._note(f"waiting for round {self._round(n) - 1} to finish before round {self._round(n)} starts "
                       "(its last trials run under other owners)")
        else:
            self._note("waiting for the trials that other owners run")

    def interrupt(self) -> None:
        for ev in self.executor.close(interrupt=True):
            try:
                self.on_event(ev)
            except Exception:  # the storage may be what is failing; the checkpoints are safe
                pass

    def result(self) -> TuneResult:
        TrialState = self.optuna.trial.TrialState
        counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
        names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                 TrialState.RUNNING: "running"}
        for t in self._trials():
            if t.state in names:
                counts[names[t.state]] += 1
        best_value, best_number = self._best()
        params = {}
        if best_number is not None:
            params = next(t.params for t in self._trials() if t.number == best_number)
        return TuneResult(self.s.name, self.ref.url, self.out, counts, best_number, best_value, params, self.s.metric)


def _make_sampler(settings: TuneSettings):
    import optuna

    from .sampler import CoarseToFineSampler, split_trials

    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=settings.sampling_seed)
    return CoarseToFineSampler(settings.space, rounds=settings.rounds,
                               trials_per_round=split_trials(settings.trials, settings.rounds),
                               seed=settings.sampling_seed)


def _make_pruner(settings: TuneSettings):
    import optuna

    if settings.prune == "median":
        return optuna.pruners.MedianPruner()
    return optuna.pruners.NopPruner()


class _SigtermAsInterrupt:
    """SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does; ``signum`` tells which came."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self._old = None
        self.signum = signal.SIGINT

    def __enter__(self):
        if self.enabled:
            self._old = signal.signal(signal.SIGTERM, self._handler)
        return self

    def _handler(self, signum, frame):
        self.signum = signum
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGTERM, self._old)


def tune(settings: TuneSettings, reporter: TuneReporter | None = None, handle_signals: bool = True) -> TuneResult:
    """Run the search of ``settings`` until the study has ``settings.trials`` finished trials.

    Everything is checked before anything is written: bad settings, a space that gives invalid
    configurations, a storage that cannot be opened and a study made with other settings are
    :class:`TuneError` (or other ``ValueError``) with one-line messages, and so are a study
    directory that cannot be written and a storage that fails (a full disk) while the search
    runs (the running trials save their checkpoints first). Ctrl-C and SIGTERM save the running
    trials' checkpoints and raise :class:`TuneInterrupted`."""
    require_optuna()
    settings.check()
    base = settings.base.validate()
    data = training.load_data(base)
    settings.space.check(base, train_size=len(data.y_train))
    out = Path(os.path.abspath(settings.out))
    try:
        return _tune(settings, base, len(data.y_train), out, reporter or TuneReporter(), handle_signals)
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # stdout closed: the command line ends quietly
            raise
        if isinstance(exc, fsafe.NotRegularFile):
            raise TuneError(exc.strerror) from None
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(out) else ""
        raise TuneError(f"cannot write the study directory {out}{where}: {exc.strerror or exc}; check its "
                        "permissions and free space, or choose another --out") from None
    except Exception as exc:
        if not _storage_failure(exc):
            raise
        raise TuneError(f"the storage of the study in {out} failed: {_storage.first_line(exc)}; free space (or fix "
                        "the database) and run the same command again to continue") from None


def _storage_failure(exc: BaseException) -> bool:
    """An error of Optuna's storage, SQLAlchemy or SQLite (a full disk, a damaged file)."""
    import optuna

    return isinstance(exc, optuna.exceptions.StorageInternalError) or type(exc).__module__.split(".")[0] in (
        "sqlalchemy", "sqlite3")


def _tune(settings: TuneSettings, base: TrainConfig, train_size: int, out: Path, reporter: TuneReporter,
          handle_signals: bool) -> TuneResult:
    import optuna

    ref = _storage.resolve(settings.storage, out)
    _check_out(out)
    fresh = not layout.is_study_dir(out)
    if not fresh:
        old = layout.read_study_json(out)
        if settings.study_name is None:  # the study's own name, also in a directory that has been moved
            settings = dataclasses.replace(settings, study_name=str(old["study_name"]))
        there = _storage.of_study_dir(old["storage"], out)  # OUT/study.db in a directory that has been moved
        if there.url != ref.url or old["study_name"] != settings.name:
            storage = there.path if there.path is not None else there.url
            raise TuneError(f"{out} holds the study '{old['study_name']}' in {there.url}; pass --storage {storage} "
                            f"--study-name {old['study_name']} to continue it, or choose another --out")
    info = settings.study_json(ref)
    inside = _is_inside(ref.path, out)
    storage_obj = None
    if not inside or not fresh:
        storage_obj = ref.open()
        with _storage.locked(ref, out):  # another owner may be between creating the study and naming its space
            _check_existing(storage_obj, settings, ref)
    executor = _make_executor(settings, base)
    notes = executor.prepare(out)  # a cluster that does not answer or lacks GPUs: nothing written yet
    executor.slots = max(1, min(executor.slots, settings.trials))
    owner = None
    logging_level = optuna.logging.get_verbosity()
    try:
        if fresh:
            out.mkdir(parents=True, exist_ok=True)
        owner = Owner(out)  # before study.json is written: a study directory that is starting has a live owner
        executor.owner_lock = str(owner.lock)
        if fresh:
            layout.write_study_json(out, info)
        if storage_obj is None:
            storage_obj = ref.open()
        _trials_dir(out)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = _make_sampler(settings)
        with _storage.locked(ref, out):
            existed = _check_existing(storage_obj, settings, ref)
            study = _storage.retrying(optuna.create_study, storage=storage_obj, study_name=settings.name,
                                      direction=settings.direction, sampler=sampler, pruner=_make_pruner(settings),
                                      load_if_exists=True)
            identity = settings.identity()
            if not existed:
                study.set_user_attr("polydl_space", settings.space.to_dict())
                study.set_user_attr(SETTINGS, identity)
            elif study.user_attrs.get(SETTINGS, {}).get("trials") != settings.trials:
                study.set_user_attr(SETTINGS, identity)  # a random search extended to more trials
        if not fresh:
            layout.write_study_json(out, info)
        for message in notes:
            reporter.note(message)
        finished = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        reporter.start({"study_name": settings.name, "storage": ref.url, "out": str(out), "trials": settings.trials,
                        "rounds": settings.rounds, "sampler": settings.sampler, "metric": settings.metric,
                        "direction": settings.direction, "prune": settings.prune, "executor": settings.executor,
                        "workers": executor.slots, "threads": getattr(executor, "threads", None),
                        "each": getattr(executor, "each", None), "space": settings.space.to_dict(),
                        "finished": finished, "train_size": train_size})
        search = _Search(settings, ref, study, sampler, executor, owner, reporter, out)
        with _SigtermAsInterrupt(handle_signals) as signals:
            try:
                executor.start()
                search.run()
            except KeyboardInterrupt:
                search.interrupt()
                result = search.result()
                done = sum(result.counts[k] for k in ("complete", "pruned", "failed"))
                raise TuneInterrupted(f"interrupted with {done} of {settings.trials} trials finished; the running trials "
                                      "saved their checkpoints: run the same command again to continue",
                                      signal=int(signals.signum)) from None
            except Exception:  # a storage that fails, a closed stdout: the running trials save their checkpoints
                search.interrupt()
                raise
        return search.result()
    finally:
        executor.close()
        if owner is not None:
            owner.release()
        optuna.logging.set_verbosity(logging_level)


def _trials_dir(out: Path) -> None:
    """Make ``OUT/trials``; refuse one that is a link or leads outside ``OUT``."""
    trials = out / layout.TRIALS
    trials.mkdir(exist_ok=True)
    if trials.is_symlink() or not trials.is_dir() or not fsafe.is_inside(trials / "0000", out):
        raise TuneError(f"{trials} is not a directory of the study {out} (a link?); remove it")


def _make_executor(settings: TuneSettings, base: TrainConfig):
    """The executor of ``settings`` (options checked, nothing started), with ``--workers``
    (default: the executor's, for ``local`` what the machine holds) at most the trials."""
    from .executors.registry import executor_class, make_executor

    workers = settings.workers
    if workers is None:
        workers = executor_class(settings.executor).default_workers(base.device)
    options = {"workers": None if workers is None else max(1, min(workers, settings.trials)), "device": base.device,
               **settings.executor_options}
    return make_executor(settings.executor, **options)
