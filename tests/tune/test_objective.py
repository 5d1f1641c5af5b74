"""What a trial is worth: any recorded metric with its direction, the best epoch's value of a trial
that keeps it, the value after each epoch for the pruner, and the note for a search that compares
different losses by the loss."""
import pytest

from polydl.tune import objective
from polydl.tune.space import Space


def test_every_recorded_metric_is_a_metric_with_its_direction():
    d = objective.directions()
    assert d["val_loss"] == d["train_loss"] == "minimize"
    assert d["val_accuracy"] == d["val_f1"] == d["val_auc"] == "maximize"
    assert objective.check_metric("val_f1") == "val_f1"
    with pytest.raises(ValueError, match="did you mean 'val_f1'"):
        objective.check_metric("val_f")


def test_a_trial_that_keeps_its_best_epoch_is_worth_that_epochs_value():
    summary = {"val_loss": 0.4, "val_f1": 0.8, "best": {"epoch": 3, "val_loss": 0.3, "val_f1": 0.85}}
    assert objective.trial_value(summary, "val_loss") == 0.3 and objective.trial_value(summary, "val_f1") == 0.85
    assert objective.trial_value({"val_loss": 0.4}, "val_loss") == 0.4
    assert objective.trial_value(None, "val_loss") is None


def test_the_value_after_each_epoch_is_the_one_the_trial_would_end_with():
    records = [{"epoch": 1, "val_loss": 0.5, "val_accuracy": 0.8}, {"epoch": 2, "val_loss": 0.4, "val_accuracy": 0.7},
               {"epoch": 3, "val_loss": 0.45, "val_accuracy": 0.9}]
    plain = objective.Progress({"restore_best": False}, "val_accuracy")
    assert [plain.value(r) for r in records] == [0.8, 0.7, 0.9]
    best = objective.Progress({"restore_best": True, "monitor": "val_loss"}, "val_accuracy")
    assert [best.value(r) for r in records] == [0.8, 0.7, 0.7]  # epoch 2 stays the best val_loss
    assert best.value(records[2]) == 0.7  # an epoch reported again


def test_a_search_over_the_loss_judged_by_the_loss_is_noted():
    space = Space.from_dict({"loss": {"distribution": "choice", "choices": ["softmax_cross_entropy", "mse"]}})
    note = objective.loss_objective_note(space, "val_loss")
    assert "(loss) while --metric val_loss is the loss itself" in note and "--metric val_accuracy" in note
    assert objective.loss_objective_note(space, "val_accuracy") is None
    lr = Space.from_dict({"lr": {"distribution": "log_uniform", "low": 1e-3, "high": 1.0}})
    assert objective.loss_objective_note(lr, "val_loss") is None


@pytest.mark.parametrize("executor", ["local", "population"])
def test_early_stopped_trials_are_complete_and_worth_their_best_epoch(tmp_path, executor):
    import json

    from tune_helpers import Recorder, load, optuna, tiny

    from polydl.tune.study import TuneSettings, tune

    base = tiny(epochs=30, lr=0.05, early_stopping_patience=2, restore_best=True, min_delta=0.01)
    space = Space.from_dict({"lr": {"distribution": "choice", "choices": [0.05, 0.08]}})
    rec = Recorder()
    tune(TuneSettings(base=base, space=space, trials=2, out=tmp_path / "s", workers=1, metric="val_f1",
                      executor=executor), reporter=rec, handle_signals=False)
    study = load(tmp_path / "s")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        summary = json.loads((tmp_path / "s" / "trials" / f"{t.number:04d}" / "summary.json").read_text())
        assert summary["stopped_early"] and summary["epochs"] < 30
        assert t.value == summary["best"]["val_f1"]
        assert t.intermediate_values[summary["epochs"]] == t.value  # the pruner read the same


def test_a_study_of_the_loss_by_the_loss_says_so(tmp_path):
    from tune_helpers import Recorder, tiny

    from polydl.tune.study import TuneSettings, tune

    rec = Recorder()
    space = Space.from_dict({"loss": {"distribution": "choice", "choices": ["softmax_cross_entropy", "mse"]}})
    tune(TuneSettings(base=tiny(epochs=1), space=space, trials=2, out=tmp_path / "s", workers=1), reporter=rec,
         handle_signals=False)
    assert any("is the loss itself" in n for n in rec.notes)
