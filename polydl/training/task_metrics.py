"""The metrics of a split that depend on the task, beyond the loss: for a regression, RMSE, MAE
and R² in the target's units (``polydl.metrics.regression``), recorded as ``val_rmse``,
``val_mae``, ``val_r2`` in every epoch's record and as ``test_*`` in ``summary.json``; nothing
for a classification (its accuracy is the trainer's own). The model's outputs and the targets are
standardised; the errors are scaled back by the target's training standard deviation."""
from __future__ import annotations

from ..metrics.regression import NAMES, regression_metrics
from .evaluation import evaluate_arrays

__all__ = ["regression_values", "test_values", "summary_values", "is_regression"]


def is_regression(data) -> bool:
    return getattr(data, "task", "classification") == "regression"


def regression_values(data, pred, y, prefix: str, members: int, population: int | None = None) -> list:
    """One dict per member, ``{prefix + "rmse": …, prefix + "mae": …, prefix + "r2": …}`` of the
    outputs ``pred`` (m, k), or a population's (P, m, k), against the standardised targets ``y``
    (device arrays); empty dicts for a classification or a split without samples."""
    if not is_regression(data) or pred is None or not len(y):
        return [{} for _ in range(members)]
    values = regression_metrics(pred, y, data.spec.target_std)
    if population is None:
        return [{prefix + k: float(values[k]) for k in NAMES}]
    return [{prefix + k: float(values[k][i]) for k in NAMES} for i in range(members)]


def test_values(trainer) -> list:
    """Each member's ``test_rmse``, ``test_mae`` and ``test_r2`` with the weights the model has
    now (empty dicts for a classification)."""
    if not is_regression(trainer.data):
        return [{} for _ in trainer.members]
    _, _, pred = evaluate_arrays(trainer.model, trainer.loss_fn, trainer.X["test"], trainer.y["test"],
                                 trainer.autocast_dtype)
    return regression_values(trainer.data, pred, trainer.y["test"], "test_", len(trainer.members), trainer.population)


def summary_values(mb, data, tests: dict) -> dict:
    """What ``summary.json`` adds for a regression: the target column(s), the last epoch's
    validation metrics and the test metrics (``tests``)."""
    if not is_regression(data):
        return {}
    last = mb.history[-1] if mb.history else {}
    val = {f"val_{k}": last.get(f"val_{k}") for k in NAMES}
    return {"task": "regression", "targets": list(data.spec.targets), **val, **tests}
