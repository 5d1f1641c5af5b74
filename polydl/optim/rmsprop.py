"""RMSprop: s ← β s + (1 − β) g²;  W ← W − α g / (√s + ε).

s is kept as s' = s/(1 − β): α g/(√s + ε) = (α/√(1 − β)) g/(√s' + ε/√(1 − β)).
:func:`rms_step` is the second-moment step that RMSprop and Adam share.
"""
from __future__ import annotations

from .. import backend
from .base import Optimizer
from .hyper import Hyper, sqrt

__all__ = ["RMSprop", "rms_step"]


def rms_step(xp, p, numerator, g, s, beta, step_size, eps_hat, tmp):
    """s ← β s + g²;  p ← p − step_size · numerator / (√s + eps_hat), in place (the second-moment
    step that RMSprop (numerator g) and Adam (numerator m) share)."""
    s *= beta
    xp.multiply(g, g, out=tmp)
    s += tmp
    xp.sqrt(s, out=tmp)
    tmp += eps_hat
    xp.divide(numerator, tmp, out=tmp)
    tmp *= step_size
    p -= tmp


class RMSprop(Optimizer):
    """s ← β s + (1 − β) g²; W ← W − α g / (√s + ε)."""

    state_names = ("s",)
    scaled_state = {"s": "beta"}  # s' = s/(1 − β): α g/(√s + ε) = (α/√(1 − β)) g/(√s' + ε/√(1 − β))
    numba_kernel = "rmsprop"
    beta = Hyper(0.0, 1.0, high_open=True)
    eps = Hyper(0.0, low_open=True)

    def __init__(self, params, lr=0.001, beta=0.999, eps=1e-8, weight_decay=0.0, weight_decay_all=False):
        super().__init__(params, lr, weight_decay, weight_decay_all)
        self.beta = beta
        self.eps = eps

    def _coefficients(self, lr):
        root = sqrt(1 - self.beta)
        return {"lr": lr, "beta": self.beta, "step_size": lr / root, "eps_hat": self.eps / root}

    def _update_numpy(self, xp, p, g, state, coef):
        rms_step(xp, p, g, g, state["s"], coef["beta"], coef["step_size"], coef["eps_hat"], state["tmp"])

    def _update_numba(self, kernel, p, g, state, coef):
        kernel(p, g, state["s"], coef["beta"], coef["step_size"], coef["eps_hat"])

    def _update_cuda(self, group, grad, state, coef):
        kernel = backend.fused_kernel("rmsprop")
        if kernel is None:
            return False
        kernel(grad, coef["beta"], coef["step_size"], coef["eps_hat"], group.data, state["s"])
        return True
