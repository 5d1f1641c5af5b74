"""What a regression run gives back: ``evaluate``'s RMSE, MAE and R² in the target's units, and
predictions in those units (:class:`Estimates`).

The model's outputs are standardised targets: a prediction is ``output · σ + μ`` with the
target's training mean μ and standard deviation σ (``data/target_mean``, ``data/target_std``)."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..metrics.regression import regression_metrics
from .build import compute_dtype
from .evaluation import evaluate_arrays

__all__ = ["Estimates", "evaluate_regression", "estimates"]


class Estimates(np.ndarray):
    """Predictions of a regression run: a float64 array (m, k), one column per target in the
    target's units; ``target_names`` names the columns and ``notes`` holds remarks on the input
    (ignored columns, unseen categories, a training file that moved)."""

    def __new__(cls, values, target_names, notes=()):
        self = np.asarray(values, dtype=np.float64).view(cls)
        self.target_names = list(target_names)
        self.notes = list(notes)
        return self

    def __array_finalize__(self, obj):
        if obj is not None:
            self.target_names = getattr(obj, "target_names", [])
            self.notes = getattr(obj, "notes", [])


def estimates(spec, outputs, notes=()) -> Estimates:
    """The :class:`Estimates` of the model's ``outputs`` (standardised, (m, k), any device)."""
    out = backend.to_numpy(outputs).astype(np.float64).reshape(len(outputs), -1)
    return Estimates(out * spec.target_std + spec.target_mean, spec.targets, notes)


def evaluate_regression(run, X_device, y) -> dict:
    """``{"loss", "rmse", "mae", "r2", "targets"}`` of a regression run's model on encoded,
    standardised features on its device and targets ``y`` (m, k) in the target's units; the
    loss is that of the standardised targets, as training reports it."""
    spec = run.spec
    ys = (np.asarray(y, dtype=np.float64).reshape(len(y), -1) - spec.target_mean) / spec.target_std
    yd = backend.to_device(np.ascontiguousarray(ys, dtype=X_device.dtype), run.device)
    loss, _, pred = evaluate_arrays(run.model, run.loss_fn, X_device, yd, compute_dtype(run.config))
    values = regression_metrics(pred, yd, spec.target_std)
    return {"loss": loss, **values, "targets": list(spec.targets), "task": "regression"}
