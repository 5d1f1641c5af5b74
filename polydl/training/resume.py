"""Continuing a run from its checkpoint, bit for bit on the CPU, optionally with changes.

A run may change its learning rate, schedule, optimizer hyperparameters, length, device or plot
when it is resumed (:data:`RESUME_CHANGEABLE`); the rest defines the run. A new ``lr`` means
the learning rate from the resumed step on: the schedule's α0 is solved so that the schedule
gives that rate there and decays from it; ``lr0`` sets a new α0 instead.

A run trained on data given in Python (arrays or a DataFrame) cannot read its data again: it is
resumed with ``resume(run_dir, data=...)`` (or on a file of the same columns, ``dataset``).
Given the same data, the resumed run ends bit-identical to one that was never interrupted; other
content with the same columns continues with a note saying the data changed.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import numpy as np

from .. import fsafe
from ..checks import check_number
from ..registry import UnknownNameError
from ..schedules import Position, solve_lr0
from . import checkpoint as ckpt
from . import ckpt_meta
from .build import build_schedule, schedule_label, setup
from .config import ConfigError, TrainConfig, from_dict, merge
from .data import CLASSIFICATION, Data, DataError, DataSpec, load_data
from .data.python_data import changed_note, described, kind_of
from .monitor import MonitorState, can_continue, warmup_of
from .provenance import COMPONENTS, check, config_text
from .results import RunResult
from .run_data import resumed_data
from .rundir import RunDir
from .trainer import Trainer

__all__ = ["RESUME_CHANGEABLE", "load_run_config", "resume_config", "resume"]

#: keys that may change when a run is resumed (babysitting); the rest define the run
RESUME_CHANGEABLE = ("lr", "beta", "beta1", "beta2", "eps", "weight_decay", "optimizer_params", "schedule",
                     "schedule_params", "schedule_unit", "epochs", "device", "plot", "early_stopping_patience",
                     "plateau_factor", "plateau_patience", "dataset", "checkpoint_interval")
_LR_KEYS = ("lr", "schedule", "schedule_params", "schedule_unit")


def load_run_config(run_dir, name: str = ckpt.CHECKPOINT) -> tuple[TrainConfig, dict, dict]:
    """(config, meta, arrays) of a run directory's checkpoint (``name``: ``best.npz`` for the best
    epoch's), its fields and weights checked (:mod:`~polydl.training.ckpt_meta`): a damaged field
    or weights that are not finite are one ``CheckpointError`` line."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ckpt.CheckpointError(f"run directory not found: {run_dir}")
    if not run_dir.is_dir():
        raise ckpt.CheckpointError(f"{run_dir} is not a polydl run directory (it is a file)")
    path = run_dir / name
    meta, arrays = ckpt.load_checkpoint(path)
    try:
        config = from_dict(meta["config"], source=f"the checkpoint in {run_dir}")
    except (ConfigError, TypeError) as exc:
        raise ckpt.CheckpointError(f"the checkpoint in {run_dir} is damaged: its configuration is invalid ({exc})") from None
    ckpt_meta.validate(meta, arrays, path)
    ckpt_meta.check_weights(arrays, path)
    return config, meta, arrays


def _next_position(meta) -> Position:
    """The position of the step the resumed run takes first."""
    saved = meta.get("optimizer", {}).get("position") or {}
    done, batch, step = int(meta["epoch"]), int(meta.get("batch", 0)), int(meta["step"])
    return Position(done + 1, step + 1, batch, saved.get("steps_per_epoch"))


def _read_at(config: TrainConfig, pos: Position) -> Position:
    """Where ``config``'s schedule is read for the step at ``pos``: at the epoch's first step
    (per epoch) or at the step itself, in a run of ``config.epochs`` epochs."""
    return dataclasses.replace(pos, epochs=config.epochs).read_at(config.schedule_unit)


def _rate_at(config: TrainConfig, pos: Position) -> float:
    """α of ``config``'s schedule for the step at ``pos``."""
    return build_schedule(config)(_read_at(config, pos))


def _rate_before(old: TrainConfig, config: TrainConfig, pos: Position) -> float | None:
    """α the run would have taken at ``pos`` without the changes; None where the resumed run
    replaces a schedule that is no longer installed."""
    try:
        return _rate_at(old, pos)
    except UnknownNameError:
        if old.schedule == config.schedule:
            raise
        return None


def _resumed_config(run_dir, changes, check_components: bool = True):
    old, meta, arrays = load_run_config(run_dir)
    changes = dict(changes or {})
    rate, lr0 = changes.pop("lr", None), changes.pop("lr0", None)
    if rate is not None and lr0 is not None:
        raise ConfigError("give the learning rate from now on (--lr) or a new α0 of the schedule (--lr0), not both")
    merged = merge(old.to_dict(), changes, update_tables=True)
    merged["out"] = str(run_dir)  # the directory may have moved since
    if lr0 is not None:
        merged["lr"] = lr0
    before = {**old.to_dict(), "out": str(run_dir)}
    fixed = sorted(k for k in merged if k not in RESUME_CHANGEABLE and k in before and merged[k] != before[k])
    if fixed:
        raise ConfigError(f"cannot change {', '.join(fixed)} when resuming: they define the run; start a new run "
                          f"with --out (changeable on resume: {', '.join(RESUME_CHANGEABLE)})")
    config = from_dict(merged)
    if check_components:  # each component the run keeps comes from where it came from
        check(meta, config, COMPONENTS, run_dir)
    if rate is not None:
        rate = check_number("lr", rate, 0)
        pos = _read_at(config, _next_position(meta))
        config = config.replace(lr=solve_lr0(config.schedule, config.schedule_params, config.lr, rate, pos,
                                             warmup_of(config)))
    return old, config, meta, arrays


def _with_data(changes: dict | None, data) -> dict | None:
    """``changes`` with the ``dataset`` that data given in Python records."""
    if data is None:
        return changes
    if "dataset" in (changes or {}):
        raise ConfigError("give the data to continue on as data=... or as dataset, not both")
    return {**(changes or {}), "dataset": kind_of(data)}


def _check_python_data(run_dir, old: TrainConfig, config: TrainConfig, meta: dict, arrays: dict, data) -> None:
    """A run trained on data given in Python continues only on data given again (or a file)."""
    source = DataSpec.from_checkpoint(meta, arrays).source or {}
    if data is None and config.dataset == old.dataset and source.get("kind") == "python":
        raise DataError(f"the run in {run_dir} was trained on data given in Python ({described(source)})"
                        f", which it cannot read again; resume it with resume({str(run_dir)!r}, data=...) and data of "
                        "the same columns, or with --dataset FILE (a file of the same columns)")


def _given_data(config: TrainConfig, old: TrainConfig, meta: dict, arrays: dict, data) -> Data:
    """The data given in Python that a resumed run continues on, its columns and classes matched to
    the run's and preprocessed as the run's were, with a note where its content differs from the
    data the run recorded (or where the run trained on a file)."""
    spec = DataSpec.from_checkpoint(meta, arrays)
    out = load_data(config, data=data, spec=spec)
    recorded = spec.source or {}
    note = (changed_note(recorded, out.spec.source) if recorded.get("kind") == "python" else
            f"the run continues on the {kind_of(data).strip('<>')}, its columns matched to those it trained on "
            f"({old.dataset})")
    if note:
        out.notes.insert(0, note)
    known = meta.get("num_classes")
    if spec.task == CLASSIFICATION and not spec.class_names and isinstance(known, int) and out.num_classes != known:
        if out.num_classes > known:
            raise DataError(f"the labels of the {kind_of(data).strip('<>')} go up to {out.num_classes - 1}, but the run "
                            f"was trained on {known} classes (labels 0..{known - 1})")
        out.num_classes = known  # some of the run's classes are absent
    return out


def _loader(old, meta, arrays, data):
    """What loads a resumed run's data: its own (or a file's) or the data given in Python."""
    if data is None:
        return partial(resumed_data, old=old, meta=meta, arrays=arrays)
    return partial(_given_data, old=old, meta=meta, arrays=arrays, data=data)


def resume_config(run_dir, changes: dict | None = None, *, data=None) -> TrainConfig:
    """The configuration ``resume(run_dir, changes, data=data)`` would continue with."""
    return _resumed_config(run_dir, _with_data(changes, data))[1]


def resume(run_dir, changes: dict | None = None, *, data=None, reporter=None, handle_signals: bool = True) -> RunResult:
    """Continue the run in ``run_dir`` from its checkpoint, optionally with ``changes`` to the keys
    in :data:`RESUME_CHANGEABLE` (a new learning rate or schedule, more epochs). ``lr`` is the rate
    from the next step on (the schedule decays from it); ``lr0`` a new α0 of the schedule.
    Parameter tables in ``changes`` add to the old ones unless the component (e.g. the schedule)
    changes. The epoch where α changed is marked in ``metrics.jsonl``. The run is locked while it
    trains (a second process is told which process uses it).

    ``data``: NumPy arrays ``(X, y)`` (or a dict of them) or a pandas DataFrame to continue on, as
    ``run(..., data=...)`` takes them: a run trained on data given in Python needs it (or a file
    of the same columns as ``dataset``). Its columns must match the run's (a DataFrame's by name,
    arrays' by width) and its classes be the run's; the same data continues the run bit for bit."""
    run_dir = Path(run_dir)
    changes = _with_data(changes, data)
    old, config, meta, arrays = _resumed_config(run_dir, changes)  # one clear error before writing anything
    _check_python_data(run_dir, old, config, meta, arrays, data)
    with RunDir.open(run_dir):
        old, config, meta, arrays = _resumed_config(run_dir, changes, False)  # again, now that it is ours
        return _resume(run_dir, old, config, meta, arrays, reporter, handle_signals, data)


def _check_stopped_early(run_dir, config: TrainConfig, meta: dict) -> None:
    """A run that stopped early and finished trains on only with the patience to do so."""
    saved = meta.get("monitor") or {}
    if not saved.get("stopped") or not (run_dir / ckpt.SUMMARY).exists():
        return
    state = MonitorState.from_dict(saved)
    if not can_continue(config, state) or config.epochs <= int(meta["epoch"]):
        raise ConfigError(f"the run in {run_dir} stopped early after epoch {state.stopped['epoch']} "
                          f"({state.stopped['reason']}); to train on, resume it with --early-stopping-patience 0 "
                          f"(or more than {state.wait})")


def _config_file_matches(run_dir, config: TrainConfig) -> bool:
    try:
        return fsafe.read_regular(run_dir / ckpt.CONFIG).decode("utf-8") == config_text(config)
    except (OSError, UnicodeDecodeError):
        return False


def _resume(run_dir, old, config, meta, arrays, reporter, handle_signals, data=None) -> RunResult:
    done, mid_epoch = int(meta["epoch"]), int(meta.get("batch", 0))
    _check_stopped_early(run_dir, config, meta)
    finished = done >= config.epochs and not mid_epoch
    if finished and config.replace(out=old.out) == old and not (run_dir / ckpt.SUMMARY).exists():
        # killed after its last epoch, before the summary: finish it
        dev, data = setup(config, load=_loader(old, meta, arrays, data))
        trainer = Trainer.build(config, data, dev, run_dir, reporter)
        trainer.load([meta], [arrays])
        member = trainer.members[0]
        trainer.write(member, ckpt.METRICS, lambda: ckpt.write_metrics(run_dir / ckpt.METRICS, member.history))
        return trainer.finish()[0]
    if finished:
        raise ConfigError(f"the run in {run_dir} already finished its {done} epochs; pass --epochs N with "
                          f"N > {done} to train longer")
    if config.epochs < done + (1 if mid_epoch else 0):
        raise ConfigError(f"--epochs {config.epochs} is fewer than the {done + (1 if mid_epoch else 0)} epochs the run "
                          "has already started")
    dev, data = setup(config, load=_loader(old, meta, arrays, data))
    if (data.num_features != meta.get("num_features") or data.num_classes != meta.get("num_classes")
            or not np.array_equal(data.mean, arrays.get("data/mean")) or not np.array_equal(data.std, arrays.get("data/std"))):
        raise ckpt.CheckpointError(f"the data of {config.dataset} differs from the data the run in {run_dir} "
                                   "started with (features, classes or statistics changed); start a new run")
    trainer = Trainer.build(config, data, dev, run_dir, reporter)
    trainer.load([meta], [arrays])
    member = trainer.members[0]
    pos = trainer.optimizer.position()
    lr_before, lr_after = _rate_before(old, config, pos), trainer.optimizer.next_lr()
    if any(getattr(old, k) != getattr(config, k) for k in _LR_KEYS) or lr_before != lr_after:
        why = (f"lr changed from {schedule_label(old)} to {schedule_label(config)}"
               if any(getattr(old, k) != getattr(config, k) for k in _LR_KEYS)
               else f"the run's length changed from {old.epochs} to {config.epochs} epochs")
        before = "" if lr_before is None else f"{lr_before:.4g} "
        member.pending_event = f"{why}: α {before}→ {lr_after:.4g} at epoch {pos.epoch}"
    # the directory now matches the checkpoint: metrics of the saved epochs only
    ckpt.remove_temporaries(run_dir)
    trainer.write(member, ckpt.METRICS, lambda: ckpt.write_metrics(run_dir / ckpt.METRICS, member.history))
    changed = config.to_dict() != {**old.to_dict(), "out": str(run_dir)}
    if changed or not _config_file_matches(run_dir, config):  # (α lowered on a plateau, then a kill)
        trainer.write(member, ckpt.CONFIG, lambda: ckpt.atomic_write(run_dir / ckpt.CONFIG, config_text(config)))
    if changed:
        trainer.save()
    return trainer.fit(resumed=True, handle_signals=handle_signals,
                       info={"lr_before": lr_before, "lr_after": lr_after})
