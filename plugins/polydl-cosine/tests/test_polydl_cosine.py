"""Tests of the cosine schedule plugin: the formula, the run's length, parameter checks, registration."""
import math

import polydl_cosine
import pytest

import polydl
from polydl.schedules import Position
from polydl.testing import registered_plugin


def at(epoch, epochs=None, batch=0, steps_per_epoch=None):
    return Position(epoch, 1 + (epoch - 1) * (steps_per_epoch or 1) + batch, batch, steps_per_epoch, epochs)


def test_warmup_is_linear_and_reaches_lr0():
    lr = polydl_cosine.cosine(lr0=0.1, epochs=30, warmup_epochs=4)
    assert [lr(e) for e in range(1, 5)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lr(5) == pytest.approx(0.1)  # first epoch after the warm-up runs at lr0


def test_cosine_formula_after_warmup():
    lr0, lo, W, T = 0.1, 0.001, 3, 30
    lr = polydl_cosine.cosine(lr0=lr0, epochs=T, warmup_epochs=W, min_lr=lo)
    for e in range(W + 1, T + 1):
        p = (e - W - 1) / (T - W)
        assert lr(e) == pytest.approx(lo + (lr0 - lo) * (1 + math.cos(math.pi * p)) / 2)
    assert lr(30) == pytest.approx(0.001335, abs=1e-6)  # the README's example
    values = [lr(e) for e in range(W + 1, T + 1)]
    assert all(a > b for a, b in zip(values, values[1:]))  # strictly decreasing
    assert lr(T + 1) == lr(10 * T) == pytest.approx(lo)  # stays at min_lr after T


def test_takes_the_run_length_from_the_position():
    lr = polydl_cosine.cosine(lr0=0.2, warmup_epochs=2)
    explicit = polydl_cosine.cosine(lr0=0.2, epochs=20, warmup_epochs=2)
    for e in (1, 3, 11, 20):
        assert lr(at(e, epochs=20)) == explicit(e)
    # a longer run stretches the curve: the same epoch gets a larger rate
    assert lr(at(15, epochs=30)) > lr(at(15, epochs=20))
    with pytest.raises(ValueError, match="needs the run's length"):
        lr(5)


def test_fractional_epoch_with_per_step_reading():
    lr = polydl_cosine.cosine(lr0=0.2, epochs=10)
    inside = [lr(at(4, batch=b, steps_per_epoch=4)) for b in range(4)]
    assert all(a > b for a, b in zip(inside, inside[1:]))
    assert inside[0] == lr(4) and lr(at(4, batch=2, steps_per_epoch=4)) > lr(5)


def test_pure_function_of_position():
    lr = polydl_cosine.cosine(lr0=0.1, epochs=20, warmup_epochs=2)
    first = [lr(e) for e in (7, 3, 15)]
    assert [lr(e) for e in (7, 3, 15)] == first


def test_whole_float_parameters_are_accepted():  # e.g. from --schedule-param epochs=30.0
    lr = polydl_cosine.cosine(lr0=1, epochs=30.0, warmup_epochs=2.0)
    assert lr.params == {"lr0": 1.0, "epochs": 30, "warmup_epochs": 2, "min_lr": 0.0}


@pytest.mark.parametrize("params, message", [
    ({"lr0": -0.1}, "lr0 must be >= 0"),
    ({"lr0": float("nan")}, "lr0 must be a finite number"),
    ({"lr0": "0.1"}, "lr0 must be a finite number"),
    ({"epochs": 0}, "epochs must be a whole number >= 1"),
    ({"epochs": 2.5}, "epochs must be a whole number >= 1"),
    ({"epochs": True}, "epochs must be a whole number >= 1"),
    ({"warmup_epochs": -1}, "warmup_epochs must be a whole number >= 0"),
    ({"epochs": 5, "warmup_epochs": 5}, "warmup_epochs (5) must be smaller than epochs (5)"),
    ({"lr0": 0.01, "min_lr": 0.1}, "min_lr (0.1) must not exceed lr0 (0.01)"),
    ({"min_lr": -1e-3}, "min_lr must be >= 0"),
])
def test_bad_parameters_are_one_line_errors(params, message):
    with pytest.raises(ValueError) as err:
        polydl_cosine.cosine(**params)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_positions_are_rejected():
    lr = polydl_cosine.cosine(epochs=10)
    with pytest.raises(ValueError, match="epoch is counted from 1"):
        lr(0, 1)


def test_registers_cosine_through_the_hook():
    with registered_plugin(polydl_cosine, name="cosine", distribution="polydl-cosine", version="0.2.0") as info:
        assert info.hooks == ["polydl_register_schedules"]
        assert info.registered == {"schedules": ["warmup_cosine"]}
        entry = polydl.schedules.registry.entry("warmup_cosine")
        assert (entry.plugin, entry.distribution) == ("cosine", "polydl-cosine")
        lr = polydl.schedules.get("warmup_cosine", lr0=0.1, epochs=10, warmup_epochs=2)
        assert lr(1, 1) == pytest.approx(0.05)
        assert polydl.schedules.describe("warmup_cosine") == {"lr0": 0.01, "epochs": None, "warmup_epochs": 0,
                                                              "min_lr": 0.0}
        with pytest.raises(ValueError, match="has no parameter 'warmup'"):
            polydl.schedules.get("warmup_cosine", warmup=3)
        assert polydl.schedules.registry.entry("cosine").builtin  # polydl's own cosine keeps its name
    assert "warmup_cosine" not in polydl.schedules.names() or \
        polydl.schedules.registry.entry("warmup_cosine").plugin == "cosine"


def test_entry_point_is_declared():
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        dist = distribution("polydl-cosine")
    except PackageNotFoundError:
        pytest.skip("polydl-cosine is not installed (scripts/test installs it)")
    eps = [ep for ep in dist.entry_points if ep.group == "polydl"]
    assert [(ep.name, ep.value) for ep in eps] == [("cosine", "polydl_cosine")]
    assert polydl.schedules.registry.entry("warmup_cosine").distribution == "polydl-cosine"
