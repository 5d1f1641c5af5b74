"""Small studies shared by the tune tests: tiny trainings, CLI subprocesses, reading a study."""
import os
import subprocess
import sys

import pytest

from polydl.training.config import TrainConfig

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

#: a trial of a fraction of a second: 200 moons, one small hidden layer, 2 epochs
TINY = ["--dataset", "moons", "--dataset-param", "n_samples=200", "--hidden", "8", "--epochs", "2",
        "--batch-size", "32", "--no-plot"]


def tiny(**kw) -> TrainConfig:
    base = {"dataset": "moons", "dataset_params": {"n_samples": 200}, "hidden": [8], "epochs": 2,
            "batch_size": 32, "plot": False}
    base.update(kw)
    return TrainConfig(**base)


def cli(*args, cwd=None, env=None, **kw):
    """``polydl ARGS`` as a subprocess of this Python."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "polydl_cli.main", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, **kw)


def popen(*args, cwd=None, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "polydl_cli.main", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def load(out, name=None):
    """The study of a study directory (storage OUT/study.db, name: OUT's)."""
    return optuna.load_study(study_name=name or os.path.basename(os.path.abspath(out)),
                             storage=f"sqlite:///{os.path.abspath(out)}/study.db")


def one_line_error(result, *fragments, code=2):
    err = result.stderr
    assert result.returncode == code, (result.returncode, err, result.stdout)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err + result.stdout
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]
