"""Population training: P models of one shape train as one batched computation on one device,
each with its own hyperparameters, and each exactly as if it had been trained alone.

``run_population(configs, out_dirs)`` takes configurations that agree on everything that fixes
the shapes and the data (:data:`SHARED_KEYS`) and differ in anything else (:data:`MEMBER_KEYS`:
the learning rate and its schedule, the optimizer's hyperparameters, dropout, the seed of the
weights). The members' parameters carry a leading population axis (``nn.mlp(...,
population=P)``), the optimizer holds one row of its flat buffers and one value of every
hyperparameter per member, and every member sees the same mini-batches (the data seed).

Each member writes its own ordinary run directory — ``config.toml``, ``metrics.jsonl``,
``checkpoint.npz``, ``summary.json``, ``curves.png`` — that ``polydl evaluate``, ``polydl
predict`` and ``polydl train --resume`` take exactly as if the member had been trained alone: its
weights, optimizer state and random stream are those of the same run alone. The members'
checkpoints are written in two phases (every member's new checkpoint first, then all of them
put in place), so that a process killed at any moment leaves them at one position, and the same
call again continues the population from there. A member whose loss, weights or validation loss
become NaN or infinite is stopped alone: its directory keeps its last good checkpoint, its run
ends with the message a single run gives, and its parameters stay at their last good values while
the others train on.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import backend, fsafe, losses, nn, optim
from .. import random as _random
from ..tensor import Tensor
from . import checkpoint as ckpt
from .build import (
    batch_plan,
    build_loss,
    build_model,
    check_memory,
    check_normalizer,
    min_batch,
    num_outputs,
    param_dtype,
    setup,
)
from .config import KEYS, ConfigError, TrainConfig, from_dict
from .errors import ComponentError, RunDirError, TrainingDiverged, TrainingInterrupted
from .evaluation import evaluate_arrays
from .provenance import config_text, record
from .reporting import Reporter
from .resume import load_run_config
from .rundir import RunDir
from .signals import NoSignals, StopFlag
from .trainer import RunResult, diverged, epoch_order, finite, first_step_culprit, returned, write_or_say

__all__ = ["run_population", "check_members", "MEMBER_KEYS", "SHARED_KEYS", "PopulationReporter",
           "ProgressReporter", "MemberStopped"]

#: the keys in which the members of a population may differ
MEMBER_KEYS = ("seed", "lr", "beta", "beta1", "beta2", "eps", "weight_decay", "optimizer_params", "schedule",
               "schedule_params", "dropout", "plot", "out")
#: the keys that fix the shapes and the data: every member has the same
SHARED_KEYS = tuple(k for k in KEYS if k not in MEMBER_KEYS)
PENDING = ".polydl-pending-" + ckpt.CHECKPOINT
STOPPED = "stopped on request after epoch "


class PopulationReporter(Reporter):
    """Progress of a population: ``start(info)`` (the shape, ``members``), ``epoch_start``,
    ``step`` after every mini-batch of the whole population, ``epoch_end(records, epochs)`` with
    each training member's record (index → record), ``member_end(index, outcome)`` when a member
    stops (its :class:`RunResult`, the :class:`TrainingDiverged` that ended it, or
    :class:`MemberStopped`), ``note``; ``stop_members()`` is asked after every epoch which members
    to stop now (a search pruning them): each keeps its checkpoint of that epoch."""

    def epoch_end(self, records: dict, epochs: int) -> None: ...
    def member_end(self, index: int, outcome) -> None: ...

    def stop_members(self) -> set:
        return set()


class MemberStopped:
    """A member stopped on request after ``epoch`` (its checkpoint kept, resumable alone)."""

    def __init__(self, out_dir, epoch: int):
        self.out_dir, self.epoch = Path(out_dir), int(epoch)

    def __repr__(self):
        return f"MemberStopped('{self.out_dir}', epoch={self.epoch})"


class ProgressReporter(PopulationReporter):
    """One progress bar for the population on a terminal (none elsewhere), and a line per epoch
    with the best and the worst member by validation loss::

        epoch 3/20  32 members  val loss best 0.3121 (member 7, lr 0.003)  worst 2.301 (member 12)  1.23s
    """

    def __init__(self, file=None):
        self.file = file if file is not None else sys.stdout
        self.bar = None
        self.stopped = 0

    def _echo(self, text):
        import click

        click.echo(text, file=self.file)

    def start(self, info):
        what = "continuing" if info["resumed"] else "training"
        self._echo(f"{what} a population of {info['members']} mlp {info['model']} ({info['normalizer']}, "
                   f"{info['activation']}) on {info['dataset']} with {info['loss']} and {info['optimizer']}, "
                   f"{info['epochs']} epochs of {info['n_batches']} mini-batches, on {info['device']} ({info['dtype']})")

    def epoch_start(self, epoch, epochs, n_batches, done):
        import click

        if getattr(self.file, "isatty", lambda: False)():
            self.bar = click.progressbar(length=n_batches, label=f"epoch {epoch}/{epochs}", file=self.file)
            self.bar.__enter__()
            if done:
                self.bar.update(done)

    def step(self, loss=None):
        if self.bar is not None:
            self.bar.update(1)

    def epoch_end(self, records, epochs):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        if not records:
            return
        scored = [(r["val_loss"] if r["val_loss"] is not None else r["train_loss"], k, r) for k, r in records.items()]
        best, worst = min(scored), max(scored)
        what = "val loss" if best[2]["val_loss"] is not None else "train loss"
        stopped = f", {self.stopped} stopped" if self.stopped else ""
        r0 = best[2]
        self._echo(f"epoch {r0['epoch']}/{epochs}  {len(records)} members{stopped}  {what} best {best[0]:.4f} "
                   f"(member {best[1]}, lr {best[2]['lr']:.3g})  worst {worst[0]:.4g} (member {worst[1]})  "
                   f"{r0['seconds']:.2f}s")

    def member_end(self, index, outcome):
        if isinstance(outcome, TrainingDiverged):
            self.stopped += 1
            self._echo(f"member {index} stopped: {outcome}")

    def note(self, message):
        self._echo(f"note: {message}")


def check_members(configs) -> list[TrainConfig]:
    """The configurations, validated, if they can train as one population; else one
    :class:`ConfigError` naming the first key on which two of them differ."""
    configs = [c if isinstance(c, TrainConfig) else from_dict(dict(c)) for c in configs]
    if not configs:
        raise ConfigError("a population needs at least one configuration")
    first = configs[0].validate().to_dict()
    for i, cfg in enumerate(configs[1:], start=1):
        d = cfg.validate().to_dict()
        for key in SHARED_KEYS:
            if d[key] != first[key]:
                raise ConfigError(f"configurations 0 and {i} differ in {key} ({first[key]!r} and {d[key]!r}): the members "
                                  "of a population share everything that fixes the shapes and the data; they may differ "
                                  f"in {', '.join(k for k in MEMBER_KEYS if k != 'out')}")
    if configs[0].dtype in ("float16", "bfloat16"):
        raise ConfigError(f"a population trains in float32 or float64, not {configs[0].dtype} (mixed precision's loss "
                          "scaling is one scale for the whole computation); train those models one by one")
    return configs


def _optimizer_arguments(configs, cls) -> dict:
    """The optimizer's keyword arguments with one value per member where members differ (a
    member that does not set a hyperparameter has the optimizer's default)."""
    from .build import optimizer_hyperparameters

    per = [optimizer_hyperparameters(c) for c in configs]
    keys = sorted({k for h in per for k in h}, key=lambda k: (k != "lr", k))
    try:
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}
    except (TypeError, ValueError):
        defaults = {}
    out = {}
    for key in keys:
        values = []
        for i, h in enumerate(per):
            if key in h:
                values.append(h[key])
            elif key in defaults:
                values.append(defaults[key])
            else:
                raise ConfigError(f"member {i} does not set the optimizer's {key}, which has no default; set it for "
                                  "every member")
        same = all(v is values[0] or (not isinstance(v, (dict, list)) and v == values[0]) for v in values)
        out[key] = values[0] if same and key != "lr" else values
    return out


@dataclass
class _Member:
    index: int
    config: TrainConfig
    out_dir: Path
    names: list            # the names of its parameters and buffers as the model alone has them
    stream: object         # its random stream (dropout)
    history: list
    pending_event: str | None = None
    outcome: object = None  # RunResult or TrainingDiverged once it has stopped


class _Population:
    """The state of a population run: the batched model, its optimizer, the members."""

    def __init__(self, configs, data, dev, out_dirs, reporter):
        self.configs, self.data, self.dev = configs, data, dev
        self.reporter = reporter or PopulationReporter()
        cfg = configs[0]
        self.cfg = cfg
        self.P = P = len(configs)
        self.loss_fn = build_loss(cfg)
        self.outputs = num_outputs(self.loss_fn, data.num_classes)
        sizes = [data.num_features, *cfg.hidden, self.outputs]
        check_memory(cfg, data.num_features, self.outputs, min(cfg.batch_size, len(data.y_train)), dev, P)
        check_normalizer(cfg, dev, P)
        rates = [c.dropout for c in configs]
        with _random.preserved():  # its own draws are replaced by the members' weights below
            self.model = nn.mlp(sizes, activation=cfg.activation, normalizer=cfg.normalizer,
                                dropout=rates if any(rates) else 0.0, normalizer_params=cfg.normalizer_params or None,
                                population=P).to(device=dev, dtype=param_dtype(cfg))
        tensors = [t for _, t in self.model.named_parameters()] + [t for _, t in self.model.named_buffers()]
        self.members = []
        for k, (c, out) in enumerate(zip(configs, out_dirs)):
            alone = build_model(c, data.num_features, self.outputs, dev)  # its seed, its draws
            stream = _random.Stream.from_state(_random.get_state())     # then its dropout masks
            own = list(alone.named_parameters()) + list(alone.named_buffers())
            for t, (_, a) in zip(tensors, own):
                t.data[k] = a.data
            self.members.append(_Member(k, c, Path(out), [n for n, _ in own], stream, []))
        self.plan = batch_plan(len(data.y_train), cfg.batch_size, min_batch(self.model), cfg.normalizer)
        cls = optim.registry.lookup(cfg.optimizer)
        self.optimizer = optim.get(cfg.optimizer, self.model.parameters(), **_optimizer_arguments(configs, cls))
        self.optimizer.set_run(cfg.epochs, self.plan.n_batches, cfg.schedule_unit)
        self.optimizer.next_lr()
        dt = param_dtype(cfg)
        to = lambda a, t: backend.to_device(np.ascontiguousarray(a, dtype=t), dev)  # noqa: E731
        self.X = {s: to(data.split(s)[0], dt) for s in ("train", "val", "test")}
        self.y = {s: to(data.split(s)[1], np.int64) for s in ("train", "val", "test")}
        self.m = len(data.y_train)
        self.n_batches = self.plan.n_batches
        self.batch_sizes = self.plan.sizes
        xp = dev.xp
        self.step_losses = xp.zeros((P, self.n_batches), dtype=np.float64)
        self.step_correct = xp.zeros((P, self.n_batches), dtype=np.int64)
        self.epoch_seconds = 0.0
        self.good = self._snapshot()
        self.stop = None
        self.has_checkpoint = True

    # ------------------------------------------------------------------ counters
    @property
    def epoch(self) -> int:
        return self.optimizer.epoch - 1

    @property
    def batch(self) -> int:
        return self.optimizer.batch

    @property
    def step(self) -> int:
        return self.optimizer.batches

    def active(self) -> list[_Member]:
        return [mb for mb in self.members if mb.outcome is None]

    def _tensors(self):
        return [t for _, t in self.model.named_parameters()] + [t for _, t in self.model.named_buffers()]

    def _snapshot(self):
        """Every member's parameters and buffers now (its last good values at an epoch's end)."""
        return [t.data.copy() for t in self._tensors()]

    # ------------------------------------------------------------------ a member's checkpoint
    def member_state(self, mb: _Member) -> tuple[dict, dict]:
        """What a run of the member alone would save now: its weights, optimizer state and
        random stream, the shared position, its history."""
        k = mb.index
        opt = self.optimizer.member_state_dict(k)
        arrays = {f"model/{name}": np.array(backend.to_numpy(t.data[k]), copy=True)
                  for name, t in zip(mb.names, self._tensors())}
        for i, buffers in enumerate(opt["state"]):
            for name, v in buffers.items():
                arrays[f"opt/{i}/{name}"] = v
        arrays["data/mean"] = np.asarray(self.data.mean)
        arrays["data/std"] = np.asarray(self.data.std)
        arrays["partial/losses"] = backend.to_numpy(self.step_losses[k])
        arrays["partial/correct"] = backend.to_numpy(self.step_correct[k])
        opt_meta = {key: v for key, v in opt.items() if key != "state"}
        opt_meta["groups"] = [sorted(buffers) for buffers in opt["state"]]
        meta = {
            "config": mb.config.to_dict(),
            "epoch": self.epoch, "step": self.step, "batch": self.batch,
            "epoch_start_step": self.step - self.batch, "epoch_seconds": self.epoch_seconds,
            "rng": mb.stream.get_state(),
            "optimizer": opt_meta,
            "history": mb.history,
            "pending_event": mb.pending_event,
            "loss_scaler": None,
            "dataset": self.data.name, "num_classes": self.data.num_classes,
            "num_features": self.data.num_features, "num_outputs": self.outputs,
            "class_names": self.data.class_names, "components": record(mb.config),
            "population": {"size": self.P, "index": k, "dirs": [str(m.out_dir) for m in self.members],
                           "stopped": {str(m.index): (str(m.outcome) if isinstance(m.outcome, TrainingDiverged)
                                                      else f"{STOPPED}{m.outcome.epoch}")
                                       for m in self.members if isinstance(m.outcome, (TrainingDiverged, MemberStopped))}},
        }
        return meta, arrays

    def kept(self, mb) -> str:
        if not self.has_checkpoint:
            return "the population could not start, and nothing of it is kept"
        return (f"the last checkpoints (epoch {self.epoch}, step {self.step}) of the population are intact: free space or "
                f"fix the problem, then run the same population again to continue it")

    def save(self) -> None:
        """Every training member's checkpoint, in two phases: all new checkpoints written beside
        the old ones first, then put in place (see :func:`_settle`)."""
        staged = []
        for mb in self.active():
            meta, arrays = self.member_state(mb)
            pending = mb.out_dir / PENDING
            write_or_say(lambda: ckpt.save_checkpoint(pending, meta, arrays), mb.out_dir / ckpt.CHECKPOINT,
                         mb.out_dir, self.kept(mb))
            staged.append(mb)
        for mb in staged:
            write_or_say(lambda: os.replace(mb.out_dir / PENDING, mb.out_dir / ckpt.CHECKPOINT),
                         mb.out_dir / ckpt.CHECKPOINT, mb.out_dir, self.kept(mb))

    def load(self, metas: list, arrays: list, live: int) -> None:
        """Continue from the members' checkpoints: the training ones all at one position, that of
        member ``live``; a stopped member's at its last good epoch."""
        opt = self.optimizer
        for mb, meta, arr in zip(self.members, metas, arrays):
            k = mb.index
            for name, t in zip(mb.names, self._tensors()):
                t.data[k] = backend.to_device(arr[f"model/{name}"], self.dev)
            om = dict(meta["optimizer"])
            groups = om.pop("groups")
            om["state"] = [{name: arr[f"opt/{i}/{name}"] for name in names} for i, names in enumerate(groups)]
            opt.load_member_state_dict(k, om)
            mb.stream = _random.Stream.from_state(meta["rng"])
            mb.history = list(meta["history"])
            mb.pending_event = meta.get("pending_event")
            self.step_losses[k] = backend.to_device(arr["partial/losses"], self.dev)
            self.step_correct[k] = backend.to_device(arr["partial/correct"], self.dev)
        opt.step_count = int(metas[live]["optimizer"]["step"])
        opt._load_position(metas[live]["optimizer"]["position"])
        opt.set_run(self.cfg.epochs, self.n_batches, self.cfg.schedule_unit)
        last = [m["optimizer"].get("last_lr") for m in metas]
        opt.last_lr = None if last[live] is None else np.array([np.nan if v is None else v for v in last], dtype=float)
        self.epoch_seconds = float(metas[live].get("epoch_seconds", 0.0))
        self.good = self._snapshot()

    # ------------------------------------------------------------------ training
    def _lr(self, mb) -> float:
        last = self.optimizer.last_lr
        return float(last[mb.index]) if isinstance(last, np.ndarray) else float(last if last is not None else np.nan)

    def _diverged(self, mb, bad_index: int, epoch: int, first_step: int, losses_row) -> TrainingDiverged:
        return diverged(float(losses_row[bad_index]), epoch, first_step, bad_index, self.n_batches, self._lr(mb),
                        mb.out_dir, culprit=first_step_culprit(mb.config))

    def _stop(self, mb, outcome) -> None:
        """Stop member ``mb`` alone with ``outcome``, frozen at its last good values."""
        mb.outcome = outcome
        for t, saved in zip(self._tensors(), self.good):
            t.data[mb.index] = saved[mb.index]
        self.optimizer.freeze(mb.index)
        self.reporter.member_end(mb.index, mb.outcome)

    def _stop_diverged(self, epoch: int, first_step: int, upto: int | None = None) -> None:
        """Members whose loss became NaN or infinite stop alone, frozen at their last good values."""
        vals = backend.to_numpy(self.step_losses)
        for mb in self.active():
            row = vals[mb.index, :upto]
            bad = np.flatnonzero(~np.isfinite(row))
            if bad.size:
                self._stop(mb, self._diverged(mb, int(bad[0]), epoch, first_step, row))

    def _stop_nonfinite(self, epoch: int, first_step: int, done: int, val_loss=None) -> None:
        """Members whose weights (or, given ``val_loss``, validation loss) are not finite after
        ``done`` mini-batches of ``epoch`` stop alone, as a run alone stops: their last good
        checkpoint is kept."""
        if val_loss is None:
            ok = finite([t.data for t in self._tensors()], self.P)
        else:
            ok = np.isfinite(np.asarray(val_loss, dtype=float))
        for mb in self.active():
            if not ok[mb.index]:
                value, what = ("NaN or infinite", "weights") if val_loss is None else \
                    (float(val_loss[mb.index]), "validation loss")
                self._stop(mb, diverged(value, epoch, first_step, done - 1, self.n_batches, self._lr(mb), mb.out_dir,
                                        what=what))

    def _bad_loss(self, loss, epoch: int) -> ComponentError:
        """A loss that does not give a Tensor of one value per member, with a gradient path to the
        scores: one line naming the loss and who supplied it."""
        from .provenance import COMPONENTS, describe, plugin_fix

        what = returned(loss) + (" with no gradient path to the scores"
                                 if isinstance(loss, Tensor) and loss.shape == (self.P,) else "")
        out = self.members[0].out_dir
        entry = COMPONENTS["loss"].entry(self.cfg.loss)
        msg = (f"training stopped at epoch {epoch}, step {self.step + 1}: {describe('loss', entry)} returned {what} "
               f"for a population of {self.P}, not a Tensor of shape ({self.P},) (one value per member, built from the "
               f"scores). The population's last checkpoints (epoch {self.epoch}, step {self.step}) are kept: "
               f"{plugin_fix(entry)} and run the same population again, or start a new one with another loss")
        return ComponentError(msg, epoch, self.step + 1, out)

    def train(self) -> None:
        cfg = self.cfg
        X, y = self.X["train"], self.y["train"]
        bs = cfg.batch_size
        model, opt, loss_fn = self.model, self.optimizer, self.loss_fn
        report_step = self.reporter.step
        model.train()
        with np.errstate(all="ignore"):
            while opt.epoch <= cfg.epochs and self.active():
                e, start = opt.epoch, opt.batch
                first_step = opt.batches - start
                t0 = time.perf_counter()
                if start == 0:
                    self.epoch_seconds = 0.0
                    self.step_losses.fill(0)
                    self.step_correct.fill(0)
                perm = backend.to_device(epoch_order(cfg, e, self.m), self.dev)
                self.reporter.epoch_start(e, cfg.epochs, self.n_batches, start)
                streams = [mb.stream for mb in self.members]
                for k in range(start, self.n_batches):
                    idx = perm[k * bs:(k + 1) * bs]
                    xb, yb = Tensor(X[idx]), y[idx]
                    opt.zero_grad()
                    with _random.members(streams):
                        scores = model(xb)
                    loss = loss_fn(scores, yb)
                    if not isinstance(loss, Tensor) or loss.shape != (self.P,) or not loss.requires_grad:
                        raise self._bad_loss(loss, e)
                    loss.backward()
                    opt.step()
                    self.step_losses[:, k] = loss.data
                    self.step_correct[:, k] = (losses.predict(loss_fn, scores) == yb).sum(axis=-1)
                    report_step(loss)
                    if self.stop is not None and self.stop.set and k + 1 < self.n_batches:
                        self._stop_diverged(e, first_step, k + 1)
                        self._stop_nonfinite(e, first_step, k + 1)
                        self.epoch_seconds += time.perf_counter() - t0
                        self.save()
                        raise self._interrupted(e)
                self._stop_diverged(e, first_step)
                self._stop_nonfinite(e, first_step, self.n_batches)
                val_loss, val_acc, _ = evaluate_arrays(model, loss_fn, self.X["val"], self.y["val"])
                if val_loss is not None:
                    self._stop_nonfinite(e, first_step, self.n_batches, val_loss)
                step_losses = backend.to_numpy(self.step_losses)
                correct = backend.to_numpy(self.step_correct)
                seconds = round(self.epoch_seconds + time.perf_counter() - t0, 6)
                last = opt.last_lr
                records = {}
                for mb in self.active():
                    k = mb.index
                    record = {
                        "epoch": e, "step": self.step, "lr": float(last[k]) if isinstance(last, np.ndarray) else last,
                        "train_loss": float(np.dot(step_losses[k], self.batch_sizes) / self.plan.used),
                        "train_accuracy": float(correct[k].sum() / self.plan.used),
                        "val_loss": None if val_loss is None else float(val_loss[k]),
                        "val_accuracy": None if val_acc is None else float(val_acc[k]),
                    }
                    if mb.pending_event:
                        record["lr_changed"] = True
                        record["event"] = mb.pending_event
                        mb.pending_event = None
                    record["seconds"] = seconds
                    mb.history.append(record)
                    records[k] = record
                self.epoch_seconds = 0.0
                self.step_losses.fill(0)
                self.step_correct.fill(0)
                for k, record in records.items():  # metrics first, as a run alone writes them
                    mb = self.members[k]
                    write_or_say(lambda: ckpt.append_metrics(mb.out_dir / ckpt.METRICS, record),
                                 mb.out_dir / ckpt.METRICS, mb.out_dir, self.kept(mb))
                self.save()
                self.good = self._snapshot()
                self.reporter.epoch_end(records, cfg.epochs)
                for k in sorted(self.reporter.stop_members()):
                    mb = self.members[k]
                    if mb.outcome is None:
                        mb.outcome = MemberStopped(mb.out_dir, e)
                        self.optimizer.freeze(k)
                        self.reporter.member_end(k, mb.outcome)
                if self.stop is not None and self.stop.set and self.epoch < cfg.epochs:
                    raise self._interrupted(e)

    def _interrupted(self, epoch):
        msg = (f"interrupted at epoch {epoch}, step {self.step}; the population's checkpoints are saved: run the same "
               "population again to continue it")
        return TrainingInterrupted(msg, epoch, self.step, self.members[0].out_dir, self.stop.signum or 2)

    def finish(self) -> list:
        """Test-set evaluation, ``summary.json`` and ``curves.png`` of every member that finished."""
        test_loss, test_acc, _ = evaluate_arrays(self.model, self.loss_fn, self.X["test"], self.y["test"])
        from . import plots
        for mb in self.active():
            k, last = mb.index, (mb.history[-1] if mb.history else {})
            summary = {
                "dataset": self.data.name, "epochs": self.epoch, "step": self.step,
                "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
                "val_loss": last.get("val_loss"), "val_accuracy": last.get("val_accuracy"),
                "test_loss": None if test_loss is None else float(test_loss[k]),
                "test_accuracy": None if test_acc is None else float(test_acc[k]),
                "test_samples": int(len(self.data.y_test)),
                "seconds": round(sum(r.get("seconds", 0.0) for r in mb.history), 6),
                "num_parameters": self.model.num_parameters() // self.P,
                **({"class_names": self.data.class_names} if self.data.class_names else {}),
            }
            write_or_say(lambda: ckpt.atomic_write(mb.out_dir / ckpt.SUMMARY, json.dumps(summary, indent=2) + "\n"),
                         mb.out_dir / ckpt.SUMMARY, mb.out_dir, self.kept(mb))
            if mb.config.plot:
                from .build import schedule_label
                title = f"{self.data.name}: {schedule_label(mb.config)}"
                if not plots.plot_curves(mb.history, mb.out_dir / ckpt.CURVES, title):
                    self.reporter.note(f"{ckpt.CURVES} not written: {plots.MISSING_NOTE}")
            mb.outcome = RunResult(mb.out_dir, self.epoch, self.step, list(mb.history), summary)
            self.reporter.member_end(k, mb.outcome)
        return [mb.outcome for mb in self.members]

    def info(self, resumed: bool) -> dict:
        cfg = self.cfg
        sizes = [self.data.num_features, *cfg.hidden, self.outputs]
        return {
            "resumed": resumed, "members": self.P, "out_dirs": [str(mb.out_dir) for mb in self.members],
            "epoch": self.epoch, "step": self.step, "dataset": self.data.name,
            "sizes": {s: int(len(self.data.split(s)[1])) for s in ("train", "val", "test")},
            "model": "-".join(map(str, sizes)), "normalizer": cfg.normalizer, "activation": cfg.activation,
            "num_parameters": self.model.num_parameters() // self.P, "loss": cfg.loss, "optimizer": cfg.optimizer,
            "device": str(self.dev), "dtype": cfg.dtype, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "n_batches": self.n_batches, "dropped": self.plan.dropped,
        }


def _settle(out_dirs) -> None:
    """Finish or undo a two-phase save that a killed process left: if every member has either its
    new checkpoint staged or already in place, put the staged ones in place; else remove them."""
    staged = [Path(d) / PENDING for d in out_dirs]
    if not any(p.exists() for p in staged):
        return
    steps = []
    for d, p in zip(out_dirs, staged):
        if p.exists():
            steps.append(("staged", ckpt.load_checkpoint(p)[0]["step"]))
        elif (Path(d) / ckpt.CHECKPOINT).exists():
            steps.append(("placed", ckpt.load_checkpoint(Path(d) / ckpt.CHECKPOINT)[0]["step"]))
        else:
            steps.append(("none", None))
    target = max(s for kind, s in steps if kind == "staged")
    complete = all(s == target or kind == "placed" and s >= target for kind, s in steps)
    for p in staged:
        if p.exists():
            if complete:
                os.replace(p, p.parent / ckpt.CHECKPOINT)
            else:
                p.unlink()


def _existing(configs, out_dirs, settle: bool):
    """(metas, arrays) of a population that ran in ``out_dirs`` before, or None for a new one;
    with ``settle`` (the directories locked) a two-phase save a killed process left is finished
    or undone first."""
    dirs = [Path(d) for d in out_dirs]
    if not any((d / ckpt.CHECKPOINT).exists() or (d / PENDING).exists() for d in dirs):
        return None
    if settle:
        _settle(dirs)
    metas, arrays = [], []
    for k, (cfg, d) in enumerate(zip(configs, dirs)):
        if not settle and not (d / ckpt.CHECKPOINT).exists():
            continue  # staged only: settled under the lock
        old, meta, arr = load_run_config(d)
        pop = meta.get("population") or {}
        if pop.get("size") != len(configs) or pop.get("index") != k:
            raise RunDirError(f"{d} holds a run that is not member {k} of this population of {len(configs)}; "
                              "give new directories, or overwrite=True to replace it")
        if old.to_dict() != cfg.to_dict():
            diff = sorted(key for key, v in cfg.to_dict().items() if old.to_dict().get(key) != v)
            raise RunDirError(f"{d} holds member {k} of a population with another configuration (it differs in "
                              f"{', '.join(diff)}); give new directories, or overwrite=True to replace it")
        metas.append(meta)
        arrays.append(arr)
    return metas, arrays


def run_population(configs, out_dirs, *, overwrite: bool = False, reporter: PopulationReporter | None = None,
                   handle_signals: bool = True) -> list:
    """Train ``configs`` (``TrainConfig`` s or dicts) as one population, member ``k`` writing the
    ordinary run directory ``out_dirs[k]``. Returns one outcome per member: its
    :class:`~polydl.training.RunResult`, or the :class:`~polydl.training.TrainingDiverged` that
    stopped it. Called again on the directories of a population that was interrupted (Ctrl-C,
    SIGTERM, or a killed process), it continues from the members' checkpoints, ending exactly as
    an uninterrupted population would (on the CPU). Raises ``ConfigError`` for configurations that
    cannot share one computation (naming the key that differs) and ``TrainingInterrupted`` after
    Ctrl-C or SIGTERM (the checkpoints saved)."""
    configs = check_members(configs)
    out_dirs = [Path(d) for d in out_dirs]
    if len(out_dirs) != len(configs) or len({d.resolve() for d in out_dirs}) != len(out_dirs):
        raise ConfigError(f"a population of {len(configs)} needs {len(configs)} different run directories, not "
                          f"{len(out_dirs)}")
    configs = [c.replace(out=str(d)) for c, d in zip(configs, out_dirs)]
    dev, data = setup(configs[0])
    previous = None if overwrite else _existing(configs, out_dirs, settle=False)
    if previous is None:
        from .rundir import check_out_dir
        for d in out_dirs:
            check_out_dir(d, overwrite)
    pop = _Population(configs, data, dev, out_dirs, reporter)
    rundirs = []
    try:
        if previous is None:
            for d in out_dirs:
                rundirs.append(RunDir.create(d, overwrite))
            pop.has_checkpoint = False
            for mb in pop.members:
                write_or_say(lambda: ckpt.atomic_write(mb.out_dir / ckpt.CONFIG, config_text(mb.config)),
                             mb.out_dir / ckpt.CONFIG, mb.out_dir, pop.kept(mb))
            pop.save()
            for mb in pop.members:
                write_or_say(lambda: ckpt.write_metrics(mb.out_dir / ckpt.METRICS, []), mb.out_dir / ckpt.METRICS,
                             mb.out_dir, pop.kept(mb))
            pop.has_checkpoint = True
        else:
            for d in out_dirs:
                rundirs.append(RunDir.open(d))
            metas, arrays = _existing(configs, out_dirs, settle=True)  # again, now that the directories are ours
            stopped = {}
            for m in metas:
                stopped.update(m["population"].get("stopped") or {})
            live = [i for i, m in enumerate(metas) if str(i) not in stopped]
            positions = {(metas[i]["epoch"], metas[i]["step"], metas[i]["batch"]) for i in live}
            if len(positions) > 1:
                raise RunDirError(f"the members of the population in {out_dirs[0].parent} are at different positions "
                                  f"{sorted(positions)}; they cannot continue as one population")
            if not live:
                return [MemberStopped(d, int(stopped[str(i)][len(STOPPED):])) if stopped[str(i)].startswith(STOPPED)
                        else TrainingDiverged(stopped[str(i)], None, None, None, d) for i, d in enumerate(out_dirs)]
            pop.load(metas, arrays, live[0])
            for k, message in stopped.items():
                mb = pop.members[int(k)]
                meta = metas[int(k)]
                if message.startswith(STOPPED):
                    mb.outcome = MemberStopped(mb.out_dir, int(message[len(STOPPED):]))
                else:
                    mb.outcome = TrainingDiverged(message, meta["epoch"] + 1, None, None, mb.out_dir)
                pop.optimizer.freeze(int(k))
            for mb in pop.active():
                ckpt.remove_temporaries(mb.out_dir)
                ckpt.write_metrics(mb.out_dir / ckpt.METRICS, mb.history)
            if pop.epoch >= pop.cfg.epochs and not pop.batch:
                if all((mb.out_dir / ckpt.SUMMARY).exists() for mb in pop.active()):
                    return [mb.outcome if mb.outcome is not None else _result_of(mb.out_dir) for mb in pop.members]
        pop.reporter.start(pop.info(previous is not None))
        with StopFlag() if handle_signals else NoSignals() as flag:
            pop.stop = flag
            try:
                pop.train()
            finally:
                pop.stop = None
        return pop.finish()
    except BaseException:
        if previous is None and not pop.has_checkpoint:
            for rd in rundirs:
                rd.abandon()
        raise
    finally:
        for rd in rundirs:
            rd.release()


def _result_of(run_dir: Path) -> RunResult:
    summary = json.loads(fsafe.read_regular(run_dir / ckpt.SUMMARY))
    history = ckpt.read_metrics(run_dir / ckpt.METRICS)
    return RunResult(run_dir, int(summary["epochs"]), int(summary["step"]), history, summary)
