"""The ``population`` executor: trials of one shape train as one population, and the study is the
one the ``local`` executor gives (the same values for the same seed); members are pruned alone;
trials of other shapes go to groups of their own."""
import pytest
from tune_helpers import assert_trials_wait_for_the_owner, load, optuna, tiny

from polydl.training import evaluate
from polydl.tune.executors.base import TrialTask
from polydl.tune.executors.grouping import shape_key
from polydl.tune.executors.population import PopulationExecutor, run_group
from polydl.tune.space import Space
from polydl.tune.study import TuneError, TuneReporter, TuneSettings, tune

TrialState = optuna.trial.TrialState


class Notes(TuneReporter):
    def __init__(self):
        self.notes = []

    def note(self, message):
        self.notes.append(message)


def study(out, executor, space, base=None, trials=6, **kw):
    rec = Notes()
    settings = TuneSettings(base=base or tiny(epochs=3), space=Space.from_dict(space), trials=trials, out=out,
                            workers=kw.pop("workers", 1), executor=executor, seed=kw.pop("seed", 3), **kw)
    tune(settings, reporter=rec, handle_signals=False)
    return {t.number: t for t in load(out).trials}, rec


LR = {"lr": {"distribution": "log_uniform", "low": 1e-3, "high": 0.3},
      "beta1": {"distribution": "one_minus_log_uniform", "low": 0.8, "high": 0.99}}


@pytest.mark.slow
def test_a_population_study_is_the_local_executor_s_study(tmp_path):
    local, _ = study(tmp_path / "local", "local", LR)
    pop, _ = study(tmp_path / "pop", "population", LR, executor_options={"population_size": 4})
    assert sorted(local) == sorted(pop) == list(range(6))
    for n in local:
        assert pop[n].state == local[n].state == TrialState.COMPLETE
        assert pop[n].params == local[n].params
        assert pop[n].value == pytest.approx(local[n].value, rel=1e-6)
        assert pop[n].intermediate_values == pytest.approx(local[n].intermediate_values, rel=1e-6)
    # each trial is an ordinary run directory, the same run as the local executor's
    assert evaluate(pop[2].user_attrs["run_dir"])["accuracy"] == evaluate(local[2].user_attrs["run_dir"])["accuracy"]


@pytest.mark.slow
def test_trials_of_other_shapes_train_in_groups_of_their_own(tmp_path):
    space = {**LR, "hidden": {"distribution": "choice", "choices": [4, 8]}}
    local, _ = study(tmp_path / "local", "local", space)
    pop, _ = study(tmp_path / "pop", "population", space, executor_options={"population_size": 8})
    for n in local:
        assert pop[n].params == local[n].params and pop[n].value == pytest.approx(local[n].value, rel=1e-6)
    _, rec = study(tmp_path / "apart", "population", {"batch_size": {"distribution": "choice",
                                                                      "choices": [16, 32, 64, 128]}}, trials=4)
    assert any("no two of these trials share their shapes" in n for n in rec.notes) or len(
        {t.params["batch_size"] for t in load(tmp_path / "apart").trials}) < 4


@pytest.mark.slow
def test_members_are_pruned_alone(tmp_path):
    space = {"lr": {"distribution": "choice", "choices": [0.01, 1e-6]}}
    base = tiny(dataset_params={"n_samples": 2000}, batch_size=8, epochs=4)
    trials, _ = study(tmp_path / "p", "population", space, base=base, trials=10, prune="median", seed=2,
                      executor_options={"population_size": 5})
    pruned = [t for t in trials.values() if t.state == TrialState.PRUNED]
    slow = [t for t in trials.values() if t.params["lr"] == 1e-6 and t.number >= 5]  # after the first population
    assert slow and all(t.state == TrialState.PRUNED for t in slow)
    from polydl.training import load_run_config
    for t in pruned:  # stopped alone: its run directory keeps the checkpoint of the epoch it was pruned after
        assert len(t.intermediate_values) < 4
        assert load_run_config(t.user_attrs["run_dir"])[1]["epoch"] == max(t.intermediate_values)
    assert any(t.state == TrialState.COMPLETE for t in trials.values() if t.number >= 5)


@pytest.mark.slow
def test_members_wait_for_the_owner_and_one_stops_alone(tmp_path):
    with PopulationExecutor(workers=1, population_size=3) as ex:
        tasks = [TrialTask(n, tiny(epochs=4, lr=lr).to_dict(), str(tmp_path / f"{n:04d}"), decide=True)
                 for n, lr in enumerate((0.01, 0.02, 0.05))]
        assert_trials_wait_for_the_owner(ex, tasks, epochs=4)
    for n in (1, 2):  # the members that went on are the trials trained alone
        alone = tmp_path / f"alone{n}"
        run_group([TrialTask(9, tasks[n].config, str(alone))], lambda ev: None, handle_signals=False)
        assert evaluate(tmp_path / f"{n:04d}")["loss"] == pytest.approx(evaluate(alone)["loss"], rel=1e-6)


def test_a_group_that_cannot_build_fails_trial_by_trial(tmp_path):
    good = TrialTask(0, tiny().to_dict(), str(tmp_path / "0000"))
    bad = TrialTask(1, {**tiny().to_dict(), "beta": 0.9}, str(tmp_path / "0001"))  # adam takes no beta
    events = []
    run_group([good, bad], events.append, handle_signals=False)
    ends = {e.number: e for e in events if e.final}
    assert ends[0].kind == "done" and ends[1].kind == "failed" and "beta" in ends[1].message
    assert shape_key(good.config) == shape_key({**good.config, "lr": 0.5, "seed": 3})
    assert shape_key(good.config) != shape_key({**good.config, "hidden": [4]})


def test_population_size_is_checked(tmp_path):
    with pytest.raises(ValueError, match="--population-size must be a whole number >= 1"):
        PopulationExecutor(workers=1, population_size=0)
    settings = TuneSettings(base=tiny(), space=Space.from_dict(LR), trials=2, out=tmp_path / "s",
                            executor="local", executor_options={"population_size": 4})
    with pytest.raises(TuneError, match="--population-size .* needs --executor population"):
        settings.check()


def test_the_command_line_takes_the_population_executor(tmp_path):
    from tune_helpers import TINY, cli, one_line_error

    one_line_error(cli("tune", *TINY, "--trials", 2, "--out", tmp_path / "a", "--population-size", 4),
                   "--population-size", "needs --executor population")
    assert not (tmp_path / "a").exists()
    r = cli("tune", *TINY, "--tier", 1, "--trials", 3, "--executor", "population", "--population-size", 3,
            "--workers", 1, "--out", tmp_path / "b", "--quiet")
    assert r.returncode == 0, r.stderr
    assert all(t.state == TrialState.COMPLETE for t in load(tmp_path / "b").trials)
