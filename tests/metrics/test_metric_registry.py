import pytest

from polydl import metrics


def test_directions_follow_the_metric():
    assert metrics.direction("val_loss") == "minimize"
    assert metrics.direction("val_accuracy") == "maximize"
    assert metrics.direction("accuracy") == "maximize"


def test_an_unknown_metric_suggests_the_closest_name():
    with pytest.raises(ValueError, match=r"unknown metric 'val_acuracy'; did you mean 'val_accuracy'\?"):
        metrics.get("val_acuracy")


def test_a_name_registered_twice_with_another_meaning_is_refused():
    with pytest.raises(ValueError, match="registered already"):
        metrics.register(metrics.Metric("loss", True))
    assert metrics.register(metrics.Metric("loss", False, "any", metrics.get("loss").doc)) == metrics.get("loss")


def test_recorded_names_carry_the_prefix():
    assert "val_loss" in metrics.recorded_names() and "val_accuracy" in metrics.recorded_names("classification")
    assert "val_accuracy" not in metrics.recorded_names("regression")
