"""Convolutional layers: ``Conv2d`` over NCHW images."""
from __future__ import annotations

import math

import numpy as np

from .. import backend, memory
from .. import functional as F
from .. import random as _random
from ..ops._windows import pair
from ..tensor import Parameter
from .module import Module

#: the initialisations Conv2d draws its weight with (the formulas of ``polydl.nn.init``)
_INITS = ("he", "xavier", "xavier_uniform")


def _draw(init: str, shape, fan_in: int, fan_out: int, dtype):
    """He: N(0, 2/fan_in); Xavier: N(0, 2/(fan_in + fan_out)); Xavier uniform: U(±√(6/(fan_in +
    fan_out))), drawn on the host from ``polydl.random``."""
    rng = _random.host_generator()
    if init == "he":
        return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype)
    if init == "xavier":
        return (rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, shape).astype(dtype)


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Conv2d {name} must be a positive integer, not {value!r}")
    return int(value)


class Conv2d(Module):
    """y = conv2d(x, W, b) (``polydl.functional.conv2d``) over images (N, in_channels, H, W), with
    ``weight`` of shape (out_channels, in_channels/groups, kh, kw) and ``bias`` (out_channels,),
    as in PyTorch and Chainer. ``kernel_size``, ``stride``, ``padding`` and ``dilation`` are an int
    or a (rows, columns) pair.

    ``init``: ``"he"`` (ReLU nets, the default: N(0, 2/fan_in) with fan_in = in_channels/groups ·
    kh · kw), ``"xavier"`` or ``"xavier_uniform"`` (fan_out = out_channels · kh · kw). The bias
    starts at 0; a BatchNorm2d after the convolution cancels it, so build that one with
    ``bias=False``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, init: str = "he", dtype=None, device=None):
        self.in_channels = _positive("in_channels", in_channels)
        self.out_channels = _positive("out_channels", out_channels)
        self.groups = _positive("groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2d groups={self.groups} must divide in_channels ({self.in_channels}) and "
                             f"out_channels ({self.out_channels})")
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair(stride, "stride", "Conv2d")
        self.padding = pair(padding, "padding", "Conv2d", minimum=0)
        self.dilation = pair(dilation, "dilation", "Conv2d")
        if init not in _INITS:
            raise ValueError(f"unknown initialisation '{init}' (valid: {', '.join(_INITS)})")
        dtype = np.dtype(dtype) if dtype is not None else backend.default_dtype()
        dev = backend.check_device(device)
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        count = math.prod(shape)
        memory.check_bytes(f"Conv2d({self.in_channels}, {self.out_channels}, {kh}×{kw}): drawing its weight of "
                           f"{count:,} values", count * (8 + dtype.itemsize), "use fewer channels")
        fan_in = shape[1] * kh * kw
        w = _draw(init, shape, fan_in, self.out_channels * kh * kw, dtype)
        self.weight = Parameter(backend.to_device(w, dev))
        self.bias = Parameter(backend.to_device(np.zeros(self.out_channels, dtype), dev)) if bias else None

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        extra = "".join(f", {name}={value}" for name, value, default in (
            ("stride", self.stride, (1, 1)), ("padding", self.padding, (0, 0)), ("dilation", self.dilation, (1, 1)),
            ("groups", self.groups, 1)) if value != default)
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}{extra}, "
                f"bias={self.bias is not None}")
