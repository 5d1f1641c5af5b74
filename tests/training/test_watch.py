"""Reading a run as it trains, for real run directories: complete lines of ``metrics.jsonl``
only, running / finished / stopped from the run's OS lock, and the frame plotext draws."""
import json
import os
import re
import shutil
import signal

import pytest
from run_helpers import tiny

from polydl import training
from polydl.training import checkpoint as ckpt
from polydl.training import watch
from polydl.training.rundir import LOCK, RunDir

pytest.importorskip("plotext")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 3-epoch run, finished."""
    out = tmp_path_factory.mktemp("w") / "run"
    training.run(tiny(epochs=3), out)
    return out


@pytest.fixture(scope="module")
def babysat(tmp_path_factory):
    """A run resumed with a learning rate 50 times smaller and two more epochs."""
    out = tmp_path_factory.mktemp("w") / "babysat"
    training.run(tiny(epochs=3, schedule="constant", lr=0.005), out)
    training.resume(out, {"lr": 1e-4, "epochs": 5})
    return out


def test_only_complete_lines_are_read(finished, tmp_path):
    path = tmp_path / ckpt.METRICS
    full = ckpt.read_metrics(finished / ckpt.METRICS)
    assert len(full) == 3
    shutil.copy(finished / ckpt.METRICS, path)
    assert watch.read_records(path) == full
    line = json.dumps({"epoch": 4, "lr_changed": True, "event": "α 0.01 → 0.001"}, ensure_ascii=False).encode()
    with open(path, "ab") as fh:
        fh.write(line[:line.index("α".encode()) + 1])      # torn in the middle of α's two bytes
    assert watch.read_records(path) == full
    path.write_bytes((finished / ckpt.METRICS).read_bytes() + line)   # complete JSON, but no newline yet
    assert watch.read_records(path) == full
    path.write_bytes((finished / ckpt.METRICS).read_bytes() + line + b"\n")
    assert watch.read_records(path) == full + [json.loads(line)]
    torn_inside = (finished / ckpt.METRICS).read_bytes().replace(b"}\n", b"\n", 1)
    path.write_bytes(torn_inside)
    assert watch.read_records(path) == []                # a torn first line: nothing after it counts
    assert watch.read_records(tmp_path / "missing.jsonl") == []


def test_the_lock_tells_running_from_finished_and_stopped(finished, tmp_path):
    assert watch.lock_held(finished / LOCK) is False
    assert watch.lock_held(tmp_path / "no-such-lock") is False
    state = watch.read_run(finished)
    assert (state.status, state.epoch, state.epochs, state.done) == (watch.FINISHED, 3, 3, True)
    assert state.summary == json.loads((finished / ckpt.SUMMARY).read_text()) and state.pid is None
    with RunDir.open(finished):                          # a process continues it (a resume)
        assert watch.lock_held(finished / LOCK) is True
        state = watch.read_run(finished)
        assert (state.status, state.pid, state.done) == (watch.RUNNING, os.getpid(), False)
        assert watch.status_line(state).endswith(f"running (pid {os.getpid()})")
    assert watch.read_run(finished).status == watch.FINISHED   # the probe left the lock free
    with RunDir.open(finished):
        pass

    diverged = tmp_path / "diverged"
    with pytest.raises(training.TrainingDiverged):
        training.run(tiny(epochs=3, lr=1e9, optimizer="momentum", normalizer="none", dropout=0.0), diverged)
    state = watch.read_run(diverged)
    assert (state.status, state.epoch, state.epochs, state.summary) == (watch.STOPPED, 0, 3, None)
    assert watch.status_line(state) == (f"epoch 0/3 (no epoch has finished yet)  stopped after epoch 0 of 3 (no "
                                        f"process trains it); continue it with polydl train --resume {diverged}")
    frame = watch.run_frame(state, 100, 20)
    assert "(the curves appear when the first epoch has finished)" in frame and "┤" not in frame


class InterruptAfter(training.Reporter):
    """Ctrl-C (a real SIGINT) once epoch ``epoch`` has finished."""

    def __init__(self, epoch):
        self.epoch = epoch

    def epoch_end(self, record, epochs):
        if record["epoch"] == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_run_resumed_for_longer_that_stops_is_stopped_though_it_has_a_summary(babysat, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(babysat, run)
    with pytest.raises(training.TrainingInterrupted):
        training.resume(run, {"epochs": 9}, reporter=InterruptAfter(6))
    state = watch.read_run(run)
    assert state.summary is not None and (state.status, state.epoch, state.epochs) == (watch.STOPPED, 6, 9)
    assert "stopped after epoch 6 of 9" in watch.status_line(state)


def test_what_is_a_run(finished, tmp_path):
    assert watch.is_run(finished) and not watch.is_run(tmp_path) and not watch.is_run(tmp_path / "missing")
    starting = tmp_path / "starting"
    starting.mkdir()
    rd = RunDir(starting, [])
    rd.lock()                                            # the moment before the marker is written
    try:
        assert watch.is_run(starting)
        state = watch.read_run(starting)
        assert (state.status, state.records, state.epochs) == (watch.RUNNING, [], None)
        assert watch.header_line(state) == f"{starting}: starting"
    finally:
        rd.release()
    assert not watch.is_run(starting)
    with pytest.raises(watch.WatchError, match="is not a polydl run directory"):
        watch.read_run(starting)


def _axis_labels(panel: str) -> list[float]:
    """The y-axis labels of a plotext panel, top to bottom."""
    return [float(m) for m in re.findall(r"^\s*([-0-9.e+]+)┤", panel, re.M)]


def titles_at(lines, title) -> int:
    return next(i for i, x in enumerate(lines) if x.strip() == title)


def test_the_frame_shows_the_curves_and_the_status(finished, babysat):
    state = watch.read_run(finished)
    last = state.records[-1]
    frame = watch.run_frame(state, 120, 30)
    lines = frame.split("\n")
    assert "\x1b" not in frame and len(lines) <= 30 and max(map(len, lines)) <= 120
    assert lines[0] == f"{finished}: moons, hidden [8], adam, α0 0.01 (inverse_time), batch 32, 3 epochs"
    assert re.search(r"loss\s+accuracy\s+α", lines[1])              # three panels side by side
    summary = json.loads((finished / ckpt.SUMMARY).read_text())
    status = (f"epoch 3/3  train loss {last['train_loss']:.4g}  val loss {last['val_loss']:.4g}  val accuracy "
              f"{100 * last['val_accuracy']:.2f}%  α {last['lr']:.4g}  finished: test accuracy "
              f"{100 * summary['test_accuracy']:.2f}% (loss {summary['test_loss']:.4g})")
    assert watch.status_line(state) == status
    assert watch.status_line(state, 200) == status and len(status) > 120     # two lines where one does not fit
    assert lines[-2:] == status.split("  finished", 1)[0:1] + ["finished" + status.split("  finished", 1)[1]]
    assert "⢕⢕ train" in frame and "⢕⢕ val" in frame
    coloured = watch.run_frame(state, 120, 30, color=True)
    assert "\x1b[38;5;" in coloured and watch.run_frame(state, 120, 30) == frame
    # fewer epochs, another frame
    fewer = watch.RunState(state.path, watch.RUNNING, state.records[:1], state.config, None, 1)
    assert watch.run_frame(fewer, 120, 30) != frame and "epoch 1/3" in watch.run_frame(fewer, 120, 30)

    # narrow: stacked, α last; babysat: its α drops 50× (a log axis: labels in a constant ratio)
    state = watch.read_run(babysat)
    frame = watch.run_frame(state, 80, 60)
    lines = frame.split("\n")
    assert max(map(len, lines)) <= 80 and len(lines) <= 60
    titles = [x.strip() for x in lines if x.strip() in ("loss", "accuracy", "α")]
    assert titles == ["loss", "accuracy", "α"]
    alpha = _axis_labels("\n".join(lines[titles_at(lines, "α"):]))
    ratios = [a / b for a, b in zip(alpha, alpha[1:])]
    assert max(ratios) / min(ratios) < 1.05             # evenly spaced in log α
    event = next(r for r in state.records if r.get("lr_changed"))
    assert event["epoch"] == 4 and event["event"].endswith(": α 0.005 → 0.0001 at epoch 4")
    shown = event["event"].rpartition(": ")
    assert f"α 0.005 → 0.0001 at epoch 4 ({shown[0]})"[:80] in lines
    assert state.status == watch.FINISHED and "epoch 5/5" in lines[-2] + lines[-1]
    loss = _axis_labels("\n".join(lines[titles_at(lines, "loss"):titles_at(lines, "accuracy")]))
    steps = [a - b for a, b in zip(loss, loss[1:])]
    assert max(steps) - min(steps) < 0.02 * (loss[0] - loss[-1])   # the loss on a linear axis


def test_without_plotext_a_frame_says_what_to_install(finished, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "plotext", None)
    with pytest.raises(watch.WatchError) as exc:
        watch.run_frame(watch.read_run(finished))
    assert str(exc.value) == watch.PLOTEXT_MISSING and "pip install 'polydl[watch]'" in str(exc.value)


def test_a_damaged_metrics_line_names_the_line_and_the_field(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    lines = (run / ckpt.METRICS).read_text().splitlines()
    record = json.loads(lines[1])
    record["epoch"] = "one"
    (run / ckpt.METRICS).write_text("\n".join([lines[0], json.dumps(record), *lines[2:]]) + "\n")
    with pytest.raises(watch.WatchError) as err:
        watch.read_run(run)
    assert str(err.value) == (f'{run / ckpt.METRICS} is damaged: line 2 has "epoch": "one", not a whole number; '
                              "restore the file, or remove that line")
    # a torn last line (being written, or cut by a kill) is still not damage
    (run / ckpt.METRICS).write_text("\n".join(lines) + '\n{"epoch": "fo')
    assert watch.read_run(run).epoch == 3


@pytest.mark.parametrize("name", [LOCK, ckpt.METRICS, ckpt.CONFIG, ckpt.SUMMARY])
def test_a_link_in_place_of_a_run_file_is_not_followed(finished, tmp_path, name):
    """A run file that links elsewhere (even to a file that looks right) is refused, not read."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / name).rename(tmp_path / name)
    (run / name).symlink_to(tmp_path / name)
    with pytest.raises(watch.WatchError, match=rf"cannot read the run: .*{re.escape(name)} is a symbolic link, not a "
                                               "regular file; remove it"):
        watch.read_run(run)


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    """A finished 4-epoch regression (mse) on arrays: its records have RMSE, MAE and R², no accuracy."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.3, 200)
    out = tmp_path_factory.mktemp("w") / "reg"
    training.run(tiny(epochs=4, loss="mse", dataset_params={}), out, data=(X, y))
    return out


def test_a_regression_frame_draws_the_loss_rmse_mae_and_r2(regression, finished):
    state = watch.read_run(regression)
    last, summary = state.records[-1], json.loads((regression / ckpt.SUMMARY).read_text())
    assert state.regression and last.get("val_accuracy") is None and not watch.read_run(finished).regression
    frame = watch.run_frame(state, 120, 30)
    lines = frame.split("\n")
    assert len(lines) <= 30 and max(map(len, lines)) <= 120 and "accuracy" not in frame
    assert re.search(r"loss\s+RMSE / MAE", frame) and re.search(r"R²\s+α", frame)   # two by two
    assert all(f"⢕⢕ {label}" in frame for label in ("train", "val", "rmse", "mae"))
    status = (f"epoch 4/4  train loss {last['train_loss']:.4g}  val loss {last['val_loss']:.4g}  val RMSE "
              f"{last['val_rmse']:.4g}  val R² {last['val_r2']:.4g}  α {last['lr']:.4g}  finished: test RMSE "
              f"{summary['test_rmse']:.4g}, R² {summary['test_r2']:.4g} (loss {summary['test_loss']:.4g})")
    assert watch.status_line(state) == status

    # stacked: the four panels in order, each axis spanning its own values
    lines = watch.run_frame(state, 80, 60).split("\n")
    titles = [x.strip() for x in lines if x.strip() in ("loss", "RMSE / MAE", "R²", "α", "accuracy")]
    assert titles == ["loss", "RMSE / MAE", "R²", "α"]
    for title, end, keys in (("RMSE / MAE", "R²", ("val_rmse", "val_mae")), ("R²", "α", ("val_r2",))):
        labels = _axis_labels("\n".join(lines[titles_at(lines, title):titles_at(lines, end)]))
        values = [r[k] for r in state.records for k in keys]
        span = max(values) - min(values)
        assert labels and max(labels) >= max(values) - 0.3 * span and min(labels) <= min(values) + 0.3 * span
