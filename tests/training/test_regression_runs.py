"""Regression runs: a numeric target under mse, mae or huber trains one output per target column,
standardised with training statistics; RMSE, MAE and R² in the log, summary.json, evaluate; the
predictions in the target's units; populations; bad input refused with one line."""
import json

import numpy as np
import pytest
from run_helpers import arrays, assert_same_run, meta

from polydl import datasets
from polydl.training import DataError, TrainConfig, evaluate, load_model, predict, resume, run, run_population


def _linear(path, n=300, seed=0, targets=1):
    """y = 3 + 2·a − b (+ a second target 10·a + 5), small noise, in a .csv with a header."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y1 = 3 + 2 * a - b + rng.normal(scale=0.05, size=n)
    cols = [a, b, y1] + ([10 * a + 5 + rng.normal(scale=0.1, size=n)] if targets == 2 else [])
    names = ["a", "b", "y"] + (["z"] if targets == 2 else [])
    path.write_text(",".join(names) + "\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in zip(*cols)) + "\n")
    return str(path)


def cfg(data, **kw):
    return TrainConfig(**{"dataset": data, "loss": "mse", "hidden": [16], "epochs": 30, "batch_size": 32,
                          "plot": False, "lr": 0.02, **kw})


def test_a_regression_run_records_rmse_mae_r2_and_predicts_in_the_targets_units(tmp_path):
    out = tmp_path / "r"
    res = run(cfg(_linear(tmp_path / "d.csv")), out)
    last = res.history[-1]
    assert last["train_accuracy"] is None and last["val_accuracy"] is None
    assert {"val_rmse", "val_mae", "val_r2"} <= set(last) and last["val_r2"] > 0.9
    s = json.loads((out / "summary.json").read_text())
    assert s["task"] == "regression" and s["targets"] == ["y"] and s["test_r2"] > 0.9
    assert s["test_rmse"] == pytest.approx(evaluate(out)["rmse"], rel=1e-9)
    m, a = meta(out), arrays(out)
    assert m["num_outputs"] == 1 and m["data"]["task"] == "regression"
    assert a["data/target_mean"].shape == (1,) and a["data/target_std"][0] > 1
    X = np.array([[0.0, 0.0], [1.0, -1.0]])
    est = predict(out, X)
    assert est.shape == (2, 1) and est.target_names == ["y"]
    np.testing.assert_allclose(np.asarray(est)[:, 0], [3.0, 6.0], atol=0.5)  # the target's units, not standardised


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_mae_and_huber_train_a_regression(tmp_path, loss):
    res = run(cfg(_linear(tmp_path / "d.csv"), loss=loss), tmp_path / "r")
    assert res.summary["test_r2"] > 0.8


def test_several_targets_one_output_each(tmp_path):
    out = tmp_path / "r"
    run(cfg(_linear(tmp_path / "d.csv", targets=2), target="y,z"), out)
    assert load_model(out).model(np.zeros((1, 2), np.float32)).shape == (1, 2)
    est = predict(out, tmp_path / "d.csv")  # the target columns are left out
    assert est.shape == (300, 2) and est.target_names == ["y", "z"]
    assert evaluate(out)["targets"] == ["y", "z"]


def test_a_population_of_regressions_matches_each_model_alone(tmp_path):
    data = _linear(tmp_path / "d.csv")
    configs = [cfg(data, epochs=3, lr=0.01, dropout=0.1), cfg(data, epochs=3, lr=0.003, seed=2, dropout=0.1)]
    outs = run_population(configs, [tmp_path / "p0", tmp_path / "p1"])
    run(configs[1], tmp_path / "alone")
    assert_same_run(tmp_path / "p1", tmp_path / "alone")
    assert outs[1].summary["test_rmse"] == json.loads((tmp_path / "alone" / "summary.json").read_text())["test_rmse"]


def test_resume_of_a_regression_equals_the_longer_run(tmp_path):
    data = _linear(tmp_path / "d.csv")
    run(cfg(data, epochs=4), tmp_path / "full")
    run(cfg(data, epochs=2), tmp_path / "part")
    resume(tmp_path / "part", {"epochs": 4})
    assert_same_run(tmp_path / "full", tmp_path / "part")


@pytest.mark.parametrize("kw, message", [
    ({"loss": "softmax_cross_entropy"}, r"the target y looks like a regression target \(300 distinct values such as "
                                        r".*\), not class labels; train a regression with --loss mse"),
    ({"target": "nope"}, r"--target 'nope' is not a column of .*d.csv: its columns are a, b, y"),
    ({"target": "a,y", "loss": "softmax_cross_entropy"}, "--target names several columns"),
])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, kw, message):
    with pytest.raises(DataError, match=message) as err:
        run(cfg(_linear(tmp_path / "d.csv"), **kw), tmp_path / "r")
    assert "\n" not in str(err.value) and not (tmp_path / "r").exists()


def test_a_text_target_under_a_regression_loss_is_refused(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,kind\n" + "".join(f"{i},{'cat' if i % 2 else 'dog'}\n" for i in range(20)))
    with pytest.raises(DataError, match=r"the target kind is text \('dog', line 2\), not numbers: mse is a regression "
                                        "loss; to classify by it, train with --loss softmax_cross_entropy"):
        run(cfg(str(p)), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_regression_loss_on_a_named_dataset_still_fits_its_classes(tmp_path):
    res = run(cfg("moons", dataset_params={"n_samples": 200}, epochs=2), tmp_path / "r")
    assert res.summary["test_accuracy"] is not None and "test_r2" not in res.summary


def _diabetes_like(path):
    """442 samples of 10 features and a disease-progression-like score: linear plus a lot of noise."""
    rng = np.random.default_rng(442)
    C = 0.3 * np.ones((10, 10)) + 0.7 * np.eye(10)
    X = rng.multivariate_normal(np.zeros(10), C, 442)
    X[:, 1] = (X[:, 1] > 0).astype(float)
    y = np.clip(np.round(152 + X @ np.array([0.5, -11, 27, 17, -8, 5, -10, 8, 25, 4]) + rng.normal(0, 54, 442)),
                25, 346)
    names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "progression"]
    path.write_text(",".join(names) + "\n" + "\n".join(",".join(f"{v:.6f}" for v in row) + f",{t:.1f}"
                                                       for row, t in zip(X, y)) + "\n")
    return X, y


def test_the_default_mlp_is_comparable_to_least_squares_on_a_small_regression(tmp_path):
    X, y = _diabetes_like(tmp_path / "diabetes.csv")
    train, _, test = datasets.split_indices(len(y), 0, 0.1, 0.2)
    coef, *_ = np.linalg.lstsq(np.c_[X[train], np.ones(len(train))], y[train], rcond=None)
    p = np.c_[X[test], np.ones(len(test))] @ coef
    linear_r2 = 1 - ((p - y[test]) ** 2).sum() / ((y[test] - y[test].mean()) ** 2).sum()
    res = run(TrainConfig(dataset=str(tmp_path / "diabetes.csv"), loss="mse", plot=False), tmp_path / "r")
    assert res.summary["test_samples"] == len(test)
    assert linear_r2 > 0.4 and res.summary["test_r2"] > linear_r2 - 0.2


def test_a_regression_and_its_population_on_every_device(tmp_path, device):
    data = _linear(tmp_path / "d.csv", n=120)
    configs = [cfg(data, epochs=2, device=device, lr=lr, loss=loss) for lr, loss in ((0.01, "mse"), (0.02, "huber"))]
    run(configs[0], tmp_path / "alone")
    run_population([configs[0], configs[0].replace(lr=0.03)], [tmp_path / "p0", tmp_path / "p1"])
    run(configs[1], tmp_path / "h")
    for out in ("alone", "p1", "h"):
        s = json.loads((tmp_path / out / "summary.json").read_text())
        assert np.isfinite([s["test_rmse"], s["test_mae"], s["test_r2"]]).all()
    est = predict(tmp_path / "alone", np.zeros((3, 2)), device=device)
    assert est.shape == (3, 1) and np.isfinite(np.asarray(est)).all()
    assert evaluate(tmp_path / "alone", device=device)["rmse"] == pytest.approx(
        json.loads((tmp_path / "alone" / "summary.json").read_text())["test_rmse"], rel=1e-6)
