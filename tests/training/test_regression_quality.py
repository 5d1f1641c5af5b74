"""How good the default regression is: on linear data with noise, the default MLP (``loss="mse"``,
every other key at its default) comes within a small margin of ordinary least squares on the same
split; it starts from the mean (its output layer zero), which is what gets it there."""
import numpy as np
import pytest

from polydl.training import TrainConfig, build, run
from polydl.training.data import load_dataset
from polydl.training.reporting import Reporter


def _linear(seed, n=400, k=10, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    return X, X @ rng.normal(size=k) + rng.normal(0, noise, n)


def _ols_r2(X, y, config) -> float:
    """R² on the test split of least squares with an intercept fit on the training split, the
    splits read through polydl's own loading (the rows the run trains and is tested on)."""
    loaded = load_dataset("<data>", config.data_seed, config.val_split, config.test_split, loss=config.loss,
                          data=(X, y))
    (X_train, y_train), (X_test, y_test) = loaded.splits["train"], loaded.splits["test"]
    w = np.linalg.lstsq(np.c_[X_train, np.ones(len(X_train))], y_train, rcond=None)[0]
    residual = np.c_[X_test, np.ones(len(X_test))] @ w - y_test
    return float(1 - (residual ** 2).sum() / ((y_test - y_test.mean(0)) ** 2).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_default_mlp_comes_close_to_least_squares_on_linear_data(tmp_path, seed):
    # measured: OLS 0.885, 0.926, 0.943; the MLP 0.853, 0.898, 0.926 (0.821, 0.808, 0.874 from a random output layer)
    X, y = _linear(seed)
    config = TrainConfig(loss="mse", plot=False)
    res = run(config, tmp_path / "r", data=(X, y), reporter=Reporter())
    ols = _ols_r2(X, y, config)
    assert res.summary["test_samples"] == 80 and ols > 0.85
    assert res.summary["test_r2"] > ols - 0.05, (res.summary["test_r2"], ols)


def test_a_regression_starts_at_the_mean_and_a_classification_does_not():
    import polydl.backend as backend

    def last_layer(loss, dataset):
        model = build.build_model(TrainConfig(loss=loss, dataset=dataset), 10, 1 if loss == "mse" else 3, "cpu")
        return backend.to_numpy(model.parameters()[-2].data), backend.to_numpy(model.parameters()[-1].data)

    w, b = last_layer("mse", "<arrays>")
    assert w.shape == (64, 1) and not w.any() and not b.any()
    w, _ = last_layer("softmax_cross_entropy", "<arrays>")
    assert w.shape == (64, 3) and np.abs(w).min() > 0
    w, _ = last_layer("mse", "digits")  # mse on a named dataset's classes: a classification, drawn as before
    assert np.abs(w).min() > 0
