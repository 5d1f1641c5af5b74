"""Linear layers, activations and dropout."""
from __future__ import annotations

import numpy as np

from .. import backend, memory
from .. import functional as F
from ..tensor import Parameter
from . import init as _init
from .module import Module


def check_weight_size(fan_in: int, fan_out: int, dtype=None, population: int | None = None) -> None:
    """Refuse a weight of fan_in × fan_out values (per member of a population) that this machine
    cannot hold while it is drawn (float64 normal draws, then the weight in ``dtype``), before
    drawing anything."""
    itemsize = np.dtype(dtype if dtype is not None else backend.default_dtype()).itemsize
    copies = population or 1
    what = f"{copies:,} members' weights" if population else "its weight"
    memory.check_bytes(f"Linear({fan_in}, {fan_out}): drawing {what} of {fan_in:,} × {fan_out:,} values",
                       copies * fan_in * fan_out * (8 + itemsize), "use fewer units per layer (e.g. --hidden 128,64)"
                       + (" or fewer members" if population else ""))


def check_population(population) -> int | None:
    """``population`` as a positive int, or None for an ordinary layer."""
    if population is None:
        return None
    if isinstance(population, bool) or not isinstance(population, (int, np.integer)) or population < 1:
        raise ValueError(f"population must be a positive number of members, not {population!r}")
    return int(population)


class Linear(Module):
    """z = x W + b with ``weight`` of shape (in_features, out_features) and ``bias`` (out_features,).

    ``init`` is ``"he"`` (ReLU nets, the default) or ``"xavier"`` (tanh/sigmoid nets).
    ``population=P``: P members, ``weight`` (P, in, out) and ``bias`` (P, out), drawn member after
    member; the input is shared, (m, in), or one per member, (P, m, in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "he",
                 dtype=None, device=None, population: int | None = None):
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Linear {name} must be a positive integer, not {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.population = check_population(population)
        dtype = np.dtype(dtype) if dtype is not None else backend.default_dtype()
        dev = backend.check_device(device)
        check_weight_size(self.in_features, self.out_features, dtype, self.population)
        draw = _init.get(init)
        P = self.population
        if P is None:
            w = draw(self.in_features, self.out_features, dtype)
        else:
            w = np.stack([draw(self.in_features, self.out_features, dtype) for _ in range(P)])
        lead = () if P is None else (P,)
        self.weight = Parameter(backend.to_device(w, dev), members=P)
        self.bias = (Parameter(backend.to_device(np.zeros(lead + (self.out_features,), dtype), dev), members=P)
                     if bias else None)

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        extra = f", population={self.population}" if self.population else ""
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}{extra}"


class ReLU(Module):
    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = float(negative_slope)

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.sigmoid(x)


class Softmax(Module):
    def __init__(self, axis: int = -1):
        self.axis = axis

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.softmax(x, self.axis)


class Identity(Module):
    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return x


class Dropout(Module):
    """Inverted dropout: zero each unit with probability p, scale the rest by 1/(1 − p);
    the identity in eval mode. For a population, ``p`` may be one probability per member (each
    member's masks then come from its own random stream, see ``polydl.random.members``)."""

    def __init__(self, p=0.5):
        values = list(p) if isinstance(p, (list, tuple, np.ndarray)) else [p]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not 0 <= v < 1:
                raise ValueError(f"Dropout p must be in [0, 1), not {v!r}")
        self.p = float(values[0]) if not isinstance(p, (list, tuple, np.ndarray)) else np.array(values, dtype=float)

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p.tolist() if isinstance(self.p, np.ndarray) else self.p}"


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid,
               "identity": Identity}
