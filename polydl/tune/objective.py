"""What a trial is worth to a study: ``--metric`` (any metric a run records, minimised or
maximised as :mod:`polydl.metrics` says), its value after each epoch (what the pruner reads) and
at the end, and the note for a search whose values compare different objectives.

A trial that keeps its best epoch (``restore_best``) is worth its metric at that epoch: the
weights ``polydl evaluate`` scores by default. Its value after epoch e is the same, as if it had
stopped there: the metric at the best epoch so far of its monitored metric. A trial that stopped
early is complete, worth the value of its last epoch or, with ``restore_best``, of its best.
"""
from __future__ import annotations

from .. import metrics
from ..checks import closest
from ..training.monitor import best_epoch

__all__ = ["METRIC_NAMES", "directions", "check_metric", "trial_value", "Progress", "loss_objective_note",
           "loss_objective_notes"]

#: the metrics every epoch's record holds for the training split
TRAIN_NAMES = ("train_loss", "train_accuracy")


def directions() -> dict:
    """Each metric a run records, ``"minimize"`` or ``"maximize"``."""
    return {n: metrics.direction(n) for n in [*metrics.recorded_names(), *TRAIN_NAMES]}


#: the names ``--metric`` takes
METRIC_NAMES = tuple(directions())


def check_metric(name) -> str:
    """``name`` if a run records it; else a ``ValueError`` naming the closest."""
    valid = directions()
    if name not in valid:
        hint = closest(name, valid)
        raise ValueError(f"--metric must be one of the metrics the runs record ({', '.join(valid)}), not {name!r}"
                         + (f"; did you mean {hint!r}?" if hint else ""))
    return name


def trial_value(summary: dict | None, metric: str):
    """The value of a finished trial whose ``summary.json`` is ``summary``: the metric of its best
    epoch where it keeps one, else of its last."""
    summary = summary or {}
    best = summary.get("best")
    if isinstance(best, dict) and best.get(metric) is not None:
        return best[metric]
    return summary.get(metric)


class Progress:
    """A trial's value after each epoch (its record), for the pruner: the epoch's own, or for a
    trial that keeps its best epoch (``config``'s ``restore_best``), the one at the best epoch so
    far of its monitored metric."""

    def __init__(self, config: dict | None, metric: str):
        config = config or {}
        self.metric = metric
        self.keeps_best = bool(config.get("restore_best"))
        self.monitor = config.get("monitor", "val_loss")
        self.min_delta = config.get("min_delta", 0.0)
        self.records: dict = {}

    def value(self, record: dict | None):
        record = record or {}
        if not self.keeps_best or not isinstance(record.get("epoch"), int):
            return record.get(self.metric)
        self.records[record["epoch"]] = record
        upto = [self.records[e] for e in sorted(self.records) if e <= record["epoch"]]
        best = best_epoch(upto, self.monitor, self.min_delta)
        return self.records[best].get(self.metric) if best is not None else record.get(self.metric)


def loss_objective_note(space, metric: str) -> str | None:
    """The note for a space that searches the loss or its parameters while ``metric`` is the loss
    itself: trials with different losses report values of different objectives."""
    if metrics.get(metric).name != "loss":
        return None
    keys = [k for k in space if k == "loss" or str(k).startswith("loss_params.")]
    if not keys:
        return None
    return (f"the space searches the loss's own parameters ({', '.join(keys)}) while --metric {metric} is the loss "
            "itself: trials with different losses report values of different objectives, so the study cannot compare "
            "them; give a metric that does not depend on the loss, such as --metric val_accuracy or val_f1 (a "
            "regression: val_rmse)")


def loss_objective_notes(space, metric: str) -> list:
    """:func:`loss_objective_note` as a list (empty where there is none)."""
    note = loss_objective_note(space, metric)
    return [] if note is None else [note]
