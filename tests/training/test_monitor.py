"""The monitored metric: early stopping, the best epoch kept, α lowered on a plateau, warm-up, the
new schedule; a kill at every write then ``resume`` ends as the uninterrupted run."""

import numpy as np
import pytest
from monitor_helpers import assert_same_watched_run, best_arrays
from run_helpers import arrays, meta, metrics, tiny

import polydl
from polydl import schedules
from polydl.schedules import Position
from polydl.training import ConfigError, TrainConfig, evaluate, predict, resume, run
from polydl.training import checkpoint as ck
from polydl.training.build import build_schedule

#: a run whose val_loss stalls: it stops early after a plateau, with its best epoch kept
WATCHED = dict(epochs=40, lr=0.05, early_stopping_patience=4, plateau_patience=2, restore_best=True, min_delta=0.002)


# ---------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("changes, message", [
    ({"early_stopping_patience": -1}, "early_stopping_patience must be >= 0"),
    ({"plateau_patience": -2}, "plateau_patience must be >= 0"),
    ({"plateau_factor": 1.0}, "plateau_factor must be in (0, 1)"),
    ({"plateau_factor": 0.0}, "plateau_factor must be in (0, 1)"),
    ({"plateau_factor": 1.5}, "plateau_factor must be in (0, 1)"),
    ({"min_delta": -0.1}, "min_delta must be >= 0"),
    ({"restore_best": "yes"}, "restore_best must be true or false"),
    ({"warmup_epochs": -1}, "warmup_epochs must be >= 0"),
    ({"warmup_steps": 1.5}, "warmup_steps must be a whole number"),
    ({"warmup_epochs": 2, "warmup_steps": 10}, "not both"),
    ({"monitor": "val_los"}, "unknown monitor 'val_los'; did you mean 'val_loss'?"),
    ({"monitor": "val_acuracy"}, "did you mean 'val_accuracy'?"),
    ({"monitor": "test_loss"}, "unknown monitor 'test_loss'"),
])
def test_bad_values_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**changes).validate()
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("changes, message", [
    ({"restore_best": True, "val_split": 0.0}, "nothing to monitor for restore_best: the run does not record val_loss"),
    ({"early_stopping_patience": 3, "val_split": 0.0, "monitor": "val_f1"}, "no validation data"),
    ({"plateau_patience": 3, "monitor": "val_auc", "dataset": "blobs"}, "ROC AUC is recorded for two classes"),
])
def test_nothing_to_monitor_is_refused_before_anything_is_written(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        run(tiny(**changes), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_nothing_is_checked_where_nothing_watches_the_metric(tmp_path):
    r = run(tiny(val_split=0.0, monitor="val_auc"), tmp_path / "r")
    assert "monitor" not in r.summary and not (tmp_path / "r" / ck.BEST).exists()


# ---------------------------------------------------------------------------- early stopping, best
def test_early_stopping_says_why_and_when_and_keeps_the_best_epoch(tmp_path):
    out = tmp_path / "r"
    r = run(tiny(**WATCHED), out)
    s = r.summary
    stop = s["stopped_early"]["epoch"]
    assert 4 < stop < 40 and r.epochs == s["epochs"] == stop == meta(out)["epoch"]
    assert len(metrics(out)) == stop and s["stopped_early"]["reason"].startswith(
        f"val_loss has not improved by more than 0.002 for 4 epochs (best {s['best_value']:.4g} after epoch")
    vals = [m["val_loss"] for m in metrics(out)]
    assert s["best_epoch"] == s["best"]["epoch"] and s["best_value"] == vals[s["best_epoch"] - 1]
    assert all(v >= s["best_value"] - 0.002 for v in vals[s["best_epoch"]:])  # none better by min_delta since
    assert best_arrays(out)[0] == s["best_epoch"]
    # evaluate and predict take the best epoch by default, the last with --checkpoint last
    assert evaluate(out)["loss"] == pytest.approx(s["best"]["test_loss"], abs=1e-9)
    assert evaluate(out, checkpoint="last")["loss"] == pytest.approx(s["test_loss"], abs=1e-9)
    assert evaluate(out)["epoch"] == s["best_epoch"] and evaluate(out, checkpoint="last")["epoch"] == stop
    X = np.random.default_rng(0).normal(size=(5, 2))
    assert not np.array_equal(predict(out, X).probabilities, predict(out, X, checkpoint="last").probabilities)
    assert np.array_equal(predict(out, X).probabilities, predict(out, X, checkpoint="best").probabilities)


def test_best_npz_is_the_checkpoint_the_run_had_at_its_best_epoch(tmp_path):
    watched = run(tiny(epochs=12, restore_best=True, lr=0.05), tmp_path / "w")
    e = watched.summary["best_epoch"]
    assert e < 12
    run(tiny(epochs=12, lr=0.05).replace(epochs=e), tmp_path / "plain")
    _, best = best_arrays(tmp_path / "w")
    plain = arrays(tmp_path / "plain")
    assert best.keys() == plain.keys() and all(np.array_equal(best[k], plain[k]) for k in plain)


def test_a_run_without_a_best_file_is_evaluated_at_its_last_epoch(tmp_path):
    out = tmp_path / "r"
    run(tiny(), out)
    assert evaluate(out)["checkpoint"] == "last"
    with pytest.raises(ck.CheckpointError, match="has no best.npz .*use --checkpoint last"):
        evaluate(out, checkpoint="best")


def test_a_maximised_monitor_and_train_metrics(tmp_path):
    r = run(tiny(epochs=8, monitor="val_f1", restore_best=True, lr=0.05), tmp_path / "f1")
    f1 = [m["val_f1"] for m in metrics(tmp_path / "f1")]
    assert r.summary["best_value"] == max(f1) and f1.index(max(f1)) + 1 == r.summary["best_epoch"]
    r = run(tiny(epochs=8, monitor="train_accuracy", early_stopping_patience=1, lr=0.05), tmp_path / "t")
    assert r.summary["monitor"] == "train_accuracy"


def test_val_f1_and_val_auc_are_recorded(tmp_path):
    run(tiny(epochs=2), tmp_path / "r")
    rec = metrics(tmp_path / "r")[-1]
    assert 0 <= rec["val_f1"] <= 1 and 0 <= rec["val_auc"] <= 1
    run(tiny(epochs=1, dataset="blobs"), tmp_path / "b")
    rec = metrics(tmp_path / "b")[-1]
    assert "val_f1" in rec and "val_auc" not in rec  # AUC: two classes only


# ---------------------------------------------------------------------------- plateau
def test_a_plateau_lowers_alpha_as_resume_lr_does(tmp_path):
    cfg = tiny(epochs=14, lr=0.05, plateau_patience=2, plateau_factor=0.3, monitor="val_accuracy")
    out = tmp_path / "p"
    run(cfg, out)
    recs = metrics(out)
    drops = [r["epoch"] for r in recs if r.get("event") == "plateau"]
    assert drops and all(r["lr_changed"] for r in recs if r["epoch"] in drops)
    f = drops[0]
    # the same by hand: train to the epoch before, then --resume --lr with the lowered rate
    by_hand = tmp_path / "h"
    run(cfg.replace(plateau_patience=0, epochs=f - 1), by_hand)
    n = meta(by_hand)["optimizer"]["position"]["steps_per_epoch"]
    rate = build_schedule(cfg)(Position(f, (f - 1) * n + 1, 0, n, 14))
    resume(by_hand, {"lr": 0.3 * rate, "epochs": (drops[1] - 1) if len(drops) > 1 else 14})
    hand = metrics(by_hand)
    assert hand[f - 1]["event"].startswith("lr changed from inverse_time(lr0=0.05) per epoch to inverse_time(lr0=")
    for a, b in zip(recs, hand, strict=False):
        assert {k: v for k, v in a.items() if k != "event"} == {k: v for k, v in b.items() if k != "event"}
    assert recs[f - 1]["lr"] == pytest.approx(0.3 * rate, rel=1e-12)
    assert f"lr = {meta(out)['config']['lr']!r}" in (out / ck.CONFIG).read_text()
    assert meta(out)["monitor"]["drops"] == [d - 1 for d in drops]


# ---------------------------------------------------------------------------- warm-up, cosine
def test_warm_up_rises_linearly_to_any_schedule(tmp_path):
    run(tiny(epochs=5, lr=0.1, schedule="constant", warmup_epochs=3), tmp_path / "c")
    assert [m["lr"] for m in metrics(tmp_path / "c")] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.1])
    run(tiny(epochs=4, lr=0.1, warmup_epochs=2), tmp_path / "i")  # inverse_time: α0/(1 + e) times e/2
    assert [m["lr"] for m in metrics(tmp_path / "i")] == pytest.approx([0.1 / 2 / 2, 0.1 / 3, 0.1 / 4, 0.1 / 5])
    run(tiny(epochs=2, lr=0.1, schedule="constant", schedule_unit="step", warmup_steps=4), tmp_path / "s")
    steps = meta(tmp_path / "s")["optimizer"]["position"]["steps_per_epoch"]
    assert [m["lr"] for m in metrics(tmp_path / "s")] == pytest.approx([0.1 * min(1, steps / 4), 0.1])


def test_warm_up_of_a_plugins_schedule(tmp_path):
    from polydl.testing import registered_plugin

    def halving(lr0=0.01):
        if lr0 < 0:
            raise ValueError("lr0 must be >= 0")
        return lambda pos: lr0 / 2 ** (pos.epoch - 1)

    class Halving:
        @staticmethod
        @polydl.hookimpl
        def polydl_register_schedules(register):
            register("halving", halving)

    with registered_plugin(Halving(), "halving"):
        run(tiny(epochs=4, lr=0.08, schedule="halving", warmup_epochs=2), tmp_path / "h")
    assert [m["lr"] for m in metrics(tmp_path / "h")] == pytest.approx([0.08 / 2, 0.04, 0.02, 0.01])


def test_the_builtin_cosine_follows_the_run(tmp_path):
    lr = schedules.get("cosine", lr0=0.1, min_lr=0.01)
    assert lr(Position(1, epochs=10)) == pytest.approx(0.1)
    assert lr(Position(6, epochs=10)) == pytest.approx(0.055)
    assert lr(Position(11, epochs=10)) == lr(Position(30, epochs=10)) == pytest.approx(0.01)
    assert schedules.get("cosine", lr0=0.1, epochs=4)(3) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="needs the run's length"):
        lr(3)
    run(tiny(epochs=4, lr=0.1, schedule="cosine", warmup_epochs=1), tmp_path / "c")
    assert [m["lr"] for m in metrics(tmp_path / "c")] == pytest.approx([0.1, 0.05 * (1 + np.cos(np.pi / 4)), 0.05,
                                                                      0.05 * (1 + np.cos(3 * np.pi / 4))])


# ---------------------------------------------------------------------------- resume
def test_a_run_that_stopped_early_trains_on_only_with_more_patience(tmp_path):
    out = tmp_path / "r"
    r = run(tiny(**WATCHED), out)
    stop = r.summary["stopped_early"]["epoch"]
    with pytest.raises(ConfigError, match=f"stopped early after epoch {stop} .*--early-stopping-patience 0"):
        resume(out)
    more = resume(out, {"early_stopping_patience": 0, "epochs": stop + 2})
    assert more.epochs == stop + 2 and more.summary["stopped_early"] is None


class Killed(BaseException):
    """A process killed at once: nothing after it runs, no handler sees it."""


def _killing(monkeypatch, at: int, after: bool):
    """Kill the run at its ``at``-th write of a file (before it, or right after it)."""
    count = [0]

    def wrap(fn):
        def write(*a, **kw):
            count[0] += 1
            if count[0] == at and not after:
                raise Killed
            out = fn(*a, **kw)
            if count[0] == at:
                raise Killed
            return out
        return write

    for name in ("atomic_write", "append_metrics"):
        monkeypatch.setattr(ck, name, wrap(getattr(ck, name)))
    return count


@pytest.mark.slow
@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("stops", [True, False], ids=["stops early", "runs to its end"])
def test_a_kill_at_every_write_then_resume_ends_as_the_uninterrupted_run(tmp_path, monkeypatch, after, stops):
    cfg = tiny(**{**WATCHED, "epochs": 12, "early_stopping_patience": 3, "plateau_patience": 1})
    if not stops:  # α lowered after epoch 9, then its last epoch is its best: the resume finishes the run
        cfg = tiny(epochs=10, lr=0.03, plateau_patience=2, restore_best=True, min_delta=0.002)
    full = tmp_path / "full"
    with monkeypatch.context() as m:
        count = _killing(m, 0, after)
        r = run(cfg, full)
    writes = count[0]
    assert bool(r.summary["stopped_early"]) == stops and any(x.get("event") == "plateau" for x in metrics(full))
    assert stops or r.summary["best_epoch"] == 10
    for at in range(1, writes + 1):
        out = tmp_path / f"k{at}"
        with monkeypatch.context() as m:
            _killing(m, at, after)
            with pytest.raises(Killed):
                run(cfg, out)
        if at <= 4:  # the marker and the first files: a run that could not write them all leaves nothing
            assert not out.exists()
            continue
        if at < writes or not after:  # (killed after its last file, the run is complete)
            resume(out)
        assert_same_watched_run(full, out)
