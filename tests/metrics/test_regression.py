"""RMSE, MAE and R² of predictions: per target column, averaged; populations; the registry."""
import numpy as np
import pytest

from polydl import metrics
from polydl.metrics.regression import regression_metrics


def _reference(p, y):
    rmse = np.sqrt(((p - y) ** 2).mean(axis=0))
    mae = np.abs(p - y).mean(axis=0)
    r2 = 1 - ((p - y) ** 2).sum(axis=0) / ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return rmse.mean(), mae.mean(), r2.mean()


def test_values_against_the_formulas():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 3))
    p = y + rng.normal(scale=0.3, size=y.shape)
    got = regression_metrics(p, y)
    assert (got["rmse"], got["mae"], got["r2"]) == pytest.approx(_reference(p, y), rel=1e-12)
    one = regression_metrics(p[:, 0], y[:, 0])  # one target as vectors
    assert one["r2"] == pytest.approx(_reference(p[:, :1], y[:, :1])[2], rel=1e-12)


def test_a_scale_gives_the_targets_units_and_leaves_r2_alone():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(30, 2))
    p = y + rng.normal(scale=0.5, size=y.shape)
    scale = np.array([10.0, 0.5])
    got = regression_metrics(p, y, scale)
    units = _reference(p * scale, y * scale)
    assert (got["rmse"], got["mae"], got["r2"]) == pytest.approx(units, rel=1e-12)


def test_a_population_gives_one_value_per_member_and_a_constant_target():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(20, 1))
    P = np.stack([y, y + 1.0, -y])
    got = regression_metrics(P, y)
    for k in range(3):
        assert got["r2"][k] == pytest.approx(regression_metrics(P[k], y)["r2"], rel=1e-12)
    assert got["rmse"][0] == 0 and got["r2"][0] == 1 and got["rmse"][1] == pytest.approx(1.0)
    const = np.ones((5, 1))
    assert regression_metrics(const, const)["r2"] == 1.0 and regression_metrics(const + 1, const)["r2"] == 0.0


def test_registered_with_their_directions():
    assert {"val_rmse", "val_mae", "val_r2"} <= set(metrics.recorded_names("regression"))
    assert "val_rmse" not in metrics.recorded_names("classification")
    assert metrics.direction("val_rmse") == metrics.direction("test_mae") == "minimize"
    assert metrics.direction("val_r2") == "maximize"
