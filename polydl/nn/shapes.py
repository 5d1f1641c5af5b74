"""Shape layers: ``Flatten``, from images to the rows a Linear layer takes, and ``Unflatten``,
from rows back to images."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .module import Module


class Flatten(Module):
    """The axes from ``start_dim`` on merged into one: (N, C, H, W) → (N, C·H·W) by default."""

    def __init__(self, start_dim: int = 1):
        if isinstance(start_dim, bool) or not isinstance(start_dim, int):
            raise ValueError(f"Flatten start_dim must be an integer, not {start_dim!r}")
        self.start_dim = start_dim

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.flatten(x, self.start_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}" if self.start_dim != 1 else ""


class Unflatten(Module):
    """Rows (N, F) viewed as samples of ``shape``: (N, F) → (N, *shape), F = prod(shape); an
    input already of shape (N, *shape) passes unchanged. The gradient is reshaped back."""

    def __init__(self, shape):
        dims = (shape,) if isinstance(shape, int) and not isinstance(shape, bool) else tuple(shape)
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
            raise ValueError(f"Unflatten shape must be positive sizes such as (1, 28, 28), not {shape!r}")
        self.shape = dims

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        n = x.shape[0]
        per = int(np.prod(x.shape[1:], dtype=np.int64))
        if per != int(np.prod(self.shape, dtype=np.int64)):
            raise ValueError(f"Unflatten to {self.shape} needs {int(np.prod(self.shape)):,} values per sample, "
                             f"the input has {per:,} (shape {tuple(x.shape[1:])})")
        return F.reshape(x, (n, *self.shape))

    def extra_repr(self):
        return f"shape={self.shape}"
