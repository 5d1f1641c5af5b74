"""Runs train with captured steps by default: the same run directories, bit for bit, as with
every step eager (POLYDL_CAPTURE=off), for a model alone, a regression and a population."""
import os
import subprocess
import sys

import numpy as np
import pytest
from run_helpers import assert_same_run, tiny

from polydl.training import TrainConfig, run
from polydl.training.population import run_population
from polydl.training.trainer import Trainer

#: ``polydl train`` of a fraction of a second (as tests/cli's TINY)
TINY = ["--dataset", "moons", "--dataset-param", "n_samples=200", "--hidden", "8", "--epochs", "2",
        "--batch-size", "32", "--no-plot"]
POP = dict(dataset="moons", dataset_params={"n_samples": 300}, hidden=[8, 6], epochs=3, batch_size=32, plot=False)


def _both(monkeypatch, train):
    """``train(name)`` with capture on, then off."""
    monkeypatch.setenv("POLYDL_CAPTURE", "on")
    on = train("on")
    monkeypatch.setenv("POLYDL_CAPTURE", "off")
    return on, train("off")


@pytest.mark.parametrize("kw", [dict(), dict(dropout=0.2, optimizer="momentum", schedule="exponential", schedule_unit="step"),
                                dict(activation="tanh", normalizer="none", optimizer="rmsprop")],
                         ids=["default", "dropout-momentum-decay", "tanh-rmsprop"])
def test_a_run_is_the_same_with_captured_steps(tmp_path, monkeypatch, kw):
    on, off = _both(monkeypatch, lambda name: run(tiny(**kw), tmp_path / name).out_dir)
    assert_same_run(on, off)


def test_a_convolutional_run_is_the_same_with_captured_steps(tmp_path, monkeypatch):
    config = TrainConfig(dataset="digits", model="cnn", model_params={"channels": [4, 6]}, hidden=[8],
                         epochs=2, batch_size=128, plot=False)
    on, off = _both(monkeypatch, lambda name: run(config, tmp_path / name).out_dir)
    assert_same_run(on, off)


def test_a_regression_is_the_same_with_captured_steps(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((180, 5)).astype(np.float32)
    y = (X @ rng.standard_normal(5) + 0.1 * rng.standard_normal(180)).astype(np.float32)
    on, off = _both(monkeypatch, lambda name: run(tiny(loss="mse", dropout=0.0), tmp_path / name,
                                                  data=(X, y)).out_dir)
    assert_same_run(on, off)


def test_a_population_is_the_same_with_captured_steps(tmp_path, monkeypatch):
    configs = [TrainConfig(**POP, lr=lr, seed=k, dropout=0.1 * k) for k, lr in enumerate((0.01, 0.05, 0.002))]

    def train(name):
        dirs = [tmp_path / name / str(k) for k in range(3)]
        run_population(configs, dirs)
        return dirs

    for a, b in zip(*_both(monkeypatch, train), strict=True):
        assert_same_run(a, b)


def test_the_trainer_replays_its_steps(tmp_path, monkeypatch):
    """Every mini-batch but the first of each size is replayed (the check that capture is on)."""
    monkeypatch.setenv("POLYDL_CAPTURE", "on")
    seen = []
    original = Trainer.finish

    def finish(self, members=None):
        seen.append((self.train_step.replays, self.train_step.why, self.n_batches, self.config.epochs))
        return original(self, members)

    monkeypatch.setattr(Trainer, "finish", finish)
    run(tiny(), tmp_path / "r")
    replays, why, n, epochs = seen[0]
    assert why is None and replays >= n * epochs - 2


def test_polydl_capture_off_from_the_cli(tmp_path):
    """The environment variable reaches a real `polydl train` process: the run is the same."""
    outs = []
    for value in ("on", "off"):
        out = tmp_path / value
        env = {**os.environ, "POLYDL_CAPTURE": value}
        r = subprocess.run([sys.executable, "-m", "polydl_cli.main", "train", *TINY, "--out", str(out)],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(out)
    assert_same_run(*outs)
