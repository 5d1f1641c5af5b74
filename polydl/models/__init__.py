"""Models by name: ``get(name, input_shape, num_outputs, **params)`` returns a ``polydl.nn.Module``.

``mlp``     [Linear → normalizer → activation → Dropout] per hidden layer, then Linear
           (``polydl.nn.mlp``), on samples of any shape taken as rows of prod(input_shape) values;
``cnn``     [Conv2d → BatchNorm2d → activation → MaxPool2d] per entry of ``channels``, then
           Flatten and the ``hidden`` head of an mlp, on images (channels, height, width);
``lenet5``  LeNet-5 with BatchNorm2d: two 5×5 convolutions (6 and 16 channels), each pooled by
           2, then 120 and 84 hidden units.

A model maps rows (batch, prod(input_shape)), the data as polydl keeps it, to scores (batch,
num_outputs); an image model views the rows as images itself (``polydl.nn.Unflatten``). Factories
are registered through the ``polydl_register_models`` hook like every other component and called
``factory(input_shape, num_outputs, **params)``; those of the configuration keys
:data:`CONFIG_KEYS` that a factory declares come from the configuration, the rest from its
``model_params``. For a population of P models, ``get(..., population=P)`` builds P models as
one: the factory's own population form where it takes ``population`` (``mlp`` does), else P
copies trained member by member (:class:`ModelByMember`).
"""
from __future__ import annotations

import inspect

from ..checks import check_whole
from ..hookspecs import hookimpl
from ..nn.module import Module
from ..registry import RegistrationError, Registry
from .builtin import cnn, image_shape, lenet5, mlp
from .members import ModelByMember

__all__ = ["get", "names", "registry", "CONFIG_KEYS", "takes", "takes_population", "defaults", "is_mlp",
           "ModelByMember", "mlp", "cnn", "lenet5", "image_shape"]

#: configuration keys a model factory receives where it declares them (the mlp part of a model);
#: ``model_params`` cannot set them
CONFIG_KEYS = ("hidden", "activation", "normalizer", "dropout", "normalizer_params")


def _validate(name, factory):
    """A callable that takes ``(input_shape, num_outputs)`` (the Module it builds is checked where
    a run builds it, on the run's data: an image model cannot be probed on a table)."""
    if not callable(factory):
        raise RegistrationError(f"model '{name}' must be a callable factory(input_shape, num_outputs, **params)")
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    try:
        sig.bind((1, 8, 8), 2)
    except TypeError as exc:
        raise RegistrationError(f"model factory '{name}' must accept input_shape and num_outputs as its first two "
                                f"arguments ({exc})") from None


#: ``population`` is passed for a population, the :data:`CONFIG_KEYS` come from the configuration:
#: none of them is a ``model_params`` parameter
registry = Registry("models", _validate, singular="model", internal=("population", *CONFIG_KEYS))


def takes(name: str, param: str) -> bool:
    """Whether the factory of model ``name`` declares ``param`` (``hidden``, ``channels``, ...)."""
    return param in registry.parameters(name, internal=True)


def takes_population(name: str) -> bool:
    """Whether the factory of model ``name`` builds a population itself (declares ``population``)."""
    return takes(name, "population")


def defaults(name: str) -> dict:
    """The defaults of the parameters of model ``name``'s factory (those that have one)."""
    try:
        params = inspect.signature(registry.lookup(name)).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not p.empty}


def is_mlp(name: str) -> bool:
    """Whether ``name`` answers the built-in ``mlp`` (whose size polydl can reckon before building it)."""
    entry = registry.entry(name)
    return entry.builtin and entry.name == "mlp"


def get(name: str, input_shape, num_outputs: int, population: int | None = None, **params) -> Module:
    """Model ``name`` for samples of ``input_shape`` and ``num_outputs`` scores, e.g.
    ``get("cnn", (1, 8, 8), 10, channels=[16, 32])``; ``population=P`` P models as one
    (:class:`ModelByMember` where the factory takes no ``population``). Weights are drawn from
    ``polydl.random`` (``polydl.manual_seed``)."""
    from ..datasets.shapes import check_input_shape

    shape = check_input_shape(input_shape)
    outputs = check_whole("num_outputs", num_outputs, 1)
    if population is not None and not takes_population(name):
        from ..nn.layers import check_population

        P = check_population(population)
        return ModelByMember([get(name, shape, outputs, **params) for _ in range(P)], name)
    if population is not None:
        params = {**params, "population": population}
    module = registry.build(name, shape, outputs, **params)
    if not isinstance(module, Module):
        raise ValueError(f"model factory '{name}' returned {type(module).__name__}, not a polydl.nn.Module")
    return module


def names():
    return registry.names()


@hookimpl
def polydl_register_models(register):
    for factory in (mlp, cnn, lenet5):
        register(factory.__name__, factory)
