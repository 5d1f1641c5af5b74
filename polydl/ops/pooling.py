"""Pooling over NCHW images: max and average pooling over sliding windows, and global average
pooling. Each windowed op is one node with its NumPy form (a loop over the window's taps, one
strided slice each, on NumPy or CuPy), a compiled CPU kernel and a CUDA kernel."""
from __future__ import annotations

import numpy as np

from .. import backend, cpu_kernels
from ..capture.record import record_forward
from ..tensor import _CAPTURE, _make
from ._common import _tensor, _xp
from ._windows import Window, check_image, compiled, cuda, pad, pair, taps, window
from .reductions import mean

__all__ = ["max_pool2d", "avg_pool2d", "global_avg_pool2d"]


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """y[n, c, r, s] = max over the kh × kw window at (r·sh − ph, s·sw − pw) of x (N, C, H, W);
    the padding never wins (it counts as −∞), and a NaN in a window gives NaN. The gradient goes to
    each window's maximum, to the first in row-major order where several tie, and adds up where
    windows overlap. ``stride`` defaults to the kernel size; padding is at most half the kernel."""
    x = _tensor(x)
    xd = x.data
    win = _pool_window("max_pool2d", xd.shape, kernel_size, stride, padding)
    kern, (xc,) = compiled("max_pool2d_forward", xd)
    kern_back = compiled("max_pool2d_backward", xd)[0] if kern is not None else None
    if kern_back is not None:
        out = np.empty(xc.shape[:2] + (win.oh, win.ow), xc.dtype)
        arg = np.empty(out.shape, np.int32)
        geometry = tuple(np.int64(v) for v in win[:6])
        kern(xc, *geometry, out, arg)
        _record_kernel(kern, xd, xc, (xc, *geometry, out, arg))

        def backward(g):
            gx = np.empty_like(xc)
            kern_back(np.ascontiguousarray(g, dtype=xc.dtype), arg, gx)
            return (gx,)

        return _make(out, (x,), backward)
    if cuda("max_pool2d_forward", xd) is not None and cuda("max_pool2d_backward", xd) is not None:
        return _max_pool2d_cuda(x, win)
    return _max_pool2d_numpy(x, win)


def _max_pool2d_numpy(x, win: Window):
    """:func:`max_pool2d`'s NumPy form: the maximum over the taps, keeping the first tap that
    holds it (``arg``), and the gradient added back tap after tap where ``arg`` names the tap."""
    xd = x.data
    xp = _xp(xd)

    def forward():
        xpad = pad(xp, xd, win, fill=-np.inf)
        out = arg = padding = None  # padding: the outputs whose maximum so far is the padding's −∞
        for k, (i, j, rows, cols) in enumerate(taps(win)):
            v = xpad[:, :, rows, cols]
            inside = _inside(xp, win, i, j, xd.shape) if win.ph or win.pw else None
            if out is None:
                out = v.copy()
                arg = xp.zeros(out.shape, np.int8 if win.kh * win.kw <= 127 else np.int32)
                padding = None if inside is None else ~inside
                continue
            better = ~(v <= out) & (out == out)  # larger, or a NaN where the maximum so far is a number
            if padding is not None:  # any element of the image beats the padding, −∞ too
                better |= padding & inside
                padding &= ~inside
            xp.copyto(out, v, where=better)
            arg[better] = k
        return out, arg

    out, arg = forward()
    record_forward(forward, (out, arg))

    def backward(g):
        n, c, h, w = xd.shape
        gpad = xp.zeros((n, c, h + 2 * win.ph, w + 2 * win.pw), g.dtype)
        for k, (_, _, rows, cols) in enumerate(taps(win)):
            gpad[:, :, rows, cols] += xp.where(arg == k, g, 0)
        return (gpad[:, :, win.ph:win.ph + h, win.pw:win.pw + w].astype(xd.dtype, copy=False),)

    return _make(out, (x,), backward)


def _record_kernel(kern, xd, xc, args) -> None:
    """While a step is captured: the replay of a compiled pooling pass, ``kern(*args)`` into the
    same arrays, after copying the input again where the eager call made it contiguous."""
    if _CAPTURE.rec is None:
        return
    kern = cpu_kernels.settled(kern)
    if xc is xd:
        _CAPTURE.rec.op(lambda: kern(*args))
    else:
        _CAPTURE.rec.op(lambda: (np.copyto(xc, xd), kern(*args)))


def _inside(xp, win: Window, i, j, shape):
    """Which outputs (OH, OW) read an element of the image, not the padding, at tap (i, j)."""
    rows = xp.arange(win.oh) * win.sh + (i - win.ph)
    cols = xp.arange(win.ow) * win.sw + (j - win.pw)
    return ((rows >= 0) & (rows < shape[2]))[:, None] & ((cols >= 0) & (cols < shape[3]))[None, :]


def _max_pool2d_cuda(x, win: Window):
    """:func:`max_pool2d` by the CUDA kernels: one thread per output forward (its maximum and its
    index in the image plane), one per input element backward (a gather over the windows)."""
    xp = _xp(x.data)
    n, c, h, w = x.data.shape

    def forward():
        xd = xp.ascontiguousarray(x.data)
        out = xp.empty((n, c, win.oh, win.ow), xd.dtype)
        arg = xp.empty(out.shape, np.int32)
        backend.fused_kernel("max_pool2d_forward")(xd.reshape(-1), h, w, *win[:6], win.oh, win.ow, out.reshape(-1),
                                                   arg.reshape(-1))
        return xd, out, arg

    xd, out, arg = forward()
    record_forward(forward, (xd, out, arg))

    def backward(g):
        g = xp.ascontiguousarray(g, dtype=xd.dtype)
        gx = xp.empty_like(xd)
        backend.fused_kernel("max_pool2d_backward")(g.reshape(-1), arg.reshape(-1), h, w, *win[:6], win.oh, win.ow,
                                                    gx.reshape(-1))
        return (gx,)

    return _make(out, (x,), backward)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """y[n, c, r, s] = (1/(kh·kw)) Σ over the kh × kw window at (r·sh − ph, s·sw − pw) of x, the
    zero padding counted in the window's size (PyTorch's ``count_include_pad``); dx spreads each
    g/(kh·kw) over its window. ``stride`` defaults to the kernel size; padding is at most half
    the kernel."""
    x = _tensor(x)
    xd = x.data
    win = _pool_window("avg_pool2d", xd.shape, kernel_size, stride, padding)
    area = win.kh * win.kw
    kern, (xc,) = compiled("avg_pool2d_forward", xd)
    kern_back = compiled("avg_pool2d_backward", xd)[0] if kern is not None else None
    if kern_back is not None:
        out = np.empty(xc.shape[:2] + (win.oh, win.ow), xc.dtype)
        geometry = tuple(np.int64(v) for v in win[:6])
        kern(xc, *geometry, xc.dtype.type(area), out)
        _record_kernel(kern, xd, xc, (xc, *geometry, xc.dtype.type(area), out))

        def backward(g):
            gx = np.empty_like(xc)
            kern_back(np.ascontiguousarray(g, dtype=xc.dtype), *geometry, xc.dtype.type(area), gx)
            return (gx,)

        return _make(out, (x,), backward)
    if cuda("avg_pool2d_forward", xd) is not None and cuda("avg_pool2d_backward", xd) is not None:
        return _avg_pool2d_cuda(x, win)
    xp = _xp(xd)

    def forward():
        xpad = pad(xp, xd, win)
        acc = None
        for _, _, rows, cols in taps(win):
            v = xpad[:, :, rows, cols]
            if acc is None:
                acc = v.copy()
            else:
                acc += v
        return (acc / area,)

    out = forward()[0]
    record_forward(forward, (out,))

    def backward(g):
        n, c, h, w = xd.shape
        gs = g / area
        gpad = xp.zeros((n, c, h + 2 * win.ph, w + 2 * win.pw), gs.dtype)
        for _, _, rows, cols in taps(win):
            gpad[:, :, rows, cols] += gs
        return (gpad[:, :, win.ph:win.ph + h, win.pw:win.pw + w].astype(xd.dtype, copy=False),)

    return _make(out, (x,), backward)


def _avg_pool2d_cuda(x, win: Window):
    """:func:`avg_pool2d` by the CUDA kernels (one thread per output forward, one per input
    element backward)."""
    xp = _xp(x.data)
    n, c, h, w = x.data.shape
    area = float(win.kh * win.kw)

    def forward():
        xd = xp.ascontiguousarray(x.data)
        out = xp.empty((n, c, win.oh, win.ow), xd.dtype)
        backend.fused_kernel("avg_pool2d_forward")(xd.reshape(-1), h, w, *win[:6], win.oh, win.ow, area,
                                                   out.reshape(-1))
        return xd, out

    xd, out = forward()
    record_forward(forward, (xd, out))

    def backward(g):
        g = xp.ascontiguousarray(g, dtype=xd.dtype)
        gx = xp.empty_like(xd)
        backend.fused_kernel("avg_pool2d_backward")(g.reshape(-1), h, w, *win[:6], win.oh, win.ow, area,
                                                    gx.reshape(-1))
        return (gx,)

    return _make(out, (x,), backward)


def global_avg_pool2d(x, keepdims=False):
    """y[n, c] = the mean of x[n, c] over its H × W plane: (N, C), or (N, C, 1, 1) with
    ``keepdims``; dx = g/(H·W) over the plane."""
    x = _tensor(x)
    check_image("global_avg_pool2d", x.data.shape)
    return mean(x, axis=(2, 3), keepdims=keepdims)


def _pool_window(op, shape, kernel_size, stride, padding) -> Window:
    """The pooling window's geometry, its padding at most half its size (so that every window
    holds part of the image)."""
    check_image(op, shape)
    kh, kw = pair(kernel_size, "kernel_size", op)
    ph, pw = pair(padding, "padding", op, minimum=0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{op}: padding {ph}×{pw} is more than half the {kh}×{kw} kernel")
    return window(op, shape, (kh, kw), (kh, kw) if stride is None else stride, (ph, pw))
