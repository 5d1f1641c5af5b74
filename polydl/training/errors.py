"""What can end a training run early: the errors of the training layer that are not about its
input (``ConfigError``, ``DataError`` and ``CheckpointError`` live where that input is read)."""
from __future__ import annotations

__all__ = ["RunDirError", "TrainingDiverged", "TrainingInterrupted"]


class RunDirError(ValueError):
    """An output directory that exists (without ``overwrite``) or cannot be written."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, message, epoch, step, lr, out_dir):
        super().__init__(message)
        self.epoch, self.step, self.lr, self.out_dir = epoch, step, lr, out_dir


class TrainingInterrupted(Exception):
    """Ctrl-C: the checkpoint was saved at a step boundary."""

    def __init__(self, message, epoch, step, out_dir):
        super().__init__(message)
        self.epoch, self.step, self.out_dir = epoch, step, out_dir
