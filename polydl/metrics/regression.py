"""Regression metrics: RMSE, MAE and R² of predictions against targets, in the target's units.

For targets y (m, k) and predictions ŷ, per target column j::

    RMSEⱼ = √((1/m) Σᵢ (ŷᵢⱼ − yᵢⱼ)²)    MAEⱼ = (1/m) Σᵢ |ŷᵢⱼ − yᵢⱼ|
    R²ⱼ = 1 − Σᵢ (ŷᵢⱼ − yᵢⱼ)² / Σᵢ (yᵢⱼ − ȳⱼ)²

and each metric is the mean over the k columns (scikit-learn's ``uniform_average``). A constant
target column has R²ⱼ = 1 where it is predicted exactly and 0 otherwise (scikit-learn's rule).
Predictions of a population, (P, m, k), give one value per member.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from . import Metric, register

__all__ = ["regression_metrics", "NAMES"]

#: the metrics of a regression run, recorded as val_<name> and test_<name>
NAMES = ("rmse", "mae", "r2")

register(Metric("rmse", False, "regression", "root mean squared error, in the target's units"))
register(Metric("mae", False, "regression", "mean absolute error, in the target's units"))
register(Metric("r2", True, "regression", "coefficient of determination: 1 − SS_res / SS_tot (1 is perfect)"))


def regression_metrics(pred, y, scale=None) -> dict:
    """``{"rmse", "mae", "r2"}`` of predictions ``pred`` (m, k), or a population's (P, m, k),
    against targets ``y`` (m, k) (arrays on one device, or NumPy), computed in float64 and read
    back in one transfer: floats, or arrays (P,) for a population. ``scale`` (k,) converts
    standardised values into the target's units (RMSE and MAE are multiplied by it; R² does not
    change under an affine map of the target)."""
    xp = backend.get_array_module(pred)
    p = pred.astype(np.float64)
    t = y.astype(np.float64)
    if t.ndim == 1:  # one target: values (m,), predictions (m,) or (m, 1)
        t = t[:, None]
        if p.ndim == 1:
            p = p[:, None]
    members = p.ndim == 3
    if members and t.ndim == 2:
        t = t[None]
    diff = p - t
    sse = (diff * diff).sum(axis=-2)                      # (k,) or (P, k)
    sae = xp.abs(diff).sum(axis=-2)
    centred = t - t.mean(axis=-2, keepdims=True)
    sst = (centred * centred).sum(axis=-2)
    m = t.shape[-2]
    s = xp.ones(t.shape[-1]) if scale is None else xp.asarray(scale, dtype=np.float64)
    rmse = xp.sqrt(sse / m) * s
    mae = sae / m * s
    exact = sse == 0
    r2 = xp.where(sst > 0, 1.0 - sse / xp.where(sst > 0, sst, 1.0), xp.where(exact, 1.0, 0.0))
    both = backend.to_numpy(xp.stack([rmse.mean(axis=-1), mae.mean(axis=-1), r2.mean(axis=-1)]))
    if members:
        return {"rmse": both[0], "mae": both[1], "r2": both[2]}
    return {"rmse": float(both[0]), "mae": float(both[1]), "r2": float(both[2])}
