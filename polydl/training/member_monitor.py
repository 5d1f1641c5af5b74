"""What a trainer does with its members' monitored metric (:mod:`~polydl.training.monitor`):
each epoch's validation F1 and ROC AUC, the best epoch kept as ``best.npz``, α lowered on a
plateau, and members stopped early and finished at once, each member alone.

Written at the end of an epoch, in this order: ``metrics.jsonl``, the checkpoints (their
``monitor`` state decides on resume), then ``best.npz`` of the members that improved (a copy of
the checkpoint just written: a process killed before it is written leaves a checkpoint that says
it is the best, and :meth:`MemberMonitor.settle_best` writes it then), ``config.toml`` of those
whose α was lowered (:meth:`MemberMonitor.lower`: a new α0, as ``--resume --lr`` gives), and the
summaries of those that stopped early.

:class:`MemberMonitor` is part of :class:`~polydl.training.trainer.Trainer`; it uses the
trainer's members, model, optimizer, data, reporter and writes."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..metrics import classification
from . import checkpoint as ckpt
from .build import build_schedule
from .members import Member
from .monitor import MonitorState, can_continue, lowered, observe, replay, uses_monitor
from .task_metrics import is_regression, regression_values

__all__ = ["MemberMonitor", "PLATEAU"]

#: the ``event`` of the record of the first epoch after α was lowered on a plateau
PLATEAU = "plateau"


class MemberMonitor:
    """The monitored metric of a trainer's members (a part of ``Trainer``)."""

    def start_monitors(self) -> None:
        """A fresh state for each member that watches its metric."""
        for mb in self.members:
            mb.monitor = MonitorState(given_lr=mb.config.lr) if uses_monitor(mb.config) else None

    def load_monitor(self, mb: Member, meta: dict) -> None:
        """``mb``'s state from its checkpoint (replayed from its history where it started watching
        its metric only now, on resume)."""
        saved = meta.get("monitor")
        if not uses_monitor(mb.config):
            mb.monitor = None
        elif saved is not None:
            mb.monitor = MonitorState.from_dict(saved)
            lr = meta["config"]["lr"]
            if self.population is not None and mb.monitor.drops and lr != mb.config.lr:
                mb.config = mb.config.replace(lr=lr)  # α0 as its plateaus left it
                self._set_schedule(mb)
            if mb.monitor.stopped and can_continue(mb.config, mb.monitor) and mb.config.epochs > int(meta["epoch"]):
                mb.monitor.stopped = None  # a resumed run with more patience trains on
        else:
            mb.monitor = replay(mb.config, mb.history)

    # ------------------------------------------------------------------ each epoch
    def val_metrics(self, pred, scores: list | None) -> list:
        """Each member's ``val_f1`` and, for two classes, ``val_auc`` from the validation split's
        predictions (and scores, collected where there are two classes): one dict per member."""
        y = self.data.split("val")[1]
        if is_regression(self.data):  # RMSE, MAE and R² in the target's units
            return regression_values(self.data, pred, self.y["val"], "val_", len(self.members), self.population)
        if pred is None or not len(y) or getattr(self.data, "task", "classification") != "classification":
            return [{} for _ in self.members]
        k = self.data.num_classes
        pred = backend.to_numpy(pred).reshape(len(self.members), -1)
        if scores:
            xp = backend.get_array_module(scores[0])
            s = backend.to_numpy(scores[0] if len(scores) == 1 else xp.concatenate(scores, axis=-2))
            s = s.reshape(len(self.members), len(y), -1)
        else:
            s = [None] * len(self.members)
        return [classification.epoch_values(y, pred[i], s[i], k) for i in range(len(self.members))]

    def wants_scores(self) -> bool:
        """Whether the validation scores are needed (ROC AUC: two classes)."""
        return (getattr(self.data, "task", "classification") == "classification" and self.data.num_classes == 2
                and len(self.data.split("val")[1]) > 0)

    def watch(self, records: dict) -> tuple[list, list]:
        """Each watching member's decision on its epoch's record: a plateau lowers its α now (the
        checkpoint about to be written holds it). Returns (members that improved and keep their
        best, members that stop early)."""
        improved, stopping = [], []
        last = self.epoch >= self.config.epochs
        for k, record in records.items():
            mb = self.members[k]
            if mb.monitor is None:
                continue
            decision = observe(mb.config, mb.monitor, record, last)
            if decision.improved and mb.config.restore_best:
                improved.append(mb)
            if decision.stop is not None:
                stopping.append(mb)
            elif decision.plateau:
                self.lower(mb)
        return improved, stopping

    def lower(self, mb: Member) -> None:
        """α of ``mb`` times its ``plateau_factor`` from the next step on: its schedule's α0 solved
        so that it gives that rate there (as ``--resume --lr`` does), marked ``plateau`` in its next
        record."""
        pos = self.optimizer.position().read_at(mb.config.schedule_unit)
        before = build_schedule(mb.config)(pos)
        mb.config = lowered(mb.config, before, pos)
        schedule = self._set_schedule(mb)
        mb.pending_event = PLATEAU
        if self.population is None:
            self.reporter.note(f"{mb.config.monitor} has not improved for {mb.config.plateau_patience} epochs: α "
                               f"{before:.4g} → {schedule(pos):.4g} from epoch {pos.epoch}")

    def _set_schedule(self, mb: Member):
        """The optimizer's α of ``mb`` from its configuration now; returns its schedule."""
        schedule = build_schedule(mb.config)
        if self.population is None:
            self.optimizer.lr = schedule
        else:
            rates = list(self.optimizer.lr) if isinstance(self.optimizer.lr, list) else \
                [self.optimizer.lr] * self.population
            rates[mb.index] = schedule
            self.optimizer.lr = rates
        return schedule

    def after_save(self, states: list, improved: list, stopping: list) -> None:
        """The files that follow the checkpoints: ``best.npz`` of the members that improved (their
        checkpoint just written), ``config.toml`` of those whose α was lowered, and the summaries of
        those that stopped early."""
        from .provenance import config_text

        written = {mb.index: (meta, arrays) for mb, meta, arrays in states}
        for mb in improved:
            meta, arrays = written[mb.index]
            self.write(mb, ckpt.BEST, lambda mb=mb, meta=meta, arrays=arrays: ckpt.save_checkpoint(
                mb.out_dir / ckpt.BEST, meta, arrays))
        for mb in self.active():
            if mb.pending_event == PLATEAU:
                self.write(mb, ckpt.CONFIG, lambda mb=mb: ckpt.atomic_write(mb.out_dir / ckpt.CONFIG,
                                                                            config_text(mb.config)))
        if stopping:
            self.finish(stopping)

    def finish_stopped(self) -> None:
        """Finish the members whose checkpoint says they stopped early (a process killed before
        their summary was written)."""
        stopped = [mb for mb in self.active() if mb.monitor is not None and mb.monitor.stopped]
        if stopped:
            self.finish(stopped)

    # ------------------------------------------------------------------ the best epoch
    def settle_best(self, mb: Member, meta: dict, arrays: dict) -> None:
        """``best.npz`` as ``mb``'s checkpoint says: where the checkpoint (at an epoch's end) is the
        best epoch's and ``best.npz`` is missing or older (a process killed between the two),
        it is written from the checkpoint."""
        state = mb.monitor
        if state is None or not mb.config.restore_best or state.best_epoch is None:
            return
        if state.best_epoch != int(meta["epoch"]) or int(meta.get("batch", 0)):
            return
        path = mb.out_dir / ckpt.BEST
        try:
            if int(ckpt.load_checkpoint(path)[0]["epoch"]) == state.best_epoch:
                return
        except (ckpt.CheckpointError, KeyError, TypeError, ValueError):
            pass
        self.write(mb, ckpt.BEST, lambda: ckpt.save_checkpoint(path, meta, arrays))

    def best_members(self, members: list) -> list:
        """Of ``members``, those that keep their best epoch (``restore_best``) and have one."""
        return [mb for mb in members if mb.monitor is not None and mb.config.restore_best
                and mb.monitor.best_epoch is not None]

    def with_best_weights(self, members: list, evaluate):
        """``evaluate()`` with each of ``members``' weights and buffers those of its ``best.npz``
        (its row of a population's), the others' as they are; then everything as it was."""
        tensors = self._tensors()
        saved = [t.data.copy() for t in tensors]
        try:
            for mb in members:
                _, arrays = ckpt.load_checkpoint(mb.out_dir / ckpt.BEST)
                row = self._row(mb)
                for name, t in zip(mb.names, tensors, strict=True):
                    row(t.data)[...] = backend.to_device(np.asarray(arrays[f"model/{name}"], dtype=t.data.dtype),
                                                         self.dev)
            return evaluate()
        finally:
            for t, old in zip(tensors, saved, strict=True):
                t.data[...] = old

    def best_summary(self, mb: Member, test: tuple) -> dict:
        """``summary.json``'s ``best``: the best epoch's record, its test loss and accuracy."""
        record = next((r for r in mb.history if r.get("epoch") == mb.monitor.best_epoch), {})
        keep = {k: v for k, v in record.items() if k not in ("lr_changed", "event", "seconds")}
        return {**keep, "checkpoint": ckpt.BEST, "test_loss": test[0], "test_accuracy": test[1]}
