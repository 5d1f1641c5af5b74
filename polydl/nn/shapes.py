"""Shape layers: ``Flatten``, from images to the rows a Linear layer takes."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class Flatten(Module):
    """The axes from ``start_dim`` on merged into one: (N, C, H, W) → (N, C·H·W) by default."""

    def __init__(self, start_dim: int = 1):
        if isinstance(start_dim, bool) or not isinstance(start_dim, int):
            raise ValueError(f"Flatten start_dim must be an integer, not {start_dim!r}")
        self.start_dim = start_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}" if self.start_dim != 1 else ""
