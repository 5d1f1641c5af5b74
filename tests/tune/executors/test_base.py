"""``run_trial`` in this process (its events, failures, stopping, resuming), the task and event
records, and the one-line form of an error."""
import json

from run_helpers import assert_same_run
from tune_helpers import tiny

from polydl.training import checkpoint as ckpt
from polydl.tune.executors.base import TrialEvent, TrialTask, one_line, run_trial


def task(tmp_path, number=0, resume=False, **kw):
    cfg = tiny(**kw).to_dict()
    return TrialTask(number, cfg, str(tmp_path / f"{number:04d}"), resume=resume)


def collect(t, stop_after=None):
    events = []
    done = run_trial(t, events.append, lambda: stop_after is not None and any(
        e.kind == "epoch" and e.epoch >= stop_after for e in events), handle_signals=False)
    return events, done


def test_run_trial_streams_each_epoch_then_the_summary(tmp_path):
    events, done = collect(task(tmp_path, epochs=3))
    run_dir = tmp_path / "0000"
    lines = [json.loads(x) for x in (run_dir / ckpt.METRICS).read_text().splitlines()]
    assert [e.kind for e in events] == ["epoch", "epoch", "epoch", "done"] and done is events[-1]
    assert [e.record for e in events[:3]] == lines
    assert done.record == json.loads((run_dir / ckpt.SUMMARY).read_text()) and done.epoch == 3
    assert done.record["val_loss"] == lines[-1]["val_loss"]


def test_failures_are_one_line_events(tmp_path):
    events, done = collect(task(tmp_path, 0, optimizer="sgd", normalizer="none", lr=1e8, epochs=2))
    assert done.kind == "failed" and "the loss became" in done.message and "\n" not in done.message
    bad = TrialTask(1, {**tiny().to_dict(), "optimizer": "adam", "beta": 0.9}, str(tmp_path / "0001"))
    events, done = collect(bad)
    assert done.kind == "failed" and "beta" in done.message and "\n" not in done.message


def test_a_stopped_trial_keeps_its_checkpoint_and_a_resumed_one_matches_an_uninterrupted_run(tmp_path):
    events, done = collect(task(tmp_path, 0, epochs=4, dropout=0.1), stop_after=2)
    assert done.kind == "stopped" and done.epoch == 2
    assert len((tmp_path / "0000" / ckpt.METRICS).read_text().splitlines()) == 2
    events, done = collect(task(tmp_path, 0, resume=True, epochs=4, dropout=0.1))
    assert done.kind == "done" and [e.epoch for e in events if e.kind == "epoch"] == [3, 4]
    collect(TrialTask(0, tiny(epochs=4, dropout=0.1).to_dict(), str(tmp_path / "ref")))
    assert_same_run(tmp_path / "ref", tmp_path / "0000")
    # a finished run resumed again reports its summary without training
    events, again = collect(task(tmp_path, 0, resume=True, epochs=4, dropout=0.1))
    assert [e.kind for e in events] == ["done"] and again.record == done.record


def test_events_as_json():
    e = TrialEvent(3, "epoch", record={"val_loss": 0.5}, epoch=1)
    assert TrialEvent.from_dict(json.loads(json.dumps(e.to_dict()))) == e and not e.final
    assert TrialEvent(3, "stopped").final
    t = TrialTask(1, {"lr": 0.1}, "/x", resume=True)
    assert TrialTask.from_dict(t.to_dict()) == t


def test_one_line_errors():
    assert one_line(ValueError("a\n  b\tc")) == "a b c" and one_line(KeyError()) == "KeyError"
    traceback = RuntimeError("first line\n  File x, line 1\n    more")
    assert one_line(traceback, first=True, named=True) == "RuntimeError: first line"
    assert one_line(RuntimeError(""), first=True, named=True) == "RuntimeError"
    long = one_line(ValueError("x" * 300), limit=200)
    assert len(long) == 200 and long.endswith("…")
