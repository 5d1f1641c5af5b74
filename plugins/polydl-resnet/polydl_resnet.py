"""A small residual network (He et al., 2016), a model plugin for polydl.

On images (C, H, W), kept by polydl as rows of C·H·W values:

    stem     Conv2d(width, 3×3) → BatchNorm2d → ReLU
    stage s  ``blocks`` residual blocks of width·2^s channels; the first block of every stage
             after the first halves the height and width (stride 2)
    head     global average pooling → Linear(num_outputs)

A residual block computes y = ReLU(F(x) + shortcut(x)) with F = Conv3×3 → BatchNorm2d → ReLU →
Conv3×3 → BatchNorm2d, and shortcut the identity, or a 1×1 convolution and BatchNorm2d where the
block changes the width or the size. The convolutions before a BatchNorm2d have no bias.

It is written with polydl's layers and operations only, so autodiff gives its gradient and it
runs on the CPU and on CUDA without importing NumPy or CuPy.

    polydl train --model resnet --model-param width=16 --model-param stages=2
"""
from __future__ import annotations

import polydl
from polydl import functional as F
from polydl import nn

__all__ = ["ResidualBlock", "resnet", "polydl_register_models"]
__version__ = "0.1.0"


def _whole(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"model resnet: {name} must be a whole number >= {low}, not {value!r}")
    return value


class ResidualBlock(nn.Module):
    """y = ReLU(BN(Conv3×3(ReLU(BN(Conv3×3(x))))) + shortcut(x)), the first convolution with
    ``stride``; the shortcut is the identity where the shape stays, else Conv1×1(stride) → BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


def resnet(input_shape, num_outputs, width: int = 16, stages: int = 2, blocks: int = 1):
    """The residual network for samples of ``input_shape`` (channels, height, width) and
    ``num_outputs`` scores: ``stages`` stages of ``blocks`` blocks each, the first ``width``
    channels wide. Samples of another shape, or images too small to halve ``stages`` − 1 times,
    are a ``ValueError`` naming the sizes."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"model resnet takes images (channels, height, width), but the samples have shape {shape}")
    width, stages, blocks = _whole("width", width), _whole("stages", stages), _whole("blocks", blocks)
    channels, height, wide = shape
    if min(height, wide) < 2 ** (stages - 1):
        raise ValueError(f"model resnet: {stages} stages halve the size {stages - 1} times, too often for "
                         f"{height}×{wide} images; use fewer stages")
    layers = [nn.Unflatten(shape), nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
              nn.ReLU()]
    c = width
    for s in range(stages):
        out = width * 2 ** s
        for b in range(blocks):
            layers.append(ResidualBlock(c, out, stride=2 if s > 0 and b == 0 else 1))
            c = out
    layers += [nn.GlobalAvgPool2d(), nn.Linear(c, num_outputs)]
    return nn.Sequential(*layers)


@polydl.hookimpl
def polydl_register_models(register):
    register("resnet", resnet)
