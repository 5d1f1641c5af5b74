"""Progress of a training run: the callbacks a :class:`Reporter` receives."""
from __future__ import annotations

__all__ = ["Reporter"]


class Reporter:
    """Progress callbacks; the base class reports nothing.

    ``start(info)`` once (the run's shape: model, data sizes, optimizer, schedule, device, and for a
    resumed run the epoch it continues from and α before and after any change);
    ``epoch_start(epoch, epochs, n_batches, done)``; ``step(loss)`` after every mini-batch (the
    loss Tensor still on the device); ``epoch_end(record, epochs)`` with the epoch's
    ``metrics.jsonl`` record; ``note(message)`` for a remark (a plot not written)."""

    def start(self, info: dict) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, n_batches: int, done: int) -> None: ...
    def step(self, loss=None) -> None: ...
    def epoch_end(self, record: dict, epochs: int) -> None: ...
    def note(self, message: str) -> None: ...
