"""Metrics a run records, ``evaluate`` reports, ``monitor`` watches and ``polydl tune --metric``
optimises, each with the direction that makes it better.

A metric is recorded per epoch as ``val_<name>`` (and ``train_<name>`` where it is cheap); the
run's metric names are these prefixed names. :func:`direction` gives ``"minimize"`` or
``"maximize"`` for a recorded name, :func:`closest` the nearest known name for a typo.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["Metric", "register", "get", "names", "recorded_names", "direction", "closest"]

PREFIXES = ("val_", "train_", "test_")


@dataclass(frozen=True)
class Metric:
    """``name`` (without a prefix), whether larger is better, and what it applies to
    (``"classification"``, ``"regression"`` or ``"any"``)."""
    name: str
    greater_is_better: bool
    task: str = "any"
    doc: str = ""


_METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add ``metric`` (a name registered twice is an error)."""
    if metric.name in _METRICS and _METRICS[metric.name] != metric:
        raise ValueError(f"metric '{metric.name}' is registered already")
    _METRICS[metric.name] = metric
    return metric


def get(name: str) -> Metric:
    """The metric ``name``, with or without a ``val_``/``train_``/``test_`` prefix."""
    base = _strip(name)
    if base not in _METRICS:
        hint = closest(name)
        raise ValueError(f"unknown metric '{name}'" + (f"; did you mean '{hint}'?" if hint else "")
                         + f" (valid: {', '.join(recorded_names())})")
    return _METRICS[base]


def names(task: str | None = None) -> list[str]:
    """The registered metric names (for ``task``, with the task-independent ones)."""
    return sorted(n for n, m in _METRICS.items() if task is None or m.task in (task, "any"))


def recorded_names(task: str | None = None, prefix: str = "val_") -> list[str]:
    """The names as a run records them: ``val_loss``, ``val_accuracy``, …"""
    return [prefix + n for n in names(task)]


def direction(name: str) -> str:
    """``"maximize"`` or ``"minimize"``: what makes the metric ``name`` better."""
    return "maximize" if get(name).greater_is_better else "minimize"


def closest(name: str) -> str | None:
    """The known recorded name nearest to ``name``, or None."""
    candidates = [p + n for p in PREFIXES for n in _METRICS]
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def _strip(name: str) -> str:
    for p in PREFIXES:
        if name.startswith(p):
            return name[len(p):]
    return name


register(Metric("loss", False, "any", "the training objective: the loss function's value"))
register(Metric("accuracy", True, "classification", "the fraction of samples whose predicted class is right"))

from . import classification, regression  # noqa: E402,F401  (they register f1, auc; rmse, mae, r2)
