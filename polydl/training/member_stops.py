"""How a run's members stop: a member whose loss (at the run's first step, before any update,
naming what gave it), weights or validation loss become NaN or infinite, one a population's
reporter asks to stop, and a loss that returns something else than one value per member. A
model trained alone raises the error that stops it; a population member stops alone, its
parameters frozen at their last good values while the others train on.

:class:`MemberStops` is part of :class:`~polydl.training.trainer.Trainer`; it uses the trainer's
members, model, optimizer, reporter, step arrays and counters."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor
from .divergence import diverged, finite, first_step_culprit, returned
from .errors import ComponentError, TrainingInterrupted
from .members import Member
from .results import MemberStopped

__all__ = ["MemberStops"]


class MemberStops:
    """Stopping a trainer's members, and the errors that end a run (a part of ``Trainer``)."""

    def retire(self, mb: Member, outcome) -> None:
        """Mark ``mb`` as stopped before this run (a population continued after it stopped)."""
        mb.outcome = outcome
        self.optimizer.freeze(mb.index)

    def _stop(self, mb: Member, outcome) -> None:
        """``mb`` stops with ``outcome``: a model alone raises it; a population member's
        parameters go back to their last good values and stay there while the others train on."""
        if self.population is None:
            raise outcome
        mb.outcome = outcome
        if self.good is not None and self.active():
            for t, saved in zip(self._tensors(), self.good, strict=True):
                t.data[mb.index] = saved[mb.index]
        self.optimizer.freeze(mb.index)
        self.reporter.member_end(mb.index, outcome)

    def _stop_unusable(self, epoch: int, first_step: int, done: int) -> None:
        """Members whose loss (in the first ``done`` mini-batches of ``epoch``), then whose weights
        (and buffers) are not finite stop: a checkpoint is written only while they are."""
        vals = backend.to_numpy(self.step_losses).reshape(len(self.members), -1)
        for mb in self.active():
            bad = np.flatnonzero(~np.isfinite(vals[mb.index, :done]))
            if bad.size:
                self._stop(mb, diverged(float(vals[mb.index, bad[0]]), epoch, first_step, int(bad[0]), self.n_batches,
                                        self._lr(mb), mb.out_dir))
        ok = np.atleast_1d(finite([t.data for t in self._tensors()], self.population))
        for mb in self.active():
            if not ok[mb.index]:
                self._stop(mb, diverged("NaN or infinite", epoch, first_step, done - 1, self.n_batches, self._lr(mb),
                                        mb.out_dir, what="weights"))

    def _stop_bad_validation(self, epoch: int, first_step: int, val_loss: list) -> None:
        """Members whose validation loss is not finite stop (their checkpoint of the epoch before stays)."""
        for mb in self.active():
            value = val_loss[mb.index]
            if value is not None and not np.isfinite(value):
                self._stop(mb, diverged(value, epoch, first_step, self.n_batches - 1, self.n_batches, self._lr(mb),
                                        mb.out_dir, what="validation loss"))

    def _stop_requested(self, epoch: int) -> None:
        """Members a population's reporter asks to stop after ``epoch`` keep that epoch's checkpoint."""
        ask = getattr(self.reporter, "stop_members", None) if self.population is not None else None
        for k in sorted(ask() if ask is not None else ()):
            if self.members[k].outcome is None:
                self._stop(self.members[k], MemberStopped(self.members[k].out_dir, epoch))

    def _first_step(self, loss, scores, epoch: int) -> None:
        """At the run's first step, before any update, a member whose loss is not finite stops,
        naming what gave it (one read-back, once per run)."""
        values = backend.to_numpy(loss.data).reshape(-1)
        if np.isfinite(values).all():
            return
        ok = np.atleast_1d(finite([scores.data], self.population))
        for mb in self.active():
            if not np.isfinite(values[mb.index]):
                culprit = first_step_culprit(mb.config, bool(ok[mb.index]))
                self._stop(mb, diverged(float(values[mb.index]), epoch, 0, 0, self.n_batches, self._lr(mb),
                                        mb.out_dir, culprit=culprit))

    # ------------------------------------------------------------------ errors
    def _interrupted(self, epoch: int) -> TrainingInterrupted:
        out = self.members[0].out_dir
        msg = (f"interrupted at epoch {epoch}, step {self.step}; the checkpoint is saved in {out}: continue with "
               f"polydl train --resume {out}") if self.population is None else \
            (f"interrupted at epoch {epoch}, step {self.step}; the population's checkpoints are saved: run the same "
             "population again to continue it")
        return TrainingInterrupted(msg, epoch, self.step, out, self.stop.signum or 2)

    def _component_error(self, kind: str, entry, happened: str) -> ComponentError:
        """One line: the component ``entry`` (a ``kind``: loss, normalizer, ...) did ``happened``
        at the step under way; the last checkpoints are kept."""
        from .provenance import describe, plugin_fix

        epoch, out = self.optimizer.epoch, self.members[0].out_dir
        head = f"training stopped at epoch {epoch}, step {self.step + 1}: {describe(kind, entry)} {happened}. "
        if self.population is not None:
            tail = (f"The population's last checkpoints (epoch {self.epoch}, step {self.step}) are kept: "
                    f"{plugin_fix(entry)} and run the same population again, or start a new one with another {kind}")
            return ComponentError(head + tail, epoch, self.step + 1, out)
        other = "choose another schedule and continue the same way" if kind == "schedule" else \
            f"start a new run with another {kind}"  # of the components, only the schedule may change on resume
        tail = (f"The last checkpoint (epoch {self.epoch}, step {self.step}) is kept in {out}: {plugin_fix(entry)} and "
                f"continue with polydl train --resume {out}, or {other}")
        return ComponentError(head + tail, epoch, self.step + 1, out)

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

    def _bad_loss(self, loss) -> ComponentError:
        """The loss returned something else than a Tensor of one value (one per member of a
        population) with a gradient path to the scores: one line naming it."""
        from .provenance import COMPONENTS

        P = self.population
        plain = isinstance(loss, Tensor) and (loss.data.size == 1 if P is None else loss.shape == (P,))
        what = returned(loss) + (" with no gradient path to the scores" if plain else "")
        want = (", not a scalar Tensor (one value for the mini-batch, built from the scores)" if P is None else
                f" for a population of {P}, not a Tensor of shape ({P},) (one value per member, built from the scores)")
        return self._component_error("loss", COMPONENTS["loss"].entry(self.config.loss), f"returned {what}{want}")

    def _check_loss(self, loss, scores, epoch: int) -> None:
        """The loss of a model alone's mini-batch is a scalar Tensor with a gradient path to the
        scores; at the run's first step, see :meth:`_first_step`."""
        if not isinstance(loss, Tensor) or loss.data.size != 1 or not loss.requires_grad:
            raise self._bad_loss(loss)
        if self.optimizer.batches == 0:
            self._first_step(loss, scores, epoch)

    def _check_losses(self, loss, scores, epoch: int) -> None:
        """The loss of a population's mini-batch is a Tensor of one value per member, shape (P,),
        with a gradient path to the scores; at the run's first step, see :meth:`_first_step`."""
        if not isinstance(loss, Tensor) or loss.shape != (self.population,) or not loss.requires_grad:
            raise self._bad_loss(loss)
        loss._per_member = True  # backward() seeds each member's gradient with 1
        if self.optimizer.batches == 0:
            self._first_step(loss, scores, epoch)

    def _snapshot(self) -> list:
        """Every member's parameters and buffers now (their last good values at an epoch's end)."""
        return [t.data.copy() for t in self._tensors()]
