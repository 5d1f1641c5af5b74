"""Helpers shared by the ops: operands on one device, the array module, the compiled CPU kernels."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend, cpu_kernels
from ..tensor import Tensor


def _dev_error(a, b):
    return backend.DeviceError(
        f"tensors on two devices: '{backend.device_of(a)}' and '{backend.device_of(b)}'; "
        "move one with .to(device) first")


def _as_tensor_like(x, ref):
    """``x`` as a Tensor beside ``ref`` (the raw array of the other operand); numbers stay
    Python numbers, so they never promote float32 to float64."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number):
        if ref.dtype.kind == "f" and not isinstance(x, complex):
            return Tensor(ref.dtype.type(x))  # never promotes float32, on NumPy 1.x or 2.x
        return Tensor(x.item() if isinstance(x, np.generic) else x)
    arr = x if hasattr(x, "shape") and hasattr(x, "dtype") else np.asarray(x, dtype=ref.dtype)
    if not backend.same_device(arr, ref):
        raise _dev_error(ref, arr)
    return Tensor(arr)


def _cpu_kernel(name, *arrays):
    """The compiled CPU kernel ``name`` (``polydl.cpu_kernels``) when every array is a NumPy
    float32/float64 array of one dtype whose rows are contiguous (C-contiguous, or a row of a
    population's flat parameter buffer); otherwise None (the NumPy form runs)."""
    dt = arrays[0].dtype
    if dt not in cpu_kernels.DTYPES:
        return None
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != dt or not (a.flags.c_contiguous or a.strides[-1] == a.itemsize):
            return None
    return cpu_kernels.get(name, arrays[0].size)


def _operands(a, b):
    """Both operands as tensors on one device."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            ad, bd = a.data, b.data
            if not (type(ad) is np.ndarray and type(bd) is np.ndarray) and not backend.same_device(ad, bd):
                raise _dev_error(ad, bd)
            return a, b
        return a, _as_tensor_like(b, a.data)
    return _as_tensor_like(a, b.data), b


def _shape(x):
    """``np.shape(x)`` without its call overhead for arrays and NumPy scalars."""
    try:
        return x.shape
    except AttributeError:
        return ()


def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(backend.asarray(x))


def _xp(x):
    return backend.get_array_module(x)


def _norm_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim for a in axis)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _row_stride(a) -> np.int64:
    """The distance in elements between the rows of a per-member (P, F) vector (0 for a 1-D one)."""
    return np.int64(a.strides[0] // a.itemsize if a.ndim == 2 else 0)
