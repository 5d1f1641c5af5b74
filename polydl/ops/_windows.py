"""Sliding windows over NCHW images, shared by convolution and pooling: the geometry (the output
size, and one ``ValueError`` naming the sizes for an input it does not fit), and im2col/col2im.

A window of kh × kw taps, dilation d, stride s and zero padding p gives OH = ⌊(H + 2p − d(kh − 1)
− 1)/s⌋ + 1 rows (and OW columns likewise). im2col lays the taps out as the (C, kh, kw, N, OH, OW)
array ``col`` with col[c, i, j, n, y, x] = x[n, c, y·s + i·d − p, x·s + j·d − p] (0 in the
padding): the (C·kh·kw, N·OH·OW) operand of the convolution's GEMM. col2im is its adjoint,
summing each column entry back into the input element it came from.

Each has its NumPy form (a loop over the kh × kw taps, one strided slice each: one code path for
NumPy and CuPy), a compiled CPU kernel (``polydl.cpu_kernel_sources_conv``) and a CUDA kernel
(``polydl.cuda_kernels_conv``); the compiled forms give bit-identical results.
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from .. import backend, cpu_kernels
from ._common import _FLOATS, _xp


class Window(NamedTuple):
    """A window's geometry: kernel kh × kw, stride sh × sw, padding ph × pw, dilation dh × dw,
    and the output's size oh × ow."""
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    oh: int
    ow: int


def pair(value, name: str, op: str, minimum: int = 1) -> tuple[int, int]:
    """``value`` (an int, or a pair of ints) as (rows, columns); a ValueError naming ``op`` and
    ``name`` when it is not an integer ≥ ``minimum``."""
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum
                             for v in vals):
        what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise ValueError(f"{op} {name} must be {what} or a pair of them, not {value!r}")
    return int(vals[0]), int(vals[1])


def check_image(op: str, shape) -> None:
    """One line for an input that is not a batch of images (N, C, H, W)."""
    if len(shape) != 4:
        flat = " (flat data: give each sample as a (channels, height, width) image)" if len(shape) == 2 else ""
        raise ValueError(f"{op} needs input of shape (batch, channels, height, width), not {tuple(shape)}{flat}")


def window(op: str, shape, kernel, stride, padding, dilation=1) -> Window:
    """The geometry of ``op``'s window over images of ``shape`` (N, C, H, W); a ValueError naming
    the sizes when the (dilated) kernel is larger than the padded input."""
    check_image(op, shape)
    kh, kw = pair(kernel, "kernel_size", op)
    sh, sw = pair(stride, "stride", op)
    ph, pw = pair(padding, "padding", op, minimum=0)
    dh, dw = pair(dilation, "dilation", op)
    h, w = shape[2], shape[3]
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if eh > h + 2 * ph or ew > w + 2 * pw:
        span = f" (dilated to {eh}×{ew})" if (dh, dw) != (1, 1) else ""
        raise ValueError(f"{op}: the {kh}×{kw} kernel{span} is larger than the padded input "
                         f"{h + 2 * ph}×{w + 2 * pw} (input {h}×{w}, padding {ph}×{pw})")
    return Window(kh, kw, sh, sw, ph, pw, dh, dw, (h + 2 * ph - eh) // sh + 1, (w + 2 * pw - ew) // sw + 1)


def taps(win: Window):
    """(i, j, rows, columns) of each tap in row-major order: the slices of the padded input that
    tap (i, j) reads for the whole output."""
    for i in range(win.kh):
        for j in range(win.kw):
            r0, c0 = i * win.dh, j * win.dw
            yield i, j, slice(r0, r0 + win.sh * (win.oh - 1) + 1, win.sh), slice(c0, c0 + win.sw * (win.ow - 1) + 1,
                                                                               win.sw)


def pad(xp, xd, win: Window, fill=0):
    """``xd`` with ``fill`` around its image planes (ph rows, pw columns)."""
    if not (win.ph or win.pw):
        return xd
    n, c, h, w = xd.shape
    out = xp.full((n, c, h + 2 * win.ph, w + 2 * win.pw), fill, dtype=xd.dtype)
    out[:, :, win.ph:win.ph + h, win.pw:win.pw + w] = xd
    return out


def compiled(name: str, *arrays):
    """The compiled CPU kernel ``name`` for NumPy float32/float64 arrays of one dtype (made
    C-contiguous), as ``(kernel, arrays)``; ``(None, arrays)`` where the NumPy form runs."""
    dt = arrays[0].dtype
    if type(arrays[0]) is not np.ndarray or dt not in _FLOATS or any(a.dtype != dt for a in arrays):
        return None, arrays
    kern = cpu_kernels.get(name, arrays[0].size)
    if kern is None:
        return None, arrays
    return kern, tuple(np.ascontiguousarray(a) for a in arrays)


def cuda(name: str, xd):
    """The CUDA kernel ``name`` for a CuPy float32/float64 array, None elsewhere."""
    if type(xd) is np.ndarray or xd.dtype not in _FLOATS:
        return None
    return backend.fused_kernel(name)


def im2col(xd, win: Window, out=None):
    """The columns (C, kh, kw, N, OH, OW) of images ``xd`` (N, C, H, W), into ``out`` when given
    (a C-contiguous array of that shape)."""
    kern, (xc,) = compiled("im2col", xd)
    n, c = xd.shape[:2]
    if kern is not None:
        col = np.empty((c, win.kh, win.kw, n, win.oh, win.ow), xc.dtype) if out is None else out
        kern(xc, *(np.int64(v) for v in win[:8]), col)
        return col
    if cuda("im2col", xd) is not None:
        return _im2col_cuda(xd, win, out)
    xp = _xp(xd)
    xpad = pad(xp, xd, win)
    col = xp.empty((c, win.kh, win.kw, n, win.oh, win.ow), xd.dtype) if out is None else out
    for i, j, rows, cols in taps(win):
        col[:, i, j] = xpad[:, :, rows, cols].transpose(1, 0, 2, 3)
    return col


def col2im(col, shape, win: Window):
    """The adjoint of :func:`im2col`: images of ``shape`` (N, C, H, W) holding, for each input
    element, the sum of the column entries taken from it (added tap after tap)."""
    kern, (cc,) = compiled("col2im", col)
    if kern is not None:
        gx = np.empty(shape, cc.dtype)
        kern(cc, *(np.int64(v) for v in win[2:8]), gx)
        return gx
    if cuda("col2im", col) is not None:
        return _col2im_cuda(col, shape, win)
    xp = _xp(col)
    n, c, h, w = shape
    gpad = xp.zeros((n, c, h + 2 * win.ph, w + 2 * win.pw), col.dtype)
    for i, j, rows, cols in taps(win):
        gpad[:, :, rows, cols] += col[:, i, j].transpose(1, 0, 2, 3)
    return gpad[:, :, win.ph:win.ph + h, win.pw:win.pw + w]


def _im2col_cuda(xd, win: Window, out=None):
    """:func:`im2col` by the ``im2col`` CUDA kernel (one thread per column entry)."""
    xp = _xp(xd)
    xd = xp.ascontiguousarray(xd)
    n, c, h, w = xd.shape
    col = xp.empty((c, win.kh, win.kw, n, win.oh, win.ow), xd.dtype) if out is None else out
    backend.fused_kernel("im2col")(xd.reshape(-1), c, h, w, *win[:8], n, win.oh, win.ow, col.reshape(-1))
    return col


def _col2im_cuda(col, shape, win: Window):
    """:func:`col2im` by the ``col2im`` CUDA kernel (one thread per input element, a gather)."""
    xp = _xp(col)
    col = xp.ascontiguousarray(col)
    n, c, h, w = shape
    gx = xp.empty(shape, col.dtype)
    backend.fused_kernel("col2im")(col.reshape(-1), c, h, w, *win[:8], n, win.oh, win.ow, gx.reshape(-1))
    return gx
