"""One owner's search loop: it asks Optuna for trials, hands them to the executor, judges their
epochs for pruning, adopts orphaned trials and records what became of each."""
from __future__ import annotations

import math
import time
from pathlib import Path

from .. import fsafe, training
from . import layout
from . import storage as _storage
from .objective import Progress, trial_value
from .owners import lock_path, owner_alive
from .settings import TrialInfo, TuneResult, TuneSettings

POLL = 0.2


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
        self.progress = Progress(None, "val_loss")  # the trial's value after each epoch, set when it starts


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
        run.progress = Progress(config, self.s.metric)
        self.running[number] = run
        if resume:  # epochs that finished after the last owner's last report
            from ..training import checkpoint as ckpt

            try:  # read as a regular file only; a damaged one is the resumed run's to report
                records = ckpt.read_metrics(Path(run_dir) / ckpt.METRICS)
            except (OSError, ValueError):
                records = []
            for record in records:
                value, epoch = run.progress.value(record), record.get("epoch")
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
        elif ev.kind == "done":  # (one that stopped early too)
            value = trial_value(ev.record, self.s.metric)  # its best epoch's where it keeps one
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
        value = run.progress.value(ev.record)  # what it would be worth if it ended now
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
