"""Normalization layers by name: ``get(name, num_features, **params)`` returns a Module."""
from __future__ import annotations

import inspect

from .hookspecs import hookimpl
from .registry import Registry, RegistrationError


def _validate(name, factory):
    if not callable(factory):
        raise RegistrationError(f"normalizer '{name}' must be a callable factory(num_features, **params)")
    from .nn.module import Module
    try:
        probe = factory(3)
    except TypeError as exc:
        raise RegistrationError(f"normalizer factory '{name}' must accept num_features as its first argument "
                                f"({exc})") from exc
    if not isinstance(probe, Module):
        raise RegistrationError(f"normalizer factory '{name}' returned {type(probe).__name__}, "
                                "not a polydl.nn.Module")


registry = Registry("normalizers", _validate, singular="normalizer")


def get(name: str, num_features: int, **params):
    """A normalization Module for ``num_features`` features, e.g. ``get("batchnorm", 64, momentum=0.9)``."""
    factory = registry.lookup(name)
    try:
        inspect.signature(factory).bind(num_features, **params)
    except TypeError as exc:
        raise ValueError(f"normalizer '{name}' does not take these parameters: {exc}") from None
    return factory(num_features, **params)


def names():
    return registry.names()


def _batchnorm(num_features, momentum=0.9, eps=1e-5):
    from .nn.batchnorm import BatchNorm
    return BatchNorm(num_features, momentum=momentum, eps=eps)


def _none(num_features):
    from .nn.layers import Identity
    return Identity()


@hookimpl
def polydl_register_normalizers(register):
    register("batchnorm", _batchnorm)
    register("none", _none)
