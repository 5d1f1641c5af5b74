"""What a run ends with: a finished run's :class:`RunResult`, a population member's
:class:`MemberStopped` (stopped on request); a run that diverged ends with
:class:`~polydl.training.TrainingDiverged` (``errors``)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsafe
from . import checkpoint as ckpt

__all__ = ["RunResult", "MemberStopped", "result_of"]


@dataclass(repr=False)
class RunResult:
    """A finished run: its directory, epochs and steps, the per-epoch records and the summary
    (``summary.json``); ``accuracy`` and ``loss`` are the test split's (the validation split's
    where there is no test split)."""

    out_dir: Path
    epochs: int
    step: int
    history: list
    summary: dict = field(default_factory=dict)

    @property
    def test_accuracy(self):
        return self.summary.get("test_accuracy")

    @property
    def test_loss(self):
        return self.summary.get("test_loss")

    @property
    def val_accuracy(self):
        return self.summary.get("val_accuracy")

    @property
    def val_loss(self):
        return self.summary.get("val_loss")

    @property
    def accuracy(self):
        return self.test_accuracy if self.test_accuracy is not None else self.val_accuracy

    @property
    def loss(self):
        return self.test_loss if self.test_loss is not None else self.val_loss

    def __repr__(self):
        acc = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        loss = "n/a" if self.loss is None else f"{self.loss:.4f}"
        return f"RunResult('{self.out_dir}', epochs={self.epochs}, accuracy={acc}, loss={loss})"


class MemberStopped:
    """A member stopped on request after ``epoch`` (its checkpoint kept, resumable alone)."""

    def __init__(self, out_dir, epoch: int):
        self.out_dir, self.epoch = Path(out_dir), int(epoch)

    def __repr__(self):
        return f"MemberStopped('{self.out_dir}', epoch={self.epoch})"


def result_of(run_dir: Path) -> RunResult:
    """The :class:`RunResult` of a finished run directory, read from its files."""
    summary = json.loads(fsafe.read_regular(run_dir / ckpt.SUMMARY))
    history = ckpt.read_metrics(run_dir / ckpt.METRICS)
    return RunResult(run_dir, int(summary["epochs"]), int(summary["step"]), history, summary)
