"""Cosine annealing with linear warm-up, a learning-rate schedule for polydl, registered as
``warmup_cosine`` (polydl's own ``cosine`` is the curve without the shifted warm-up; any schedule
takes a warm-up with ``--warmup-epochs``).

With α0 = ``lr0``, W = ``warmup_epochs``, T = the run's length in epochs (``epochs``, or by
default the length of the run the schedule is used in) and α_min = ``min_lr``, the rate at the
epoch e (counted from 1; fractional with ``--schedule-unit step``) is

    e ≤ W:   α = α0 · e / W                                      (linear warm-up)
    e > W:   α = α_min + (α0 − α_min) · (1 + cos(π · p)) / 2,    p = min(1, (e − W − 1) / (T − W))

so the first epoch after the warm-up runs at α0 and the rate falls along half a cosine to α_min
at epoch T + 1. The rate is a pure function of the position: resuming at an epoch restores its
learning rate, and resuming with more epochs stretches the curve over the new length.

    polydl train --schedule warmup_cosine --schedule-param warmup_epochs=3 --epochs 30
"""
from __future__ import annotations

import math
import numbers

import polydl
from polydl.schedules import Schedule

__all__ = ["cosine", "NAME", "polydl_register_schedules"]
#: the name the schedule is registered under (``cosine`` is polydl's built-in)
NAME = "warmup_cosine"
__version__ = "0.2.0"


def _rate(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"cosine: {name} must be a finite number, not {value!r}")
    if value < 0:
        raise ValueError(f"cosine: {name} must be >= 0, not {value}")
    return float(value)


def _whole(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value != int(value) or value < low:
        raise ValueError(f"cosine: {name} must be a whole number >= {low}, not {value!r}")
    return int(value)


def cosine(lr0: float = 0.01, epochs: int | None = None, warmup_epochs: int = 0, min_lr: float = 0.0) -> Schedule:
    """Cosine annealing from ``lr0`` to ``min_lr`` over the run (or over ``epochs`` epochs), after
    ``warmup_epochs`` epochs of linear warm-up from ``lr0 / warmup_epochs`` to ``lr0``."""
    lr0 = _rate("lr0", lr0)
    min_lr = _rate("min_lr", min_lr)
    epochs = None if epochs is None else _whole("epochs", epochs, 1)
    warmup = _whole("warmup_epochs", warmup_epochs, 0)
    if epochs is not None and warmup >= epochs:
        raise ValueError(f"cosine: warmup_epochs ({warmup}) must be smaller than epochs ({epochs})")
    if min_lr > lr0:
        raise ValueError(f"cosine: min_lr ({min_lr}) must not exceed lr0 ({lr0})")

    def rate(pos) -> float:
        e = pos.fractional_epoch
        if e <= warmup:
            return lr0 * e / warmup
        total = epochs if epochs is not None else pos.epochs
        if total is None:
            raise ValueError("cosine needs the run's length: give epochs=N, or evaluate it at a position "
                             "with epochs (as training does)")
        if warmup >= total:
            raise ValueError(f"cosine: warmup_epochs ({warmup}) must be smaller than the run's {total} epochs")
        p = min(1.0, (e - warmup - 1) / (total - warmup))
        return min_lr + (lr0 - min_lr) * (1.0 + math.cos(math.pi * p)) / 2.0

    params = {"lr0": lr0, "epochs": epochs, "warmup_epochs": warmup, "min_lr": min_lr}
    return Schedule(NAME, params, rate)


@polydl.hookimpl
def polydl_register_schedules(register):
    register(NAME, cosine)
