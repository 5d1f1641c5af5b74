"""Reading a study as it grows, for real: a finished study on SQLite with complete and failed
trials over two rounds, a study whose owner is training (read the moment its directory appears,
then while its first trial trains), and the same study after ``kill -9`` of its owner."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from tune_helpers import cli, load, optuna, popen, tiny

from polydl.tune import watch
from polydl.tune.space import Space
from polydl.tune.study import TuneSettings, tune
from polydl_cli.main import main

TrialState = optuna.trial.TrialState


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Four trials in two rounds; Adam takes beta1, not beta, so its trials fail."""
    out = tmp_path_factory.mktemp("s") / "mixed"
    space = Space.from_dict({"lr": {"distribution": "log_uniform", "low": 0.01, "high": 0.5},
                             "optimizer": {"distribution": "choice", "choices": ["momentum", "adam"]},
                             "beta": {"distribution": "one_minus_log_uniform", "low": 0.9, "high": 0.99}})
    settings = TuneSettings(base=tiny(optimizer="momentum", normalizer="none"), space=space, trials=4, rounds=2,
                            out=out, workers=2, seed=2)
    tune(settings, handle_signals=False)
    return out


@pytest.mark.slow
def test_a_finished_study_lists_every_trial(finished):
    study = load(finished)
    state = watch.StudyWatch(finished).read()
    assert (state.status, state.done, state.total, state.rounds, state.finished) == ("finished", True, 4, 2, 4)
    assert state.keys == ["lr", "optimizer", "beta"] and state.owners == []
    by = {r.number: r for r in state.rows}
    assert sorted(by) == [t.number for t in study.trials] == list(range(4))
    states = {TrialState.COMPLETE: "complete", TrialState.FAIL: "failed"}
    assert {t.number: states[t.state] for t in study.trials} == {n: r.status for n, r in by.items()}
    assert {"complete", "failed"} <= {r.status for r in state.rows}
    for t in study.trials:
        r = by[t.number]
        assert (r.round, r.params, r.value, r.error) == (t.user_attrs["round"], t.params, t.value,
                                                         t.user_attrs.get("error"))
        assert r.epoch == (2 if r.status == "complete" else None) and r.epochs == 2
    best = study.best_trial
    assert state.best.number == best.number and state.best.value == best.value

    frame = watch.study_frame(state)
    lines = frame.split("\n")
    assert lines[0] == f"study 'mixed' in sqlite:///{finished}/study.db: val_loss minimised, 4 trials in 2 rounds " \
                       "(random sampling)"
    c = state.count
    assert lines[1] == (f"4 of 4 trials finished ({c('complete')} complete, 0 pruned, {c('failed')} failed), 0 running; "
                        "round 2 of 2")
    assert lines[2].startswith(f"best so far: trial {best.number} (round {best.user_attrs['round']}): val_loss "
                               f"{best.value:.4g}  lr={best.params['lr']:.4g} optimizer=momentum")
    box = study.user_attrs["boxes"]["2"]
    assert lines[3] == (f"round 2 samples in: lr [{box['lr']['low']:.4g}, {box['lr']['high']:.4g}]  optimizer "
                        f"{{{', '.join(box['optimizer']['choices'])}}}  beta [{box['beta']['low']:.4g}, "
                        f"{box['beta']['high']:.4g}]")
    assert lines[4].split() == ["trial", "round", "status", "lr", "optimizer", "beta", "val_loss", "epoch"]
    for t, line in zip(study.trials, lines[5:9], strict=True):
        cells = line.split()
        assert cells[:4] == [str(t.number), str(t.user_attrs["round"]), states[t.state], f"{t.params['lr']:.4g}"]
        if t.state == TrialState.COMPLETE:
            assert cells[6:] == [f"{t.value:.4g}", "2/2"]
        else:
            assert cells[6:8] == ["-", "-"] and line.endswith(t.user_attrs["error"])
    assert lines[9:] == ["finished"]

    # a small terminal: the latest rows that fit, lines cut to its width
    short = watch.study_frame(state, width=60, height=9).split("\n")
    assert len(short) <= 9 and max(map(len, short)) <= 60
    assert short[-2].startswith("  (") and "other trials not shown" in short[-2] and short[-1] == "finished"
    shown = [int(x.split()[0]) for x in short if x[:7].strip().isdigit()]
    assert shown == list(range(4 - len(shown), 4)) and len(shown) >= 1


BLOCK = "import sys; sys.modules[{!r}] = None; from polydl_cli.main import main; main(sys.argv[1:])"


@pytest.mark.slow
def test_polydl_watch_prints_the_study_and_ends_at_once(finished):
    state = watch.StudyWatch(finished).read()
    r = cli("watch", "--once", finished)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == watch.study_frame(state) + "\n\n"
    r = CliRunner().invoke(main, ["watch", "--interval", "0.1", str(finished)])    # finished: it ends at once
    assert r.exit_code == 0 and r.stdout == watch.study_frame(state) + "\n\n"
    r = subprocess.run([sys.executable, "-c", BLOCK.format("plotext"), "watch", "--once", str(finished)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == watch.study_frame(state) + "\n\n"      # a study needs no plotext
    r = subprocess.run([sys.executable, "-c", BLOCK.format("optuna"), "watch", "--once", str(finished)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.strip() == f"Error: {watch.OPTUNA_MISSING}"


def _wait(predicate, bound, what):
    end = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"waited {bound} s for {what}")
        time.sleep(0.002)


@pytest.mark.slow
def test_a_running_study_then_its_owner_killed(tmp_path):
    out = tmp_path / "live"
    space = tmp_path / "space.toml"
    space.write_text('[lr]\ndistribution = "log_uniform"\nlow = 0.001\nhigh = 0.1\n')
    owner = popen("tune", "--dataset", "moons", "--dataset-param", "n_samples=20000", "--hidden", "8", "--batch-size",
                  "8", "--epochs", "40", "--no-plot", "--space", space, "--trials", "3", "--workers", "1", "--out", out,
                  "--quiet")
    follower = None
    try:
        _wait(lambda: (out / "study.json").exists(), 60, "study.json")
        state = watch.StudyWatch(out).read()     # the moment the directory is a study, its owner lives
        assert state.status in ("starting", "running") and state.owners == [owner.pid]
        follower = subprocess_watch(out, tmp_path / "follow.txt")
        metrics = out / "trials" / "0000" / "metrics.jsonl"
        _wait(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2, 60, "two epochs of trial 0")
        state = watch.StudyWatch(out).read()
        (row,) = state.rows
        assert (state.status, row.number, row.round, row.status, row.epochs) == ("running", 0, 1, "running", 40)
        assert row.epoch >= 2 and state.finished == 0 and not state.done
        frame = watch.study_frame(state)
        assert frame.endswith(f"running (owner pid {owner.pid})")
        assert "0 of 3 trials finished (0 complete, 0 pruned, 0 failed), 1 running" in frame
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=30)
        follower.wait(timeout=30)            # it ends by itself: nothing runs the study any more
        assert follower.returncode == 0
        frames = (tmp_path / "follow.txt").read_text().split("\n\n")
        assert any("  running  " in f for f in frames[:-1])
        # the worker died with its owner (PDEATHSIG): its trial is interrupted, the study stopped
        _wait(lambda: watch.StudyWatch(out).read().status == "stopped", 30, "the worker to end")
        state = watch.StudyWatch(out).read()
        (row,) = state.rows
        records = [json.loads(x) for x in metrics.read_text().splitlines()]
        assert (row.status, row.epoch) == ("interrupted", records[-1]["epoch"])
        assert row.value == records[-1]["val_loss"]
        assert watch.study_frame(state).endswith(
            "stopped with 0 of 3 trials finished (no process runs the study); the same polydl tune command "
            "continues it; interrupted trial 0 continues from the checkpoint")
    finally:
        for p in (owner, follower):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for p in (owner,):
            p.stdout.close()
            p.stderr.close()


def subprocess_watch(out, log):
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, "-m", "polydl_cli.main", "watch", "--interval", "0.1", str(out)],
                                stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_a_study_directory_without_a_study(tmp_path):
    from polydl.tune import layout

    with pytest.raises(layout.LayoutError, match="is not a polydl study"):
        watch.StudyWatch(tmp_path)
    layout.write_study_json(tmp_path, {"storage": f"sqlite:///{tmp_path}/study.db", "study_name": "x",
                                       "metric": "val_loss", "direction": "minimize", "space": {}, "rounds": 1,
                                       "trials": 2, "sampler": "random", "seed": 0})
    with pytest.raises(watch.WatchError, match=f"has no storage {tmp_path}/study.db and no process runs it"):
        watch.StudyWatch(tmp_path).read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.json"]     # nothing written
