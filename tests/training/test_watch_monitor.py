"""``polydl watch`` of a run that watches its metric: its best epoch, α lowered on a plateau and an
early stop on the curves and in the status line."""
import pytest
from run_helpers import tiny

from polydl import training
from polydl.training import watch

pytest.importorskip("plotext")


@pytest.fixture(scope="module")
def stopped_early(tmp_path_factory):
    out = tmp_path_factory.mktemp("w") / "run"
    training.run(tiny(epochs=12, lr=0.05, early_stopping_patience=3, plateau_patience=1, restore_best=True,
                      min_delta=0.002), out)
    return out


def test_a_run_that_stopped_early_is_finished_with_its_reason_and_best_epoch(stopped_early):
    state = watch.read_run(stopped_early)
    s = state.summary
    assert state.status == watch.FINISHED and state.epoch < state.epochs
    assert state.stopped_early == s["stopped_early"] and state.best_epoch == s["best_epoch"]
    line = watch.status_line(state)
    assert f"best epoch {s['best_epoch']} (val_loss " in line
    assert f"finished: stopped early after epoch {state.epoch}: {s['stopped_early']['reason']}" in line


def test_the_frame_marks_the_plateau_the_best_epoch_and_the_stop(stopped_early):
    state = watch.read_run(stopped_early)
    drop = next(r["epoch"] for r in state.records if r.get("event") == "plateau")
    frame = watch.run_frame(state, 120, 40)
    assert f"α lowered on a plateau from epoch {drop} (α " in frame
    assert "finished: stopped early" in frame.splitlines()[-1]


def test_the_best_epoch_follows_the_metric_and_min_delta():
    recs = [{"epoch": e, "val_loss": v, "val_f1": f} for e, v, f in
            [(1, 0.5, 0.6), (2, 0.45, 0.7), (3, 0.449, 0.69), (4, 0.3, 0.71)]]
    assert watch.best_epoch(recs, "val_loss") == 4
    assert watch.best_epoch(recs[:3], "val_loss", 0.01) == 2  # 0.449 is not better by more than 0.01
    assert watch.best_epoch(recs, "val_f1") == 4 and watch.best_epoch(recs[:3], "val_f1") == 2
    assert watch.best_epoch(recs, "no_such_metric") is None


def test_a_run_that_does_not_watch_its_metric_has_no_best_epoch(tmp_path):
    training.run(tiny(epochs=2), tmp_path / "r")
    state = watch.read_run(tmp_path / "r")
    assert state.best_epoch is None and "best epoch" not in watch.status_line(state)
