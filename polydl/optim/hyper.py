"""An optimizer's hyperparameters: one number, or for a population one number per member.

:class:`Hyper` declares a validated hyperparameter of an optimizer class. The arithmetic here
takes either form (a Python float, or a float64 array of P values) and treats a member exactly as
the same optimizer over that member alone would. :func:`rescale` is the one place where a state
buffer kept divided by (1 − β) follows a change of β.
"""
from __future__ import annotations

import math
from itertools import repeat

import numpy as np

from .. import backend
from ..checks import check_number
from ..schedules import Schedule

__all__ = ["Hyper", "is_seq", "plain", "rescale", "sqrt", "power"]


def is_seq(value) -> bool:
    """Whether ``value`` is one value per member (a list, tuple or array) rather than one number."""
    return isinstance(value, (list, tuple, np.ndarray))


class Hyper:
    """A hyperparameter of an optimizer class, validated on every set (``check_number`` with
    the bounds given here): a number, or for a population one number per member (kept as a
    float64 array). The value lives in the instance's ``__dict__``, so reading it is a plain
    attribute lookup. Setting a β that a state buffer is scaled by rescales that buffer
    (the optimizer's ``_rescale_state``)."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def __set_name__(self, owner, name):
        self.name = name

    def check(self, value, members=None):
        """The validated value: a float, or a float64 array of ``members`` values."""
        if is_seq(value):
            values = list(value.tolist() if isinstance(value, np.ndarray) else value)
            if members is None:
                raise ValueError(f"optimizer {self.name} must be one number (one per member only for the parameters "
                                 f"of a population), not {len(values)} values")
            if len(values) != members:
                raise ValueError(f"optimizer {self.name} has {len(values)} values, one per member needs {members}")
            return np.array([check_number(f"optimizer {self.name}[{i}]", v, self.low, self.high, low_open=self.low_open,
                                          high_open=self.high_open) for i, v in enumerate(values)])
        return check_number(f"optimizer {self.name}", value, self.low, self.high,
                            low_open=self.low_open, high_open=self.high_open)

    def __set__(self, obj, value):
        value = self.check(value, obj.__dict__.get("members"))
        if isinstance(value, np.ndarray) and np.all(value == value[0]):
            value = float(value[0])  # one value for every member: the scalar fast path
        old = obj.__dict__.get(self.name)
        obj.__dict__[self.name] = value
        if old is not None and not np.array_equal(old, value):
            obj._rescale_state(self.name, old, value)


def rescale(arr, old, new) -> None:
    """A state buffer kept as x' = x/(1 − β), moved from β = ``old`` to β = ``new`` in place:
    x' ← x' · (1 − old)/(1 − new), so that the moving average x itself is unchanged.

    ``old`` and ``new`` are numbers, or one per member (then ``arr`` has the members' rows
    (P, N)); the factor is computed in float64 and rounded once to ``arr``'s dtype. Equal βs
    leave ``arr`` as it is."""
    old, new = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    if np.array_equal(old, new):
        return
    f = ((1.0 - old) / (1.0 - new)).astype(arr.dtype)
    if f.ndim:
        arr *= backend.to_device(f[:, None], backend.device_of(arr))
    else:
        arr *= arr.dtype.type(f)


def sqrt(x):
    """√x of a Python float (math.sqrt, the scalar fast path) or of an array over members."""
    return math.sqrt(x) if type(x) is float else np.sqrt(x)


def power(x, t):
    """xᵗ of a Python float, or of an array over members member by member with the same scalar
    pow (NumPy's vectorised pow, SVML on AVX-512 CPUs, can differ from it in the last bit, and a
    member must be updated exactly as the same model alone)."""
    if type(x) is float:
        return x ** t
    return np.fromiter(map(pow, x.tolist(), repeat(float(t))), np.float64, len(x))  # a member's hyperparameters: (P,) float64


def plain(value):
    """A hyperparameter as JSON-able data: numbers, lists over members, schedules as dicts."""
    if isinstance(value, Schedule):
        return {"schedule": value.name, "params": dict(value.params)}
    if isinstance(value, np.ndarray):
        return [float(v) for v in value]
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
