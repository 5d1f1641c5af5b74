"""Captured training steps: record one eager step, replay it without Python per op.

``TrainStep(model, loss_fn, optimizer)`` is one training step (zero the gradients, forward, loss,
backward, update). Its first step with given shapes runs eagerly and records a plan
(:mod:`~polydl.capture.record`); later steps with the same shapes, dtypes, model and context
replay the plan into the same arrays, bit-identical to the eager step (:mod:`~polydl.capture.step`).
``POLYDL_CAPTURE=off`` (or ``capture=False``) keeps every step eager.
"""
from __future__ import annotations

from .record import NOTHING, Recorder, is_view, recompute, recording

__all__ = ["TrainStep", "enabled", "Recorder", "recording", "recompute", "is_view", "NOTHING"]


def __getattr__(name):
    if name in ("TrainStep", "enabled"):  # imported late: the step module sits above the ops
        from . import step

        return getattr(step, name)
    raise AttributeError(f"module 'polydl.capture' has no attribute {name!r}")
