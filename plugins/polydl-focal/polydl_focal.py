"""Focal loss, a loss function for polydl (Lin et al., "Focal Loss for Dense Object Detection").

With p = softmax(scores) and integer labels y, over a batch of m samples:

    J = −(1/m) Σᵢ α_{yᵢ} · (1 − p_{i,yᵢ})^γ · log p_{i,yᵢ}

The factor (1 − p)^γ turns the loss down on samples the model already gets right, so training
concentrates on the hard ones. γ = 0 (and no α) is exactly softmax cross-entropy. ``alpha`` is
an optional weight per class. Targets may also be one-hot or probability rows y of the scores'
shape: J = −(1/m) Σᵢ Σⱼ αⱼ yᵢⱼ (1 − pᵢⱼ)^γ log pᵢⱼ.

It is written with polydl's operations (log_softmax, exp, pow, indexing), so autodiff gives the
gradient and it runs on the CPU and on CUDA without importing NumPy or CuPy.

    polydl train --loss focal
"""
from __future__ import annotations

import math
import numbers

import polydl
from polydl import functional as F
from polydl.losses import Loss

__all__ = ["FocalLoss", "polydl_register_losses"]
__version__ = "0.1.0"

_TINY = 1e-12  # (1 − p) is kept above this so that (1 − p)^γ has a finite gradient for γ < 1


class FocalLoss(Loss):
    """``FocalLoss(gamma=2.0, alpha=None)(scores, targets)`` → scalar Tensor.

    ``scores``: (batch, classes) Tensor of logits; ``targets``: integer labels (batch,) or rows
    (batch, classes) of class probabilities, as a Tensor or an array on the scores' device."""

    name = "focal"

    def __init__(self, gamma: float = 2.0, alpha=None):
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not math.isfinite(gamma) or gamma < 0:
            raise ValueError(f"focal loss gamma must be a finite number >= 0, not {gamma!r}")
        self.gamma = float(gamma)
        if alpha is not None:
            if isinstance(alpha, (str, bytes)) or not hasattr(alpha, "__len__") or len(alpha) == 0:
                raise ValueError(f"focal loss alpha must be None or a sequence of one weight per class, "
                                 f"not {alpha!r}")
            alpha = [float(a) if isinstance(a, numbers.Real) and not isinstance(a, bool) else a for a in alpha]
            if not all(isinstance(a, float) and math.isfinite(a) and a >= 0 for a in alpha) or not any(alpha):
                raise ValueError(f"focal loss alpha weights must be finite numbers >= 0, not all 0: {alpha!r}")
        self.alpha = alpha

    def __call__(self, scores, targets):
        z = scores if isinstance(scores, polydl.Tensor) else polydl.tensor(scores)
        if z.ndim != 2 or z.shape[1] < 2:
            raise ValueError(f"focal loss needs scores of shape (batch, classes) with at least 2 classes, "
                             f"not {tuple(z.shape)}")
        m, classes = z.shape
        t = polydl.tensor(targets, device=z.device)  # the labels' array on the scores' device
        if self.alpha is not None and len(self.alpha) != classes:
            raise ValueError(f"focal loss alpha has {len(self.alpha)} weights but the scores have {classes} classes")
        log_p = F.log_softmax(z, axis=-1)
        if t.dtype.kind in "iu":  # integer class labels: pick log p of each sample's class
            labels = t.data
            if tuple(labels.shape) != (m,):
                raise ValueError(f"labels of shape {tuple(labels.shape)} do not match scores of shape {(m, classes)}: "
                                 "expected one integer label per row")
            if m and (int(labels.min()) < 0 or int(labels.max()) >= classes):
                raise ValueError(f"labels must be in [0, {classes}), got values from {int(labels.min())} "
                                 f"to {int(labels.max())}")
            log_pt = log_p[z.xp.arange(m), labels]                      # (m,)
            weight = None
            if self.alpha is not None:
                weight = polydl.tensor(self.alpha, dtype=z.dtype, device=z.device)[labels]
        else:  # one-hot or probability rows
            if tuple(t.shape) != (m, classes):
                raise ValueError(f"targets of shape {tuple(t.shape)} do not match scores of shape {(m, classes)}")
            log_pt = log_p                                               # (m, classes), weighted by t below
            weight = polydl.tensor(t.data.astype(z.dtype, copy=False))
            if self.alpha is not None:
                weight = weight * polydl.tensor(self.alpha, dtype=z.dtype, device=z.device)
        term = log_pt
        if self.gamma != 0:
            one_minus_p = F.clip(1.0 - F.exp(log_pt), lo=_TINY)
            term = term * one_minus_p ** self.gamma
        if weight is not None:
            term = term * weight
        return -term.sum() / m

    def __repr__(self):
        alpha = "" if self.alpha is None else f", alpha={self.alpha}"
        return f"focal(gamma={self.gamma}{alpha})"


@polydl.hookimpl
def polydl_register_losses(register):
    # The class is the factory: FocalLoss(**params) is the loss(scores, targets).
    register("focal", FocalLoss)
