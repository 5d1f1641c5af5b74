"""Reductions: sum, mean, max and logsumexp over axes, with their gradients expanded back."""
from __future__ import annotations

import numpy as np

from ..capture.record import record_forward
from ..tensor import _CAPTURE, _make
from ._common import _norm_axis, _tensor, _xp

__all__ = ["sum", "mean", "max", "logsumexp"]


def _expand(g, shape, axis, keepdims):
    xp = _xp(g)
    if not keepdims and axis is not None:
        for ax in sorted(_norm_axis(axis, len(shape))):
            g = xp.expand_dims(g, ax)
    return xp.broadcast_to(g, shape)


def _recorded(compute):
    """``compute()``'s array; while a step is captured, also its replay (a NumPy scalar kept as a
    0-d array to write into)."""
    out = compute()
    if _CAPTURE.rec is not None:
        if isinstance(out, np.generic):
            out = np.asarray(out)
        record_forward(lambda: (compute(),), (out,))
    return out


def sum(a, axis=None, keepdims=False):
    a = _tensor(a)
    ad = a.data
    shape = ad.shape
    return _make(_recorded(lambda: ad.sum(axis=axis, keepdims=keepdims)), (a,),
                 lambda g: (_expand(g, shape, axis, keepdims),))


def mean(a, axis=None, keepdims=False):
    a = _tensor(a)
    shape = a.data.shape
    n = 1
    for ax in _norm_axis(axis, len(shape)):
        n *= shape[ax]
    ad = a.data
    return _make(_recorded(lambda: ad.mean(axis=axis, keepdims=keepdims)), (a,),
                 lambda g: (_expand(g / n, shape, axis, keepdims),))


def max(a, axis=None, keepdims=False):
    """Maximum over ``axis``; the gradient is shared equally between tied maxima."""
    a = _tensor(a)
    ad = a.data
    out = ad.max(axis=axis, keepdims=True)

    def backward(g):
        mask = (ad == out).astype(ad.dtype)
        mask /= mask.sum(axis=axis, keepdims=True)
        return (mask * _expand(g, ad.shape, axis, keepdims),)

    return _make(out if keepdims else (out.reshape(()) if axis is None else out.squeeze(axis)), (a,), backward)


def logsumexp(a, axis=-1, keepdims=False):
    """log Σ exp(a), computed stably through the maximum."""
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)
    m = ad.max(axis=axis, keepdims=True)
    e = xp.exp(ad - m)
    s = e.sum(axis=axis, keepdims=True)
    out = xp.log(s) + m

    def backward(g):
        return (e / s * _expand(g, ad.shape, axis, keepdims),)

    return _make(out if keepdims else out.squeeze(axis), (a,), backward)
