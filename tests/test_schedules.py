"""Learning-rate decay schedules against the formulas, with epoch and step counted from 1."""
from __future__ import annotations

import math

import pytest

from polydl import schedules


def test_lecture_example_inverse_time():
    s = schedules.get("inverse_time", lr0=0.2, decay_rate=1)
    got = [s(epoch) for epoch in (1, 2, 3, 4)]
    assert got == pytest.approx([0.1, 0.0667, 0.05, 0.04], abs=5e-5)
    assert got == pytest.approx([0.2 / 2, 0.2 / 3, 0.2 / 4, 0.2 / 5], rel=1e-15)


@pytest.mark.parametrize("name, params, formula", [
    ("constant", {"lr0": 0.3}, lambda e, t: 0.3),
    ("inverse_time", {"lr0": 0.5, "decay_rate": 0.25}, lambda e, t: 0.5 / (1 + 0.25 * e)),
    ("exponential", {"lr0": 0.2, "base": 0.9}, lambda e, t: 0.9 ** e * 0.2),
    ("exponential", {"lr0": 0.2}, lambda e, t: 0.95 ** e * 0.2),
    ("inverse_sqrt_epoch", {"lr0": 0.1, "k": 2.0}, lambda e, t: 2.0 / math.sqrt(e) * 0.1),
    ("inverse_sqrt_step", {"lr0": 0.1, "k": 3.0}, lambda e, t: 3.0 / math.sqrt(t) * 0.1),
    ("staircase", {"lr0": 1.0, "factor": 0.5, "every": 2}, lambda e, t: 1.0 * 0.5 ** ((e - 1) // 2)),
], ids=["constant", "inverse_time", "exponential", "exponential-default-base", "inverse_sqrt_epoch",
        "inverse_sqrt_step", "staircase"])
def test_formulas(name, params, formula):
    s = schedules.get(name, **params)
    for epoch in range(1, 8):
        for step in (1, 2, 5, 100):
            assert s(epoch, step) == pytest.approx(formula(epoch, step), rel=1e-14)
    assert isinstance(s(1, 1), float)


def test_staircase_by_hand():
    s = schedules.get("staircase", lr0=0.8, factor=0.5, every=3)
    assert [s(e) for e in range(1, 11)] == pytest.approx([0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1])


def test_inverse_sqrt_step_follows_the_step_not_the_epoch():
    s = schedules.get("inverse_sqrt_step", lr0=1.0, k=1.0)
    assert s(1, 4) == pytest.approx(0.5) and s(9, 4) == pytest.approx(0.5) and s(1, 1) == 1.0


def test_schedules_are_pure_functions_of_the_position():
    s = schedules.get("exponential", lr0=0.1, base=0.5)
    first = [s(e, t) for e in (3, 1, 2) for t in (1, 7)]
    assert first == [s(e, t) for e in (3, 1, 2) for t in (1, 7)]


@pytest.mark.parametrize("epoch, step", [(0, 1), (1, 0), (-1, 1), (1.5, 1), (1, 2.0), (True, 1)])
def test_epoch_and_step_are_counted_from_one(epoch, step):
    s = schedules.get("constant", lr0=0.1)
    with pytest.raises(ValueError, match="counted from 1"):
        s(epoch, step)


@pytest.mark.parametrize("name, params, bad", [
    ("constant", {"lr0": -0.1}, "lr0"),
    ("inverse_time", {"lr0": -1.0}, "lr0"),
    ("inverse_time", {"lr0": 0.1, "decay_rate": -1.0}, "decay_rate"),
    ("exponential", {"lr0": -0.2}, "lr0"),
    ("exponential", {"lr0": 0.1, "base": 0.0}, "base"),
    ("exponential", {"lr0": 0.1, "base": -0.5}, "base"),
    ("exponential", {"lr0": 0.1, "base": 1.01}, "base"),
    ("inverse_sqrt_epoch", {"lr0": 0.1, "k": 0.0}, "k"),
    ("inverse_sqrt_epoch", {"lr0": 0.1, "k": -1.0}, "k"),
    ("inverse_sqrt_epoch", {"lr0": -0.1}, "lr0"),
    ("inverse_sqrt_step", {"lr0": 0.1, "k": 0}, "k"),
    ("staircase", {"lr0": 0.1, "factor": 0.0}, "factor"),
    ("staircase", {"lr0": 0.1, "factor": 1.5}, "factor"),
    ("staircase", {"lr0": 0.1, "every": 0}, "every"),
    ("staircase", {"lr0": 0.1, "every": -1}, "every"),
    ("staircase", {"lr0": -0.1}, "lr0"),
    ("constant", {"lr0": float("nan")}, "lr0"),
    ("constant", {"lr0": "0.1"}, "lr0"),
])
def test_bad_parameters_name_the_parameter(name, params, bad):
    with pytest.raises(ValueError, match=rf"\b{bad}\b"):
        schedules.get(name, **params)


def test_boundaries_that_are_allowed():
    assert schedules.get("exponential", lr0=0.1, base=1.0)(5) == pytest.approx(0.1)
    assert schedules.get("staircase", lr0=0.1, factor=1.0, every=1)(9) == pytest.approx(0.1)
    assert schedules.get("constant", lr0=0.0)(1) == 0.0


def test_names_unknown_schedule_and_unknown_parameter():
    assert {"constant", "inverse_time", "exponential", "inverse_sqrt_epoch", "inverse_sqrt_step",
            "staircase"} <= set(schedules.names())
    with pytest.raises(ValueError) as info:
        schedules.get("inverse_tme", lr0=0.1)
    assert "inverse_time" in str(info.value)
    with pytest.raises(ValueError, match="decay"):
        schedules.get("exponential", lr0=0.1, decay=0.5)


# ---------------------------------------------------------------------------- the position
from polydl.schedules import Position  # noqa: E402

DECAYING = [("inverse_time", {"decay_rate": 1.0}), ("exponential", {"base": 0.5}), ("inverse_sqrt_epoch", {}),
            ("inverse_sqrt_step", {}), ("staircase", {"factor": 0.5, "every": 0.5})]


@pytest.mark.parametrize("name, params", DECAYING, ids=[n for n, _ in DECAYING])
def test_per_step_reading_changes_alpha_within_an_epoch(name, params):
    """Read at every step (at the fractional epoch), every decaying built-in changes α inside an
    epoch; read per epoch (at the epoch's first step) it does not, and it meets the per-step value
    at each epoch's first step."""
    s = schedules.get(name, lr0=0.2, **params)
    n = 4
    for epoch in (1, 2, 5):
        steps = [Position(epoch, (epoch - 1) * n + b + 1, b, n, 10) for b in range(n)]
        per_step = [s(p) for p in steps]
        per_epoch = [s(p.read_at("epoch")) for p in steps]
        assert len(set(per_step)) > 1, per_step
        assert len(set(per_epoch)) == 1 and per_epoch[0] == per_step[0]


def test_position_derived_values_and_checks():
    p = Position(3, 11, 2, 4, 10)
    assert p.fractional_epoch == 3.5 and p.total_steps == 40 and p.progress == pytest.approx(0.25)
    assert Position(3).fractional_epoch == 3 and Position(3).progress is None and Position(3).total_steps is None
    assert p.read_at("epoch") == Position(3, 9, 0, 4, 10) and p.read_at("step") is p
    for bad in (dict(epoch=0), dict(epoch=1, step=0), dict(epoch=1, batch=-1), dict(epoch=1, batch=4, steps_per_epoch=4),
                dict(epoch=1, epochs=0)):
        with pytest.raises(ValueError):
            Position(**bad)


def test_staircase_may_drop_inside_an_epoch():
    s = schedules.get("staircase", lr0=1.0, factor=0.5, every=0.5)
    assert [s(Position(1, b + 1, b, 4)) for b in range(4)] == [1.0, 1.0, 0.5, 0.5]


@pytest.mark.parametrize("name, params", [("constant", {}), *DECAYING])
def test_solve_lr0_gives_the_rate_at_the_position(name, params):
    pos = Position(6, 51, 0, 10, 20)
    lr0 = schedules.solve_lr0(name, params, 0.05, 0.003, pos)
    assert schedules.get(name, lr0=lr0, **params)(pos) == pytest.approx(0.003, rel=1e-12)


def test_solve_lr0_says_when_no_lr0_gives_the_rate():
    from polydl import plugins

    def floor(lr0=0.1):
        if lr0 < 0:
            raise ValueError("bad lr0")
        return lambda pos: 0.01 + 0 * lr0

    with polydl_testing_plugin("floored", floor):
        with pytest.raises(ValueError, match="whatever its lr0"):
            schedules.solve_lr0("floored", {}, 0.1, 0.5, Position(2))
    assert plugins.is_loaded()


def polydl_testing_plugin(name, factory):
    import polydl
    from polydl.testing import registered_plugin

    obj = type("P", (), {"polydl_register_schedules": polydl.hookimpl(lambda self, register: register(name, factory))})()
    return registered_plugin(obj, f"test_{name}")


def test_formula_is_the_docstring_line():
    assert schedules.formula("inverse_time") == "α = α0 / (1 + decay_rate · e)"
