"""The members of a run and what is kept per member. A model trained alone is a run of one
member; a population of P models is a run of P members that share the data, the mini-batches and
the optimizer's clock (epoch, mini-batch, step) and differ in everything else: configuration,
run directory, weights (a row of the stacked model), random stream (dropout), history, the event
of a resumed run, and outcome (training, finished, diverged, stopped on request).

A member's checkpoint (:func:`checkpoint`) and its records (:func:`epoch_record`,
:func:`summary`) are exactly those of the same model trained alone; a population member's
checkpoint adds ``population`` (its size, index, directories, and the members stopped so far)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .errors import TrainingDiverged
from .results import MemberStopped

__all__ = ["Member", "STOPPED", "epoch_record", "summary", "checkpoint", "stopped_outcomes", "outcome_of"]

#: how a checkpoint records a member stopped on request (followed by its last epoch)
STOPPED = "stopped on request after epoch "


@dataclass
class Member:
    """One model of a run: ``index`` (its row of a stacked model), ``config``, ``out_dir``,
    ``names`` (its parameters' and buffers' names, as the model alone has them), ``stream`` (its
    random stream; None for the process's own, that of a model trained alone), ``history`` (its
    epoch records), ``pending_event`` (the change a resumed run marks in its next record) and
    ``outcome`` (None while it trains; then a ``RunResult``, ``TrainingDiverged`` or
    ``MemberStopped``)."""

    index: int
    config: TrainConfig
    out_dir: Path
    names: list
    stream: object = None
    history: list = field(default_factory=list)
    pending_event: str | None = None
    outcome: object = None


def epoch_record(mb: Member, epoch: int, step: int, lr, losses, correct, sizes, used: int, val_loss, val_acc,
                 seconds: float) -> dict:
    """The ``metrics.jsonl`` record of ``mb``'s epoch, appended to its history: the training loss
    J = Σₖ Jₖ·mₖ / m over its mini-batches k of mₖ samples (``losses``, ``sizes``; m = ``used``),
    the accuracy (``correct`` counts / m), the validation loss and accuracy, and the event of a
    resumed run that changed α."""
    record = {
        "epoch": epoch, "step": step, "lr": lr,
        "train_loss": float(np.dot(losses, sizes) / used),
        "train_accuracy": float(correct.sum() / used),
        "val_loss": val_loss, "val_accuracy": val_acc,
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
        "test_loss": test_loss, "test_accuracy": test_acc,
        "test_samples": int(len(data.y_test)),
        "seconds": round(sum(r.get("seconds", 0.0) for r in mb.history), 6),
        "num_parameters": num_parameters,
        **({"class_names": data.class_names} if data.class_names else {}),
    }


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
    if population is not None:
        meta["population"] = population
    return meta, arrays


def stopped_outcomes(members) -> dict:
    """The members that stopped, as a population's checkpoints record them: index → the message
    of a member that diverged, or :data:`STOPPED` and the epoch of one stopped on request."""
    return {str(m.index): (str(m.outcome) if isinstance(m.outcome, TrainingDiverged) else f"{STOPPED}{m.outcome.epoch}")
            for m in members if isinstance(m.outcome, (TrainingDiverged, MemberStopped))}


def outcome_of(message: str, out_dir, epoch: int | None = None):
    """The outcome a recorded stop (:func:`stopped_outcomes`) stands for; ``epoch`` is the one a
    diverged member's error names."""
    if message.startswith(STOPPED):
        return MemberStopped(out_dir, int(message[len(STOPPED):]))
    return TrainingDiverged(message, epoch, None, None, out_dir)
