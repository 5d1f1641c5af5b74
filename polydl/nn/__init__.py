"""Layers and models: ``Module``, ``Sequential``, ``Linear``, ``BatchNorm``, activations,
``Dropout`` and the ``mlp`` builder; for images (NCHW) ``Conv2d``, ``BatchNorm2d``, ``MaxPool2d``,
``AvgPool2d``, ``GlobalAvgPool2d``, ``Flatten`` and ``Unflatten``."""
from __future__ import annotations

import numpy as np

from . import init
from .batchnorm import BatchNorm
from .batchnorm2d import BatchNorm2d
from .conv import Conv2d
from .layers import ACTIVATIONS, Dropout, Identity, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh, check_weight_size
from .module import Module, Sequential
from .pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .shapes import Flatten, Unflatten

__all__ = ["Module", "Sequential", "Linear", "BatchNorm", "ReLU", "LeakyReLU", "Tanh", "Sigmoid",
           "Softmax", "Dropout", "Identity", "Conv2d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
           "Flatten", "Unflatten", "mlp", "init"]


def mlp(sizes, activation: str = "relu", normalizer: str = "batchnorm", dropout=0.0,
        normalizer_params: dict | None = None, init: str | None = None, population: int | None = None) -> Sequential:
    """The usual stack: [Linear → normalizer → activation → Dropout] per hidden layer, then Linear.

    ``sizes`` = (inputs, hidden..., outputs). A Linear followed by a normalizer that cancels its
    bias (BatchNorm: subtracting μ removes b) is built without one. He initialisation for ReLU-type
    activations, Xavier for tanh and sigmoid, unless ``init`` says otherwise. Every weight's size
    is checked against this machine's memory before anything is built.

    ``population=P``: P models of this shape as one (every layer with ``population=P``, weights
    drawn member after member); ``dropout`` may then be one probability per member. It maps a
    shared input (m, inputs) or one per member (P, m, inputs) to (P, m, outputs)."""
    from .. import normalizers
    from .layers import check_population

    sizes = list(sizes)
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"mlp sizes must be at least two positive integers (inputs, ..., outputs), not {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{activation}' (valid: {', '.join(ACTIVATIONS)})")
    population = check_population(population)
    per_member = isinstance(dropout, (list, tuple, np.ndarray))
    if per_member and (population is None or len(dropout) != population):
        raise ValueError(f"mlp dropout has {len(dropout)} probabilities: one per member needs population="
                         f"{len(dropout)}" if population is None else
                         f"mlp dropout has {len(dropout)} probabilities, one per member needs {population}")
    rates = np.asarray(dropout, dtype=float) if per_member else np.array([dropout], dtype=float)
    if not (np.all(rates >= 0) and np.all(rates < 1)):
        raise ValueError(f"dropout must be in [0, 1), not {dropout}")
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        check_weight_size(fan_in, fan_out, population=population)
    if init is None:
        init = "xavier" if activation in ("tanh", "sigmoid") else "he"
    layers = []
    for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1], strict=True):
        norm = normalizers.get(normalizer, fan_out, population=population, **(normalizer_params or {}))
        with_bias = not getattr(norm, "cancels_bias", False)
        layers.append(Linear(fan_in, fan_out, bias=with_bias, init=init, population=population))
        if not isinstance(norm, Identity):
            layers.append(norm)
        layers.append(ACTIVATIONS[activation]())
        if rates.max() > 0:
            layers.append(Dropout(rates if per_member else float(rates[0])))
    layers.append(Linear(sizes[-2], sizes[-1], bias=True, init=init, population=population))
    return Sequential(*layers)
