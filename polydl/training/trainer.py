"""The training loop, one for a model trained alone and for a population of P (its members).

A model alone is a run of one member over a plain model; a population is a run of P members over
one stacked model (``stacked.build_population``), each member exactly as if it were trained
alone. The data goes to the device once; each epoch draws a permutation from ``(seed, epoch)``
and mini-batches index the device arrays. Per-step losses and correct counts (one row per member)
stay on the device and are read back once per epoch. The optimizer's position (epoch,
mini-batch, step) is the run's clock, shared by the members.

Every training member's checkpoint is written atomically at an epoch boundary at most every
``checkpoint_interval`` seconds (0: every epoch), and always at the end, at the step where Ctrl-C
or SIGTERM arrives, before a reporter that may prune sees the epoch and when a member stops early
(:mod:`~polydl.training.member_checkpoints`: an epoch skipped is held back in memory and written
where the last good checkpoint is needed); several are written in two phases
(:meth:`Trainer.save`). A checkpoint holds everything the rest of its run depends on, so a run
killed after a skipped checkpoint ends, resumed, with the same files. It is written only while it
is good: a member whose loss, weights or validation loss become NaN or infinite stops
(:func:`~polydl.training.divergence.diverged`) and its last good checkpoint stays. A model alone
then raises that error; a population member stops alone, its parameters frozen at their last good
values while the others train on, and so does a member that the reporter asks to stop
(``stop_members``).

A member that watches a metric (:mod:`~polydl.training.monitor`, :class:`MemberMonitor`) keeps
its best epoch as ``best.npz``, has its α lowered on a plateau and stops early, alone: it is
finished at once (its summary written, its parameters frozen) while the others train on.
"""
from __future__ import annotations

import inspect
import json
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import numpy as np

from .. import amp, backend, losses
from .. import random as _random
from ..capture import TrainStep
from ..tensor import Tensor
from . import checkpoint as ckpt
from .build import Parts, build_parts, param_dtype, schedule_label
from .config import TrainConfig
from .data import Data
from .divergence import diverged, finite, first_step_culprit, returned
from .errors import write_or_say
from .evaluation import evaluate_arrays
from .member_checkpoints import PENDING, MemberCheckpoints, load_optimizer_states
from .member_monitor import MemberMonitor
from .member_stops import MemberStops
from .members import Member, epoch_record, summary
from .model_build import input_shape, model_label
from .monitor import check_monitored
from .reporting import PopulationReporter, Reporter
from .results import RunResult
from .signals import NoSignals, StopFlag
from .task_metrics import is_regression, summary_values, test_values

# also importable from here, where they were defined before
__all__ = ["Trainer", "epoch_order", "RunResult", "write_or_say", "diverged", "first_step_culprit", "finite",
           "returned", "PENDING", "load_optimizer_states"]


def _check_at(check, epoch, loss, scores):
    check(loss, scores, epoch)


def epoch_order(config: TrainConfig, epoch: int, m: int) -> np.ndarray:
    """The order of the training samples in ``epoch``: a permutation drawn from (data_seed,
    epoch), so that runs that share their data (the members of a population) share their
    mini-batches."""
    return np.random.default_rng([config.data_seed, epoch]).permutation(m)


class Trainer(MemberCheckpoints, MemberStops, MemberMonitor):
    """The state of a run: its parts (one model, or a stacked one of ``population`` members),
    the data on the device, its members (:class:`~polydl.training.members.Member`)."""

    def __init__(self, parts: Parts, data: Data, dev, members: list, reporter: Reporter | None = None,
                 population: int | None = None, notes=()):
        self.data, self.dev, self.members, self.population = data, dev, list(members), population
        self.reporter = reporter or (Reporter() if population is None else PopulationReporter())
        try:  # reporters written as step(self) keep working
            self._step_takes_loss = len(inspect.signature(self.reporter.step).parameters) >= 1
        except (TypeError, ValueError):
            self._step_takes_loss = False
        self.model, self.loss_fn, self.optimizer = parts.model, parts.loss_fn, parts.optimizer
        self.outputs, self.autocast_dtype, self.scaler = parts.outputs, parts.autocast_dtype, parts.scaler
        self.notes = list(notes) + list(getattr(data, "notes", ()))  # the data's (unseen categories, a moved file)
        dt = param_dtype(self.config)
        to = lambda a, t: backend.to_device(np.ascontiguousarray(a, dtype=t), dev)  # noqa: E731
        # the data goes to the device once
        self.X = {s: to(data.split(s)[0], dt) for s in ("train", "val", "test")}
        label_dtype = dt if is_regression(data) else np.int64  # a regression's targets are numbers
        self.y = {s: to(data.split(s)[1], label_dtype) for s in ("train", "val", "test")}
        self.m = len(data.y_train)
        self.plan = parts.plan
        self.n_batches = parts.plan.n_batches
        self.batch_sizes = parts.plan.sizes
        self.epoch_seconds = 0.0
        rows = () if population is None else (population,)
        self.step_losses = dev.xp.zeros(rows + (self.n_batches,), dtype=np.float64)
        self.step_correct = dev.xp.zeros(rows + (self.n_batches,), dtype=np.int64)
        self.stop = None
        self.good = None            # every member's parameters and buffers at the last epoch's end
        self.has_checkpoint = True  # False until a new run's first checkpoints are written
        self.augment_shape = input_shape(data) if self.config.augment else None
        # each mini-batch one captured step (polydl.capture); mixed precision's loss scaling stays eager
        self.train_step = TrainStep(self.model, self.loss_fn, self.optimizer) if self.scaler is None else None
        self.start_monitors()
        self.start_checkpoints()

    @classmethod
    def build(cls, config: TrainConfig, data: Data, dev, out_dir, reporter: Reporter | None = None) -> "Trainer":
        """A trainer of ``config``'s model alone with freshly built parts (weights drawn from
        ``config.seed``)."""
        check_monitored(config, data)
        parts = build_parts(config, data, dev)
        names = [n for n, _ in parts.model.named_parameters()] + [n for n, _ in parts.model.named_buffers()]
        return cls(parts, data, dev, [Member(0, config, Path(out_dir), names)], reporter)

    @classmethod
    def build_population(cls, configs, data: Data, dev, out_dirs, reporter=None) -> "Trainer":
        """A trainer of ``configs`` (checked by ``stacked.check_members``) as one population."""
        from .stacked import build_population

        for config in configs:
            check_monitored(config, data)
        parts, members, notes = build_population(configs, data, dev, out_dirs)
        return cls(parts, data, dev, members, reporter, len(members), notes)

    # ------------------------------------------------------------------ counters (the optimizer's clock)
    @property
    def config(self) -> TrainConfig:
        """The first member's configuration: what fixes the shapes, the data and the run's length
        is every member's."""
        return self.members[0].config

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

    def active(self) -> list:
        """The members still training."""
        return [mb for mb in self.members if mb.outcome is None]

    def _tensors(self) -> list:
        """The model's parameters and buffers, in the order of every member's ``names``."""
        return [t for _, t in self.model.named_parameters()] + [t for _, t in self.model.named_buffers()]

    def _row(self, mb: Member):
        """Member ``mb``'s part of an array with a row per member (a model alone's: all of it)."""
        return (lambda a: a) if self.population is None else (lambda a: a[mb.index])

    def _lr(self, mb: Member):
        """α of ``mb``'s last step."""
        last = self.optimizer.last_lr
        return float(last[mb.index]) if isinstance(last, np.ndarray) else last

    def _per_member(self, value) -> list:
        """A result of ``evaluate_arrays`` (a number, an array over members, or None) per member."""
        if value is None:
            return [None] * len(self.members)
        return [value] if self.population is None else [float(v) for v in value]

    # ------------------------------------------------------------------ training
    def _scope(self):
        """What each step's forward pass runs inside (None: nothing): the members' random streams
        (a population's dropout), or mixed precision's autocast."""
        if self.population is not None:
            streams = [mb.stream for mb in self.members]
            return lambda: _random.members(streams)
        if self.autocast_dtype is not None:
            return partial(amp.autocast, self.autocast_dtype)
        return None

    def train(self) -> None:
        """The remaining epochs of every training member, from the optimizer's position."""
        cfg = self.config
        X, y = self.X["train"], self.y["train"]
        bs, n = cfg.batch_size, self.n_batches
        model, opt, loss_fn, scaler, step = self.model, self.optimizer, self.loss_fn, self.scaler, self.train_step
        check = self._check_loss if self.population is None else self._check_losses
        report_step, takes_loss = self.reporter.step, self._step_takes_loss
        shape = (-1,) if self.population is None else (self.population, -1)
        counting = not is_regression(self.data)  # a regression has no accuracy
        model.train()
        self.finish_stopped()
        self.good = self._snapshot() if len(self.active()) > 1 else None
        with np.errstate(all="ignore"):
            while opt.epoch <= cfg.epochs and self.active():
                e, start = opt.epoch, opt.batch
                first_step = opt.batches - start  # steps before this epoch
                t0 = time.perf_counter()
                if start == 0:
                    self.epoch_seconds = 0.0
                    self.step_losses.fill(0)
                    self.step_correct.fill(0)
                scope, losses_at, correct_at = self._scope(), self.step_losses.T, self.step_correct.T
                perm = backend.to_device(epoch_order(cfg, e, self.m), self.dev)
                checked = partial(_check_at, check, e)
                self.reporter.epoch_start(e, cfg.epochs, n, start)
                for k in range(start, n):
                    idx = perm[k * bs:(k + 1) * bs]
                    xb, yb = X[idx] if self.augment_shape is None else self._augmented(X[idx], e, k), y[idx]
                    if step is not None:
                        loss, scores = step(xb, yb, checked, scope)
                    else:  # mixed precision: half products, float32 master weights, loss scaling
                        opt.zero_grad()
                        with scope() if scope is not None else nullcontext():
                            scores = model(Tensor(xb))
                            loss = loss_fn(scores, yb)
                        check(loss, scores, e)
                        scaler.scale(loss).backward()
                        scaler.step(opt)
                    losses_at[k] = loss.data
                    if counting:
                        correct_at[k] = (losses.predict(loss_fn, scores).reshape(shape) == yb).sum(-1)
                    report_step(loss) if takes_loss else report_step()
                    if self.stop is not None and self.stop.set and k + 1 < n:
                        training = self.active()
                        self._stop_unusable(e, first_step, k + 1)
                        self.keep_last_good(training)  # one that diverged: the epoch before
                        self.epoch_seconds += time.perf_counter() - t0
                        self.save()
                        raise self._interrupted(e)
                self._end_epoch(e, first_step, t0)

    def _augmented(self, xb, epoch: int, batch: int):
        """Mini-batch ``batch`` of ``epoch`` randomly cropped and flipped (``polydl.datasets.augment``),
        drawn from (data seed, epoch, batch): the same after ``--resume``, and the same for every
        member of a population."""
        from ..datasets.augment import augment, augment_rng

        cfg = self.config
        out = augment(backend.to_numpy(xb), augment_rng(cfg.data_seed, epoch, batch), crop_padding=cfg.augment_padding,
                      flip=cfg.augment_flip, input_shape=self.augment_shape)
        return backend.to_device(out, self.dev)

    def _end_epoch(self, e: int, first_step: int, t0: float) -> None:
        """The end of an epoch: the members' checks, records, metrics and checkpoints."""
        cfg, n = self.config, self.n_batches
        training = self.active()
        self._stop_unusable(e, first_step, n)  # a checkpoint is good only if they are finite
        scores = [] if self.wants_scores() else None
        val_loss, val_acc, val_pred = evaluate_arrays(self.model, self.loss_fn, self.X["val"], self.y["val"],
                                                      self.autocast_dtype, scores)
        val_loss, val_acc, extra = self._per_member(val_loss), self._per_member(val_acc), self.val_metrics(val_pred, scores)
        self._stop_bad_validation(e, first_step, val_loss)  # ... and its validation loss is
        self.keep_last_good(training)  # one that diverged keeps the checkpoint of the epoch before
        step_losses = backend.to_numpy(self.step_losses).reshape(len(self.members), n)
        correct = backend.to_numpy(self.step_correct).reshape(len(self.members), n)
        seconds = round(self.epoch_seconds + time.perf_counter() - t0, 6)
        correct = None if is_regression(self.data) else correct
        records = {mb.index: epoch_record(mb, e, self.step, self._lr(mb), step_losses[mb.index],
                                          None if correct is None else correct[mb.index],
                                          self.batch_sizes, self.plan.used, val_loss[mb.index], val_acc[mb.index],
                                          seconds, extra[mb.index]) for mb in self.active()}
        self.epoch_seconds = 0.0
        self.step_losses.fill(0)
        self.step_correct.fill(0)
        # metrics first: a kill between the two leaves a line that the resume drops (it rewrites
        # metrics.jsonl from the checkpoint's history), never a checkpoint without its line
        for k, record in records.items():
            mb = self.members[k]
            self.write(mb, ckpt.METRICS, partial(ckpt.append_metrics, mb.out_dir / ckpt.METRICS, record))
        improved, stopping = self.watch(records)  # a plateau's α is in the checkpoints
        stop = self.stop is not None and self.stop.set
        good = self._snapshot() if len(self.active()) > 1 else None  # also what a skipped checkpoint holds
        states, improved = self.checkpoint_epoch(improved, must=self.epoch >= cfg.epochs or bool(stopping) or stop
                                                 or self.may_stop(), tensors=good)
        if good is not None:
            self.good = good
        self.reporter.epoch_end(records if self.population is not None else records[0], cfg.epochs)
        self.after_save(states, improved, stopping)  # best.npz, config.toml, early stops' summaries
        self._stop_requested(e)
        if self.stop is not None and self.stop.set and self.epoch < cfg.epochs and self.active():
            if self.held is not None:  # the signal came after the checkpoints were skipped
                self.save()
            raise self._interrupted(e)

    def _test(self) -> tuple[list, list]:
        """Each member's test loss and accuracy with the weights the model has now."""
        test_loss, test_acc, _ = evaluate_arrays(self.model, self.loss_fn, self.X["test"], self.y["test"],
                                                 self.autocast_dtype)
        return self._per_member(test_loss), self._per_member(test_acc)

    def finish(self, members: list | None = None) -> list:
        """Test-set evaluation, ``summary.json`` and ``curves.png`` of ``members`` (default: every
        member that trained to the end; else those that stopped early now), with the test loss and
        accuracy of their best epoch where they keep it; one outcome per member."""
        members = self.active() if members is None else members
        if not members:
            return [mb.outcome for mb in self.members]
        test_loss, test_acc = self._test()
        keep = self.best_members(members)
        best_loss, best_acc = self.with_best_weights(keep, self._test) if keep else (None, None)
        keep = {mb.index for mb in keep}
        size = self.model.num_parameters() // (self.population or 1)
        tests = test_values(self)  # a regression's test RMSE, MAE and R²
        summaries = []
        for mb in members:
            s = summary(mb, self.data, self.epoch, self.step, test_loss[mb.index], test_acc[mb.index], size)
            s.update(summary_values(mb, self.data, tests[mb.index]))
            if mb.index in keep:
                s["best"] = self.best_summary(mb, (best_loss[mb.index], best_acc[mb.index]))
            summaries.append(s)
        files = [(mb, ckpt.SUMMARY, json.dumps(s, indent=2) + "\n", None)
                 for mb, s in zip(members, summaries, strict=True)]
        if len(files) > 1:  # several: written together, one sync for all
            self.write_files(files)
        else:
            mb, name, text, _ = files[0]
            self.write(mb, name, partial(ckpt.atomic_write, mb.out_dir / name, text))
        for mb, s in zip(members, summaries, strict=True):
            if mb.config.plot:
                self._plot(mb)
            mb.outcome = RunResult(mb.out_dir, self.epoch, self.step, list(mb.history), s)
            if self.population is not None:
                self.optimizer.freeze(mb.index)  # one that stopped early: the others train on
                self.reporter.member_end(mb.index, mb.outcome)
        return [mb.outcome for mb in self.members]

    def _plot(self, mb: Member) -> None:
        from . import plots

        title = f"{self.data.name}: {schedule_label(mb.config)}"
        drawn = []
        self.write(mb, ckpt.CURVES, lambda: drawn.append(plots.plot_curves(mb.history, mb.out_dir / ckpt.CURVES, title)))
        if not drawn[0]:
            self.reporter.note(f"{ckpt.CURVES} not written: {plots.MISSING_NOTE}")

    def info(self, resumed: bool) -> dict:
        """The run's shape, for the reporter's ``start``."""
        cfg, P = self.config, self.population
        head = {"out_dir": str(self.members[0].out_dir)} if P is None else \
            {"members": P, "out_dirs": [str(mb.out_dir) for mb in self.members]}
        info = {
            **head, "resumed": resumed, "epoch": self.epoch, "step": self.step,
            "dataset": self.data.name, "sizes": {s: int(len(self.data.split(s)[1])) for s in ("train", "val", "test")},
            "architecture": cfg.model, "model": model_label(cfg, input_shape(self.data), self.outputs),
            "normalizer": cfg.normalizer, "activation": cfg.activation,
            "num_parameters": self.model.num_parameters() // (P or 1), "loss": cfg.loss, "optimizer": cfg.optimizer,
            "device": str(self.dev), "dtype": cfg.dtype, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "n_batches": self.n_batches, "dropped": self.plan.dropped,
        }
        if P is None:
            info.update(schedule=schedule_label(cfg), next_lr=self.optimizer.next_lr())
        return info

    def fit(self, resumed: bool = False, handle_signals: bool = True, info: dict | None = None):
        """Report the start, train the remaining epochs (saving at each), then finish: the
        :class:`RunResult` of a model alone, or one outcome per member of a population."""
        self.reporter.start({**self.info(resumed), **(info or {})})
        for note in self.notes:
            self.reporter.note(note)
        try:
            with StopFlag() if handle_signals else NoSignals() as flag:
                self.stop = flag
                try:
                    self.train()
                except (Exception, KeyboardInterrupt):
                    self.after_failure()  # the last good checkpoints, where they were held back
                    raise
                finally:
                    self.stop = None
            outcomes = self.finish()
            return outcomes if self.population is not None else outcomes[0]
        except Exception as exc:
            failed = self._component_failed(exc) if self.population is None else None
            if failed is None:
                raise
            raise failed from exc
