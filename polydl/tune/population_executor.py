"""The ``population`` executor: trials whose sampled values keep the shapes equal train together
as one population (``polydl.training.run_population``), in the ``local`` executor's worker
processes.

Trials are grouped by everything that fixes the shapes and the data
(``polydl.training.population.SHARED_KEYS``: a search over α and β groups everything, one over
the hidden units groups the trials that drew the same width); each group of at most
``population_size`` trials trains as one batched computation in one worker, and every member
ends exactly as the same trial trained alone (so the study is the one the ``local`` executor
would give). Each member still writes its ordinary run directory ``OUT/trials/NNNN``, streams its
per-epoch records back as it goes, and is pruned alone (``stop``). A trial continued after a
crash (``TrialTask.resume``) trains alone from its checkpoint, as its run directory is an
ordinary run.
"""
from __future__ import annotations

from .executors import LocalExecutor, TrialEvent, TrialTask, _one_line, run_trial

__all__ = ["PopulationExecutor", "run_group", "next_group", "shape_key"]


def shape_key(config: dict) -> tuple:
    """What members of one population must share: the values of ``SHARED_KEYS``."""
    from ..training.population import SHARED_KEYS

    return tuple(repr(config.get(k)) for k in SHARED_KEYS)


def next_group(pending, size: int):
    """The next group of at most ``size`` of the ``pending`` tasks: the largest set of one shape (a
    trial continued from its checkpoint alone). Returns it and, where the trials of a group of one
    have no shape in common with the others, the note that says they train one by one (else None)."""
    for t in pending:
        if t.resume:
            return [t], None
    by_shape: dict = {}
    for t in pending:
        by_shape.setdefault(shape_key(t.config), []).append(t)
    group = max(by_shape.values(), key=len)[:size]
    alone = None
    if len(group) == 1 and len(pending) > 1:
        alone = ("no two of these trials share their shapes (they differ in what fixes them: hidden sizes, batch size, "
                 "...), so they train one by one")
    return group, alone


def run_group(tasks, emit, stop_requested=lambda number: False, handle_signals: bool = True,
              wait_decision=None) -> None:
    """Train ``tasks`` as one population and ``emit`` each member's events (as :func:`run_trial`
    does for one trial; ``wait_decision(number, epoch)`` for members whose task has ``decide``).
    A group of one, or one whose configurations cannot train together, trains trial by trial."""
    from .. import training
    from ..training.population import MemberStopped, PopulationReporter, run_population

    def alone(t):
        wait = None if wait_decision is None else (lambda epoch, n=t.number: wait_decision(n, epoch))
        run_trial(t, emit, lambda n=t.number: stop_requested(n), handle_signals, wait)

    if len(tasks) == 1 or any(t.resume for t in tasks):
        for t in tasks:
            alone(t)
        return
    ended = set()
    started = []

    class Reporter(PopulationReporter):
        def start(self, info):
            started.append(True)

        def epoch_end(self, records, epochs):
            for k, record in records.items():
                emit(TrialEvent(tasks[k].number, "epoch", record=dict(record), epoch=int(record["epoch"])))
            if wait_decision is not None:  # every member's answer, before the population goes on
                for k, record in records.items():
                    t = tasks[k]
                    if t.decide and t.number not in ended and int(record["epoch"]) < epochs:
                        wait_decision(t.number, int(record["epoch"]))

        def member_end(self, k, outcome):
            number = tasks[k].number
            ended.add(number)
            if isinstance(outcome, MemberStopped):
                emit(TrialEvent(number, "stopped", epoch=outcome.epoch))
            elif isinstance(outcome, training.TrainingDiverged):
                emit(TrialEvent(number, "failed", message=_one_line(outcome), epoch=outcome.epoch))
            else:
                emit(TrialEvent(number, "done", record=dict(outcome.summary), epoch=outcome.epochs))

        def stop_members(self):
            return {k for k, t in enumerate(tasks) if t.number not in ended and stop_requested(t.number)}

        def note(self, message):
            emit(TrialEvent(tasks[0].number, "note", message=message))

    from pathlib import Path

    def one_by_one():  # a sampled combination that does not build: each trial says so alone
        for t in tasks:
            alone(t)

    try:
        configs = [training.from_dict(t.config) for t in tasks]
        dirs = [Path(t.run_dir) for t in tasks]
        training.population.check_members(configs)
    except ValueError:
        return one_by_one()
    try:
        run_population(configs, dirs, overwrite=any(d.exists() for d in dirs), reporter=Reporter(),
                       handle_signals=handle_signals)
    except training.TrainingInterrupted as exc:
        for t in tasks:
            if t.number not in ended:
                emit(TrialEvent(t.number, "interrupted", message=_one_line(exc), epoch=exc.epoch))
    except Exception as exc:  # a plugin's bug, a file that cannot be written: the trials fail
        if isinstance(exc, ValueError) and not started:  # it did not build: nothing trained or was written
            return one_by_one()
        message = _one_line(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {_one_line(exc)}"
        for t in tasks:
            if t.number not in ended:
                emit(TrialEvent(t.number, "failed", message=message))


class PopulationExecutor(LocalExecutor):
    """Groups of trials of one shape as populations, one group per worker process."""

    name = "population"

    def __init__(self, workers: int | None = None, owner_lock=None, device: str = "cpu", grace: float = 15.0,
                 population_size: int | None = None):
        super().__init__(workers, owner_lock, device, grace)
        size = 16 if population_size is None else population_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"--population-size must be a whole number >= 1, not {population_size!r}")
        self.size = size
        self.slots = self.workers * size
        self._pending: list[TrialTask] = []
        self._groups: dict = {}     # worker index -> the trial numbers it trains
        self._told = False
        self._notes: list[TrialEvent] = []

    def free(self) -> int:
        return self.slots - len(self._pending) - sum(len(g) for g in self._groups.values())

    def submit(self, task: TrialTask) -> None:
        self.start()
        self._pending.append(task)

    def _next_group(self) -> list[TrialTask]:
        group, alone = next_group(self._pending, self.size)
        if alone and not self._told:
            self._told = True
            self._notes.append(TrialEvent(group[0].number, "note", message=alone))
        return group

    def _launch(self) -> None:
        while self._pending:
            free = [i for i, w in enumerate(self._pool) if w.number is None]
            if not free:
                return
            group = self._next_group()
            for t in group:
                self._pending.remove(t)
            i = free[0]
            w = self._pool[i]
            if not w.alive:
                w = self._pool[i] = self._spawn(w.index)
            w.number = group[0].number  # busy
            self._groups[w.index] = {t.number for t in group}
            if not w.send({"op": "run_group", "tasks": [t.to_dict() for t in group]}):
                w.alive = False

    def poll(self, timeout: float) -> list[TrialEvent]:
        self._launch()
        out, self._notes = self._notes, []
        return out + super().poll(0.0 if out else timeout)

    def _training(self, number: int):
        return [w for w in self._pool if number in self._groups.get(w.index, ())]

    def _handle(self, worker, item) -> TrialEvent | None:
        group = self._groups.get(worker.index, set())
        if isinstance(item, TrialEvent):
            if item.final and item.number in group:
                group.discard(item.number)
                if not group:
                    self._groups.pop(worker.index, None)
                    worker.number = None
            return item
        worker.alive = False  # the worker process ended: its trials fail
        numbers = sorted(self._groups.pop(worker.index, set()))
        worker.number = None
        if numbers:
            message = f"the worker process (pid {worker.proc.pid}) ended with exit code {item} during the trial"
            for n in numbers[1:]:
                self._events.put((worker, TrialEvent(n, "failed", message=message)))
            return TrialEvent(numbers[0], "failed", message=message)
        return None

    def close(self, interrupt: bool = False) -> list[TrialEvent]:
        waiting = [TrialEvent(t.number, "interrupted", message="not started", epoch=0) for t in self._pending]
        self._pending.clear()
        return waiting + super().close(interrupt)
