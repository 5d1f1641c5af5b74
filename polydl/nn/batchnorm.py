"""Batch normalization: z̃ = γ · (z − μ)/√(σ² + ε) + β with the mini-batch μ and σ² in training and
the running averages in evaluation."""
from __future__ import annotations

import numpy as np

from .. import backend, memory
from .. import functional as F
from ..tensor import Parameter, Tensor
from .module import Module


class BatchNorm(Module):
    """z̃ = γ · (z − μ)/√(σ² + ε) + β with μ, σ² (biased) of the mini-batch in training and the
    running averages in evaluation; running = momentum · running + (1 − momentum) · batch.

    ``gamma`` and ``beta`` (shape (num_features,)) are parameters trained like any weight. A
    Linear layer before it needs no bias: subtracting μ cancels b (``cancels_bias``).
    ``population=P``: P members, each with its own γ, β and running averages (shape (P, F)),
    normalising its own batch of a (P, m, F) input."""

    cancels_bias = True
    #: the smallest mini-batch it trains on: the variance of one sample is 0
    min_batch = 2

    def __init__(self, num_features: int, momentum: float = 0.9, eps: float = 1e-5, dtype=None, device=None,
                 population: int | None = None):
        from .layers import check_population

        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"BatchNorm num_features must be a positive integer, not {num_features!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"BatchNorm momentum must be in [0, 1), not {momentum}")
        if not eps > 0:
            raise ValueError(f"BatchNorm eps must be > 0, not {eps}")
        self.num_features = int(num_features)
        self.momentum = float(momentum)
        self.eps = float(eps)
        dtype = np.dtype(dtype) if dtype is not None else backend.default_dtype()
        dev = backend.check_device(device)
        self.population = P = check_population(population)
        shape = (num_features,) if P is None else (P, num_features)
        memory.check_bytes(f"BatchNorm({num_features}): its four vectors of {num_features:,} values",
                           4 * num_features * (P or 1) * dtype.itemsize, "use fewer features")
        self.gamma = Parameter(backend.to_device(np.ones(shape, dtype), dev), members=P)
        self.beta = Parameter(backend.to_device(np.zeros(shape, dtype), dev), members=P)
        self.running_mean = Tensor(backend.to_device(np.zeros(shape, dtype), dev))
        self.running_var = Tensor(backend.to_device(np.ones(shape, dtype), dev))

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                            self.training, self.momentum, self.eps)

    def forward_fused(self, x, following):
        """``following(self(x))`` in one node when ``following`` is a plain ``ReLU`` (what
        ``Sequential`` does with the pair); None when this pair does not fuse."""
        from .layers import ReLU

        if (type(following) is not ReLU or ReLU.forward is not _RELU_FORWARD or "forward" in vars(following)
                or type(self).forward is not _FORWARD or "forward" in vars(self)):
            return None  # a subclass or a patched forward keeps its own behaviour
        return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                            self.training, self.momentum, self.eps, activation="relu")

    def extra_repr(self):
        extra = f", population={self.population}" if self.population else ""
        return f"{self.num_features}, momentum={self.momentum}, eps={self.eps}{extra}"


def _originals():
    from .layers import ReLU

    return BatchNorm.forward, ReLU.forward


_FORWARD, _RELU_FORWARD = _originals()
