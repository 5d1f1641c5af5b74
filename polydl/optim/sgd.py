"""Mini-batch gradient descent: W ← W − α g."""
from __future__ import annotations

from .. import backend
from .base import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Mini-batch gradient descent: W ← W − α g."""

    numba_kernel = "sgd"

    def __init__(self, params, lr=0.01, weight_decay=0.0, weight_decay_all=False):
        super().__init__(params, lr, weight_decay, weight_decay_all)

    def _update_numpy(self, xp, p, g, state, coef):
        tmp = state["tmp"]
        xp.multiply(g, coef["lr"], out=tmp)
        p -= tmp

    def _update_numba(self, kernel, p, g, state, coef):
        kernel(p, g, coef["lr"])

    def _update_cuda(self, group, grad, state, coef):
        kernel = backend.fused_kernel("sgd")
        if kernel is None:
            return False
        kernel(grad, coef["lr"], group.data)
        return True
