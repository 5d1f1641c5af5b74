"""An optimizer's clock: where it is in the run, and α read from its schedule there.

The position is the epoch being trained (from 1), the mini-batches done in that epoch
(``batch``) and in the run (``batches``, updates and skipped ones alike); the run's shape is
``epochs``, ``steps_per_epoch`` and ``schedule_unit``. A schedule is evaluated at the position
of the next step (:meth:`RunClock.position`), so restoring the position restores α.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_whole
from ..schedules import SCHEDULE_UNITS, Position

__all__ = ["RunClock"]


class RunClock:
    """The position part of :class:`~polydl.optim.Optimizer`: ``set_run``, ``epoch``,
    ``position``, ``next_lr``; it reads α (``self._lr``: a float, a schedule, or a list over
    members) and caches the rate it read until the position moves to another epoch or step."""

    def _start_clock(self) -> None:
        self._rate_key = None
        self._epoch = 1          # the epoch being trained, from 1
        self.batch = 0           # mini-batches done in this epoch
        self.batches = 0         # mini-batches done in the run (updates and skipped ones)
        self.epochs = None
        self.steps_per_epoch = None
        self.schedule_unit = "epoch"

    def set_run(self, epochs=None, steps_per_epoch=None, schedule_unit="epoch"):
        """The run's shape, which the schedule sees: ``epochs`` (its length), ``steps_per_epoch``
        (mini-batches per epoch: after that many steps the next epoch begins) and
        ``schedule_unit``, ``"epoch"`` (α read once per epoch, at its first step) or ``"step"``
        (α read at every step, at the fractional epoch). Without ``steps_per_epoch`` the epoch
        advances only when :attr:`epoch` is set. Returns the optimizer."""
        self.epochs = None if epochs is None else check_whole("epochs", epochs, 1)
        self.steps_per_epoch = None if steps_per_epoch is None else check_whole("steps_per_epoch", steps_per_epoch, 1)
        if schedule_unit not in SCHEDULE_UNITS:
            raise ValueError(f"schedule_unit must be 'epoch' or 'step', not {schedule_unit!r}")
        self.schedule_unit = schedule_unit
        self._rate_key = None
        return self

    @property
    def epoch(self) -> int:
        """The epoch being trained, from 1; setting it starts that epoch (its first step is next)."""
        return self._epoch

    @epoch.setter
    def epoch(self, value):
        self._epoch = check_whole("epoch", value, 1)
        self.batch = 0

    def position(self) -> Position:
        """The position of the next step."""
        return Position(self._epoch, self.batches + 1, self.batch, self.steps_per_epoch, self.epochs)

    def next_lr(self):
        """α for the next step: the number, or the schedule at the next step's position (per
        epoch: at the epoch's first step); for a population with α per member, an array."""
        lr = self._lr
        if type(lr) is float:
            return lr
        key = self._epoch if self.schedule_unit == "epoch" else -1 - self.batches
        if key != self._rate_key:
            pos = self.position().read_at(self.schedule_unit)
            if isinstance(lr, list):
                self._rate = np.array([r if type(r) is float else r(pos) for r in lr])
            else:
                self._rate = lr(pos)
            self._rate_key = key
        return self._rate

    def _advance(self) -> None:
        """One mini-batch done: the next epoch begins after ``steps_per_epoch`` of them."""
        self.batches += 1
        self.batch += 1
        if self.steps_per_epoch is not None and self.batch >= self.steps_per_epoch:
            self._epoch += 1
            self.batch = 0

    def _position_dict(self) -> dict:
        """The position and the run's shape as plain data (a state dict's ``position``)."""
        return {"epoch": self._epoch, "batch": self.batch, "batches": self.batches, "epochs": self.epochs,
                "steps_per_epoch": self.steps_per_epoch, "schedule_unit": self.schedule_unit}

    def _load_position(self, pos) -> None:
        """Restore :meth:`_position_dict`'s data (None: keep the position)."""
        if pos is not None:
            self.set_run(pos.get("epochs"), pos.get("steps_per_epoch"), pos.get("schedule_unit", "epoch"))
            self._epoch, self.batch, self.batches = int(pos["epoch"]), int(pos["batch"]), int(pos["batches"])
        self._rate_key = None
