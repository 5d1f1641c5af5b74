"""Early stopping, the best epoch, the plateau and the new metrics through ``polydl``: bad input is one
``Error:`` line with nothing written, the summary line and ``evaluate`` say what they use, and a
real SIGKILL at any moment then ``--resume`` ends as the uninterrupted run."""
import json
import os
import random
import signal
import time

import numpy as np
import pytest
from cli_helpers import TINY, assert_one_line_error, cli, invoke, popen
from monitor_helpers import assert_same_watched_run
from run_helpers import meta

from polydl.training import checkpoint as ck

WATCH = ["--early-stopping-patience", "3", "--restore-best", "--plateau-patience", "1", "--lr", "0.05",
         "--epochs", "30", "--min-delta", "0.002"]


@pytest.mark.parametrize("flags, fragment", [
    (["--early-stopping-patience", "-1"], "early_stopping_patience must be >= 0"),
    (["--plateau-patience", "-3"], "plateau_patience must be >= 0"),
    (["--plateau-factor", "1.5"], "plateau_factor must be in (0, 1), not 1.5"),
    (["--plateau-factor", "0"], "plateau_factor must be in (0, 1), not 0"),
    (["--monitor", "val_los", "--restore-best"], "unknown monitor 'val_los'; did you mean 'val_loss'?"),
    (["--restore-best", "--val-split", "0"], "nothing to monitor for restore_best"),
    (["--early-stopping-patience", "2", "--monitor", "val_auc", "--dataset", "blobs"], "ROC AUC is recorded for two"),
    (["--warmup-epochs", "2", "--warmup-steps", "3"], "not both"),
    (["--min-delta", "-1"], "min_delta must be >= 0"),
])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, flags, fragment):
    out = tmp_path / "r"
    r = invoke("train", *TINY, *flags, "--out", out)
    assert_one_line_error(r, 2, fragment)
    assert not out.exists()


def test_the_summary_line_and_evaluate_name_the_best_epoch(tmp_path):
    out = tmp_path / "r"
    r = invoke("train", *TINY, *WATCH, "--out", out, "-q")
    assert r.exit_code == 0, r.output
    s = json.loads((out / ck.SUMMARY).read_text())
    assert f"(stopped early: {s['stopped_early']['reason']})" in r.stdout
    assert f"; best epoch {s['best_epoch']}: test accuracy " in r.stdout and "(best.npz)" in r.stdout
    e = invoke("evaluate", out)
    assert e.exit_code == 0, e.output
    assert f"(best.npz, epoch {s['best_epoch']})" in e.stdout.splitlines()[0]
    assert "precision     recall         f1    support" in e.stdout and "ROC AUC " in e.stdout and "PR AUC " in e.stdout
    last = json.loads(invoke("evaluate", out, "--checkpoint", "last", "--json").stdout)
    assert (last["checkpoint"], last["epoch"]) == ("last", s["epochs"]) and last["loss"] == pytest.approx(s["test_loss"])
    assert 0 <= last["roc_auc"] <= 1 and 0 <= last["pr_auc"] <= 1 and len(last["f1"]) == 2
    np.savez(tmp_path / "x.npz", X=np.random.default_rng(0).normal(size=(6, 2)))
    best, last = (invoke("predict", out, tmp_path / "x.npz", "--checkpoint", c) for c in ("best", "last"))
    assert best.exit_code == last.exit_code == 0, best.output + last.output
    assert best.stdout != last.stdout and invoke("predict", out, tmp_path / "x.npz").stdout == best.stdout


def test_asking_for_a_best_checkpoint_that_is_not_there(tmp_path):
    out = tmp_path / "r"
    assert invoke("train", *TINY, "--out", out, "-q").exit_code == 0
    assert_one_line_error(invoke("evaluate", out, "--checkpoint", "best"), 2, "has no best.npz")
    assert "(the last checkpoint, epoch 2)" in invoke("evaluate", out).stdout


def test_evaluate_reports_top_k_for_many_classes(tmp_path):
    out = tmp_path / "r"
    assert invoke("train", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--no-plot", "--out", out,
                  "-q").exit_code == 0
    res = json.loads(invoke("evaluate", out, "--json").stdout)
    assert set(res["top_k_accuracy"]) == {"3", "5"} and res["top_k_accuracy"]["5"] >= res["accuracy"]
    assert "roc_auc" not in res and len(res["precision"]) == 10


def test_a_stopped_early_run_tells_how_to_train_on(tmp_path):
    out = tmp_path / "r"
    assert invoke("train", *TINY, *WATCH, "--out", out, "-q").exit_code == 0
    assert_one_line_error(invoke("train", "--resume", out), 2, "stopped early after epoch",
                          "--early-stopping-patience 0")
    r = invoke("train", "--resume", out, "--early-stopping-patience", "0", "-q")
    assert r.exit_code == 0, r.output


# a couple of seconds in many small steps (digits, mini-batches of 4): a plateau lowers α twice and
# the run stops early after about 20 epochs, so that a kill a few tenths of a second after an epoch
# lands anywhere: mid-epoch, between the checkpoint and best.npz, after the early stop
LONG = ["train", "--dataset", "digits", "--hidden", "32", "--batch-size", "4", "--epochs", "30", "--dropout", "0.1",
        "--schedule", "inverse_sqrt_step", "--schedule-unit", "step", "--no-plot", "--early-stopping-patience", "4",
        "--plateau-patience", "2", "--restore-best", "--min-delta", "0.001"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    r = cli(*LONG, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    s = json.loads((out / ck.SUMMARY).read_text())
    assert s["stopped_early"] and "plateau" in (out / ck.METRICS).read_text()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("after_epoch", [1, 8, 16, 20])
def test_sigkill_then_resume_ends_as_the_uninterrupted_run(tmp_path, uninterrupted, after_epoch):
    out = tmp_path / "run"
    p = popen(*LONG, "--out", out)
    for line in p.stdout:
        if line.startswith(f"epoch {after_epoch}/"):
            break
    time.sleep(random.uniform(0.0, 0.15))
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    p.stderr.close()
    if p.returncode != -signal.SIGKILL:
        pytest.skip("the run ended before it could be killed")
    if not (out / ck.SUMMARY).exists():
        r = cli("train", "--resume", out, "--quiet")
        assert r.returncode == 0, r.stderr
    assert meta(out)["monitor"]["stopped"] == meta(uninterrupted)["monitor"]["stopped"]
    assert_same_watched_run(uninterrupted, out)
