"""The coarse-to-fine sampler on plain Optuna studies: rounds by trial number, boxes from the
top trials of the round before (recorded in the study), per-trial seeding."""
import math

import pytest
from tune_helpers import optuna

from polydl.tune.distributions import LogUniform
from polydl.tune.sampler import CoarseToFineSampler, split_trials
from polydl.tune.space import Space

LR = {"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1.0}}
TWO = {**LR, "act": {"distribution": "choice", "choices": ["relu", "tanh", "sigmoid"]}}


def objective(trial):
    """Smallest at α = 10^-2; tanh is the best activation."""
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    act = trial.suggest_categorical("act", ["relu", "tanh", "sigmoid"]) if "act" in trial.study.user_attrs.get(
        "polydl_space", {}) else "tanh"
    return (math.log10(lr) + 2) ** 2 + (0 if act == "tanh" else 0.5)


def test_split_trials_and_rounds():
    assert split_trials(10, 3) == [4, 3, 3] and split_trials(6, 3) == [2, 2, 2] and split_trials(5, 1) == [5]
    s = CoarseToFineSampler(LR, rounds=3, trials_per_round=[4, 3, 3])
    assert [s.round_of(n) for n in range(12)] == [1] * 4 + [2] * 3 + [3] * 5
    assert list(s.round_numbers(2)) == [4, 5, 6]


def test_plain_optuna_study_zooms_in():
    sampler = CoarseToFineSampler(TWO, rounds=3, trials_per_round=12, seed=3)
    study = optuna.create_study(sampler=sampler, study_name="plain")
    study.optimize(objective, n_trials=36)
    boxes = study.user_attrs["boxes"]
    assert sorted(boxes) == ["1", "2", "3"]
    assert study.user_attrs["polydl_space"] == Space.from_dict(TWO, config_keys=False).to_dict()
    assert [t.user_attrs["round"] for t in study.trials] == [1] * 12 + [2] * 12 + [3] * 12
    assert boxes["1"]["lr"]["scale"] == pytest.approx([-4, 0])
    # each box: the top k = max(2, ceil(0.25 · 12)) = 3 trials of the round before, on the log scale,
    # widened by 0.1 of that round's box width, clipped to [−4, 0]; choices: the ones they took
    for r in (2, 3):
        before = [t for t in study.trials if t.user_attrs["round"] == r - 1]
        top = sorted(before, key=lambda t: (t.value, t.number))[:3]
        xs = [math.log10(t.params["lr"]) for t in top]
        a, b = boxes[str(r - 1)]["lr"]["scale"]
        expected = [max(-4, min(xs) - 0.1 * (b - a)), min(0, max(xs) + 0.1 * (b - a))]
        assert boxes[str(r)]["lr"]["scale"] == pytest.approx(expected)
        assert boxes[str(r)]["act"]["choices"] == [c for c in ["relu", "tanh", "sigmoid"]
                                                   if c in {t.params["act"] for t in top}]
        lo, hi = boxes[str(r)]["lr"]["low"], boxes[str(r)]["lr"]["high"]
        assert all(lo <= t.params["lr"] <= hi for t in study.trials if t.user_attrs["round"] == r)
    w1 = boxes["1"]["lr"]["scale"][1] - boxes["1"]["lr"]["scale"][0]
    w3 = boxes["3"]["lr"]["scale"][1] - boxes["3"]["lr"]["scale"][0]
    assert w3 < w1 / 2 and boxes["3"]["lr"]["low"] < 1e-2 < boxes["3"]["lr"]["high"]
    assert study.best_value < min(t.value for t in study.trials[:12])


def test_the_same_seed_samples_the_same_values_for_the_same_numbers():
    a = optuna.create_study(sampler=CoarseToFineSampler(TWO, seed=7))
    b = optuna.create_study(sampler=CoarseToFineSampler(TWO, seed=7))
    space = Space.from_dict(TWO, config_keys=False)
    ta = [a.ask() for _ in range(5)]
    tb = [b.ask() for _ in range(5)]
    for t in reversed(tb):          # the other order, and only some keys first
        t.suggest_categorical("act", ["relu", "tanh", "sigmoid"])
    assert [space.suggest(t) for t in ta] == [space.suggest(t) for t in tb]
    c = optuna.create_study(sampler=CoarseToFineSampler(TWO, seed=8))
    assert space.suggest(c.ask()) != space.suggest(ta[0])


def test_maximize_keeps_the_highest_and_a_round_without_results_keeps_its_box():
    sampler = CoarseToFineSampler(LR, rounds=2, trials_per_round=4, top_k=1, margin=0.0, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = Space.from_dict(LR)
    values = []
    for _ in range(4):
        t = study.ask()
        lr = space.suggest(t)["lr"]
        values.append(lr)
        study.tell(t, lr)
    nxt = study.ask()
    space.suggest(nxt)
    box = study.user_attrs["boxes"]["2"]["lr"]
    assert box["low"] == pytest.approx(max(values)) and box["high"] == pytest.approx(max(values))
    empty = optuna.create_study(sampler=CoarseToFineSampler(LR, rounds=2, trials_per_round=1, seed=0))
    t = empty.ask()
    space.suggest(t)
    empty.tell(t, state=optuna.trial.TrialState.FAIL)
    space.suggest(empty.ask())
    assert empty.user_attrs["boxes"]["2"]["lr"]["scale"] == pytest.approx([-4, 0])


def test_ready_waits_for_the_round_before():
    sampler = CoarseToFineSampler(LR, rounds=2, trials_per_round=2, seed=0)
    study = optuna.create_study(sampler=sampler)
    space = Space.from_dict(LR)
    first = [study.ask() for _ in range(2)]
    for t in first:
        space.suggest(t)
    assert sampler.ready(study, 1) and not sampler.ready(study, 2)
    study.tell(first[0], 1.0)
    assert not sampler.ready(study, 2)
    study.tell(first[1], state=optuna.trial.TrialState.FAIL)
    assert sampler.ready(study, 2)


def test_other_parameters_and_mismatched_ranges():
    sampler = CoarseToFineSampler(LR, seed=1)
    study = optuna.create_study(sampler=sampler)
    t = study.ask()
    x = t.suggest_float("x", -1, 1)
    again = optuna.create_study(sampler=CoarseToFineSampler(LR, seed=1)).ask()
    assert -1 <= x <= 1 and again.suggest_float("x", -1, 1) == x
    with pytest.raises(ValueError, match="the space samples it from"):
        t.suggest_float("lr", 1e-3, 1.0, log=True)
    assert isinstance(sampler.space["lr"], LogUniform)


@pytest.mark.parametrize("kwargs, message", [
    ({"rounds": 0}, "rounds must be"), ({"rounds": 2}, "needs trials_per_round"),
    ({"rounds": 2, "trials_per_round": [3]}, "lists 1 rounds"), ({"trials_per_round": 0}, "at least one trial"),
    ({"top_k": 0}, "top_k"), ({"top_fraction": 0}, "top_fraction"), ({"margin": -1}, "margin")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoarseToFineSampler(LR, **kwargs)
