"""Layer normalization, composed from the elementwise ops and reductions."""
from __future__ import annotations

from ._common import _tensor
from .elementwise import sqrt
from .reductions import mean

__all__ = ["layer_norm"]


def layer_norm(x, gamma, beta, eps=1e-5):
    """Normalization over the feature axis (−1) of each sample, then γ·x̂ + β."""
    x = _tensor(x)
    mu = mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = mean(xc * xc, axis=-1, keepdims=True)
    return xc / sqrt(var + eps) * gamma + beta
