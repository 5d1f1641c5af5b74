"""Former home of the optimizers, kept for one release: import from ``polydl.optim`` instead.

The base class is in :mod:`polydl.optim.base` (its clock in :mod:`~polydl.optim.clock`, its
state dicts in :mod:`~polydl.optim.state`, hyperparameters in :mod:`~polydl.optim.hyper`), and
each optimizer in its own module: :mod:`~polydl.optim.sgd`, :mod:`~polydl.optim.momentum`,
:mod:`~polydl.optim.rmsprop`, :mod:`~polydl.optim.adam`.
"""
from __future__ import annotations

from .adam import Adam
from .base import Optimizer
from .base import _cast_numpy as _cast_numpy
from .base import _cast_rows as _cast_rows
from .hyper import Hyper
from .momentum import Momentum
from .rmsprop import RMSprop
from .sgd import SGD
from .state import _restore_lr as _restore_lr

__all__ = ["Optimizer", "Hyper", "SGD", "Momentum", "RMSprop", "Adam"]
