"""Normalization layers by name: ``get(name, num_features, **params)`` returns a Module.

``batchnorm``  z̃ = γ · (z − μ_B) / √(σ²_B + ε) + β with mini-batch statistics (running averages in
              evaluation mode); ``none``  the identity.
"""
from __future__ import annotations

from . import cpu_kernels
from .hookspecs import hookimpl
from .registry import RegistrationError, Registry


def _validate(name, factory):
    """A factory ``(num_features, **params) -> Module`` whose Module maps a (batch, num_features)
    Tensor to a Tensor of the same shape, in training and in evaluation mode."""
    if not callable(factory):
        raise RegistrationError(f"normalizer '{name}' must be a callable factory(num_features, **params)")
    import numpy as np

    from .nn.module import Module
    from .tensor import Tensor, tensor
    try:
        probe = factory(4)
    except TypeError as exc:
        raise RegistrationError(f"normalizer factory '{name}' must accept num_features as its first argument "
                                f"({exc})") from exc
    if not isinstance(probe, Module):
        raise RegistrationError(f"normalizer factory '{name}' returned {type(probe).__name__}, "
                                "not a polydl.nn.Module")
    x = tensor(np.array([[0.5, -1.0, 2.0, 0.1], [1.5, 0.25, -0.5, -0.3], [-2.0, 1.0, 0.0, 0.7]],
                        dtype=np.float32), requires_grad=True)
    for mode in ("training", "evaluation"):
        probe.train(mode == "training")
        try:
            with cpu_kernels.use("off"):  # the NumPy forms: checking a plugin must not import Numba
                out = probe(x)
        except Exception as exc:
            raise RegistrationError(f"normalizer '{name}' failed in {mode} mode on a batch of shape (3, 4): "
                                    f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(out, Tensor) or tuple(out.shape) != (3, 4):
            got = f"a Tensor of shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
            raise RegistrationError(f"normalizer '{name}' must map a (batch, num_features) Tensor to a Tensor of "
                                    f"the same shape; on (3, 4) in {mode} mode it gave {got}")


#: ``population`` is passed by ``nn.mlp`` for a population; a factory may take ``dtype`` and ``device`` (where its parameters start), but polydl never passes them:
#: ``polydl.nn.mlp`` builds the normalizer with its defaults and the model is moved with ``Module.to``
registry = Registry("normalizers", _validate, singular="normalizer", internal=("population", "dtype", "device"))


def get(name: str, num_features: int, population: int | None = None, **params):
    """A normalization Module for ``num_features`` features, e.g. ``get("batchnorm", 64, momentum=0.9)``;
    ``population=P`` one for each of P members (where the factory takes ``population``)."""
    if population is not None:
        if "population" not in registry.parameters(name, internal=True):
            raise ValueError(f"normalizer '{name}' cannot normalise a population (its factory takes no population "
                             "argument); use batchnorm or none, or train the models one by one")
        params = {**params, "population": population}
    module = registry.build(name, num_features, **params)
    from .nn.module import Module
    if not isinstance(module, Module):
        raise ValueError(f"normalizer factory '{name}' returned {type(module).__name__}, not a polydl.nn.Module")
    return module


def names():
    return registry.names()


def _batchnorm(num_features, momentum=0.9, eps=1e-5, population=None):
    from .nn.batchnorm import BatchNorm
    return BatchNorm(num_features, momentum=momentum, eps=eps, population=population)


def _none(num_features, population=None):
    from .nn.layers import Identity
    return Identity()


@hookimpl
def polydl_register_normalizers(register):
    register("batchnorm", _batchnorm)
    register("none", _none)
