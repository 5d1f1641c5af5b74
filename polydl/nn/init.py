"""Weight initialisation, drawn on the host from ``polydl.random`` so that a seeded model has the
same weights on every device.

He (for ReLU nets): W ~ N(0, 2/fan_in). Xavier (Glorot, for tanh/sigmoid nets):
W ~ N(0, 2/(fan_in + fan_out)), or uniform within ±√(6/(fan_in + fan_out)).
"""
from __future__ import annotations

import math

import numpy as np

from .. import random as _random


def he_normal(fan_in, fan_out, dtype=np.float32):
    """N(0, 2/fan_in) of shape (fan_in, fan_out)."""
    std = math.sqrt(2.0 / fan_in)
    return (_random.host_generator().standard_normal((fan_in, fan_out)) * std).astype(dtype)


def xavier_normal(fan_in, fan_out, dtype=np.float32):
    """N(0, 2/(fan_in + fan_out)) of shape (fan_in, fan_out)."""
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return (_random.host_generator().standard_normal((fan_in, fan_out)) * std).astype(dtype)


def xavier_uniform(fan_in, fan_out, dtype=np.float32):
    """U(−b, b) with b = √(6/(fan_in + fan_out))."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return _random.host_generator().uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)


INITIALIZERS = {"he": he_normal, "xavier": xavier_normal, "xavier_uniform": xavier_uniform}


def get(name):
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown initialisation '{name}' (valid: {', '.join(INITIALIZERS)})") from None
