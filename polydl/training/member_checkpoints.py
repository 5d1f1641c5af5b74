"""A run's members' checkpoints: what member k's checkpoint holds now (exactly what the same
model trained alone would save), writing them (several in two phases, so that a process killed at
any moment leaves them at one position), and continuing from them.

:class:`MemberCheckpoints` is part of :class:`~polydl.training.trainer.Trainer`; it uses the
trainer's members, model, optimizer, data, step arrays and counters."""
from __future__ import annotations

import os
from functools import partial

import numpy as np

from .. import backend
from .. import random as _random
from . import checkpoint as ckpt
from .errors import write_or_say
from .members import Member, checkpoint, stopped_outcomes

__all__ = ["MemberCheckpoints", "PENDING", "load_optimizer_states"]

#: a member's new checkpoint, staged beside the old one while several are written
PENDING = ".polydl-pending-" + ckpt.CHECKPOINT


def load_optimizer_states(optimizer, states: list, clock_from: int) -> None:
    """Each member's optimizer state dict into its rows (a model alone: its one state dict), the
    clock (updates, position) and α of the last step from member ``clock_from``'s; the optimizer
    keeps its own hyperparameters."""
    optimizer.load_member_state_dicts(states, clock_from=clock_from)


class MemberCheckpoints:
    """Checkpoints of a trainer's members (a part of ``Trainer``)."""

    def state(self, mb: Member) -> tuple[dict, dict]:
        """(meta, arrays) of ``mb``'s checkpoint now: what the same model trained alone would save."""
        P, row = self.population, self._row(mb)
        if P is None:
            opt, rng, pop = self.optimizer.state_dict(), _random.get_state(), None
        else:
            opt, rng = self.optimizer.member_state_dict(mb.index), mb.stream.get_state()
            pop = {"size": P, "index": mb.index, "dirs": [str(m.out_dir) for m in self.members],
                   "stopped": stopped_outcomes(self.members)}
        model = {name: np.array(backend.to_numpy(row(t.data)), copy=True)
                 for name, t in zip(mb.names, self._tensors(), strict=True)}
        return checkpoint(mb, position=(self.epoch, self.step, self.batch), epoch_seconds=self.epoch_seconds, rng=rng,
                          optimizer=opt, model=model, data=self.data, outputs=self.outputs, population=pop,
                          partial=(backend.to_numpy(row(self.step_losses)), backend.to_numpy(row(self.step_correct))),
                          loss_scaler=self.scaler.state_dict() if self.scaler is not None else None)

    def kept(self, mb: Member) -> str:
        """What survives a failed write: the last checkpoints, and how to continue from them."""
        if self.population is not None:
            if not self.has_checkpoint:
                return "the population could not start, and nothing of it is kept"
            return (f"the last checkpoints (epoch {self.epoch}, step {self.step}) of the population are intact: free "
                    "space or fix the problem, then run the same population again to continue it")
        if not self.has_checkpoint:
            return f"the run in {mb.out_dir} could not start, and nothing of it is kept"
        return (f"the last checkpoint (epoch {self.epoch}, step {self.step}) in {mb.out_dir} is intact: free space or "
                f"fix the problem, then continue with polydl train --resume {mb.out_dir}")

    def write(self, mb: Member, name: str, write) -> None:
        """``write()`` of ``mb``'s run file ``name``, any OSError as one ``RunWriteError`` line."""
        write_or_say(write, mb.out_dir / name, mb.out_dir, self.kept(mb))

    def save(self) -> list:
        """Every training member's checkpoint. Several are written in two phases (every new one
        beside the old first, then all put in place) so that a process killed at any moment
        leaves them at one position (``population`` settles a save cut short). Returns what was
        written: (member, meta, arrays) of each."""
        states = [(mb, *self.state(mb)) for mb in self.active()]
        if len(states) == 1:
            mb, meta, arrays = states[0]
            self.write(mb, ckpt.CHECKPOINT, partial(ckpt.save_checkpoint, mb.out_dir / ckpt.CHECKPOINT, meta, arrays))
            return states
        for mb, meta, arrays in states:
            self.write(mb, ckpt.CHECKPOINT, partial(ckpt.save_checkpoint, mb.out_dir / PENDING, meta, arrays))
        for mb, _, _ in states:
            self.write(mb, ckpt.CHECKPOINT, partial(os.replace, mb.out_dir / PENDING, mb.out_dir / ckpt.CHECKPOINT))
        return states

    def load(self, metas: list, arrays: list, live: int = 0) -> None:
        """Continue from the members' checkpoints (one each, in order): weights, random streams,
        histories and partial epochs, each member's optimizer state, and the clock of member
        ``live`` (where every training member is). The optimizer keeps the hyperparameters it was
        built with (a resumed run may change them)."""
        path = self.members[live].out_dir / ckpt.CHECKPOINT
        try:
            states = []
            for mb, meta, arr in zip(self.members, metas, arrays, strict=True):
                path = mb.out_dir / ckpt.CHECKPOINT
                states.append(self._load_member(mb, meta, arr))
                self.load_monitor(mb, meta)
            path = self.members[live].out_dir / ckpt.CHECKPOINT
            load_optimizer_states(self.optimizer, states, live)
            cfg, meta = self.config, metas[live]
            self.optimizer.set_run(cfg.epochs, self.n_batches, cfg.schedule_unit)  # the run's length may have changed
            if (self.epoch, self.step, self.batch) != (int(meta["epoch"]), int(meta["step"]), int(meta["batch"])):
                raise ValueError("the optimizer's position differs from the run's")
            self.epoch_seconds = float(meta.get("epoch_seconds", 0.0))
            if self.scaler is not None and meta.get("loss_scaler"):
                self.scaler.load_state_dict(meta["loss_scaler"])
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ckpt.CheckpointError(f"the checkpoint {path} is damaged or does not match its configuration "
                                       f"({exc}); start a new run") from None
        for mb, meta, arr in zip(self.members, metas, arrays, strict=True):
            self.settle_best(mb, meta, arr)  # a best epoch whose best.npz a killed process did not write

    def _load_member(self, mb: Member, meta: dict, arrays: dict) -> dict:
        """``mb``'s weights, history, partial epoch and random stream from its checkpoint; returns
        its optimizer state dict."""
        weights = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
        if self.population is None:
            self.model.load_state_dict(weights)
        else:
            for name, t in zip(mb.names, self._tensors(), strict=True):
                t.data[mb.index] = backend.to_device(weights[name], self.dev)
        opt = dict(meta["optimizer"])
        groups = opt.pop("groups")
        opt["state"] = [{k: arrays[f"opt/{i}/{k}"] for k in names} for i, names in enumerate(groups)]
        if "position" not in opt:  # written before optimizers kept their position
            opt["position"] = {"epoch": int(meta["epoch"]) + 1, "batch": int(meta["batch"]), "batches": int(meta["step"])}
        mb.history = list(meta["history"])
        mb.pending_event = meta.get("pending_event")
        losses_, correct = arrays["partial/losses"], arrays["partial/correct"]
        if losses_.shape != (self.n_batches,) or correct.shape != (self.n_batches,):
            raise ValueError("partial epoch of another length")
        row = self._row(mb)
        row(self.step_losses)[...] = backend.to_device(losses_, self.dev)
        row(self.step_correct)[...] = backend.to_device(correct, self.dev)
        if mb.stream is None:
            _random.set_state(meta["rng"])
        else:
            mb.stream = _random.Stream.from_state(meta["rng"])
        return opt
