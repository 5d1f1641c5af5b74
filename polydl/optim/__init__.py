"""Optimizers: ``SGD``, ``Momentum``, ``RMSprop``, ``Adam``; ``get(name, params, **hyper)`` by name;
``Hyper`` declares a validated hyperparameter of an optimizer class (a plugin's too).

One module per optimizer (``sgd``, ``momentum``, ``rmsprop``, ``adam``) over the base class
(``base``: flat buffers (``flat``), α and the update on three backends; its clock in ``clock``,
its state dicts in ``state``, hyperparameter values in ``hyper``)."""
from __future__ import annotations

import inspect

from ..hookspecs import hookimpl
from ..registry import RegistrationError, Registry
from .adam import Adam
from .base import Optimizer
from .flat import FlatGroup, pack
from .hyper import Hyper
from .momentum import Momentum
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "Hyper", "SGD", "Momentum", "RMSprop", "Adam", "get", "names", "registry",
           "FlatGroup", "pack"]


def _validate(name, cls):
    if not callable(cls):
        raise RegistrationError(f"optimizer '{name}' must be a class or factory (params, lr, **hyper)")
    if inspect.isclass(cls) and not issubclass(cls, Optimizer):
        raise RegistrationError(f"optimizer '{name}' must subclass polydl.optim.Optimizer")


registry = Registry("optimizers", _validate, singular="optimizer")


def get(name: str, params, **hyperparameters):
    """The optimizer ``name`` over ``params``, e.g. ``get("adam", model.parameters(), lr=1e-3)``."""
    return registry.build(name, params, **hyperparameters)


def names():
    return registry.names()


@hookimpl
def polydl_register_optimizers(register):
    register("sgd", SGD)
    register("momentum", Momentum)
    register("rmsprop", RMSprop)
    register("adam", Adam)
