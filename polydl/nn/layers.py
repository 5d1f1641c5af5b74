"""Linear layers, activations and dropout."""
from __future__ import annotations

import numpy as np

from .. import backend, memory
from .. import functional as F
from ..tensor import Parameter
from . import init as _init
from .module import Module


def check_weight_size(fan_in: int, fan_out: int, dtype=None) -> None:
    """Refuse a weight of fan_in × fan_out values that this machine cannot hold while it is drawn
    (float64 normal draws, then the weight in ``dtype``), before drawing anything."""
    itemsize = np.dtype(dtype if dtype is not None else backend.default_dtype()).itemsize
    memory.check_bytes(f"Linear({fan_in}, {fan_out}): drawing its weight of {fan_in:,} × {fan_out:,} values",
                       fan_in * fan_out * (8 + itemsize), "use fewer units per layer (e.g. --hidden 128,64)")


class Linear(Module):
    """z = x W + b with ``weight`` of shape (in_features, out_features) and ``bias`` (out_features,).

    ``init`` is ``"he"`` (ReLU nets, the default) or ``"xavier"`` (tanh/sigmoid nets)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "he",
                 dtype=None, device=None):
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Linear {name} must be a positive integer, not {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = np.dtype(dtype) if dtype is not None else backend.default_dtype()
        dev = backend.check_device(device)
        check_weight_size(self.in_features, self.out_features, dtype)
        w = _init.get(init)(self.in_features, self.out_features, dtype)
        self.weight = Parameter(backend.to_device(w, dev))
        self.bias = Parameter(backend.to_device(np.zeros(self.out_features, dtype), dev)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Softmax(Module):
    def __init__(self, axis: int = -1):
        self.axis = axis

    def forward(self, x):
        return F.softmax(x, self.axis)


class Identity(Module):
    def forward(self, x):
        return x


class Dropout(Module):
    """Inverted dropout: zero each unit with probability p, scale the rest by 1/(1 − p);
    the identity in eval mode."""

    def __init__(self, p: float = 0.5):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"Dropout p must be in [0, 1), not {p!r}")
        self.p = float(p)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid,
               "identity": Identity}
