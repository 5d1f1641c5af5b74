"""The ``population`` executor: trials whose sampled values keep the shapes equal train together
as one population (``polydl.training.run_population``), in the ``local`` executor's worker
processes.

Trials are grouped by everything that fixes the shapes and the data
(:mod:`~polydl.tune.executors.grouping`); each group of at most ``population_size`` trials
trains as one batched computation in one worker (:func:`run_group`), and every member ends
exactly as the same trial trained alone (so the study is the one the ``local`` executor would
give). Each member still writes its ordinary run directory ``OUT/trials/NNNN``, streams its
per-epoch records back as it goes, and is pruned alone (``stop``). A trial continued after a
crash (``TrialTask.resume``) trains alone from its checkpoint, as its run directory is an
ordinary run.
"""
from __future__ import annotations

from pathlib import Path

from .base import TrialEvent, one_line, run_trial
from .grouping import Waiting
from .local import LocalExecutor

__all__ = ["PopulationExecutor", "run_group", "DEFAULT_SIZE"]

#: trials per population where ``population_size`` is not given
DEFAULT_SIZE = 16


def run_group(tasks, emit, stop_requested=lambda number: False, handle_signals: bool = True,
              wait_decision=None) -> None:
    """Train ``tasks`` as one population and ``emit`` each member's events (as :func:`run_trial`
    does for one trial; ``wait_decision(number, epoch)`` for members whose task has ``decide``).
    A group of one, or one whose configurations cannot train together, trains trial by trial."""
    from ... import training
    from ...training.population import run_population

    def one_by_one():  # a group of one, a continued trial, a sampled combination that does not build
        for t in tasks:
            wait = None if wait_decision is None else (lambda epoch, n=t.number: wait_decision(n, epoch))
            run_trial(t, emit, lambda n=t.number: stop_requested(n), handle_signals, wait)

    if len(tasks) == 1 or any(t.resume for t in tasks):
        return one_by_one()
    try:
        configs = [training.from_dict(t.config) for t in tasks]
        dirs = [Path(t.run_dir) for t in tasks]
        training.population.check_members(configs)
    except ValueError:
        return one_by_one()
    reporter = _reporter(tasks, emit, stop_requested, wait_decision)
    try:
        run_population(configs, dirs, overwrite=any(d.exists() for d in dirs), reporter=reporter,
                       handle_signals=handle_signals)
    except training.TrainingInterrupted as exc:
        _end_the_rest(tasks, reporter.ended, emit, "interrupted", one_line(exc), exc.epoch)
    except Exception as exc:  # a plugin's bug, a file that cannot be written: the trials fail
        if isinstance(exc, ValueError) and not reporter.started:  # it did not build: nothing trained or was written
            return one_by_one()
        message = one_line(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {one_line(exc)}"
        _end_the_rest(tasks, reporter.ended, emit, "failed", message)


def _end_the_rest(tasks, ended, emit, kind: str, message: str, epoch: int | None = None) -> None:
    """The final event ``kind`` of each member that has not ended."""
    for t in tasks:
        if t.number not in ended:
            emit(TrialEvent(t.number, kind, message=message, epoch=epoch))


def _reporter(tasks, emit, stop_requested, wait_decision):
    """The population reporter of ``tasks``: each member's epochs and end as its events, the
    owner's answers and stops; ``ended`` (trial numbers), ``started``."""
    from ... import training
    from ...training.population import MemberStopped, PopulationReporter

    class Reporter(PopulationReporter):
        started = False
        may_stop = any(t.decide for t in tasks)  # members pruned after an epoch keep its checkpoints

        def __init__(self):
            super().__init__()
            self.ended: set[int] = set()

        def start(self, info):
            self.started = True

        def epoch_end(self, records, epochs):
            for k, record in records.items():
                emit(TrialEvent(tasks[k].number, "epoch", record=dict(record), epoch=int(record["epoch"])))
            if wait_decision is not None:  # every member's answer, before the population goes on
                for k, record in records.items():
                    t = tasks[k]
                    if t.decide and t.number not in self.ended and int(record["epoch"]) < epochs:
                        wait_decision(t.number, int(record["epoch"]))

        def member_end(self, k, outcome):
            number = tasks[k].number
            self.ended.add(number)
            if isinstance(outcome, MemberStopped):
                emit(TrialEvent(number, "stopped", epoch=outcome.epoch))
            elif isinstance(outcome, training.TrainingDiverged):
                emit(TrialEvent(number, "failed", message=one_line(outcome), epoch=outcome.epoch))
            else:
                emit(TrialEvent(number, "done", record=dict(outcome.summary), epoch=outcome.epochs))

        def stop_members(self):
            return {k for k, t in enumerate(tasks) if t.number not in self.ended and stop_requested(t.number)}

        def note(self, message):
            emit(TrialEvent(tasks[0].number, "note", message=message))

    return Reporter()


class PopulationExecutor(LocalExecutor):
    """Groups of trials of one shape as populations, one group per worker process."""

    name = "population"
    capabilities = LocalExecutor.capabilities | {"population_size"}

    def __init__(self, workers: int | None = None, owner_lock=None, device: str = "cpu", grace: float = 15.0,
                 population_size: int | None = None):
        size = self.check_option("population_size", population_size)
        self.size = DEFAULT_SIZE if size is None else size
        super().__init__(workers, owner_lock, device, grace)

    def _new_waiting(self) -> Waiting:
        """Waiting trials become groups of up to :attr:`size` of one shape."""
        return Waiting(self.size)

