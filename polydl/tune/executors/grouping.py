"""Trials that train together: the grouping of waiting trials into populations, the one the
``population`` executor and the ``ray`` executor (``population_size``) share.

Members of one population must share everything that fixes the shapes and the data
(``polydl.training.population.SHARED_KEYS``: a search over α and β groups everything, one over
the hidden units groups the trials that drew the same width). The next group is the largest
set of waiting trials of one shape, at most ``size`` of them; a trial continued from its
checkpoint (``TrialTask.resume``) trains alone.
"""
from __future__ import annotations

from .base import TrialEvent, TrialTask

__all__ = ["shape_key", "next_group", "Waiting", "ALONE"]

#: the note of trials no two of which share their shapes
ALONE = ("no two of these trials share their shapes (they differ in what fixes them: hidden sizes, batch size, "
         "...), so they train one by one")


def shape_key(config: dict) -> tuple:
    """What members of one population must share: the values of ``SHARED_KEYS``."""
    from ...training.population import SHARED_KEYS

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
    alone = ALONE if len(group) == 1 and len(pending) > 1 else None
    return group, alone


class Waiting:
    """Trials submitted and not yet training, taken as jobs: one trial at a time in the order they
    came (``size`` None), or as population groups of up to ``size`` (:func:`next_group`), with the
    note that trials train one by one given once."""

    def __init__(self, size: int | None = None):
        self.size = size
        self.tasks: list[TrialTask] = []
        self._notes: list[TrialEvent] = []
        self._told = False

    def __len__(self) -> int:
        return len(self.tasks)

    def add(self, task: TrialTask) -> None:
        self.tasks.append(task)

    def take(self) -> list[TrialTask]:
        """The trials of the next job (the waiting trials must not be empty)."""
        if self.size is None:
            return [self.tasks.pop(0)]
        group, alone = next_group(self.tasks, self.size)
        if alone and not self._told:
            self._told = True
            self._notes.append(TrialEvent(group[0].number, "note", message=alone))
        for t in group:
            self.tasks.remove(t)
        return group

    def notes(self) -> list[TrialEvent]:
        """The notes since the last call."""
        out, self._notes = self._notes, []
        return out

    def close(self) -> list[TrialEvent]:
        """Drop the waiting trials: each ends ``interrupted`` (not started)."""
        out = [TrialEvent(t.number, "interrupted", message="not started", epoch=0) for t in self.tasks]
        self.tasks.clear()
        return out
