"""The training loop of one run, over parts already built (``build.Parts``).

The data goes to the device once; each epoch draws a permutation from ``(seed, epoch)`` and
mini-batches index the device arrays. Per-step losses and correct counts stay on the device and
are read back once per epoch. The optimizer's position (epoch, mini-batch, step) is the run's
clock: the trainer reads its counters from it. The checkpoint is written atomically at every
epoch boundary (and at the step where Ctrl-C arrives) and holds everything the rest of the run
depends on. It is written only while it is good: a loss, weights or validation loss that is NaN or
infinite stops the run (:func:`diverged`) and the last good checkpoint stays.
"""
from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import amp, backend, losses
from .. import random as _random
from ..tensor import Tensor
from . import checkpoint as ckpt
from .build import Parts, build_parts, param_dtype, schedule_label
from .config import TrainConfig
from .data import Data
from .errors import ComponentError, RunWriteError, TrainingDiverged, TrainingInterrupted
from .evaluation import evaluate_arrays
from .reporting import Reporter
from .signals import NoSignals, StopFlag

__all__ = ["Trainer", "RunResult", "write_or_say", "epoch_order", "diverged", "first_step_culprit", "finite",
           "returned"]


@dataclass(repr=False)
class RunResult:
    """A finished run: its directory, epochs and steps, the per-epoch records and the summary
    (``summary.json``); ``accuracy`` and ``loss`` are the test split's (the validation split's
    where there is no test split)."""

    out_dir: Path
    epochs: int
    step: int
    history: list
    summary: dict = field(default_factory=dict)

    @property
    def test_accuracy(self):
        return self.summary.get("test_accuracy")

    @property
    def test_loss(self):
        return self.summary.get("test_loss")

    @property
    def val_accuracy(self):
        return self.summary.get("val_accuracy")

    @property
    def val_loss(self):
        return self.summary.get("val_loss")

    @property
    def accuracy(self):
        return self.test_accuracy if self.test_accuracy is not None else self.val_accuracy

    @property
    def loss(self):
        return self.test_loss if self.test_loss is not None else self.val_loss

    def __repr__(self):
        acc = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        loss = "n/a" if self.loss is None else f"{self.loss:.4f}"
        return f"RunResult('{self.out_dir}', epochs={self.epochs}, accuracy={acc}, loss={loss})"


def diverged(value, epoch: int, first_step: int, bad_index: int, n_batches: int, lr: float,
             out_dir, what: str = "loss", culprit: str | None = None) -> TrainingDiverged:
    """The error of a run whose ``what`` (the loss, the weights, the validation loss) became
    ``value`` (NaN or infinite) at mini-batch ``bad_index`` of ``epoch``: what happened, why, and
    how to continue from the last good checkpoint (the one of the epoch before). At the run's
    first step, before any update, the learning rate is not the cause: ``culprit`` says what is."""
    step = first_step + bad_index + 1
    good = f"epoch {epoch - 1}" if epoch > 1 else "epoch 0, the initial weights"
    where = f"the {what} became {value} at epoch {epoch}, step {step} (mini-batch {bad_index + 1} of {n_batches}"
    if step == 1 and what == "loss":
        msg = (f"{where}), before any update, so the learning rate is not the cause: "
               f"{culprit or 'the data or a component of the model gives values that are not finite'}. "
               f"The initial checkpoint (epoch 0) is kept in {out_dir}")
        return TrainingDiverged(msg, epoch, step, lr, out_dir)
    msg = (f"{where}, learning rate {lr:.4g}): the learning rate is probably too high, try a smaller "
           f"--lr. The last good checkpoint ({good}) is kept in {out_dir}: continue it with "
           f"polydl train --resume {out_dir} --lr {lr / 10:.3g}")
    return TrainingDiverged(msg, epoch, step, lr, out_dir)


def first_step_culprit(config, scores_finite: bool | None = None) -> str | None:
    """What gave a loss that is not finite at a run's first step, before any update: the loss of
    a plugin (where the scores were finite, or are not known), else the normalizer of a plugin
    (where the scores were not finite, or are not known); None where no plugin is to blame."""
    from .provenance import describe, plugin_fix, supplied

    order = {True: ("loss",), False: ("normalizer",), None: ("loss", "normalizer")}[scores_finite]
    for key in order:
        entry = supplied(config, key)
        if entry is not None:
            gave = "returned it for scores that were finite" if key == "loss" else "gave scores that were not finite"
            return f"the {describe(key, entry)} {gave}; {plugin_fix(entry)} or start a new run with another {key}"
    return None


def finite(arrays, members: int | None = None):
    """Whether every value of the floating ``arrays`` is finite: one bool, or for a population
    (arrays with a leading axis of ``members``) a bool array, one per member. Two reductions per
    array (min and max, which NaN propagates through), no copies."""
    ok = True if members is None else np.ones(members, dtype=bool)
    for a in arrays:
        if a.dtype.kind not in "fc" or a.size == 0:
            continue
        xp = backend.get_array_module(a)
        rows = a.reshape(-1) if members is None else a.reshape(members, -1)
        good = backend.to_numpy(xp.isfinite(rows.min(axis=-1)) & xp.isfinite(rows.max(axis=-1)))
        ok = ok & (bool(good) if members is None else good)
    return ok


def returned(value) -> str:
    """What a component returned, as a message says it: ``a Python float (2.5)``, ``a NumPy array
    of shape (32,)``, ``a Tensor of shape (32,)``."""
    if isinstance(value, Tensor):
        return f"a Tensor of shape {tuple(value.shape)}"
    if isinstance(value, (bool, int, float, complex, str)) or value is None:
        return f"a Python {type(value).__name__} ({value!r})" if value is not None else "None"
    if isinstance(value, np.generic):
        return f"a NumPy {type(value).__name__} ({value})"
    shape = getattr(value, "shape", None)
    if shape is not None:
        lib = "NumPy" if isinstance(value, np.ndarray) else type(value).__module__.partition(".")[0]
        return f"a {lib} array of shape {tuple(shape)}"
    return f"a {type(value).__module__}.{type(value).__qualname__}"


def epoch_order(config: TrainConfig, epoch: int, m: int) -> np.ndarray:
    """The order of the training samples in ``epoch``: a permutation drawn from (data_seed,
    epoch), so that runs that share their data (the members of a population) share their
    mini-batches."""
    return np.random.default_rng([config.data_seed, epoch]).permutation(m)


def write_or_say(write, path, out_dir, kept: str):
    """``write()``; an ``OSError`` (a full disk, an I/O error, no permission) becomes one
    :class:`RunWriteError` line naming the file and saying what is kept (``kept``)."""
    try:
        return write()
    except OSError as exc:
        raise RunWriteError(f"cannot write {path}: {exc.strerror or exc}; {kept}", out_dir) from None


class Trainer:
    """The state of one run: its parts, the data on the device, the history of its epochs."""

    def __init__(self, config: TrainConfig, data: Data, parts: Parts, dev, out_dir, reporter: Reporter | None = None):
        self.config = config
        self.data = data
        self.dev = dev
        self.out_dir = Path(out_dir)
        self.reporter = reporter or Reporter()
        try:  # reporters written as step(self) keep working
            self._step_takes_loss = len(inspect.signature(self.reporter.step).parameters) >= 1
        except (TypeError, ValueError):
            self._step_takes_loss = False
        self.model, self.loss_fn, self.optimizer = parts.model, parts.loss_fn, parts.optimizer
        self.outputs, self.autocast_dtype, self.scaler = parts.outputs, parts.autocast_dtype, parts.scaler
        dt = param_dtype(config)
        to = lambda a, t: backend.to_device(np.ascontiguousarray(a, dtype=t), dev)  # noqa: E731
        # the data goes to the device once
        self.X = {s: to(data.split(s)[0], dt) for s in ("train", "val", "test")}
        self.y = {s: to(data.split(s)[1], np.int64) for s in ("train", "val", "test")}
        self.m = len(data.y_train)
        self.plan = parts.plan
        self.n_batches = parts.plan.n_batches
        self.batch_sizes = parts.plan.sizes
        self.epoch_seconds = 0.0
        self.history: list[dict] = []
        self.pending_event: str | None = None
        xp = dev.xp
        self.step_losses = xp.zeros(self.n_batches, dtype=np.float64)
        self.step_correct = xp.zeros(self.n_batches, dtype=np.int64)
        self.stop = None
        self.has_checkpoint = True  # False until a new run's first checkpoint is written

    @classmethod
    def build(cls, config: TrainConfig, data: Data, dev, out_dir, reporter: Reporter | None = None) -> "Trainer":
        """A trainer for ``config`` with freshly built parts (weights drawn from ``config.seed``)."""
        return cls(config, data, build_parts(config, data, dev), dev, out_dir, reporter)

    # ------------------------------------------------------------------ counters (the optimizer's clock)
    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return self.optimizer.epoch - 1

    @property
    def batch(self) -> int:
        """Mini-batches done in the epoch under way."""
        return self.optimizer.batch

    @property
    def step(self) -> int:
        """Mini-batch steps done in the run."""
        return self.optimizer.batches

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[dict, dict]:
        from .provenance import record

        opt = self.optimizer.state_dict()
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        for i, buffers in enumerate(opt["state"]):
            for k, v in buffers.items():
                arrays[f"opt/{i}/{k}"] = v
        arrays["data/mean"] = np.asarray(self.data.mean)
        arrays["data/std"] = np.asarray(self.data.std)
        arrays["partial/losses"] = backend.to_numpy(self.step_losses)
        arrays["partial/correct"] = backend.to_numpy(self.step_correct)
        opt_meta = {k: v for k, v in opt.items() if k != "state"}
        opt_meta["groups"] = [sorted(buffers) for buffers in opt["state"]]
        meta = {
            "config": self.config.to_dict(),
            "epoch": self.epoch, "step": self.step, "batch": self.batch,
            "epoch_start_step": self.step - self.batch, "epoch_seconds": self.epoch_seconds,
            "rng": _random.get_state(),
            "optimizer": opt_meta,
            "history": self.history,
            "pending_event": self.pending_event,
            "loss_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "dataset": self.data.name, "num_classes": self.data.num_classes,
            "num_features": self.data.num_features, "num_outputs": self.outputs,
            "class_names": self.data.class_names, "components": record(self.config),
        }
        return meta, arrays

    def kept(self) -> str:
        """What survives a failed write: the last checkpoint, and how to continue from it."""
        if not self.has_checkpoint:
            return f"the run in {self.out_dir} could not start, and nothing of it is kept"
        return (f"the last checkpoint (epoch {self.epoch}, step {self.step}) in {self.out_dir} is intact: free space or "
                f"fix the problem, then continue with polydl train --resume {self.out_dir}")

    def write(self, name: str, write) -> None:
        """``write()`` of the run file ``name``, any OSError as one :class:`RunWriteError` line."""
        write_or_say(write, self.out_dir / name, self.out_dir, self.kept())

    def save(self) -> None:
        meta, arrays = self.state()
        kept = self.kept()
        write_or_say(lambda: ckpt.save_checkpoint(self.out_dir / ckpt.CHECKPOINT, meta, arrays),
                     self.out_dir / ckpt.CHECKPOINT, self.out_dir, kept)

    def load(self, meta: dict, arrays: dict) -> None:
        """Continue from a checkpoint: weights, optimizer state and position, RNG, history. The
        optimizer keeps the hyperparameters it was built with (a resumed run may change them)."""
        path = self.out_dir / ckpt.CHECKPOINT
        try:
            self.model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
            opt_meta = dict(meta["optimizer"])
            groups = opt_meta.pop("groups")
            opt_meta["state"] = [{k: arrays[f"opt/{i}/{k}"] for k in names} for i, names in enumerate(groups)]
            if "position" not in opt_meta:  # written before optimizers kept their position
                opt_meta["position"] = {"epoch": int(meta["epoch"]) + 1, "batch": int(meta["batch"]),
                                        "batches": int(meta["step"])}
            self.optimizer.load_state_dict(opt_meta, hyperparameters=False)
            cfg = self.config
            self.optimizer.set_run(cfg.epochs, self.n_batches, cfg.schedule_unit)  # the run's length may have changed
            if (self.epoch, self.step, self.batch) != (int(meta["epoch"]), int(meta["step"]), int(meta["batch"])):
                raise ValueError("the optimizer's position differs from the run's")
            self.epoch_seconds = float(meta.get("epoch_seconds", 0.0))
            self.history = list(meta["history"])
            self.pending_event = meta.get("pending_event")
            if self.scaler is not None and meta.get("loss_scaler"):
                self.scaler.load_state_dict(meta["loss_scaler"])
            losses_, correct = arrays["partial/losses"], arrays["partial/correct"]
            if losses_.shape != (self.n_batches,) or correct.shape != (self.n_batches,):
                raise ValueError("partial epoch of another length")
            self.step_losses[...] = backend.to_device(losses_, self.dev)
            self.step_correct[...] = backend.to_device(correct, self.dev)
            _random.set_state(meta["rng"])
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ckpt.CheckpointError(f"the checkpoint {path} is damaged or does not match its configuration "
                                       f"({exc}); start a new run") from None

    # ------------------------------------------------------------------ training
    def _diverged(self, bad_index: int, epoch: int, first_step: int):
        value = float(backend.to_numpy(self.step_losses)[bad_index])
        return diverged(value, epoch, first_step, bad_index, self.n_batches, self.optimizer.last_lr, self.out_dir)

    def _check_finite(self, upto: int, epoch: int, first_step: int) -> None:
        vals = backend.to_numpy(self.step_losses[:upto])
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            raise self._diverged(int(bad[0]), epoch, first_step)

    def _interrupted(self, epoch):
        msg = (f"interrupted at epoch {epoch}, step {self.step}; the checkpoint is saved in {self.out_dir}: "
               f"continue with polydl train --resume {self.out_dir}")
        return TrainingInterrupted(msg, epoch, self.step, self.out_dir, self.stop.signum or 2)

    def _component_error(self, kind: str, entry, happened: str) -> ComponentError:
        """One line: the component ``entry`` (a ``kind``: loss, normalizer, ...) did ``happened``
        at the step under way; the last checkpoint is kept."""
        from .provenance import describe, plugin_fix

        epoch = self.optimizer.epoch
        resume = f"polydl train --resume {self.out_dir}"
        other = "choose another schedule and continue the same way" if kind == "schedule" else \
            f"start a new run with another {kind}"  # of the components, only the schedule may change on resume
        msg = (f"training stopped at epoch {epoch}, step {self.step + 1}: {describe(kind, entry)} {happened}. The last "
               f"checkpoint (epoch {self.epoch}, step {self.step}) is kept in {self.out_dir}: {plugin_fix(entry)} and "
               f"continue with {resume}, or {other}")
        return ComponentError(msg, epoch, self.step + 1, self.out_dir)

    def _component_failed(self, exc: Exception):
        """A plugin's component raised while training: one line naming it, its plugin and
        distribution; None where no plugin is to blame (then the error is polydl's own)."""
        from .. import plugins

        hit = plugins.blame(exc)
        if hit is None:
            return None
        kind, entry = hit
        text = " ".join(str(exc).split())
        return self._component_error(kind, entry, f"raised {type(exc).__name__}{': ' + text if text else ''}")

    def _check_loss(self, loss, scores, epoch: int) -> None:
        """The loss of a mini-batch is a scalar Tensor with a gradient path to the scores; at the
        run's first step, before any update, one that is not finite names what gave it."""
        if not isinstance(loss, Tensor) or loss.data.size != 1 or not loss.requires_grad:
            from .provenance import COMPONENTS

            what = returned(loss) + (" with no gradient path to the scores" if isinstance(loss, Tensor)
                                     and loss.data.size == 1 else "")
            raise self._component_error("loss", COMPONENTS["loss"].entry(self.config.loss),
                                        f"returned {what}, not a scalar Tensor (one value for the mini-batch, "
                                        "built from the scores)")
        if self.optimizer.batches == 0:  # before any update: one read-back, once per run
            value = float(backend.to_numpy(loss.data).reshape(-1)[0])
            if not np.isfinite(value):
                culprit = first_step_culprit(self.config, bool(finite([scores.data])))
                raise diverged(value, epoch, 0, 0, self.n_batches, self.optimizer.last_lr, self.out_dir,
                               culprit=culprit)

    def _check_weights(self, epoch: int, first_step: int, done: int) -> None:
        """Weights (and buffers) that are not finite after ``done`` mini-batches of ``epoch`` end
        the run: its last good checkpoint is kept, never replaced by them."""
        arrays = [p.data for p in self.model.parameters()] + [b.data for b in self.model.buffers()]
        if not finite(arrays):
            raise diverged("NaN or infinite", epoch, first_step, done - 1, self.n_batches, self.optimizer.last_lr,
                           self.out_dir, what="weights")

    def train(self) -> None:
        cfg = self.config
        X, y = self.X["train"], self.y["train"]
        bs = cfg.batch_size
        model, opt, loss_fn = self.model, self.optimizer, self.loss_fn
        autocast_dtype, scaler = self.autocast_dtype, self.scaler
        report_step = self.reporter.step
        model.train()
        with np.errstate(all="ignore"):
            while opt.epoch <= cfg.epochs:
                e, start = opt.epoch, opt.batch
                first_step = opt.batches - start  # steps before this epoch
                t0 = time.perf_counter()
                if start == 0:
                    self.epoch_seconds = 0.0
                    self.step_losses.fill(0)
                    self.step_correct.fill(0)
                perm = epoch_order(cfg, e, self.m)
                perm = backend.to_device(perm, self.dev)
                self.reporter.epoch_start(e, cfg.epochs, self.n_batches, start)
                for k in range(start, self.n_batches):
                    idx = perm[k * bs:(k + 1) * bs]
                    xb, yb = Tensor(X[idx]), y[idx]
                    opt.zero_grad()
                    if autocast_dtype is None:
                        scores = model(xb)
                        loss = loss_fn(scores, yb)
                        self._check_loss(loss, scores, e)
                        loss.backward()
                        opt.step()
                    else:  # mixed precision: half products, float32 master weights, loss scaling
                        with amp.autocast(autocast_dtype):
                            scores = model(xb)
                            loss = loss_fn(scores, yb)
                        self._check_loss(loss, scores, e)
                        scaler.scale(loss).backward()
                        scaler.step(opt)
                    self.step_losses[k] = loss.data
                    self.step_correct[k] = (losses.predict(loss_fn, scores).reshape(-1) == yb).sum()
                    report_step(loss) if self._step_takes_loss else report_step()
                    if self.stop is not None and self.stop.set and k + 1 < self.n_batches:
                        self._check_finite(k + 1, e, first_step)
                        self._check_weights(e, first_step, k + 1)
                        self.epoch_seconds += time.perf_counter() - t0
                        self.save()
                        raise self._interrupted(e)
                # the end of the epoch: one read-back of the step losses
                step_losses = backend.to_numpy(self.step_losses)
                bad = np.flatnonzero(~np.isfinite(step_losses))
                if bad.size:
                    raise self._diverged(int(bad[0]), e, first_step)
                self._check_weights(e, first_step, self.n_batches)  # a checkpoint is good only if they are finite
                correct = backend.to_numpy(self.step_correct)
                val_loss, val_acc, _ = evaluate_arrays(model, loss_fn, self.X["val"], self.y["val"], autocast_dtype)
                if val_loss is not None and not np.isfinite(val_loss):  # ... and its validation loss is
                    raise diverged(val_loss, e, first_step, self.n_batches - 1, self.n_batches, opt.last_lr,
                                   self.out_dir, what="validation loss")
                record = {
                    "epoch": e, "step": self.step, "lr": opt.last_lr,
                    "train_loss": float(np.dot(step_losses, self.batch_sizes) / self.plan.used),
                    "train_accuracy": float(correct.sum() / self.plan.used),
                    "val_loss": val_loss, "val_accuracy": val_acc,
                }
                if self.pending_event:
                    record["lr_changed"] = True
                    record["event"] = self.pending_event
                    self.pending_event = None
                record["seconds"] = round(self.epoch_seconds + time.perf_counter() - t0, 6)
                self.history.append(record)
                self.epoch_seconds = 0.0
                self.step_losses.fill(0)
                self.step_correct.fill(0)
                # metrics first: a kill between the two leaves a line that the resume drops (it rewrites
                # metrics.jsonl from the checkpoint's history), never a checkpoint without its line
                self.write(ckpt.METRICS, lambda: ckpt.append_metrics(self.out_dir / ckpt.METRICS, record))
                self.save()
                self.reporter.epoch_end(record, cfg.epochs)
                if self.stop is not None and self.stop.set and self.epoch < cfg.epochs:
                    raise self._interrupted(e)

    def finish(self) -> RunResult:
        """Test-set evaluation, ``summary.json`` and ``curves.png`` of a finished run."""
        test_loss, test_acc, _ = evaluate_arrays(self.model, self.loss_fn, self.X["test"], self.y["test"],
                                                 self.autocast_dtype)
        last = self.history[-1] if self.history else {}
        summary = {
            "dataset": self.data.name, "epochs": self.epoch, "step": self.step,
            "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
            "val_loss": last.get("val_loss"), "val_accuracy": last.get("val_accuracy"),
            "test_loss": test_loss, "test_accuracy": test_acc,
            "test_samples": int(len(self.data.y_test)),
            "seconds": round(sum(r.get("seconds", 0.0) for r in self.history), 6),
            "num_parameters": self.model.num_parameters(),
            **({"class_names": self.data.class_names} if self.data.class_names else {}),
        }
        self.write(ckpt.SUMMARY, lambda: ckpt.atomic_write(self.out_dir / ckpt.SUMMARY, json.dumps(summary, indent=2) + "\n"))
        if self.config.plot:
            from . import plots
            title = f"{self.data.name}: {schedule_label(self.config)}"
            drawn = []
            self.write(ckpt.CURVES, lambda: drawn.append(plots.plot_curves(self.history, self.out_dir / ckpt.CURVES, title)))
            if not drawn[0]:
                self.reporter.note(f"{ckpt.CURVES} not written: {plots.MISSING_NOTE}")
        return RunResult(self.out_dir, self.epoch, self.step, list(self.history), summary)

    def info(self, resumed: bool) -> dict:
        sizes = [self.data.num_features, *self.config.hidden, self.outputs]
        return {
            "out_dir": str(self.out_dir), "resumed": resumed, "epoch": self.epoch, "step": self.step,
            "dataset": self.data.name, "sizes": {s: int(len(self.data.split(s)[1])) for s in ("train", "val", "test")},
            "model": "-".join(map(str, sizes)), "normalizer": self.config.normalizer,
            "activation": self.config.activation, "num_parameters": self.model.num_parameters(),
            "loss": self.config.loss, "optimizer": self.config.optimizer, "schedule": schedule_label(self.config),
            "device": str(self.dev), "dtype": self.config.dtype, "epochs": self.config.epochs,
            "batch_size": self.config.batch_size, "n_batches": self.n_batches, "next_lr": self.optimizer.next_lr(),
            "dropped": self.plan.dropped,
        }

    def fit(self, resumed: bool = False, handle_signals: bool = True, info: dict | None = None) -> RunResult:
        """Report the start, train the remaining epochs (saving at each), then finish."""
        self.reporter.start({**self.info(resumed), **(info or {})})
        try:
            with StopFlag() if handle_signals else NoSignals() as flag:
                self.stop = flag
                try:
                    self.train()
                finally:
                    self.stop = None
            return self.finish()
        except Exception as exc:
            failed = self._component_failed(exc)
            if failed is None:
                raise
            raise failed from exc
