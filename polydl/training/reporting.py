"""Progress of a training run: the callbacks a :class:`Reporter` receives, those of a population
(:class:`PopulationReporter`), and the population's terminal progress (:class:`ProgressReporter`)."""
from __future__ import annotations

import sys

from .errors import TrainingDiverged

__all__ = ["Reporter", "PopulationReporter", "ProgressReporter"]


class Reporter:
    """Progress callbacks; the base class reports nothing.

    ``start(info)`` once (the run's shape: model, data sizes, optimizer, schedule, device, and for a
    resumed run the epoch it continues from and α before and after any change);
    ``epoch_start(epoch, epochs, n_batches, done)``; ``step(loss)`` after every mini-batch (the
    loss Tensor still on the device); ``epoch_end(record, epochs)`` with the epoch's
    ``metrics.jsonl`` record; ``note(message)`` for a remark (a plot not written).

    ``may_stop``: True where ``epoch_end`` (or a population's ``stop_members``) may end the run or
    members after an epoch (a search that prunes): that epoch's checkpoints are then written
    before ``epoch_end``, whatever ``checkpoint_interval`` says; None (not said): a population's
    reporter with its own ``stop_members`` may."""

    may_stop: bool | None = None

    def start(self, info: dict) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, n_batches: int, done: int) -> None: ...
    def step(self, loss=None) -> None: ...
    def epoch_end(self, record: dict, epochs: int) -> None: ...
    def note(self, message: str) -> None: ...


class PopulationReporter(Reporter):
    """Progress of a population: ``start(info)`` (the shape, ``members``), ``epoch_start``,
    ``step`` after every mini-batch of the whole population, ``epoch_end(records, epochs)`` with
    each training member's record (index → record), ``member_end(index, outcome)`` when a member
    stops (its :class:`RunResult`, the :class:`TrainingDiverged` that ended it, or
    :class:`MemberStopped`), ``note``; ``stop_members()`` is asked after every epoch which members
    to stop now (a search pruning them): each keeps its checkpoint of that epoch."""

    def epoch_end(self, records: dict, epochs: int) -> None: ...
    def member_end(self, index: int, outcome) -> None: ...

    def stop_members(self) -> set:
        return set()


class ProgressReporter(PopulationReporter):
    """One progress bar for the population on a terminal (none elsewhere), and a line per epoch
    with the best and the worst member by validation loss::

        epoch 3/20  32 members  val loss best 0.3121 (member 7, lr 0.003)  worst 2.301 (member 12)  1.23s
    """

    def __init__(self, file=None):
        self.file = file if file is not None else sys.stdout
        self.bar = None
        self.stopped = 0

    def _echo(self, text):
        import click

        click.echo(text, file=self.file)

    def start(self, info):
        what = "continuing" if info["resumed"] else "training"
        self._echo(f"{what} a population of {info['members']} {info.get('architecture', 'mlp')} {info['model']} ({info['normalizer']}, "
                   f"{info['activation']}) on {info['dataset']} with {info['loss']} and {info['optimizer']}, "
                   f"{info['epochs']} epochs of {info['n_batches']} mini-batches, on {info['device']} ({info['dtype']})")

    def epoch_start(self, epoch, epochs, n_batches, done):
        import click

        if getattr(self.file, "isatty", lambda: False)():
            self.bar = click.progressbar(length=n_batches, label=f"epoch {epoch}/{epochs}", file=self.file)
            self.bar.__enter__()
            if done:
                self.bar.update(done)

    def step(self, loss=None):
        if self.bar is not None:
            self.bar.update(1)

    def epoch_end(self, records, epochs):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        if not records:
            return
        scored = [(r["val_loss"] if r["val_loss"] is not None else r["train_loss"], k, r) for k, r in records.items()]
        best, worst = min(scored), max(scored)
        what = "val loss" if best[2]["val_loss"] is not None else "train loss"
        stopped = f", {self.stopped} stopped" if self.stopped else ""
        r0 = best[2]
        self._echo(f"epoch {r0['epoch']}/{epochs}  {len(records)} members{stopped}  {what} best {best[0]:.4f} "
                   f"(member {best[1]}, lr {best[2]['lr']:.3g})  worst {worst[0]:.4g} (member {worst[1]})  "
                   f"{r0['seconds']:.2f}s")

    def member_end(self, index, outcome):
        if isinstance(outcome, TrainingDiverged):
            self.stopped += 1
            self._echo(f"member {index} stopped: {outcome}")

    def note(self, message):
        self._echo(f"note: {message}")
