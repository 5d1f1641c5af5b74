"""A training run: ``run(config, out_dir)`` trains and writes the run directory;
``resume(out_dir)`` continues one from its checkpoint, bit for bit on the CPU.

The data goes to the device once; each epoch draws a permutation from ``(seed, epoch)`` and
mini-batches index the device arrays. Per-step losses and correct counts stay on the device and
are read back once per epoch. The checkpoint is written atomically at every epoch boundary (and at
the step where Ctrl-C arrives) and holds everything the rest of the run depends on.
"""
from __future__ import annotations

import inspect
import math
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import amp, backend, losses, nn, optim, schedules
from .. import random as _random
from ..tensor import Tensor, no_grad
from . import checkpoint as ckpt
from .config import ConfigError, TrainConfig, from_dict, merge
from .data import Data, load_data

__all__ = ["run", "resume", "resume_config", "load_run_config", "RunResult", "TrainingDiverged", "TrainingInterrupted", "RunDirError",
           "Reporter", "default_out_dir", "RESUME_CHANGEABLE", "build_model", "num_outputs",
           "evaluate_arrays", "Trainer"]

#: keys that may change when a run is resumed (babysitting); the rest define the run
RESUME_CHANGEABLE = ("lr", "beta", "beta1", "beta2", "eps", "weight_decay", "schedule", "schedule_params",
                     "schedule_unit", "epochs", "device", "plot")
_LR_KEYS = ("lr", "schedule", "schedule_params", "schedule_unit")
EVAL_CHUNK = 8192


class RunDirError(ValueError):
    """An output directory that exists (without ``overwrite``) or cannot be written."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, message, epoch, step, lr, out_dir):
        super().__init__(message)
        self.epoch, self.step, self.lr, self.out_dir = epoch, step, lr, out_dir


class TrainingInterrupted(Exception):
    """Ctrl-C: the checkpoint was saved at a step boundary."""

    def __init__(self, message, epoch, step, out_dir):
        super().__init__(message)
        self.epoch, self.step, self.out_dir = epoch, step, out_dir


class Reporter:
    """Progress callbacks; the base class reports nothing."""

    def start(self, info: dict) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, n_batches: int, done: int) -> None: ...
    def step(self, loss=None) -> None: ...  # loss: the step's loss Tensor, still on the device
    def epoch_end(self, record: dict, epochs: int) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class RunResult:
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


# ---------------------------------------------------------------------------- building
def num_outputs(loss_fn, num_classes: int) -> int:
    """Width of the last layer: one logit for the binary logistic loss, else one score per class."""
    n = getattr(loss_fn, "num_outputs", None)
    if callable(n):
        return int(n(num_classes))
    if isinstance(loss_fn, losses.BinaryCrossEntropy):
        if num_classes != 2:
            raise ConfigError(f"loss binary_cross_entropy needs 2 classes, the data has {num_classes}; "
                              "use --loss softmax_cross_entropy")
        return 1
    return num_classes


def param_dtype(config: TrainConfig) -> np.dtype:
    """The dtype of weights and data: ``config.dtype``, or float32 master weights for half dtypes."""
    return np.dtype(np.float32) if config.dtype in amp.HALF_DTYPES else np.dtype(config.dtype)


def compute_dtype(config: TrainConfig):
    """The autocast dtype of the matrix products (None unless ``config.dtype`` is a half dtype)."""
    return amp.resolve(config.dtype) if config.dtype in amp.HALF_DTYPES else None


def build_model(config: TrainConfig, num_features: int, outputs: int, dev):
    """The MLP of ``config`` on ``dev`` in ``param_dtype(config)`` (weights drawn from ``config.seed``)."""
    _random.manual_seed(config.seed)
    model = nn.mlp([num_features, *config.hidden, outputs], activation=config.activation,
                   normalizer=config.normalizer, dropout=config.dropout,
                   normalizer_params=config.normalizer_params or None)
    return model.to(device=dev, dtype=param_dtype(config))


def build_schedule(config: TrainConfig):
    return schedules.get(config.schedule, lr0=float(config.lr), **config.schedule_params)


def build_loss(config: TrainConfig):
    return losses.get(config.loss, **config.loss_params)


def check_dtype(config: TrainConfig, dev) -> None:
    """Half dtypes train with float32 master weights (mixed precision). They work on every device,
    but only a GPU has fast half-precision matrix products; bfloat16 needs ml_dtypes."""
    if config.dtype in amp.HALF_DTYPES:
        try:
            amp.resolve(config.dtype)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def schedule_label(config: TrainConfig) -> str:
    params = ", ".join(f"{k}={v}" for k, v in config.schedule_params.items())
    return f"{config.schedule}(lr0={config.lr}{', ' + params if params else ''}) per {config.schedule_unit}"


def evaluate_arrays(model, loss_fn, X, y, half=None):
    """(mean loss, accuracy, predictions) over device arrays, BatchNorm in eval mode, no graph.

    One device-to-host transfer for the loss and the count."""
    m = int(X.shape[0])
    if m == 0:
        return None, None, None
    xp = backend.get_array_module(X)
    was_training = model.training
    model.eval()
    total = xp.zeros((), dtype=np.float64)
    preds = []
    try:
        with no_grad(), amp.autocast(half, enabled=half is not None):
            for i in range(0, m, EVAL_CHUNK):
                xb, yb = X[i:i + EVAL_CHUNK], y[i:i + EVAL_CHUNK]
                scores = model(Tensor(xb))
                total += loss_fn(scores, yb).data.astype(np.float64) * xb.shape[0]
                preds.append(losses.predict(loss_fn, scores))
    finally:
        model.train(was_training)
    pred = preds[0] if len(preds) == 1 else xp.concatenate(preds)
    correct = (pred.reshape(-1) == y).sum()
    both = backend.to_numpy(xp.stack([total, correct.astype(np.float64)]))
    return float(both[0]) / m, float(both[1]) / m, pred


# ---------------------------------------------------------------------------- the directory
def default_out_dir(root="runs") -> Path:
    """A new directory ``runs/<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3``... if that exists)."""
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1, 10000):
        path = root / (stamp if i == 1 else f"{stamp}-{i}")
        if not path.exists():
            return path
    raise RunDirError(f"cannot find a free directory name under {root}")  # pragma: no cover


def _writable_probe(path: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".polydl-tmp-probe.", dir=path)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise RunDirError(f"the output directory {path} cannot be written ({exc.strerror or exc}); "
                          "choose another with --out DIR") from None


def check_out_dir(path, overwrite: bool) -> None:
    """Raise unless ``path`` can become a run directory; writes nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"the output path {path} is a file, not a directory; choose another with --out DIR")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        hint = f", or --resume {path} to continue it" if (path / ckpt.CHECKPOINT).exists() else ""
        raise RunDirError(f"the output directory {path} already exists and is not empty; pass --overwrite "
                          f"to replace the run in it{hint}, or choose another with --out DIR")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RunDirError(f"cannot create the output directory {path}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot create the output directory {path}: {parent} is not writable; "
                          "choose another with --out DIR")


def prepare_out_dir(path, overwrite: bool, exclusive: bool = False) -> Path:
    path = Path(path)
    check_out_dir(path, overwrite)
    try:
        path.mkdir(parents=True, exist_ok=not exclusive)
    except FileExistsError:
        raise RunDirError(f"the output directory {path} already exists") from None
    except OSError as exc:
        raise RunDirError(f"cannot create the output directory {path} ({exc.strerror or exc}); "
                          "choose another with --out DIR") from None
    _writable_probe(path)
    if overwrite:
        for name in ckpt.RUN_FILES:
            try:
                (path / name).unlink()
            except FileNotFoundError:
                pass
        ckpt.remove_temporaries(path)
    return path


# ---------------------------------------------------------------------------- the trainer
class _SigintFlag:
    """First Ctrl-C: set the flag (save at the next step boundary); second: interrupt at once."""

    def __init__(self):
        self.set = False
        self._old = None
        self._installed = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def _handler(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGINT, self._old)


class Trainer:
    """The state of one run: model, optimizer, schedule, data on the device, counters, history."""

    def __init__(self, config: TrainConfig, data: Data, dev, out_dir: Path, reporter: Reporter | None = None):
        self.config = config
        self.data = data
        self.dev = dev
        self.out_dir = Path(out_dir)
        self.reporter = reporter or Reporter()
        try:  # reporters written as step(self) keep working
            self._step_takes_loss = len(inspect.signature(self.reporter.step).parameters) >= 1
        except (TypeError, ValueError):
            self._step_takes_loss = False
        self.loss_fn = build_loss(config)
        self.outputs = num_outputs(self.loss_fn, data.num_classes)
        self.model = build_model(config, data.num_features, self.outputs, dev)
        self.optimizer = optim.get(config.optimizer, self.model.parameters(), **config.optimizer_params())
        self.schedule = build_schedule(config)
        self.schedule(1, 1)  # a schedule that cannot give α fails now, not mid-run
        dt = param_dtype(config)
        self.half = compute_dtype(config)
        self.scaler = amp.GradScaler(self.half) if self.half is not None else None
        to = lambda a, t: backend.to_device(np.ascontiguousarray(a, dtype=t), dev)  # noqa: E731
        # the data goes to the device once
        self.X = {s: to(data.split(s)[0], dt) for s in ("train", "val", "test")}
        self.y = {s: to(data.split(s)[1], np.int64) for s in ("train", "val", "test")}
        m = len(data.y_train)
        self.m = m
        self.n_batches = math.ceil(m / config.batch_size)
        sizes = np.full(self.n_batches, config.batch_size, dtype=np.float64)
        sizes[-1] = m - (self.n_batches - 1) * config.batch_size
        self.batch_sizes = sizes
        # counters: completed epochs, global step, mini-batches done in the current epoch
        self.epoch = 0
        self.step = 0
        self.batch = 0
        self.epoch_start_step = 0
        self.epoch_seconds = 0.0
        self.history: list[dict] = []
        self.pending_event: str | None = None
        xp = dev.xp
        self.step_losses = xp.zeros(self.n_batches, dtype=np.float64)
        self.step_correct = xp.zeros(self.n_batches, dtype=np.int64)
        self.sigint = None

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[dict, dict]:
        opt = self.optimizer.state_dict()
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        for i, st in enumerate(opt["state"]):
            for k, v in st.items():
                arrays[f"opt/{i}/{k}"] = v
        arrays["data/mean"] = np.asarray(self.data.mean)
        arrays["data/std"] = np.asarray(self.data.std)
        arrays["partial/losses"] = backend.to_numpy(self.step_losses)
        arrays["partial/correct"] = backend.to_numpy(self.step_correct)
        meta = {
            "config": self.config.to_dict(),
            "epoch": self.epoch, "step": self.step, "batch": self.batch,
            "epoch_start_step": self.epoch_start_step, "epoch_seconds": self.epoch_seconds,
            "rng": _random.get_state(),
            "optimizer": {"type": opt["type"], "step": opt["step"], "hyperparameters": opt["hyperparameters"],
                          "groups": [sorted(st) for st in opt["state"]]},
            "schedule": {"name": self.config.schedule, "repr": repr(self.schedule)},
            "history": self.history,
            "pending_event": self.pending_event,
            "loss_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "dataset": self.data.name, "num_classes": self.data.num_classes,
            "num_features": self.data.num_features, "num_outputs": self.outputs,
        }
        return meta, arrays

    def save(self) -> None:
        meta, arrays = self.state()
        ckpt.save_checkpoint(self.out_dir / ckpt.CHECKPOINT, meta, arrays)

    def load(self, meta: dict, arrays: dict) -> None:
        path = self.out_dir / ckpt.CHECKPOINT
        try:
            self.model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
            groups = meta["optimizer"]["groups"]
            opt_sd = {"type": meta["optimizer"]["type"], "step": meta["optimizer"]["step"],
                      "hyperparameters": meta["optimizer"]["hyperparameters"],
                      "state": [{k: arrays[f"opt/{i}/{k}"] for k in names} for i, names in enumerate(groups)]}
            self.optimizer.load_state_dict(opt_sd)
            # hyperparameters come from the (possibly changed) configuration
            for k, v in self.config.optimizer_params().items():
                setattr(self.optimizer, k, v)
            self.epoch, self.step, self.batch = int(meta["epoch"]), int(meta["step"]), int(meta["batch"])
            self.epoch_start_step = int(meta["epoch_start_step"])
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
    def lr_at(self, epoch: int, step: int) -> float:
        """α for the mini-batch ``step`` of ``epoch``: per epoch, the schedule is read at the
        epoch's first step; per step, at every step."""
        if self.config.schedule_unit == "step":
            return float(self.schedule(epoch, step))
        return float(self.schedule(epoch, self.epoch_start_step + 1))

    def _diverged(self, bad_index: int, epoch: int):
        step = self.epoch_start_step + bad_index + 1
        lr = self.lr_at(epoch, step)
        good = f"epoch {self.epoch}" if self.epoch else "epoch 0, the initial weights"
        value = float(backend.to_numpy(self.step_losses)[bad_index])
        msg = (f"the loss became {value} at epoch {epoch}, step {step} (mini-batch {bad_index + 1} of "
               f"{self.n_batches}, learning rate {lr:.4g}): the learning rate is probably too high, try a smaller "
               f"--lr. The last good checkpoint ({good}) is kept in {self.out_dir}: continue it with "
               f"polydl train --resume {self.out_dir} --lr {self.config.lr / 10:g}")
        return TrainingDiverged(msg, epoch, step, lr, self.out_dir)

    def _check_finite(self, upto: int, epoch: int) -> None:
        vals = backend.to_numpy(self.step_losses[:upto])
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            raise self._diverged(int(bad[0]), epoch)

    def _interrupted(self, epoch):
        msg = (f"interrupted at epoch {epoch}, step {self.step}; the checkpoint is saved in {self.out_dir}: "
               f"continue with polydl train --resume {self.out_dir}")
        return TrainingInterrupted(msg, epoch, self.step, self.out_dir)

    def train(self) -> None:
        cfg = self.config
        X, y = self.X["train"], self.y["train"]
        bs = cfg.batch_size
        model, opt, loss_fn = self.model, self.optimizer, self.loss_fn
        report_step = self.reporter.step
        model.train()
        with np.errstate(all="ignore"):
            while self.epoch < cfg.epochs:
                e = self.epoch + 1
                t0 = time.perf_counter()
                if self.batch == 0:
                    self.epoch_start_step = self.step
                    self.epoch_seconds = 0.0
                    self.step_losses.fill(0)
                    self.step_correct.fill(0)
                perm = np.random.default_rng([cfg.seed, e]).permutation(self.m)
                perm = backend.to_device(perm, self.dev)
                self.reporter.epoch_start(e, cfg.epochs, self.n_batches, self.batch)
                per_step = cfg.schedule_unit == "step"
                if not per_step:  # one α for the whole epoch
                    opt.lr = self.lr_at(e, self.epoch_start_step + 1)
                for k in range(self.batch, self.n_batches):
                    t = self.step + 1
                    if per_step:
                        opt.lr = self.lr_at(e, t)
                    idx = perm[k * bs:(k + 1) * bs]
                    xb, yb = Tensor(X[idx]), y[idx]
                    opt.zero_grad()
                    if self.half is None:
                        scores = model(xb)
                        loss = loss_fn(scores, yb)
                        loss.backward()
                        opt.step()
                    else:  # mixed precision: half products, float32 master weights, loss scaling
                        with amp.autocast(self.half):
                            scores = model(xb)
                            loss = loss_fn(scores, yb)
                        self.scaler.scale(loss).backward()
                        self.scaler.step(opt)
                    self.step_losses[k] = loss.data
                    self.step_correct[k] = (losses.predict(loss_fn, scores).reshape(-1) == yb).sum()
                    self.step, self.batch = t, k + 1
                    report_step(loss) if self._step_takes_loss else report_step()
                    if self.sigint is not None and self.sigint.set and self.batch < self.n_batches:
                        self._check_finite(self.batch, e)
                        self.epoch_seconds += time.perf_counter() - t0
                        self.save()
                        raise self._interrupted(e)
                # the end of the epoch: one read-back of the step losses
                step_losses = backend.to_numpy(self.step_losses)
                bad = np.flatnonzero(~np.isfinite(step_losses))
                if bad.size:
                    raise self._diverged(int(bad[0]), e)
                correct = backend.to_numpy(self.step_correct)
                val_loss, val_acc, _ = evaluate_arrays(model, loss_fn, self.X["val"], self.y["val"], self.half)
                record = {
                    "epoch": e, "step": self.step, "lr": self.lr_at(e, self.epoch_start_step + 1),
                    "train_loss": float(np.dot(step_losses, self.batch_sizes) / self.m),
                    "train_accuracy": float(correct.sum() / self.m),
                    "val_loss": val_loss, "val_accuracy": val_acc,
                }
                if self.pending_event:
                    record["lr_changed"] = True
                    record["event"] = self.pending_event
                    self.pending_event = None
                record["seconds"] = round(self.epoch_seconds + time.perf_counter() - t0, 6)
                self.history.append(record)
                self.epoch, self.batch = e, 0
                self.epoch_seconds = 0.0
                self.step_losses.fill(0)
                self.step_correct.fill(0)
                # metrics first: a kill between the two leaves a line that the resume drops (it rewrites
                # metrics.jsonl from the checkpoint's history), never a checkpoint without its line
                ckpt.append_metrics(self.out_dir / ckpt.METRICS, record)
                self.save()
                self.reporter.epoch_end(record, cfg.epochs)
                if self.sigint is not None and self.sigint.set and self.epoch < cfg.epochs:
                    raise self._interrupted(e)

    def finish(self) -> RunResult:
        """Test-set evaluation, ``summary.json`` and ``curves.png`` of a finished run."""
        test_loss, test_acc, _ = evaluate_arrays(self.model, self.loss_fn, self.X["test"], self.y["test"],
                                              self.half)
        last = self.history[-1] if self.history else {}
        summary = {
            "dataset": self.data.name, "epochs": self.epoch, "step": self.step,
            "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
            "val_loss": last.get("val_loss"), "val_accuracy": last.get("val_accuracy"),
            "test_loss": test_loss, "test_accuracy": test_acc,
            "test_samples": int(len(self.data.y_test)),
            "seconds": round(sum(r.get("seconds", 0.0) for r in self.history), 6),
            "num_parameters": self.model.num_parameters(),
        }
        import json
        ckpt.atomic_write(self.out_dir / ckpt.SUMMARY, json.dumps(summary, indent=2) + "\n")
        if self.config.plot:
            from . import plots
            title = f"{self.data.name}: {schedule_label(self.config)}"
            if not plots.plot_curves(self.history, self.out_dir / ckpt.CURVES, title):
                self.reporter.note(f"{ckpt.CURVES} not written: {plots.MISSING_NOTE}")
        return RunResult(self.out_dir, self.epoch, self.step, list(self.history), summary)

    def info(self, resumed: bool) -> dict:
        sizes = [self.data.num_features, *self.config.hidden, self.outputs]
        return {
            "out_dir": str(self.out_dir), "resumed": resumed, "epoch": self.epoch, "step": self.step,
            "dataset": self.data.name, "sizes": {s: int(len(self.data.split(s)[1])) for s in ("train", "val", "test")},
            "model": "-".join(map(str, sizes)), "normalizer": self.config.normalizer,
            "activation": self.config.activation, "num_parameters": self.model.num_parameters(),
            "optimizer": self.config.optimizer, "schedule": schedule_label(self.config),
            "device": str(self.dev), "dtype": self.config.dtype, "epochs": self.config.epochs,
            "batch_size": self.config.batch_size, "n_batches": self.n_batches,
        }

    def fit(self, resumed: bool = False, handle_signals: bool = True) -> RunResult:
        self.reporter.start(self.info(resumed))
        with _SigintFlag() if handle_signals else _NoSignals() as flag:
            self.sigint = flag
            try:
                self.train()
            finally:
                self.sigint = None
        return self.finish()


class _NoSignals:
    set = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


# ---------------------------------------------------------------------------- entry points
def _setup(config: TrainConfig):
    config.validate()
    dev = backend.check_device(config.device)
    check_dtype(config, dev)
    data = load_data(config)
    return dev, data


def run(config: TrainConfig | None = None, out_dir=None, *, overwrite: bool = False,
        reporter: Reporter | None = None, handle_signals: bool = True) -> RunResult:
    """Train ``config`` (default: ``TrainConfig()``) and write the run directory ``out_dir``
    (default: a new ``runs/<timestamp>``). Everything is checked before anything is written.

    Raises ``ValueError`` subclasses for bad input, :class:`TrainingDiverged` for a NaN loss and
    :class:`TrainingInterrupted` after Ctrl-C (checkpoint saved)."""
    config = config if config is not None else TrainConfig()
    dev, data = _setup(config)
    out_dir = out_dir if out_dir is not None else config.out
    exclusive = out_dir is None
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    check_out_dir(out, overwrite)
    trainer = Trainer(config, data, dev, out, reporter)   # builds and checks model, loss, optimizer, schedule
    for _ in range(100):
        try:
            prepare_out_dir(out, overwrite, exclusive=exclusive)
            break
        except RunDirError:
            if not exclusive:
                raise
            out = default_out_dir()  # another run took the name a moment ago
            trainer.out_dir = out
    trainer.config = config = config.replace(out=str(out))
    ckpt.atomic_write(out / ckpt.CONFIG, config.to_toml())
    trainer.save()                       # epoch 0: a run killed at once can still be resumed
    ckpt.write_metrics(out / ckpt.METRICS, [])
    return trainer.fit(resumed=False, handle_signals=handle_signals)


def load_run_config(run_dir) -> tuple[TrainConfig, dict, dict]:
    """(config, meta, arrays) of a run directory's checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ckpt.CheckpointError(f"run directory not found: {run_dir}")
    if not run_dir.is_dir():
        raise ckpt.CheckpointError(f"{run_dir} is not a polydl run directory (it is a file)")
    meta, arrays = ckpt.load_checkpoint(run_dir / ckpt.CHECKPOINT)
    try:
        config = from_dict(meta["config"], source=f"the checkpoint in {run_dir}")
    except (ConfigError, TypeError) as exc:
        raise ckpt.CheckpointError(f"the checkpoint in {run_dir} is damaged: its configuration is invalid ({exc})") from None
    return config, meta, arrays


def _describe_change(old: TrainConfig, new: TrainConfig) -> str:
    return f"lr changed from {schedule_label(old)} to {schedule_label(new)}"


def _resumed_config(run_dir, changes):
    old, meta, arrays = load_run_config(run_dir)
    merged = merge(old.to_dict(), dict(changes or {}), update_tables=True)
    merged["out"] = str(run_dir)  # the directory may have moved since
    before = {**old.to_dict(), "out": str(run_dir)}
    fixed = sorted(k for k in merged if k not in RESUME_CHANGEABLE and k in before and merged[k] != before[k])
    if fixed:
        raise ConfigError(f"cannot change {', '.join(fixed)} when resuming: they define the run; start a new run "
                          f"with --out (changeable on resume: {', '.join(RESUME_CHANGEABLE)})")
    return old, from_dict(merged), meta, arrays


def resume_config(run_dir, changes: dict | None = None) -> TrainConfig:
    """The configuration ``resume(run_dir, changes)`` would continue with."""
    return _resumed_config(run_dir, changes)[1]


def resume(run_dir, changes: dict | None = None, *, reporter: Reporter | None = None,
           handle_signals: bool = True) -> RunResult:
    """Continue the run in ``run_dir`` from its checkpoint, optionally with ``changes`` to the keys
    in :data:`RESUME_CHANGEABLE` (a new learning rate or schedule, more epochs). Parameter tables
    in ``changes`` add to the old ones unless the component (e.g. the schedule) changes."""
    run_dir = Path(run_dir)
    old, config, meta, arrays = _resumed_config(run_dir, changes)
    done, mid = int(meta["epoch"]), int(meta.get("batch", 0))
    finished = done >= config.epochs and not mid
    if finished and config.replace(out=old.out) == old and not (run_dir / ckpt.SUMMARY).exists():
        # killed after its last epoch, before the summary: finish it
        dev, data = _setup(config)
        trainer = Trainer(config, data, dev, run_dir, reporter)
        trainer.load(meta, arrays)
        ckpt.write_metrics(run_dir / ckpt.METRICS, trainer.history)
        return trainer.finish()
    if finished:
        raise ConfigError(f"the run in {run_dir} already finished its {done} epochs; pass --epochs N with "
                          f"N > {done} to train longer")
    if config.epochs < done + (1 if mid else 0):
        raise ConfigError(f"--epochs {config.epochs} is fewer than the {done + (1 if mid else 0)} epochs the run "
                          "has already started")
    dev, data = _setup(config)
    if (data.num_features != meta.get("num_features") or data.num_classes != meta.get("num_classes")
            or not np.array_equal(data.mean, arrays.get("data/mean")) or not np.array_equal(data.std, arrays.get("data/std"))):
        raise ckpt.CheckpointError(f"the data of {config.dataset} differs from the data the run in {run_dir} "
                                   "started with (features, classes or statistics changed); start a new run")
    trainer = Trainer(config, data, dev, run_dir, reporter)
    trainer.load(meta, arrays)
    if any(getattr(old, k) != getattr(config, k) for k in _LR_KEYS):
        trainer.pending_event = _describe_change(old, config)
    # the directory now matches the checkpoint: metrics of the saved epochs only
    ckpt.remove_temporaries(run_dir)
    ckpt.write_metrics(run_dir / ckpt.METRICS, trainer.history)
    if config.to_dict() != {**old.to_dict(), "out": str(run_dir)}:
        ckpt.atomic_write(run_dir / ckpt.CONFIG, config.to_toml())
        trainer.save()
    return trainer.fit(resumed=True, handle_signals=handle_signals)
