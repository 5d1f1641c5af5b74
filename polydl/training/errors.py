"""What can end a training run early: the errors of the training layer that are not about its
input (``ConfigError``, ``DataError`` and ``CheckpointError`` live where that input is read)."""
from __future__ import annotations

__all__ = ["RunDirError", "RunWriteError", "TrainingDiverged", "TrainingInterrupted", "ComponentError", "write_or_say"]


class RunDirError(ValueError):
    """An output directory that exists (without ``overwrite``) or cannot be written."""


class RunWriteError(RuntimeError):
    """A file of the run could not be written (a full disk, an I/O error, no permission); the last
    checkpoint is intact."""

    def __init__(self, message, out_dir):
        super().__init__(message)
        self.out_dir = out_dir


class ComponentError(RuntimeError):
    """A component (a plugin's loss, normalizer, optimizer, schedule) raised while training; the
    last checkpoint is kept."""

    def __init__(self, message, epoch, step, out_dir):
        super().__init__(message)
        self.epoch, self.step, self.out_dir = epoch, step, out_dir


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, message, epoch, step, lr, out_dir):
        super().__init__(message)
        self.epoch, self.step, self.lr, self.out_dir = epoch, step, lr, out_dir


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM: the checkpoint was saved at a step boundary. ``signal`` is the signal's
    number (``signal.SIGINT`` or ``signal.SIGTERM``)."""

    def __init__(self, message, epoch, step, out_dir, signal=2):
        super().__init__(message)
        self.epoch, self.step, self.out_dir, self.signal = epoch, step, out_dir, signal


def write_or_say(write, path, out_dir, kept: str):
    """``write()``; an ``OSError`` (a full disk, an I/O error, no permission) becomes one
    :class:`RunWriteError` line naming the file and saying what is kept (``kept``)."""
    try:
        return write()
    except OSError as exc:
        raise RunWriteError(f"cannot write {path}: {exc.strerror or exc}; {kept}", out_dir) from None
