"""Pooling layers over NCHW images: ``MaxPool2d``, ``AvgPool2d`` and ``GlobalAvgPool2d``."""
from __future__ import annotations

from .. import functional as F
from ..ops._windows import pair
from .module import Module


class _Pool2d(Module):
    """A window of ``kernel_size`` moved by ``stride`` (default: the kernel size) over the
    input padded by ``padding`` (at most half the kernel); each an int or a (rows, columns) pair."""

    _op = "pool2d"

    def __init__(self, kernel_size, stride=None, padding=0):
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(f"{name} padding {self.padding} is more than half the kernel {self.kernel_size}")

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """The maximum of each window (``polydl.functional.max_pool2d``); the gradient goes to it."""

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """The mean of each window, the zero padding counted (``polydl.functional.avg_pool2d``)."""

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool2d(Module):
    """The mean of each channel's plane: (N, C, H, W) → (N, C), or (N, C, 1, 1) with ``keepdims``."""

    def __init__(self, keepdims: bool = False):
        self.keepdims = bool(keepdims)

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        return F.global_avg_pool2d(x, self.keepdims)

    def extra_repr(self):
        return "keepdims=True" if self.keepdims else ""
