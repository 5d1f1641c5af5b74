"""The built-in models: ``mlp``, ``cnn`` and ``lenet5`` (see :mod:`polydl.models`).

A convolution followed by BatchNorm2d is built without a bias (subtracting μ cancels it); the
convolutions draw He weights for ReLU-type activations and Xavier ones for tanh and sigmoid, as
``polydl.nn.mlp`` does. Sizes that do not fit (a kernel larger than its padded input, a pool
larger than its feature map, an image model on samples of one axis) are one ``ValueError`` line
naming them.
"""
from __future__ import annotations

import math

from .. import nn

__all__ = ["mlp", "cnn", "lenet5", "image_shape", "conv_block"]


def _whole(model: str, name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"model {model}: {name} must be a whole number >= {low}, not {value!r}")
    return int(value)


def _sizes(model: str, name: str, value, example: str) -> list:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                                   for v in value):
        raise ValueError(f"model {model}: {name} must be a list of positive sizes such as {example}, not {value!r}")
    return [int(v) for v in value]


def _activation(model: str, activation: str) -> str:
    if activation not in nn.ACTIVATIONS:
        raise ValueError(f"model {model}: unknown activation '{activation}' (valid: {', '.join(nn.ACTIVATIONS)})")
    return activation


def image_shape(model: str, input_shape) -> tuple[int, int, int]:
    """(channels, height, width) of ``input_shape``, or one ``ValueError`` line where the samples
    are not images (a table's (features,))."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        size = math.prod(shape)
        raise ValueError(f"model {model} takes images (channels, height, width), but the data's samples have shape "
                         f"{shape} ({size:,} value{'s' * (size != 1)} each); train it on image data (digits, mnist, "
                         "an .npz with 4-D X), or use --model mlp for a table")
    return shape


def conv_block(model: str, layer: int, size: tuple, in_channels: int, out_channels: int, kernel_size: int,
               padding: int, batchnorm: bool, activation: str, pool: int) -> tuple[list, tuple]:
    """[Conv2d → BatchNorm2d → activation → MaxPool2d] and the feature maps' (height, width) after
    it; a kernel larger than its padded input, or a pool larger than the feature map, is one
    ``ValueError`` naming the sizes."""
    h, w = size
    if kernel_size > min(h, w) + 2 * padding:
        raise ValueError(f"model {model}: convolution {layer}'s {kernel_size}×{kernel_size} kernel is larger than its "
                         f"input of {h}×{w} padded by {padding} ({h + 2 * padding}×{w + 2 * padding}); use larger "
                         "images, fewer layers or a smaller kernel")
    h, w = h + 2 * padding - kernel_size + 1, w + 2 * padding - kernel_size + 1
    init = "xavier" if activation in ("tanh", "sigmoid") else "he"
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=not batchnorm, init=init)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ACTIVATIONS[activation]())
    if pool > 1:
        if pool > min(h, w):
            raise ValueError(f"model {model}: the feature maps of convolution {layer} are {h}×{w}, smaller than the "
                             f"{pool}×{pool} pool; use larger images, fewer layers or a smaller pool")
        layers.append(nn.MaxPool2d(pool))
        h, w = h // pool, w // pool
    return layers, (h, w)


def _head(features: int, hidden, num_outputs: int, activation, normalizer, dropout, normalizer_params) -> list:
    return list(nn.mlp([features, *hidden, num_outputs], activation=activation, normalizer=normalizer,
                       dropout=dropout, normalizer_params=normalizer_params or None))


def mlp(input_shape, num_outputs, hidden=(128, 64), activation="relu", normalizer="batchnorm", dropout=0.0,
        normalizer_params=None, population=None):
    """The multilayer perceptron ``polydl.nn.mlp``: [Linear → normalizer → activation → Dropout]
    per hidden layer, then Linear, on rows of prod(input_shape) values; ``population=P`` P of
    them as one (``dropout`` then one rate per member, or one for all)."""
    sizes = [math.prod(input_shape), *_sizes("mlp", "hidden", hidden, "[128, 64]"), num_outputs]
    return nn.mlp(sizes, activation=activation, normalizer=normalizer, dropout=dropout,
                  normalizer_params=normalizer_params or None, population=population)


def cnn(input_shape, num_outputs, channels=(32, 64), kernel_size: int = 3, pool: int = 2, batchnorm: bool = True,
        hidden=(128, 64), activation="relu", normalizer="batchnorm", dropout=0.0, normalizer_params=None):
    """A stack of convolutions on images (C, H, W), then an mlp head: per entry c of ``channels``,
    Conv2d(c, ``kernel_size``×``kernel_size``, padding kernel_size//2, so an odd kernel keeps the
    size) → BatchNorm2d (without it where ``batchnorm`` is false, and the convolution has a bias)
    → activation → MaxPool2d(``pool``) (none for pool 1); then Flatten and [Linear → normalizer →
    activation → Dropout] per ``hidden`` size, then Linear to ``num_outputs``."""
    C, H, W = image_shape("cnn", input_shape)
    channels = _sizes("cnn", "channels", channels, "[32, 64]")
    k = _whole("cnn", "kernel_size", kernel_size)
    pool = _whole("cnn", "pool", pool)
    activation = _activation("cnn", activation)
    layers, size = [nn.Unflatten((C, H, W))], (H, W)
    for i, c in enumerate(channels):
        block, size = conv_block("cnn", i + 1, size, C, c, k, k // 2, bool(batchnorm), activation, pool)
        layers += block
        C = c
    layers.append(nn.Flatten())
    hidden = _sizes("cnn", "hidden", hidden, "[128, 64]")
    layers += _head(C * size[0] * size[1], hidden, num_outputs, activation, normalizer, dropout, normalizer_params)
    return nn.Sequential(*layers)


def lenet5(input_shape, num_outputs, batchnorm: bool = True, activation="relu", normalizer="batchnorm", dropout=0.0,
           normalizer_params=None):
    """LeNet-5 (LeCun et al., 1998) as built today, with BatchNorm2d: Conv2d(6, 5×5, padding 2) →
    BatchNorm2d → activation → MaxPool2d(2) → Conv2d(16, 5×5) → BatchNorm2d → activation →
    MaxPool2d(2) → Flatten → [Linear → normalizer → activation → Dropout] for 120 and 84 units →
    Linear. On 1×28×28 images the maps are 28×28, 14×14, 10×10 and 5×5 (400 features); images
    smaller than 12×12 are too small for it."""
    C, H, W = image_shape("lenet5", input_shape)
    activation = _activation("lenet5", activation)
    layers = [nn.Unflatten((C, H, W))]
    block, size = conv_block("lenet5", 1, (H, W), C, 6, 5, 2, bool(batchnorm), activation, 2)
    layers += block
    block, size = conv_block("lenet5", 2, size, 6, 16, 5, 0, bool(batchnorm), activation, 2)
    layers += block
    layers.append(nn.Flatten())
    layers += _head(16 * size[0] * size[1], [120, 84], num_outputs, activation, normalizer, dropout, normalizer_params)
    return nn.Sequential(*layers)
