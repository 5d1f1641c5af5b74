"""The monitored metric of a run: its best epoch, early stopping and α lowered on a plateau.

After every epoch the value v of ``config.monitor`` in the epoch's record is compared with the
best so far b: it improves when v < b − ``min_delta`` (a metric to minimise, such as ``val_loss``)
or v > b + ``min_delta`` (one to maximise, such as ``val_f1``; :func:`polydl.metrics.direction`);
the first value always does, a missing one (None, NaN) never. Then

- ``wait`` (epochs since the last improvement) reaching ``early_stopping_patience`` (> 0) stops
  the run after this epoch, its reason recorded (:attr:`MonitorState.stopped`);
- ``plateau_wait`` (epochs since the last improvement or the last drop) reaching
  ``plateau_patience`` (> 0) multiplies α by ``plateau_factor`` from the next epoch on, as
  ``polydl train --resume --lr`` changes it: the schedule's α0 is solved so that it gives the
  lowered rate there (:func:`lowered`), and the decay continues from it;
- an improvement with ``restore_best`` keeps the epoch's checkpoint as ``best.npz``.

The state is a member's, kept in its checkpoint (``monitor``), so a resumed run decides exactly as
an uninterrupted one. A run's state can also be replayed from its history (:func:`replay`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .. import metrics, schedules
from ..schedules import solve_lr0
from .config import ConfigError, TrainConfig

__all__ = ["MonitorState", "Decision", "uses_monitor", "check_monitored", "observe", "replay", "lowered",
           "warmup_of", "stop_reason", "can_continue", "as_given", "best_epoch"]


@dataclass
class MonitorState:
    """A member's monitored metric so far: ``best`` (its best value) at ``best_epoch``, ``wait``
    and ``plateau_wait`` (epochs since the last improvement, and since it or the last drop of α),
    ``drops`` (the epochs after which α was lowered), ``stopped`` (``{"epoch", "reason"}`` once
    it stopped early) and ``given_lr`` (α0 as the run was given it, before any drop)."""

    best: float | None = None
    best_epoch: int | None = None
    wait: int = 0
    plateau_wait: int = 0
    drops: list = field(default_factory=list)
    stopped: dict | None = None
    given_lr: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MonitorState":
        try:
            state = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except TypeError as exc:
            raise ValueError(f"monitor state {d!r}: {exc}") from None
        state.drops = list(state.drops)
        return state


@dataclass
class Decision:
    """What one epoch's value decided: ``improved`` (a new best), ``stop`` (the reason to stop
    early, or None), ``plateau`` (lower α from the next epoch on)."""

    improved: bool = False
    stop: str | None = None
    plateau: bool = False


def uses_monitor(config: TrainConfig) -> bool:
    """Whether the run watches its metric: early stopping, a plateau or the best epoch kept."""
    return bool(config.early_stopping_patience or config.plateau_patience or config.restore_best)


def _uses(config: TrainConfig) -> str:
    used = [k for k in ("early_stopping_patience", "plateau_patience", "restore_best") if getattr(config, k)]
    return " and ".join(used)


def check_monitored(config: TrainConfig, data, num_outputs: int | None = None) -> None:
    """One ``ConfigError`` line where the run would not record ``config.monitor`` (nothing to
    monitor): a validation metric without validation data, a classification metric of a
    regression, ``val_auc`` without two classes. Nothing to check where nothing watches it."""
    if not uses_monitor(config):
        return
    name, why = config.monitor, None
    task = getattr(data, "task", "classification")
    if name.startswith("val_") and len(data.split("val")[1]) == 0:
        why = "the run has no validation data (val_split is 0); give --val-split 0.1, or monitor train_loss"
    elif metrics.get(name).task not in ("any", task):
        why = f"it is a {metrics.get(name).task} metric and this run is a {task}"
    elif name == "val_auc" and data.num_classes != 2:
        why = f"ROC AUC is recorded for two classes, and {data.name} has {data.num_classes}; monitor val_f1 instead"
    if why is not None:
        raise ConfigError(f"nothing to monitor for {_uses(config)}: the run does not record {name}, because {why}")
    if config.plateau_patience:
        _check_plateau(config)


def _check_plateau(config: TrainConfig) -> None:
    """A plateau lowers α by solving the schedule's α0: refused now for a schedule whose α is not
    affine in its α0 (a plugin's), not in the middle of the run."""
    from ..schedules import Position

    probe = Position(2, 11, 0, 10, max(config.epochs, 2))
    at = probe.read_at(config.schedule_unit)
    try:
        rate = schedules.warmup(schedules.get(config.schedule, lr0=config.lr, **config.schedule_params),
                                **warmup_of(config))(at)
        lowered(config, rate, at)
    except ValueError as exc:
        raise ConfigError(f"plateau_patience lowers α through the schedule's α0, which schedule '{config.schedule}' "
                          f"does not allow ({exc}); choose another schedule or leave plateau_patience at 0") from None


def _value(record: dict, name: str) -> float | None:
    v = record.get(name)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _improves(maximize: bool, min_delta: float, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best + min_delta if maximize else value < best - min_delta


def _better(config: TrainConfig, value: float, best: float | None) -> bool:
    return _improves(metrics.direction(config.monitor) == "maximize", config.min_delta, value, best)


def stop_reason(config: TrainConfig, state: MonitorState) -> str:
    """``val_loss has not improved by more than 0 for 5 epochs (best 0.0812 after epoch 10)``."""
    by = f" by more than {config.min_delta:g}" if config.min_delta else ""
    best = "n/a" if state.best is None else f"{state.best:.4g}"
    return (f"{config.monitor} has not improved{by} for {state.wait} epoch{'s' * (state.wait != 1)} "
            f"(best {best} after epoch {state.best_epoch})")


def observe(config: TrainConfig, state: MonitorState, record: dict, last: bool) -> Decision:
    """Update ``state`` with the record of the epoch just trained (``last``: the run's last) and
    say what it decides."""
    epoch, value = int(record["epoch"]), _value(record, config.monitor)
    decision = Decision()
    if value is not None and _better(config, value, state.best):
        state.best, state.best_epoch, state.wait, state.plateau_wait = value, epoch, 0, 0
        decision.improved = True
    else:
        state.wait += 1
        state.plateau_wait += 1
    if config.early_stopping_patience and state.wait >= config.early_stopping_patience and not last:
        decision.stop = stop_reason(config, state)
        state.stopped = {"epoch": epoch, "reason": decision.stop}
    elif config.plateau_patience and state.plateau_wait >= config.plateau_patience and not last:
        decision.plateau = True
        state.plateau_wait = 0
        state.drops.append(epoch)
    return decision


def replay(config: TrainConfig, history: list) -> MonitorState:
    """The state a run's ``history`` leads to (best, waits), for a run that starts watching its
    metric when it is resumed; no drop of α and no stop is replayed."""
    state = MonitorState(given_lr=config.lr)
    for record in history:
        value = _value(record, config.monitor)
        if value is not None and _better(config, value, state.best):
            state.best, state.best_epoch, state.wait, state.plateau_wait = value, int(record["epoch"]), 0, 0
        else:
            state.wait += 1
            state.plateau_wait += 1
    return state


def best_epoch(records: list, monitor: str, min_delta=0.0) -> int | None:
    """The epoch whose ``monitor`` value the run keeps as its best: the first value, then each one
    better by more than ``min_delta`` (larger for a metric to maximise)."""
    try:
        maximize = metrics.direction(monitor) == "maximize"
    except ValueError:
        return None
    delta = float(min_delta) if isinstance(min_delta, (int, float)) and not isinstance(min_delta, bool) else 0.0
    best, epoch = None, None
    for r in records:
        v = _value(r, monitor)
        if v is not None and isinstance(r.get("epoch"), int) and _improves(maximize, delta, v, best):
            best, epoch = v, r["epoch"]
    return epoch


def can_continue(config: TrainConfig, state: MonitorState) -> bool:
    """Whether a run that stopped early may train on with ``config`` (a resumed run whose
    patience is now off, or longer than the epochs it has waited)."""
    return not config.early_stopping_patience or state.wait < config.early_stopping_patience


def as_given(config: TrainConfig, meta: dict) -> TrainConfig:
    """The configuration of a checkpoint as the run was given it: with its α0 before a plateau
    lowered it (the configuration a population is continued with)."""
    saved = meta.get("monitor") or {}
    if saved.get("drops") and isinstance(saved.get("given_lr"), (int, float)):
        return config.replace(lr=saved["given_lr"])
    return config


def warmup_of(config: TrainConfig) -> dict:
    """:func:`polydl.schedules.warmup`'s keywords of ``config``."""
    return {"epochs": config.warmup_epochs, "steps": config.warmup_steps, "unit": config.schedule_unit}


def lowered(config: TrainConfig, rate: float, position) -> TrainConfig:
    """``config`` with the α0 that makes its schedule give ``plateau_factor`` · ``rate`` at
    ``position`` (the next step's, read per ``schedule_unit``): the decay continues from there."""
    lr0 = solve_lr0(config.schedule, config.schedule_params, config.lr, config.plateau_factor * rate, position,
                    warmup_of(config))
    return config.replace(lr=lr0)
