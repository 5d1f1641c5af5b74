"""Adam with bias correction:

m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;
m̂ = m/(1 − β1ᵗ);  v̂ = v/(1 − β2ᵗ);  W ← W − α m̂ / (√v̂ + ε)

m and v are kept as m' = m/(1 − β1) and v' = v/(1 − β2); with bc = 1 − βᵗ and
r = √((1 − β2)/bc2): α m̂/(√v̂ + ε) = [α (1 − β1)/(bc1 r)] · m'/(√v' + ε/r).
"""
from __future__ import annotations

import math

from .. import backend
from .base import Optimizer
from .hyper import Hyper, power, sqrt
from .rmsprop import rms_step

__all__ = ["Adam"]


class Adam(Optimizer):
    """Adam with bias correction (β1 = 0.9, β2 = 0.999, ε = 1e-8 by default)."""

    state_names = ("m", "v")
    scaled_state = {"m": "beta1", "v": "beta2"}  # m' = m/(1 − β1), v' = v/(1 − β2)
    numba_kernel = "adam"
    beta1 = Hyper(0.0, 1.0, high_open=True)
    beta2 = Hyper(0.0, 1.0, high_open=True)
    eps = Hyper(0.0, low_open=True)

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 weight_decay_all=False):
        super().__init__(params, lr, weight_decay, weight_decay_all)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps

    def _coefficients(self, lr):
        t, b1, b2 = self.step_count, self.beta1, self.beta2
        if type(b1) is float and type(b2) is float:  # the scalar fast path, without the calls
            bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
            r = math.sqrt((1.0 - b2) / bc2)
        else:
            bc1, bc2 = 1.0 - power(b1, t), 1.0 - power(b2, t)
            r = sqrt((1.0 - b2) / bc2)
        return {"lr": lr, "beta1": self.beta1, "beta2": self.beta2,
                "step_size": lr * (1.0 - self.beta1) / (bc1 * r), "eps_hat": self.eps / r}

    def _update_numpy(self, xp, p, g, state, coef):
        m = state["m"]
        m *= coef["beta1"]
        m += g
        rms_step(xp, p, m, g, state["v"], coef["beta2"], coef["step_size"], coef["eps_hat"], state["tmp"])

    def _update_numba(self, kernel, p, g, state, coef):
        kernel(p, g, state["m"], state["v"], coef["beta1"], coef["beta2"], coef["step_size"], coef["eps_hat"])

    def _update_cuda(self, group, grad, state, coef):
        kernel = backend.fused_kernel("adam")
        if kernel is None:
            return False
        kernel(grad, coef["beta1"], coef["beta2"], coef["step_size"], coef["eps_hat"],
               group.data, state["m"], state["v"])
        return True
