"""A run's members' checkpoints: what member k's checkpoint holds now (exactly what the same
model trained alone would save), when they are written, writing them (several in two phases, so
that a process killed at any moment leaves them at one position), and continuing from them.

An epoch's checkpoints are written when ``checkpoint_interval`` seconds have passed since the
last (0: every epoch), and always at the end of the run, on Ctrl-C/SIGTERM, before a reporter that
may stop the run or members sees the epoch (``Reporter.may_stop``), and when a member stops
early. An epoch whose checkpoints are skipped is held back in memory (every training member's
state, all finite: the checks come first), and written where the run's last good checkpoint is
needed: when a member diverges, or the run ends with an error. A process killed after a skipped
checkpoint continues from an older one and, since training is a function of the checkpoint,
ends with the same files (``metrics.jsonl`` is rewritten from the checkpoint's history). The
``best.npz`` of a best epoch that was skipped is written with the next checkpoints: staged
beside it (:data:`PENDING_BEST`) and put in place after them, or dropped on resume where the
checkpoint is older than it (:meth:`MemberCheckpoints.load`).

Several files are written together (:meth:`MemberCheckpoints.write_files`): each without an
fsync, then all fsynced at once (``checkpoint.sync``: a few threads, so that the file system
commits them together rather than one journal commit each), then moved in place (the
checkpoints first), then each directory fsynced once.

:class:`MemberCheckpoints` is part of :class:`~polydl.training.trainer.Trainer`; it uses the
trainer's members, model, optimizer, data, reporter, step arrays and counters."""
from __future__ import annotations

import copy
import os
import time
from functools import partial

import numpy as np

from .. import backend, fsafe
from .. import random as _random
from . import checkpoint as ckpt
from .errors import RunWriteError, TrainingDiverged, write_or_say
from .members import Member, checkpoint, stopped_outcomes
from .reporting import PopulationReporter

__all__ = ["MemberCheckpoints", "PENDING", "PENDING_BEST", "load_optimizer_states"]

#: a member's new checkpoint, staged beside the old one while several are written
PENDING = ckpt.STAGED_PREFIX + ckpt.CHECKPOINT
#: a member's new ``best.npz``, staged until the checkpoint that names its epoch is in place
PENDING_BEST = ckpt.STAGED_PREFIX + ckpt.BEST


def load_optimizer_states(optimizer, states: list, clock_from: int) -> None:
    """Each member's optimizer state dict into its rows (a model alone: its one state dict), the
    clock (updates, position) and α of the last step from member ``clock_from``'s; the optimizer
    keeps its own hyperparameters."""
    optimizer.load_member_state_dicts(states, clock_from=clock_from)


def _raise(exc):
    raise exc


class MemberCheckpoints:
    """Checkpoints of a trainer's members (a part of ``Trainer``)."""

    def start_checkpoints(self) -> None:
        """Nothing held back yet; the interval counts from now. ``held``: (member, parts) of every
        training member at the last epoch's end where its checkpoints were skipped (``parts``:
        :meth:`_parts`); ``held_best``: member index → the parts of a best epoch whose
        ``best.npz`` is not written; ``saved_at``: (epoch, step) of the checkpoints on disk."""
        self.held, self.held_best = None, {}
        self.last_checkpoint = time.monotonic()
        self.saved_at = (self.epoch, self.step)

    def state(self, mb: Member) -> tuple[dict, dict]:
        """(meta, arrays) of ``mb``'s checkpoint now: what the same model trained alone would save."""
        return self._assemble(self._parts(mb))

    def _parts(self, mb: Member, tensors: list | None = None) -> dict:
        """What of ``mb``'s checkpoint changes as it trains, copied now (its parameters and buffers
        from ``tensors``, a copy of the model's, where given); the rest is added by :meth:`_assemble`."""
        P, row = self.population, self._row(mb)
        if P is None:
            opt, rng, pop = self.optimizer.state_dict(), _random.get_state(), None
        else:
            opt, rng = self.optimizer.member_state_dict(mb.index), mb.stream.get_state()
            pop = {"size": P, "index": mb.index, "dirs": [str(m.out_dir) for m in self.members],
                   "stopped": stopped_outcomes(self.members)}
        live = tensors is None  # views of the model's own tensors: copied when assembled
        arrays = [t.data for t in self._tensors()] if live else tensors
        model = {name: row(a) for name, a in zip(mb.names, arrays, strict=True)}
        steps = tuple(np.array(backend.to_numpy(row(a)), copy=True) for a in (self.step_losses, self.step_correct))
        member = Member(mb.index, mb.config, mb.out_dir, mb.names, history=list(mb.history),
                        pending_event=mb.pending_event, monitor=copy.deepcopy(mb.monitor))
        return {"member": member, "model": model, "live": live, "position": (self.epoch, self.step, self.batch),
                "epoch_seconds": self.epoch_seconds, "rng": rng, "optimizer": opt, "population": pop,
                "partial": steps, "loss_scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def _assemble(self, parts: dict) -> tuple[dict, dict]:
        """(meta, arrays) of a member's checkpoint from its :meth:`_parts`."""
        parts = dict(parts)
        member, live = parts.pop("member"), parts.pop("live")
        parts["model"] = {k: np.array(backend.to_numpy(v), copy=True) if live else np.asarray(backend.to_numpy(v))
                          for k, v in parts["model"].items()}
        return checkpoint(member, data=self.data, outputs=self.outputs, **parts)

    def kept(self, mb: Member) -> str:
        """What survives a failed write: the last checkpoints, and how to continue from them."""
        epoch, step = self.saved_at
        if self.population is not None:
            if not self.has_checkpoint:
                return "the population could not start, and nothing of it is kept"
            return (f"the last checkpoints (epoch {epoch}, step {step}) of the population are intact: free "
                    "space or fix the problem, then run the same population again to continue it")
        if not self.has_checkpoint:
            return f"the run in {mb.out_dir} could not start, and nothing of it is kept"
        return (f"the last checkpoint (epoch {epoch}, step {step}) in {mb.out_dir} is intact: free space or "
                f"fix the problem, then continue with polydl train --resume {mb.out_dir}")

    def write(self, mb: Member, name: str, write):
        """``write()`` of ``mb``'s run file ``name``, any OSError as one ``RunWriteError`` line
        (what is kept is said only then)."""
        try:
            return write()
        except OSError as exc:
            return write_or_say(partial(_raise, exc), mb.out_dir / name, mb.out_dir, self.kept(mb))

    # ------------------------------------------------------------------ when
    def may_stop(self) -> bool:
        """Whether the reporter may stop the run, or members, after an epoch (a search that
        prunes): as it says (``may_stop``), else where a population's reporter has its own
        ``stop_members``."""
        said = getattr(self.reporter, "may_stop", None)
        if said is not None:
            return bool(said)
        ask = getattr(type(self.reporter), "stop_members", None)
        return self.population is not None and ask is not None and ask is not PopulationReporter.stop_members

    def checkpoint_epoch(self, improved: list, must: bool, tensors: list | None = None) -> tuple[list, list]:
        """The checkpoints of the epoch that just ended where ``must`` or ``checkpoint_interval``
        seconds have passed since the last (0: every epoch): (the states written, the members of
        ``improved`` whose ``best.npz`` is a copy of theirs). Otherwise every training member's
        state is held back (``improved`` members' as their best epoch's; ``tensors``: a copy of the
        model's parameters and buffers now, where the caller has one) and ([], [])."""
        interval = self.config.checkpoint_interval
        if must or interval <= 0 or time.monotonic() - self.last_checkpoint >= interval:
            for mb in improved:
                self.held_best.pop(mb.index, None)
            return self.save(), improved
        better, tensors = {mb.index for mb in improved}, self._snapshot() if tensors is None else tensors
        self.held = [(mb, self._parts(mb, tensors)) for mb in self.active()]
        for mb, parts in self.held:
            if mb.index in better:
                self.held_best[mb.index] = parts
        return [], []

    def keep_last_good(self, training: list | None = None) -> None:
        """Write the checkpoints held back (the last epoch's end): where a member of ``training``
        has diverged since (its last good checkpoint is that epoch's), or (None) always."""
        if self.held is None:
            return
        if training is not None and not any(isinstance(mb.outcome, TrainingDiverged) for mb in training):
            return
        self._write([(mb, *self._assemble(parts)) for mb, parts in self.held])

    def after_failure(self) -> None:
        """The run ends with an error: the checkpoints held back are written if they can be."""
        try:
            self.keep_last_good()
        except (RunWriteError, OSError):
            pass

    # ------------------------------------------------------------------ writing
    def save(self, extra=()) -> list:
        """Every training member's checkpoint now (with ``extra`` files, as :meth:`write_files`
        takes them). Several are written in two phases (every new one staged beside the old first,
        then all put in place) so that a process killed at any moment leaves them at one position
        (``population`` settles a save cut short). Returns what was written: (member, meta,
        arrays) of each."""
        states = [(mb, *self.state(mb)) for mb in self.active()]
        self._write(states, extra)
        return states

    def _write(self, states: list, extra=()) -> None:
        """The checkpoints ``states`` ((member, meta, arrays) each), the ``best.npz`` held back of
        the members whose checkpoint names its epoch, and ``extra`` files, together
        (:meth:`write_files`); a model alone's checkpoint by itself is one atomic write."""
        files = []  # a best.npz is staged before the checkpoints that name it, so a save is complete with them
        for mb, meta, _ in states:
            best = self.held_best.pop(mb.index, None)
            if best is not None and best["position"][0] == (meta.get("monitor") or {}).get("best_epoch"):
                files.append((mb, ckpt.BEST, ckpt.checkpoint_bytes(*self._assemble(best)), mb.out_dir / PENDING_BEST))
        if len(states) == 1 and not files and not extra:  # a model alone's: one atomic write
            mb, meta, arrays = states[0]
            self.write(mb, ckpt.CHECKPOINT, partial(ckpt.save_checkpoint, mb.out_dir / ckpt.CHECKPOINT, meta, arrays))
        else:
            staged = len(states) > 1  # several: in two phases
            files += [(mb, ckpt.CHECKPOINT, ckpt.checkpoint_bytes(meta, arrays),
                       mb.out_dir / PENDING if staged else None) for mb, meta, arrays in states]
            self.write_files(files + list(extra))
        self.held = None
        self.last_checkpoint = time.monotonic()
        if states:
            self.saved_at = (int(states[0][1]["epoch"]), int(states[0][1]["step"]))

    def write_files(self, files: list) -> None:
        """Write ``files`` ((member, name, data, staged) each: ``data`` becomes ``out_dir/name``)
        together: each to a temporary file without an fsync (moved to ``staged`` at once where it
        is given), in order; then all fsynced at once; then moved in place, the checkpoints first,
        the rest in order; then each directory fsynced once. A process killed at any moment leaves
        every file old or new, and every staged one complete or absent; on an error nothing staged
        is left and one ``RunWriteError`` names the file."""
        ready, fds = [], []   # (member, name, where it is now); (descriptor, where it is now)
        try:
            for mb, name, data, staged in files:
                fd, tmp = self.write(mb, name, partial(ckpt.write_temporary, mb.out_dir / name, data))
                ready.append((mb, name, tmp))
                fds.append((fd, tmp))
                if staged is not None:
                    self.write(mb, name, partial(ckpt.place, tmp, staged))
                    ready[-1], fds[-1] = (mb, name, str(staged)), (fd, str(staged))
            dirs = {mb.out_dir for mb, _, _, staged in files if staged is not None}
            synced, fds = fds, []
            try:
                ckpt.sync(synced, dirs)
            except OSError as exc:
                mb, name, _ = next((r for r in ready if r[2] == exc.filename), ready[0])
                self.write(mb, name, partial(_raise, exc))
        except Exception:
            for mb, _, where in ready:  # nothing is left staged
                try:
                    fsafe.unlink_inside(where, mb.out_dir)
                except OSError:
                    pass
            raise
        finally:
            for fd, _ in fds:
                os.close(fd)
        for mb, name, where in sorted(ready, key=lambda r: r[1] != ckpt.CHECKPOINT):
            self.write(mb, name, partial(ckpt.place, where, mb.out_dir / name))
        ckpt.sync(directories=[mb.out_dir for mb, _, _ in ready])

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
            self._settle_staged(mb, meta)
            self.settle_best(mb, meta, arr)  # a best epoch whose best.npz a killed process did not write
        self.saved_at, self.last_checkpoint = (self.epoch, self.step), time.monotonic()

    def _settle_staged(self, mb: Member, meta: dict) -> None:
        """Files a killed process left staged beside ``mb``'s: its ``best.npz`` is put in place where
        the checkpoint names its epoch as the best, else removed; a checkpoint staged beside a model
        alone's (never put in place) is removed."""
        for name in (PENDING, PENDING_BEST):
            staged = mb.out_dir / name
            if not (staged.exists() or staged.is_symlink()):
                continue
            try:
                epoch = int(ckpt.load_checkpoint(staged)[0]["epoch"]) if name == PENDING_BEST else None
            except (ckpt.CheckpointError, KeyError, TypeError, ValueError):
                epoch = None
            if epoch is not None and epoch == (meta.get("monitor") or {}).get("best_epoch"):
                self.write(mb, ckpt.BEST, partial(ckpt.place, staged, mb.out_dir / ckpt.BEST))
            else:
                self.write(mb, name, partial(fsafe.unlink_inside, staged, mb.out_dir))

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
