"""Small studies shared by the tune tests: tiny trainings, CLI subprocesses, reading a study."""
import os
import subprocess
import sys
import time

import pytest

from polydl.training.config import TrainConfig
from polydl.tune.study import TuneReporter

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

#: a trial of a fraction of a second: 200 moons, one small hidden layer, 2 epochs
TINY = ["--dataset", "moons", "--dataset-param", "n_samples=200", "--hidden", "8", "--epochs", "2",
        "--batch-size", "32", "--no-plot"]
#: trials of a second or so: digits in small mini-batches
LONGER = ["--dataset", "digits", "--hidden", "32", "--batch-size", "8", "--epochs", "4", "--no-plot", "--tier", "1"]


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


def snapshot(out):
    """The files of a study directory by path (not SQLite's -wal and -shm, not plots)."""
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and not p.name.endswith(("-wal", "-shm", ".png"))}


def wait_for_lines(path, n, proc, timeout=120):
    """Wait until ``path`` has ``n`` lines while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {n} lines")


def assert_trials_wait_for_the_owner(ex, tasks, epochs, timeout=120):
    """Tasks with ``decide`` wait after each epoch until the owner answers: nothing of epoch 2
    arrives before ``proceed(n, 1)``; the first task, stopped after its epoch 2, ends ``stopped``
    at exactly that epoch (its checkpoint too), and the others, told to go on, finish. Returns the
    events by trial."""
    from polydl.training import load_run_config

    def until(cond):
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, events
            for ev in ex.poll(0.2):
                events.setdefault(ev.number, []).append(ev)

    def epochs_of(n):
        return [e.epoch for e in events.get(n, []) if e.kind == "epoch"]

    events: dict = {}
    numbers = [t.number for t in tasks]
    for t in tasks:
        assert t.decide
        ex.submit(t)
    until(lambda: all(epochs_of(n) == [1] for n in numbers))
    time.sleep(1.0)  # a trial that did not wait would train on meanwhile
    until(lambda: True)
    assert all(epochs_of(n) == [1] for n in numbers), events
    for n in numbers:
        ex.proceed(n, 1)
    until(lambda: all(len(epochs_of(n)) == 2 for n in numbers))
    ex.stop(numbers[0])
    for e in range(2, epochs + 1):
        for n in numbers[1:]:
            ex.proceed(n, e)
    until(lambda: all(events[n][-1].final for n in numbers))
    first = events[numbers[0]]
    assert first[-1].kind == "stopped" and first[-1].epoch == 2 and epochs_of(numbers[0]) == [1, 2], first
    assert load_run_config(tasks[0].run_dir)[1]["epoch"] == 2
    for n in numbers[1:]:
        assert events[n][-1].kind == "done" and epochs_of(n) == list(range(1, epochs + 1)), events[n]
    return events


class Recorder(TuneReporter):
    """What ``tune`` reported: the start, each trial's end, the notes."""

    def __init__(self):
        self.info, self.trials, self.notes = None, [], []

    def start(self, info):
        self.info = info

    def trial_end(self, info):
        self.trials.append(info)

    def note(self, message):
        self.notes.append(message)
