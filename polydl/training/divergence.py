"""Telling a run that went wrong: values that are not finite (:func:`finite`), the message of a
run whose loss, weights or validation loss became NaN or infinite (:func:`diverged`), what to
blame at the first step (:func:`first_step_culprit`), and what a component returned
(:func:`returned`)."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor
from .errors import TrainingDiverged

__all__ = ["diverged", "first_step_culprit", "finite", "returned"]


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
