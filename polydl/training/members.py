"""The members of a run and what is kept per member. A model trained alone is a run of one
member; a population of P models is a run of P members that share the data, the mini-batches and
the optimizer's clock (epoch, mini-batch, step) and differ in everything else: configuration,
run directory, weights (a row of the stacked model), random stream (dropout), history, the event
of a resumed run or a plateau, its monitored metric's state, and outcome (training, finished,
diverged, stopped on request).

A member's checkpoint (:func:`checkpoint`) and its records (:func:`epoch_record`,
:func:`summary`) are exactly those of the same model trained alone; a population member's
checkpoint adds ``population`` (its size, index, directories, and the members stopped so far)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .errors import TrainingDiverged
from .results import MemberStopped, RunResult, result_of

__all__ = ["Member", "STOPPED", "FINISHED", "epoch_record", "summary", "checkpoint", "stopped_outcomes", "outcome_of"]

#: how a checkpoint records a member stopped on request (followed by its last epoch)
STOPPED = "stopped on request after epoch "
#: ... and one that stopped early and finished (its summary written)
FINISHED = "stopped early and finished after epoch "


@dataclass
class Member:
    """One model of a run: ``index`` (its row of a stacked model), ``config``, ``out_dir``,
    ``names`` (its parameters' and buffers' names, as the model alone has them), ``stream`` (its
    random stream; None for the process's own, that of a model trained alone), ``history`` (its
    epoch records), ``pending_event`` (the change a resumed run marks in its next record) and
    ``outcome`` (None while it trains; then a ``RunResult``, ``TrainingDiverged`` or
    ``MemberStopped``) and ``monitor`` (its :class:`~polydl.training.monitor.MonitorState`, None
    where nothing watches its metric)."""

    index: int
    config: TrainConfig
    out_dir: Path
    names: list
    stream: object = None
    history: list = field(default_factory=list)
    pending_event: str | None = None
    outcome: object = None
    monitor: object = None


def epoch_record(mb: Member, epoch: int, step: int, lr, losses, correct, sizes, used: int, val_loss, val_acc,
                 seconds: float, extra: dict | None = None) -> dict:
    """The ``metrics.jsonl`` record of ``mb``'s epoch, appended to its history: the training loss
    J = Σₖ Jₖ·mₖ / m over its mini-batches k of mₖ samples (``losses``, ``sizes``; m = ``used``),
    the accuracy (``correct`` counts / m), the validation loss and accuracy, the validation
    metrics of ``extra`` (``val_f1``, ``val_auc``), and the event of a resumed run or a plateau
    that changed α."""
    record = {
        "epoch": epoch, "step": step, "lr": lr,
        "train_loss": float(np.dot(losses, sizes) / used),
        "train_accuracy": float(correct.sum() / used) if correct is not None else None,  # None: a regression
        "val_loss": val_loss, "val_accuracy": val_acc, **(extra or {}),
    }
    if mb.pending_event:
        record["lr_changed"] = True
        record["event"] = mb.pending_event
        mb.pending_event = None
    record["seconds"] = seconds
    mb.history.append(record)
    return record


def summary(mb: Member, data, epochs: int, step: int, test_loss, test_acc, num_parameters: int) -> dict:
    """``summary.json`` of ``mb``'s finished run."""
    last = mb.history[-1] if mb.history else {}
    return {
        "dataset": data.name, "epochs": epochs, "step": step,
        "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
        "val_loss": last.get("val_loss"), "val_accuracy": last.get("val_accuracy"),
        **{k: last[k] for k in ("val_f1", "val_auc") if k in last},
        "test_loss": test_loss, "test_accuracy": test_acc,
        "test_samples": int(len(data.y_test)),
        "seconds": round(sum(r.get("seconds", 0.0) for r in mb.history), 6),
        "num_parameters": num_parameters,
        **({"class_names": data.class_names} if data.class_names else {}),
        **_monitored(mb),
    }


def _monitored(mb: Member) -> dict:
    """What ``summary.json`` says of the monitored metric: its best epoch and value, and why and
    when the run stopped early (None where it did not)."""
    state = mb.monitor
    if state is None:
        return {}
    return {"monitor": mb.config.monitor, "best_epoch": state.best_epoch, "best_value": state.best,
            "stopped_early": dict(state.stopped) if state.stopped else None}


def checkpoint(mb: Member, *, position: tuple, epoch_seconds: float, rng: dict, optimizer: dict, model: dict,
               partial: tuple, data, outputs: int, loss_scaler=None, population: dict | None = None):
    """(meta, arrays) of ``mb``'s checkpoint: ``model`` (name → array) under ``model/``, the
    optimizer's state dict (its buffers under ``opt/<group>/<name>``, the rest in the meta with
    each group's buffer names), the data's standardisation, the partial epoch's step losses and
    correct counts (``partial``), the shared ``position`` (epoch, step, batch), its random
    stream's state, its history, and what fixes the data and the model."""
    from .provenance import record

    epoch, step, batch = position
    arrays = {f"model/{k}": v for k, v in model.items()}
    for i, buffers in enumerate(optimizer["state"]):
        for k, v in buffers.items():
            arrays[f"opt/{i}/{k}"] = v
    arrays["data/mean"] = np.asarray(data.mean)
    arrays["data/std"] = np.asarray(data.std)
    arrays["partial/losses"], arrays["partial/correct"] = partial
    opt_meta = {k: v for k, v in optimizer.items() if k != "state"}
    opt_meta["groups"] = [sorted(buffers) for buffers in optimizer["state"]]
    meta = {
        "config": mb.config.to_dict(),
        "epoch": epoch, "step": step, "batch": batch,
        "epoch_start_step": step - batch, "epoch_seconds": epoch_seconds,
        "rng": rng,
        "optimizer": opt_meta,
        "history": mb.history,
        "pending_event": mb.pending_event,
        "loss_scaler": loss_scaler,
        "dataset": data.name, "num_classes": data.num_classes,
        "num_features": data.num_features, "num_outputs": outputs,
        "class_names": data.class_names, "components": record(mb.config),
    }
    if getattr(data, "input_shape", None) is not None:  # the shape of a sample that the model takes
        meta["input_shape"] = [int(d) for d in data.input_shape]
    if hasattr(data, "checkpoint_fields"):  # what the run knows of its data: columns, preprocessing, targets
        data_meta, data_arrays = data.checkpoint_fields()
        meta.update(data_meta)
        arrays.update(data_arrays)
    if mb.monitor is not None:
        meta["monitor"] = mb.monitor.to_dict()
    if population is not None:
        meta["population"] = population
    return meta, arrays


def _stopped(m) -> str:
    if isinstance(m.outcome, TrainingDiverged):
        return str(m.outcome)
    if isinstance(m.outcome, MemberStopped):
        return f"{STOPPED}{m.outcome.epoch}"
    return f"{FINISHED}{m.outcome.epochs}"


def stopped_outcomes(members) -> dict:
    """The members that stopped, as a population's checkpoints record them: index → the message
    of a member that diverged, :data:`STOPPED` and the epoch of one stopped on request, or
    :data:`FINISHED` and the epoch of one that stopped early and finished."""
    return {str(m.index): _stopped(m) for m in members if isinstance(m.outcome, (TrainingDiverged, MemberStopped))
            or isinstance(m.outcome, RunResult) and m.monitor is not None and m.monitor.stopped}


def outcome_of(message: str, out_dir, epoch: int | None = None):
    """The outcome a recorded stop (:func:`stopped_outcomes`) stands for; ``epoch`` is the one a
    diverged member's error names."""
    if message.startswith(STOPPED):
        return MemberStopped(out_dir, int(message[len(STOPPED):]))
    if message.startswith(FINISHED):
        return result_of(Path(out_dir))
    return TrainingDiverged(message, epoch, None, None, out_dir)
