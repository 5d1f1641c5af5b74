"""Matrix products: ``matmul`` and the fused ``linear`` node z = x W + b (one model or a population)."""
from __future__ import annotations

import numpy as np

from ..amp import _STATE as _amp
from ..tensor import _make, unbroadcast
from ._common import _cpu_kernel, _operands, _xp

__all__ = ["matmul", "linear"]


def _mm(xp, a, b):
    """``xp.matmul``; on the CPU, float16 operands are multiplied by float32 BLAS and the product
    rounded once to float16 (as a GPU's half-precision GEMM with float32 accumulation), instead of
    NumPy's float16 loop, which is 30–60 times slower than BLAS."""
    if xp is np and a.dtype == np.float16 and b.dtype == np.float16:
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)
    return xp.matmul(a, b)


def matmul(a, b):
    """Matrix product, 2-D or with leading batch dimensions (broadcast as in NumPy)."""
    a, b = _operands(a, b)
    ad, bd = a.data, b.data
    if ad.ndim == 0 or bd.ndim == 0:
        raise ValueError("matmul needs tensors of at least one dimension; use * for scalars")
    xp = _xp(ad)

    def backward(g):
        ga = gb = None
        a2, b2, g2 = ad, bd, g
        if ad.ndim == 1:
            a2 = ad[None, :]
            g2 = xp.expand_dims(g2, -1 if bd.ndim == 1 else -2)  # a 1-D·1-D product has a 0-d g
        if bd.ndim == 1:
            b2 = bd[:, None]
            g2 = g2[..., None]
        if a.requires_grad:
            ga = _mm(xp, g2, xp.swapaxes(b2, -1, -2))
            if ad.ndim == 1:
                ga = ga[..., 0, :]
            ga = unbroadcast(ga, ad.shape)
        if b.requires_grad:
            gb = _mm(xp, xp.swapaxes(a2, -1, -2), g2)
            if bd.ndim == 1:
                gb = gb[..., 0]
            gb = unbroadcast(gb, bd.shape)
        return ga, gb

    return _make(_mm(xp, ad, bd), (a, b), backward)


def linear(x, weight, bias=None):
    """z = x W + b in one node; W has shape (in, out) (leading batch axes allowed on both).

    A population of P models: W of shape (P, in, out) and b of shape (P, out), with x shared by
    the members, (m, in), or one per member, (P, m, in); z has shape (P, m, out), member p's
    product computed as the same model's alone. The gradient of a shared x sums the members'.

    Under ``polydl.amp.autocast`` the product runs in the half dtype (x, W and b cast to it) and
    W's gradient is accumulated in W's own dtype (float32 master weights).

    Outside autocast, the backward writes dW (and db) straight into a freshly zeroed slot of the
    optimizer's flat gradient buffer: the gradient-buffer contract (``_gzero``) documented in
    :mod:`polydl.optim.flat`."""
    x, w = _operands(x, weight)
    xd, wd = x.data, w.data
    xp = _xp(xd)
    autocast_dtype = _amp.dtype
    if autocast_dtype is not None and xd.dtype.kind == "f":
        xd = xd.astype(autocast_dtype, copy=False)
        wd = wd.astype(autocast_dtype)
    out = _mm(xp, xd, wd)
    if autocast_dtype is not None and out.dtype != xd.dtype:
        out = out.astype(xd.dtype)  # NumPy's bfloat16 products come back as float32
    members = wd.ndim == 3 and bias is not None and bias.data.ndim == 2  # one bias row per member
    if bias is not None:
        bd = bias.data if autocast_dtype is None else bias.data.astype(out.dtype)
        out += bd[:, None, :] if members else bd
        parents = (x, w, bias)
    else:
        parents = (x, w)

    def backward(g):
        if autocast_dtype is not None:
            g = g.astype(xd.dtype, copy=False)
        gx = None
        if x.requires_grad:  # dx = g Wᵀ (summed over the members for an input they share)
            gx = _mm(xp, g, wd.T if wd.ndim == 2 else xp.swapaxes(wd, -1, -2))
            if gx.shape != x.data.shape:
                gx = unbroadcast(gx, x.data.shape)
            if gx.dtype != x.data.dtype:
                gx = gx.astype(x.data.dtype)
        gw = _weight_grad(xp, w, xd, g, autocast_dtype is None) if w.requires_grad else None
        if bias is None:
            return gx, gw
        gb = _bias_grad(bias, g, members, autocast_dtype is None) if bias.requires_grad else None
        return gx, gw, gb

    return _make(out, parents, backward)


def _weight_grad(xp, w, xd, g, in_place: bool):
    """dW = xᵀ g, written straight into W's freshly zeroed slot of the flat gradient buffer when
    ``in_place`` allows it (returning None), else returned."""
    wd = w.data
    if wd.ndim == 2:
        x2, g2 = xd.reshape(-1, xd.shape[-1]).T, g.reshape(-1, g.shape[-1])
        if w._gzero and in_place:
            xp.matmul(x2, g2, out=w.grad)
            w._gzero = False
            return None
        return _mm(xp, x2, g2)
    if w._gzero and in_place and wd.ndim == 3 and g.ndim == 3 and xd.ndim in (2, 3):
        xp.matmul(xp.swapaxes(xd, -1, -2), g, out=w.grad)  # a population: each member's dW into its row
        w._gzero = False
        return None
    return unbroadcast(_mm(xp, xp.swapaxes(xd, -1, -2), g), wd.shape)


def _bias_grad(bias, g, members: bool, in_place: bool):
    """db = Σ g over the batch, into the bias's freshly zeroed gradient slot where it can be."""
    if bias._gzero and in_place and g.ndim == (3 if members else 2):
        kern = _cpu_kernel("sum_rows", g, bias.grad)
        if kern is not None:  # NumPy's sum over a middle axis of a (P, m, C) array is slow
            kern(g if members else g[None], bias.grad if members else bias.grad[None])
        else:
            g.sum(axis=-2, out=bias.grad)
        bias._gzero = False
        return None
    if members:
        return g.sum(axis=-2)
    return unbroadcast(g, bias.data.shape)
