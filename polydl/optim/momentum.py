"""Gradient descent with momentum: v ← β v + (1 − β) g;  W ← W − α v.

v is kept as v' = v/(1 − β), which saves a pass over the buffer per step:
v' ← β v' + g;  W ← W − α(1 − β) v'.
"""
from __future__ import annotations

from .. import backend
from .base import Optimizer
from .hyper import Hyper

__all__ = ["Momentum"]


class Momentum(Optimizer):
    """Gradient descent with momentum: v ← β v + (1 − β) g; W ← W − α v."""

    state_names = ("v",)
    scaled_state = {"v": "beta"}  # v' = v/(1 − β): v' ← β v' + g; W ← W − α(1 − β) v'
    numba_kernel = "momentum"
    beta = Hyper(0.0, 1.0, high_open=True)

    def __init__(self, params, lr=0.01, beta=0.9, weight_decay=0.0, weight_decay_all=False):
        super().__init__(params, lr, weight_decay, weight_decay_all)
        self.beta = beta

    def _coefficients(self, lr):
        return {"lr": lr, "beta": self.beta, "step_size": lr * (1 - self.beta)}

    def _update_numpy(self, xp, p, g, state, coef):
        v, tmp = state["v"], state["tmp"]
        v *= coef["beta"]
        v += g
        xp.multiply(v, coef["step_size"], out=tmp)
        p -= tmp

    def _update_numba(self, kernel, p, g, state, coef):
        kernel(p, g, state["v"], coef["beta"], coef["step_size"])

    def _update_cuda(self, group, grad, state, coef):
        kernel = backend.fused_kernel("momentum")
        if kernel is None:
            return False
        kernel(grad, coef["beta"], coef["step_size"], group.data, state["v"])
        return True
