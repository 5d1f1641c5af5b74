"""Distributions of a search space, each sampled uniformly on its own scale.

Every distribution maps a value ``v`` to a coordinate ``x`` on its sampling scale and samples
``x`` uniformly inside a box ``(a, b)`` of that scale (the full range, or a coarse-to-fine round's
smaller box):

==========================  =====================  ==========================================
distribution                scale ``x``            full range of ``x``
==========================  =====================  ==========================================
``uniform``                 ``v``                  ``[low, high]``
``log_uniform``             ``log10 v``            ``[log10 low, log10 high]``
``one_minus_log_uniform``   ``log10 (1 − v)``      ``[log10 (1 − high), log10 (1 − low)]``
``int``                     ``v`` (``log10 v``)    ``[low, high + 1)`` (``[log10 low, log10 (high + 1))``)
``pow2``                    ``log2 v``             ``[log2 low, log2 high + 1)``
``choice``                  index ``i``            the set of choices
==========================  =====================  ==========================================

So α log-uniform on [1e-4, 1] is α = 10^r with r uniform in [−4, 0], and β one-minus-log-uniform
on [0.9, 0.999] is β = 1 − 10^u with u uniform in [−3, −1]: [0.9, 0.99] and [0.99, 0.999] get
equal shares. An integer ``k`` owns the cell ``[k, k + 1)`` of its scale (``[log10 k,
log10 (k + 1))`` on the log scale, ``[log2 k, log2 k + 1)`` for powers of two) and is drawn as the
floor of a uniform ``x``, so every integer's probability is its cell's share of the box.

:meth:`Distribution.shrink` gives the next coarse-to-fine box: the bounding box of the best
values' cells, widened on each side by ``margin`` times the current box's width and clipped to
the full range; a choice keeps the choices that the best values took.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Distribution", "Uniform", "LogUniform", "OneMinusLogUniform", "Int", "Pow2", "Choice",
           "DISTRIBUTIONS", "is_power_of_two"]


def is_power_of_two(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1 and v & (v - 1) == 0


class Distribution:
    """A distribution on an interval of its sampling scale; subclasses give the scale."""

    name = ""
    integer = False

    def __init__(self, low, high):
        self.low, self.high = low, high

    # the scale
    def to_scale(self, v) -> float:
        return float(v)

    def from_scale(self, x):
        return float(x)

    def cell(self, v) -> tuple[float, float]:
        """The interval of the scale that samples to ``v``."""
        x = self.to_scale(v)
        return x, x

    @property
    def full(self) -> tuple[float, float]:
        """The full box: the range of the scale."""
        a, b = self.cell(self.low)[0], self.cell(self.high)[1]
        return (a, b) if a <= b else (b, a)

    # sampling
    def sample(self, rng: np.random.Generator, box=None):
        a, b = box if box is not None else self.full
        return self._clip(self.from_scale(rng.uniform(a, b)))

    def _clip(self, v):
        lo, hi = min(self.low, self.high), max(self.low, self.high)
        return min(max(v, lo), hi)

    def contains(self, v, box=None) -> bool:
        a, b = box if box is not None else self.full
        x = self.to_scale(v)
        return a - 1e-12 <= x <= b + 1e-12

    def shrink(self, best_values, box, margin: float):
        """The next round's box: the cells of ``best_values`` bounded, widened by ``margin`` times
        the width of ``box`` on each side, clipped to the full range."""
        cells = [self.cell(v) for v in best_values]
        lo, hi = min(c[0] for c in cells), max(c[1] for c in cells)
        pad = margin * (box[1] - box[0])
        fa, fb = self.full
        return max(fa, lo - pad), min(fb, hi + pad)

    def box_dict(self, box) -> dict:
        """A box as JSON: the values at its ends and the scale coordinates themselves."""
        ends = sorted((self._clip(self.from_scale(box[0])), self._clip(self._value_below(box[1]))))
        return {"low": ends[0], "high": ends[1], "scale": [float(box[0]), float(box[1])]}

    def box_from_dict(self, d):
        return float(d["scale"][0]), float(d["scale"][1])

    def _value_below(self, x):
        return self.from_scale(x)

    def to_dict(self) -> dict:
        return {"distribution": self.name, "low": self.low, "high": self.high}

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "distribution")
        return f"{type(self).__name__}({args})"


class Uniform(Distribution):
    """v uniform in [low, high]."""

    name = "uniform"


class LogUniform(Distribution):
    """v = 10^x, x uniform in [log10 low, log10 high]."""

    name = "log_uniform"

    def to_scale(self, v):
        return math.log10(v)

    def from_scale(self, x):
        return 10.0 ** x


class OneMinusLogUniform(Distribution):
    """v = 1 − 10^x, x uniform in [log10 (1 − high), log10 (1 − low)] (β near 1)."""

    name = "one_minus_log_uniform"

    def to_scale(self, v):
        return math.log10(1.0 - v)

    def from_scale(self, x):
        return 1.0 - 10.0 ** x


class Int(Distribution):
    """An integer in [low, high]: the floor of x uniform in [low, high + 1), or with ``log`` the
    floor of 10^x, x uniform in [log10 low, log10 (high + 1))."""

    name = "int"
    integer = True

    def __init__(self, low, high, log=False):
        super().__init__(int(low), int(high))
        self.log = bool(log)

    def to_scale(self, v):
        return math.log10(v) if self.log else float(v)

    def from_scale(self, x):
        return 10.0 ** x if self.log else float(x)

    def cell(self, v):
        return self.to_scale(v), self.to_scale(v + 1)

    def sample(self, rng, box=None):
        a, b = box if box is not None else self.full
        return self._clip(int(math.floor(self.from_scale(rng.uniform(a, b)) + 1e-9)))

    def _value_below(self, x):
        return int(math.ceil(self.from_scale(x) - 1e-9)) - 1

    def box_dict(self, box):
        d = super().box_dict(box)
        d["low"] = int(math.floor(self.from_scale(box[0]) + 1e-9))
        return d

    def contains(self, v, box=None):
        a, b = box if box is not None else self.full
        lo, hi = self.cell(v)
        return hi > a + 1e-12 and lo < b - 1e-12

    def to_dict(self):
        d = super().to_dict()
        if self.log:
            d["log"] = True
        return d


class Pow2(Int):
    """A power of two in [low, high]: 2^⌊x⌋, x uniform in [log2 low, log2 high + 1)."""

    name = "pow2"

    def __init__(self, low, high):
        super().__init__(low, high)

    def to_scale(self, v):
        return math.log2(v)

    def from_scale(self, x):
        return 2.0 ** x

    def cell(self, v):
        x = self.to_scale(v)
        return x, x + 1

    def sample(self, rng, box=None):
        a, b = box if box is not None else self.full
        return self._clip(2 ** int(math.floor(rng.uniform(a, b) + 1e-9)))

    def _value_below(self, x):
        return 2 ** (int(math.ceil(x - 1e-9)) - 1)

    def box_dict(self, box):
        d = Distribution.box_dict(self, box)
        d["low"] = 2 ** int(math.floor(box[0] + 1e-9))
        return d

    def values(self, box=None) -> list[int]:
        """The powers of two the box can give."""
        return [v for v in self.choices() if self.contains(v, box)]

    def choices(self) -> list[int]:
        out, v = [], self.low
        while v <= self.high:
            out.append(v)
            v *= 2
        return out

    def to_dict(self):
        return {"distribution": self.name, "low": self.low, "high": self.high}


class Choice(Distribution):
    """One of ``choices``, each equally likely; a box is the list of choices still in play."""

    name = "choice"

    def __init__(self, choices):
        self.choices = list(choices)
        super().__init__(0, len(self.choices) - 1)

    def index(self, v) -> int:
        for i, c in enumerate(self.choices):
            if type(c) is type(v) and c == v:
                return i
        for i, c in enumerate(self.choices):
            if c == v:
                return i
        raise ValueError(f"{v!r} is not one of the choices {self.choices}")

    def to_scale(self, v):
        return float(self.index(v))

    @property
    def full(self):
        return list(range(len(self.choices)))

    def sample(self, rng, box=None):
        kept = box if box is not None else self.full
        return self.choices[kept[int(rng.integers(len(kept)))]]

    def contains(self, v, box=None):
        try:
            i = self.index(v)
        except ValueError:
            return False
        return i in (box if box is not None else self.full)

    def shrink(self, best_values, box, margin):
        return sorted({self.index(v) for v in best_values})

    def box_dict(self, box):
        return {"choices": [self.choices[i] for i in box]}

    def box_from_dict(self, d):
        return sorted(self.index(c) for c in d["choices"])

    def to_dict(self):
        return {"distribution": self.name, "choices": list(self.choices)}


DISTRIBUTIONS = {cls.name: cls for cls in (Uniform, LogUniform, OneMinusLogUniform, Int, Pow2, Choice)}
