"""A run's model from its configuration: ``model`` names a registered factory (``mlp`` by
default, ``cnn``, ``lenet5`` or a plugin's), called ``factory(input_shape, num_outputs, **params)``
with the ``model_params`` table and those of the keys :data:`polydl.models.CONFIG_KEYS`
(``hidden``, ``activation``, ...) that it declares. A key it does not declare must keep its
default: a value set there would be silently ignored, so it is one ``ConfigError`` line.

The shape of one sample is the data set's ``input_shape`` ((1, 8, 8) for the digits), else rows
of its features; the checkpoint records it, so that evaluation and prediction rebuild the model
alone from the run directory. A population of P members is the factory's population form
(:func:`stacked_model`, each member's rows copied from its model alone: :func:`copy_member`)
where it takes ``population``, else its P models alone trained member by member.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import backend, models
from .. import random as _random
from ..tensor import Tensor, no_grad
from .config import ConfigError, TrainConfig
from .errors import ComponentError

__all__ = ["input_shape", "model_arguments", "check_model_keys", "make_model", "model_label", "check_model",
           "stacked_model", "copy_member", "recorded_shape"]

_DEFAULTS = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
             for f in dataclasses.fields(TrainConfig)}


def input_shape(data) -> tuple:
    """The shape of one sample of ``data``: its ``input_shape`` where it has one, else (features,)."""
    shape = getattr(data, "input_shape", None)
    return tuple(int(d) for d in shape) if shape else (int(data.num_features),)


def recorded_shape(meta: dict, num_features: int) -> tuple:
    """The sample shape a checkpoint's metadata records (``input_shape``), else (num_features,)
    for a run written before runs recorded it; one whose sizes do not give ``num_features``
    values is a ``ValueError``."""
    shape = meta.get("input_shape")
    if shape is None:
        return (int(num_features),)
    if not isinstance(shape, list) or not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                                                       for d in shape) or math.prod(shape) != num_features:
        raise ValueError(f"its input_shape {shape!r} is not a list of sizes of {num_features} values")
    return tuple(shape)


def model_arguments(config: TrainConfig, **changes) -> dict:
    """The keyword arguments of ``config``'s model factory: the configuration keys it declares,
    then its ``model_params``; ``changes`` replace configuration keys (a population's dropout)."""
    out = {}
    for key in models.CONFIG_KEYS:
        if models.takes(config.model, key):
            value = changes.get(key, getattr(config, key))
            out[key] = dict(value) if key == "normalizer_params" else value
    out.update(config.model_params)
    return out


def check_model_keys(config: TrainConfig) -> None:
    """A configuration key of :data:`polydl.models.CONFIG_KEYS` set away from its default for a
    model that does not declare it is one ``ConfigError`` (it would be ignored); so is a
    parameter the factory does not take."""
    for key in models.CONFIG_KEYS:
        value = getattr(config, key)
        if value != _DEFAULTS[key] and not models.takes(config.model, key):
            raise ConfigError(f"model '{config.model}' takes no {key}, so {key} = {value!r} would be ignored; leave "
                              f"{key} at its default ({_DEFAULTS[key]!r}), or choose a model that takes it "
                              f"(its parameters: {', '.join(models.registry.parameters(config.model, skip=2)) or 'none'})")
    models.registry.check_params(config.model, (1, 8, 8), 2, **model_arguments(config))


def make_model(config: TrainConfig, shape: tuple, outputs: int, population: int | None = None, **changes):
    """``config``'s model for samples of ``shape`` (drawn from the current random stream). A
    plugin's factory that fails otherwise than with a ``ValueError`` is one ``ComponentError``
    line naming it."""
    entry = models.registry.entry(config.model)
    try:
        return models.get(config.model, shape, outputs, population=population, **model_arguments(config, **changes))
    except (ValueError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if entry.builtin:
            raise
        from .provenance import describe, plugin_fix

        text = " ".join(str(exc).split())
        raise ComponentError(f"{describe('model', entry)} raised {type(exc).__name__}{': ' + text if text else ''} "
                             f"when built for samples of shape {shape} and {outputs} outputs; {plugin_fix(entry)} or "
                             "choose another model", None, None, None) from exc


def model_label(config: TrainConfig, shape: tuple, outputs: int) -> str:
    """How a run's header shows its model: ``64-128-64-10`` for an mlp (its layer sizes), else
    the sample shape, the model's parameters (its defaults where not set) and hidden layers, and
    the outputs: ``1×8×8 (channels=[32, 64], kernel_size=3, pool=2, batchnorm=True, hidden=[128, 64]) -> 10``."""
    if models.is_mlp(config.model):
        return "-".join(map(str, [math.prod(shape), *config.hidden, outputs]))
    defaults = models.defaults(config.model)
    params = {k: config.model_params.get(k, defaults.get(k)) for k in models.registry.parameters(config.model, skip=2)}
    params.update({k: v for k, v in config.model_params.items() if k not in params})
    if models.takes(config.model, "hidden"):
        params["hidden"] = config.hidden
    shown = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in params.items())
    size = "×".join(map(str, shape))
    return f"{size} ({shown}) -> {outputs}" if shown else f"{size} -> {outputs}"


def check_model(config: TrainConfig, model, shape: tuple, outputs: int, dtype, dev) -> None:
    """A plugin's model must map rows (batch, prod(shape)) to (batch, outputs): two rows go
    through it in evaluation mode (nothing is drawn or updated); anything else is one
    ``ComponentError`` line naming the model. Built-in models are not probed."""
    entry = models.registry.entry(config.model)
    if entry.builtin:
        return
    from .provenance import describe, plugin_fix

    x = np.linspace(0.0, 1.0, 2 * math.prod(shape)).reshape(2, -1).astype(dtype)
    try:
        with no_grad(), _random.preserved():
            model.eval()
            out = model(Tensor(backend.to_device(x, dev)))
    except ValueError:
        raise
    except Exception:
        return  # left to training, which names the component that raised
    finally:
        model.train()
    if not isinstance(out, Tensor) or tuple(out.shape) != (2, outputs):
        got = f"a Tensor of shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise ComponentError(f"{describe('model', entry)} returned {got} for rows of shape (2, {math.prod(shape)}) "
                             f"(samples of shape {shape}): a model must map them to scores of shape (2, {outputs}); "
                             f"{plugin_fix(entry)} or choose another model", None, None, None)


def stacked_model(config: TrainConfig, rates: list, shape: tuple, outputs: int, P: int, dev, dtype):
    """The factory's population form of P members (``dropout`` one rate per member where rates
    differ) where it takes ``population``, its own draws left out of the random stream (the
    members' weights replace them: :func:`copy_member`); None for a model that has none (it is
    trained member by member: :class:`polydl.models.ModelByMember`)."""
    if not models.takes_population(config.model):
        return None
    changes = {"dropout": rates if any(rates) else 0.0} if models.takes(config.model, "dropout") else {}
    with _random.preserved():
        return make_model(config, shape, outputs, population=P, **changes).to(device=dev, dtype=dtype)


def copy_member(stacked, k: int, alone) -> None:
    """Member k's rows of the stacked model's parameters and buffers become ``alone``'s values."""
    tensors = [t for _, t in stacked.named_parameters()] + [t for _, t in stacked.named_buffers()]
    own = [t for _, t in alone.named_parameters()] + [t for _, t in alone.named_buffers()]
    for t, a in zip(tensors, own, strict=True):
        t.data[k] = a.data
