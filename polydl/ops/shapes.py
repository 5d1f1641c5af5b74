"""Shape ops: reshape, flatten, transpose, indexing, concatenate and stack."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..capture.record import NOTHING, is_view, record_forward
from ..tensor import _CAPTURE, Tensor, _make
from ._common import _dev_error, _tensor, _xp

__all__ = ["reshape", "flatten", "transpose", "getitem", "concatenate", "stack"]


def reshape(a, shape):
    a = _tensor(a)
    ad = a.data
    src = ad.shape
    out = ad.reshape(shape)
    rec = _CAPTURE.rec
    if rec is None:
        return _make(out, (a,), lambda g: (g.reshape(src),))
    if is_view(out, ad):
        rec.op(NOTHING)
    else:
        record_forward(lambda: (ad.reshape(shape),), (out,))

    def backward(g):
        gx = g.reshape(src)
        if _CAPTURE.rec is not None and is_view(gx, g):
            _CAPTURE.rec.grad(NOTHING)
        return (gx,)

    return _make(out, (a,), backward)


def flatten(x, start_dim=1):
    """``x`` with its axes from ``start_dim`` on merged into one, in C order: images (N, C, H, W)
    become rows (N, C·H·W). The gradient is reshaped back."""
    x = _tensor(x)
    shape = x.data.shape
    if isinstance(start_dim, bool) or not isinstance(start_dim, numbers.Integral) or not -len(shape) <= start_dim < len(shape):
        raise ValueError(f"flatten start_dim must be an axis of the input's shape {shape}, not {start_dim!r}")
    start = start_dim % len(shape)
    return reshape(x, shape[:start] + (int(np.prod(shape[start:], dtype=np.int64)),))


def transpose(a, axes=None):
    a = _tensor(a)
    inv = None if axes is None else tuple(np.argsort([ax % a.data.ndim for ax in axes]))
    if _CAPTURE.rec is not None:
        _CAPTURE.rec.op(NOTHING)  # a view of its input
    return _make(a.data.transpose(axes), (a,), lambda g: (g.transpose(inv),))


def _index_data(index):
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, numbers.Integral)) for i in items)


def getitem(a, index):
    """Indexing with integers, slices and integer arrays (repeated indices accumulate)."""
    a = _tensor(a)
    ad = a.data
    index = _index_data(index)
    basic = _is_basic(index)
    xp = _xp(ad)

    def backward(g):
        z = xp.zeros_like(ad)
        if basic:
            z[index] = g
        else:
            backend.scatter_add(z, index, g)
        return (z,)

    return _make(ad[index], (a,), backward)


def concatenate(tensors, axis=0):
    ts = [_tensor(t) for t in tensors]
    first = ts[0].data
    for t in ts[1:]:
        if not backend.same_device(first, t.data):
            raise _dev_error(first, t.data)
    xp = _xp(first)
    sizes = [t.data.shape[axis] for t in ts]
    splits = np.cumsum(sizes)[:-1].tolist()

    def backward(g):
        return tuple(xp.split(g, splits, axis=axis))

    return _make(xp.concatenate([t.data for t in ts], axis=axis), tuple(ts), backward)


def stack(tensors, axis=0):
    return concatenate([reshape(t, t.shape[:axis % (t.ndim + 1)] + (1,) + t.shape[axis % (t.ndim + 1):])
                        for t in map(_tensor, tensors)], axis=axis)
