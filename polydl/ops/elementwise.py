"""Elementwise ops: arithmetic with broadcasting, exp/log/sqrt, activations, softmax."""
from __future__ import annotations

import numpy as np

from .. import cpu_kernels
from ..capture.record import record_forward
from ..tensor import _CAPTURE, Tensor, _make, unbroadcast
from ._common import _cpu_kernel, _operands, _shape, _tensor, _xp

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "where", "maximum", "minimum", "clip", "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax"]


def add(a, b):
    a, b = _operands(a, b)
    ad, bd = a.data, b.data

    def backward(g):
        gs = g.shape
        ga = gb = None
        if a.requires_grad:
            sa = _shape(ad)
            ga = g if sa == gs else unbroadcast(g, sa)
        if b.requires_grad:
            sb = _shape(bd)
            gb = g if sb == gs else unbroadcast(g, sb)
        return ga, gb

    return _made("add", ad, bd, ad + bd, (a, b), backward)


def _made(name, ad, bd, out, parents, backward):
    """The output of a binary op, the ufunc ``name`` of ``ad`` and ``bd``; while a step is
    captured, its replay is the same ufunc into the same array."""
    if _CAPTURE.rec is not None:
        if isinstance(out, np.generic):  # a NumPy scalar: recorded as a 0-d array to write into
            out = np.asarray(out)
        ufunc = getattr(_xp(out), name)
        _CAPTURE.rec.op(lambda: ufunc(ad, bd, out=out))
    return _make(out, parents, backward)


def sub(a, b):
    a, b = _operands(a, b)
    ad, bd = a.data, b.data

    def backward(g):
        return (unbroadcast(g, _shape(ad)) if a.requires_grad else None,
                unbroadcast(-g, _shape(bd)) if b.requires_grad else None)

    return _made("subtract", ad, bd, ad - bd, (a, b), backward)


def mul(a, b):
    a, b = _operands(a, b)
    ad, bd = a.data, b.data

    def backward(g):
        return (unbroadcast(g * bd, _shape(ad)) if a.requires_grad else None,
                unbroadcast(g * ad, _shape(bd)) if b.requires_grad else None)

    return _made("multiply", ad, bd, ad * bd, (a, b), backward)


def div(a, b):
    a, b = _operands(a, b)
    ad, bd = a.data, b.data
    out = ad / bd

    def backward(g):
        return (unbroadcast(g / bd, np.shape(ad)) if a.requires_grad else None,
                unbroadcast(-g * out / bd, np.shape(bd)) if b.requires_grad else None)

    return _make(out, (a, b), backward)


def neg(a):
    a = _tensor(a)
    return _make(-a.data, (a,), lambda g: (-g,))


def pow(a, exponent):
    """a ** exponent; the exponent may be a number or a tensor (then a must be positive)."""
    a = _tensor(a)
    if isinstance(exponent, Tensor):
        a, e = _operands(a, exponent)
        ad, ed = a.data, e.data
        out = ad ** ed
        xp = _xp(out)

        def backward(g):
            return (unbroadcast(g * ed * ad ** (ed - 1), np.shape(ad)) if a.requires_grad else None,
                    unbroadcast(g * out * xp.log(ad), np.shape(ed)) if e.requires_grad else None)

        return _make(out, (a, e), backward)
    p = float(exponent)
    ad = a.data
    if p == 2.0:
        return _make(ad * ad, (a,), lambda g: (g * (2.0 * ad),))
    return _make(ad ** p, (a,), lambda g: (g * (p * ad ** (p - 1.0)),))


def exp(a):
    a = _tensor(a)
    out = _xp(a.data).exp(a.data)
    return _make(out, (a,), lambda g: (g * out,))


def log(a):
    a = _tensor(a)
    ad = a.data
    return _make(_xp(ad).log(ad), (a,), lambda g: (g / ad,))


def sqrt(a):
    a = _tensor(a)
    out = _xp(a.data).sqrt(a.data)
    return _make(out, (a,), lambda g: (g / (2.0 * out),))


def abs(a):
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)
    return _make(xp.abs(ad), (a,), lambda g: (g * xp.sign(ad),))


def where(cond, a, b):
    """Elementwise ``a`` where ``cond`` holds, else ``b``; ``cond`` is not differentiated."""
    a, b = _operands(a, b)
    c = cond.data if isinstance(cond, Tensor) else cond
    xp = _xp(a.data if hasattr(a.data, "shape") else b.data)
    out = xp.where(c, a.data, b.data)
    zero = out.dtype.type(0)

    def backward(g):
        return (unbroadcast(xp.where(c, g, zero), np.shape(a.data)) if a.requires_grad else None,
                unbroadcast(xp.where(c, zero, g), np.shape(b.data)) if b.requires_grad else None)

    return _make(out, (a, b), backward)


def maximum(a, b):
    a, b = _operands(a, b)
    return where(a.data >= b.data, a, b)


def minimum(a, b):
    a, b = _operands(a, b)
    return where(a.data <= b.data, a, b)


def clip(a, lo=None, hi=None):
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)
    out = xp.clip(ad, lo, hi)
    inside = out == ad
    return _make(out, (a,), lambda g: (g * inside,))


def relu(a):
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)
    out = xp.maximum(ad, 0)
    if _CAPTURE.rec is not None:
        _CAPTURE.rec.op(lambda: xp.maximum(ad, 0, out=out))

    def backward(g):
        kern = _cpu_kernel("relu_backward", g, out) if g.shape == out.shape else None
        if kern is None:
            return (g * (out > 0),)
        gx = np.empty_like(g)
        args = (g.reshape(-1), out.reshape(-1), gx.reshape(-1), g.dtype.type(0))
        kern(*args)
        if _CAPTURE.rec is not None:
            settled = cpu_kernels.settled(kern)
            _CAPTURE.rec.grad(lambda: settled(*args))
        return (gx,)

    return _make(out, (a,), backward)


def leaky_relu(a, negative_slope=0.01):
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)
    slope = ad.dtype.type(negative_slope)

    def forward():
        pos = ad > 0
        return pos, xp.where(pos, ad, ad * slope)

    pos, out = forward()
    record_forward(forward, (pos, out))
    return _make(out, (a,), lambda g: (xp.where(pos, g, g * slope),))


def sigmoid(a):
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)

    def forward():  # stable for large |a|: exp of a non-positive number only
        e = xp.exp(-xp.abs(ad))
        return (xp.where(ad >= 0, 1 / (1 + e), e / (1 + e)).astype(ad.dtype, copy=False),)

    out = forward()[0]
    record_forward(forward, (out,))
    return _make(out, (a,), lambda g: (g * out * (1 - out),))


def tanh(a):
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)
    out = xp.tanh(ad)
    if _CAPTURE.rec is not None:
        _CAPTURE.rec.op(lambda: xp.tanh(ad, out=out))
    return _make(out, (a,), lambda g: (g * (1 - out * out),))


def _softmax_data(zd, axis):
    xp = _xp(zd)
    e = zd - zd.max(axis=axis, keepdims=True)
    xp.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def softmax(a, axis=-1):
    """ŷ = exp(a − max) / Σ exp(a − max), numerically stable."""
    a = _tensor(a)
    y = _softmax_data(a.data, axis)

    def backward(g):
        gy = g * y
        return (gy - y * gy.sum(axis=axis, keepdims=True),)

    return _make(y, (a,), backward)


def log_softmax(a, axis=-1):
    """a − max − log Σ exp(a − max)."""
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)
    shifted = ad - ad.max(axis=axis, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(g):
        return (g - xp.exp(out) * g.sum(axis=axis, keepdims=True),)

    return _make(out, (a,), backward)
