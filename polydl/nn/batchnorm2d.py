"""Batch normalization per channel of NCHW images: ``BatchNorm2d``."""
from __future__ import annotations

from .. import functional as F
from .batchnorm import BatchNorm


class BatchNorm2d(BatchNorm):
    """The notes' batch norm per channel (``polydl.functional.batch_norm2d``): channel c of
    images (N, C, H, W) normalized over its N·H·W values, y = γ_c (x − μ_c)/√(σ²_c + ε) + β_c, with
    μ and σ² (biased) of the mini-batch in training and the running averages in evaluation
    (``model.eval()``); running = momentum · running + (1 − momentum) · batch.

    ``gamma``, ``beta`` and the running averages have shape (num_features,) = (channels,). A
    Conv2d before it needs no bias: subtracting μ cancels b (``cancels_bias``). Followed by a plain
    ``ReLU`` in a ``Sequential``, the two run as one node."""

    def __init__(self, num_features: int, momentum: float = 0.9, eps: float = 1e-5, dtype=None, device=None):
        super().__init__(num_features, momentum, eps, dtype=dtype, device=device)

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.batch_norm2d(x, self.gamma, self.beta, self.running_mean, self.running_var,
                              self.training, self.momentum, self.eps)

    def forward_fused(self, x, following):
        """``following(self(x))`` in one node when ``following`` is a plain ``ReLU``; None otherwise."""
        from .layers import ReLU

        if (type(following) is not ReLU or ReLU.forward is not _RELU_FORWARD or "forward" in vars(following)
                or type(self).forward is not _FORWARD or "forward" in vars(self)):
            return None  # a subclass or a patched forward keeps its own behaviour
        return F.batch_norm2d(x, self.gamma, self.beta, self.running_mean, self.running_var,
                              self.training, self.momentum, self.eps, activation="relu")

    def extra_repr(self):
        return f"{self.num_features}, momentum={self.momentum}, eps={self.eps}"


def _originals():
    from .layers import ReLU

    return BatchNorm2d.forward, ReLU.forward


_FORWARD, _RELU_FORWARD = _originals()
