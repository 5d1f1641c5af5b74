"""``tune()`` for real: worker processes, an SQLite study read back with ``optuna.load_study``,
trials as run directories, failures and pruning, rounds as barriers, reproducible sampling,
and settings that cannot run or do not match the study (nothing changed)."""
import json
import os
import shutil

import pytest
from tune_helpers import Recorder, load, optuna, tiny

from polydl.training import checkpoint as ckpt
from polydl.tune import layout
from polydl.tune.space import Space, default_space
from polydl.tune.study import TuneError, TuneSettings, tune

TrialState = optuna.trial.TrialState


def settings(out, space=None, base=None, **kw):
    base = base or tiny()
    space = space or default_space(2, base, train_size=140)[0]
    return TuneSettings(base=base, space=space, trials=kw.pop("trials", 4), out=out, workers=kw.pop("workers", 2), **kw)


def run(out, **kw):
    rec = Recorder()
    result = tune(settings(out, **kw), reporter=rec, handle_signals=False)
    return result, rec


@pytest.fixture(scope="module")
def study4(tmp_path_factory):
    out = tmp_path_factory.mktemp("s") / "four"
    result, rec = run(out)
    return out, result, rec


@pytest.mark.slow
def test_a_study_is_an_optuna_study_of_run_directories(study4):
    out, result, rec = study4
    doc = json.loads((out / "study.json").read_text())
    assert list(doc) == list(layout.KEYS) and doc["storage"] == f"sqlite:///{out}/study.db"
    assert (doc["study_name"], doc["metric"], doc["direction"], doc["rounds"], doc["trials"], doc["sampler"],
            doc["seed"]) == ("four", "val_loss", "minimize", 1, 4, "random", 0)
    assert doc["space"] == default_space(2, tiny(), 140)[0].to_dict()
    study = load(out)
    assert [t.number for t in study.trials] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.user_attrs["polydl_space"] == doc["space"] and study.user_attrs["boxes"]["1"]["lr"]["low"] == 1e-4
    assert study.user_attrs["polydl_settings"]["base"]["epochs"] == 2
    for t in study.trials:
        run_dir = out / "trials" / f"{t.number:04d}"
        assert t.user_attrs["run_dir"] == str(run_dir) and t.user_attrs["round"] == 1
        assert {"config.toml", "metrics.jsonl", "checkpoint.npz", "summary.json"} <= {p.name for p in run_dir.iterdir()}
        config = t.user_attrs["config"]
        assert config["lr"] == t.params["lr"] and config["beta1"] == t.params["beta1"]
        assert config["hidden"] == [t.params["hidden"]] and config["batch_size"] == t.params["batch_size"]
        assert config["out"] == str(run_dir) and config["epochs"] == 2 and config["dataset"] == "moons"
        lines = [json.loads(x) for x in (run_dir / ckpt.METRICS).read_text().splitlines()]
        summary = json.loads((run_dir / ckpt.SUMMARY).read_text())
        # the value told: the final epoch's val_loss; intermediate values: each epoch's
        assert t.value == summary["val_loss"] == lines[-1]["val_loss"]
        assert t.intermediate_values == {r["epoch"]: r["val_loss"] for r in lines}
        assert t.user_attrs["owner"]["pid"] > 0 and "error" not in t.user_attrs
    assert [i.number for i in sorted(rec.trials, key=lambda i: i.number)] == [0, 1, 2, 3]
    assert sorted(i.finished for i in rec.trials) == [1, 2, 3, 4] and rec.info["workers"] == 2
    best = min(study.trials, key=lambda t: t.value)
    assert (result.best_number, result.best_value) == (best.number, best.value) and result.counts["complete"] == 4
    assert list((out / "owners").iterdir()) == []         # the owner let go of its lock


@pytest.mark.slow
def test_the_same_seed_samples_the_same_trials(study4, tmp_path):
    out, _, _ = study4
    run(tmp_path / "again", workers=1)
    a, b = load(out), load(tmp_path / "again")
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == [t.value for t in b.trials]    # and trains them bit for bit


@pytest.mark.slow
def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path):
    space = Space.from_dict({"lr": {"distribution": "choice", "choices": [0.05, 1e9]},
                             "optimizer": {"distribution": "choice", "choices": ["momentum", "adam"]},
                             "beta": {"distribution": "one_minus_log_uniform", "low": 0.9, "high": 0.99}})
    base = tiny(optimizer="momentum", normalizer="none")
    result, rec = run(tmp_path / "f", space=space, base=base, trials=8, seed=1)
    study = load(tmp_path / "f")
    kinds = set()
    assert len(study.trials) == 8 and all(t.state.is_finished() for t in study.trials)
    for t in study.trials:
        error = t.user_attrs.get("error")
        if t.params["optimizer"] == "adam":        # Adam takes beta1, not beta: a bad combination
            kind = "combination"
            assert t.state == TrialState.FAIL and "beta" in error
        elif t.params["lr"] == 1e9:
            kind = "nan"
            assert t.state == TrialState.FAIL and "the loss became" in error
        else:
            kind = "ok"
            assert t.state == TrialState.COMPLETE and error is None
        kinds.add(kind)
        if error is not None:
            assert "\n" not in error and t.user_attrs["config"]["optimizer"] == t.params["optimizer"]
    assert kinds == {"combination", "nan", "ok"}
    assert {i.number: i.state for i in rec.trials} == {t.number: {"COMPLETE": "complete", "FAIL": "failed"}[t.state.name]
                                                       for t in study.trials}
    assert result.counts["failed"] == sum(t.state == TrialState.FAIL for t in study.trials)


@pytest.mark.slow
def test_median_pruning_stops_trials_below_the_median(tmp_path):
    space = Space.from_dict({"lr": {"distribution": "choice", "choices": [0.1, 1e-6]}})
    base = tiny(dataset_params={"n_samples": 2000}, batch_size=8, epochs=3)
    result, rec = run(tmp_path / "p", space=space, base=base, trials=10, workers=1, prune="median", seed=2)
    study = load(tmp_path / "p")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.params["lr"] == 1e-6 for t in pruned)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 5 and all(min(c.number for c in complete[:5]) < t.number for t in pruned)
    from polydl.training import load_run_config
    for t in pruned:  # stopped right after the epoch the pruner judged (the trial waited for the answer)
        last = max(t.intermediate_values)
        assert last < 3 and t.value == t.intermediate_values[last] and sorted(t.intermediate_values) == \
            list(range(1, last + 1)) and load_run_config(t.user_attrs["run_dir"])[1]["epoch"] == last
    assert {i.number for i in rec.trials if i.state == "pruned"} == {t.number for t in pruned}
    assert result.counts["pruned"] == len(pruned)
    run(tmp_path / "q", space=space, base=base, trials=10, workers=1, prune="median", seed=2)
    again = load(tmp_path / "q")   # the same seeded study with one worker prunes the same trials, at the same epochs
    assert [(t.state, sorted(t.intermediate_values)) for t in again.trials] == \
        [(t.state, sorted(t.intermediate_values)) for t in study.trials]


@pytest.mark.slow
def test_rounds_are_barriers_and_boxes_shrink(tmp_path):
    base = tiny()
    result, _ = run(tmp_path / "r", space=default_space(1, base)[0], trials=6, rounds=3, workers=2)
    study = load(tmp_path / "r")
    assert [t.user_attrs["round"] for t in study.trials] == [1, 1, 2, 2, 3, 3]
    boxes = study.user_attrs["boxes"]
    assert sorted(boxes) == ["1", "2", "3"]
    width = [boxes[r]["lr"]["scale"][1] - boxes[r]["lr"]["scale"][0] for r in ("1", "2", "3")]
    assert width[0] == pytest.approx(4) and width[2] <= width[1] <= width[0]
    for r in (2, 3):
        before = [t for t in study.trials if t.user_attrs["round"] == r - 1]
        for t in study.trials:
            if t.user_attrs["round"] == r:
                assert t.datetime_start >= max(b.datetime_complete for b in before)
                assert boxes[str(r)]["lr"]["low"] <= t.params["lr"] <= boxes[str(r)]["lr"]["high"]


@pytest.mark.parametrize("change, message", [
    ({"trials": 0}, "--trials must be >= 1"), ({"rounds": 3, "trials": 5}, "--rounds 3 needs at least 6 trials"),
    ({"sampler": "tpe", "rounds": 2}, "takes no --rounds"), ({"base": tiny(val_split=0.0)}, "needs validation data"),
    ({"workers": 0}, "--workers must be >= 1"), ({"metric": "test_loss"}, "--metric must be one of"),
    ({"storage": "nosuchdialect://x/y"}, "cannot open the storage"), ({"rounds": 0}, "--rounds must be >= 1"),
    ({"study_name": ""}, "--study-name must be a name"), ({"study_name": " "}, "--study-name must be a name"),
    ({"space": Space.from_dict({"batch_size": {"distribution": "pow2", "low": 16, "high": 256}})},
     "larger than the training set")])
def test_settings_that_cannot_run_write_nothing(tmp_path, change, message):
    with pytest.raises(ValueError) as err:
        tune(settings(tmp_path / "x", **change), handle_signals=False)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()


def snapshot(out):
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and not p.name.endswith(("-wal", "-shm"))}


@pytest.mark.slow
@pytest.mark.parametrize("change, message", [
    ({"space": Space.from_dict({"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 0.5}})},
     "lr high 0.5 here, 1 in the study; beta1 only in the study; hidden only in the study; batch_size only in"),
    ({"base": tiny(epochs=3)}, "base epochs 3 here, 2 in the study"),
    ({"seed": 5}, "seed 5 here, 0 in the study"),
    ({"metric": "val_accuracy"}, "metric val_accuracy here, val_loss in the study")])
def test_a_study_made_with_other_settings_is_refused_and_unchanged(study4, change, message):
    out = study4[0]
    before = snapshot(out)
    with pytest.raises(TuneError) as err:
        tune(settings(out, **change), handle_signals=False)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert snapshot(out) == before and len(load(out).trials) == 4


@pytest.mark.slow
def test_a_random_search_can_be_extended(tmp_path):
    out = tmp_path / "e"
    run(out, trials=2)
    first = {p: p.stat().st_mtime_ns for p in (out / "trials").rglob("summary.json")}
    result, rec = run(out, trials=3)
    study = load(out)
    assert [t.number for t in study.trials] == [0, 1, 2] and [i.number for i in rec.trials] == [2]
    assert {p: p.stat().st_mtime_ns for p in first} == first                    # finished trials not run again
    assert rec.info["finished"] == 2 and json.loads((out / "study.json").read_text())["trials"] == 3


def test_a_directory_that_is_not_a_study(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text("")
    with pytest.raises(TuneError, match="is not a polydl study"):
        tune(settings(tmp_path / "run"), handle_signals=False)
    shutil.rmtree(tmp_path / "run")


@pytest.mark.slow
def test_a_journal_storage_tpe_and_val_accuracy(tmp_path):
    journal = tmp_path / "shared" / "study.log"
    journal.parent.mkdir()
    result, rec = run(tmp_path / "j", storage=str(journal), sampler="tpe", metric="val_accuracy", trials=3,
                      study_name="acc")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="acc", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and len(study.trials) == 3
    for t in study.trials:
        summary = json.loads((tmp_path / "j" / "trials" / f"{t.number:04d}" / ckpt.SUMMARY).read_text())
        assert t.value == summary["val_accuracy"] and t.user_attrs["round"] == 1
    assert json.loads((tmp_path / "j" / "study.json").read_text())["storage"] == f"journal:{journal}"
    assert not (tmp_path / "j" / "study.db").exists() and result.best_value == study.best_value


def test_the_package_names_its_api():
    import polydl.tune as pt
    from polydl.tune.sampler import CoarseToFineSampler

    assert pt.tune is tune and pt.TuneSettings is TuneSettings and pt.CoarseToFineSampler is CoarseToFineSampler
    assert pt.Space is Space and pt.default_space is default_space and issubclass(pt.TuneError, ValueError)
    with pytest.raises(AttributeError):
        _ = pt.no_such_name


def _orphan(out, owner, run_dir, config_out):
    """A RUNNING trial of this machine whose owner is gone, with the attrs a storage from someone
    else may carry: a ``lock`` and a ``run_dir`` outside OUT."""
    import socket

    study = load(out)
    s = settings(out)
    trial = study.ask()
    params = s.space.suggest(trial)
    config = s.space.apply(s.base.to_dict(), params)
    trial.set_user_attr("config", {**config, "out": str(config_out)})
    trial.set_user_attr("round", 1)
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("owner", {"host": socket.gethostname(), **owner})
    return trial.number


@pytest.mark.slow
@pytest.mark.parametrize("owner", [{"pid": 999999, "token": "dead"}, {"pid": "../../x", "token": "../y"}])
def test_a_storage_from_someone_else_never_names_what_is_deleted_or_written(tmp_path, owner):
    """Continuing a study adopts a trial whose owner is gone: the lock it deletes and the run
    directory it trains in are OUT's, never the paths the storage names."""
    out = tmp_path / "s"
    run(out, trials=2, workers=1)
    victim, elsewhere = tmp_path / "victim.txt", tmp_path / "elsewhere"
    victim.write_text("mine")
    number = _orphan(out, {**owner, "lock": str(victim)}, elsewhere, elsewhere)
    result, rec = run(out, trials=3, workers=1)
    assert victim.read_text() == "mine" and not elsewhere.exists()
    assert any(f"trial {number}: its owner" in n for n in rec.notes)
    t = load(out).trials[number]
    run_dir = out / "trials" / f"{number:04d}"
    assert t.state == TrialState.COMPLETE and t.user_attrs["run_dir"] == str(run_dir)
    assert t.user_attrs["config"]["out"] == str(run_dir) and (run_dir / ckpt.SUMMARY).is_file()


@pytest.mark.slow
def test_a_study_directory_that_was_moved_continues(tmp_path):
    out, moved = tmp_path / "s", tmp_path / "s2"
    run(out, trials=2, workers=1)
    first = {p.relative_to(out): p.stat().st_mtime_ns for p in (out / "trials").rglob("summary.json")}
    shutil.move(out, moved)
    result, rec = run(moved, trials=3, workers=1)          # the same settings, --out s2
    assert [i.number for i in rec.trials] == [2] and rec.info["storage"] == f"sqlite:///{moved}/study.db"
    assert {p: (moved / p).stat().st_mtime_ns for p in first} == first         # finished trials not run again
    doc = json.loads((moved / "study.json").read_text())
    assert doc["storage"] == f"sqlite:///{moved}/study.db" and doc["study_name"] == "s" and not out.exists()
    assert len(load(moved, "s").trials) == 3 and result.study_name == "s"
    with pytest.raises(TuneError, match=f"pass --storage {moved}/study.db --study-name s to continue it"):
        tune(settings(moved, trials=3, study_name="other"), handle_signals=False)


@pytest.mark.slow
def test_a_trial_directory_that_is_a_link_is_never_written(tmp_path):
    out = tmp_path / "s"
    run(out, trials=1, workers=1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "trials" / "0001")
    result, rec = run(out, trials=2, workers=1)
    assert list(elsewhere.iterdir()) == [] and result.counts["failed"] == 1
    assert "is a link, not a directory of the study" in load(out).trials[1].user_attrs["error"]
    shutil.rmtree(out / "trials")
    os.symlink(elsewhere, out / "trials")
    with pytest.raises(TuneError, match="is not a directory of the study"):
        run(out, trials=3, workers=1)
    assert list(elsewhere.iterdir()) == [] and len(load(out).trials) == 2
