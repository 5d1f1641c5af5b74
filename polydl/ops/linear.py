"""Matrix products: ``matmul`` and the fused ``linear`` node z = x W + b (one model or a population)."""
from __future__ import annotations

import numpy as np

from .. import cpu_kernels
from ..amp import _STATE as _amp
from ..tensor import _CAPTURE, _make, unbroadcast
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
    bterm = None
    if bias is not None:
        bd = bias.data if autocast_dtype is None else bias.data.astype(out.dtype)
        bterm = bd[:, None, :] if members else bd
        out += bterm
        parents = (x, w, bias)
    else:
        parents = (x, w)
    rec = _CAPTURE.rec
    if rec is not None and autocast_dtype is None and out.dtype.itemsize >= 4:
        rec.op(_linear_replay(xp, xd, wd, bterm, out))

    def backward(g):
        if autocast_dtype is not None:
            g = g.astype(xd.dtype, copy=False)
        gx = None
        replays = [] if _CAPTURE.rec is not None else None  # the replays, while a step is recorded
        if x.requires_grad:  # dx = g Wᵀ (summed over the members for an input they share)
            wt = wd.T if wd.ndim == 2 else xp.swapaxes(wd, -1, -2)
            gx = _mm(xp, g, wt)
            full = gx
            if gx.shape != x.data.shape:
                gx = unbroadcast(gx, x.data.shape)
            if gx.dtype != x.data.dtype:
                gx = gx.astype(x.data.dtype)
            if replays is not None:
                replays.append(_input_grad_replay(xp, g, wt, full, gx))
        gw = gb = None
        if w.requires_grad:
            gw = _weight_grad(xp, w, xd, g, autocast_dtype is None, replays)
        if bias is not None and bias.requires_grad:
            gb = _bias_grad(bias, g, members, autocast_dtype is None, replays)
        if replays is not None:
            _CAPTURE.rec.grad(_sequence(replays) if None not in replays and autocast_dtype is None else None)
        return (gx, gw) if bias is None else (gx, gw, gb)

    return _make(out, parents, backward)


def _sequence(replays):
    if len(replays) == 1:
        return replays[0]
    return lambda: [r() for r in replays]


def _linear_replay(xp, xd, wd, bterm, out):
    """The forward of ``linear`` into its recorded output: the same product, then the bias."""
    matmul = xp.matmul
    if bterm is None:
        return lambda: matmul(xd, wd, out=out)
    add = xp.add

    def replay():
        matmul(xd, wd, out=out)
        add(out, bterm, out=out)

    return replay


def _input_grad_replay(xp, g, wt, full, gx):
    """dx = g Wᵀ into the recorded arrays (None where the eager step made more than one copy)."""
    if full is gx:
        return lambda: xp.matmul(g, wt, out=gx)
    if gx.dtype != full.dtype or full.ndim != gx.ndim + 1 or gx.shape != full.shape[1:]:
        return None
    return lambda: (xp.matmul(g, wt, out=full), full.sum(axis=0, out=gx))


def _weight_grad(xp, w, xd, g, in_place: bool, replays: list | None):
    """dW = xᵀ g, written straight into W's freshly zeroed slot of the flat gradient buffer when
    ``in_place`` allows it (returning None), else returned. While a step is recorded its replay
    goes to ``replays`` (None where it has none)."""
    wd = w.data
    if wd.ndim == 2:
        x2, g2 = xd.reshape(-1, xd.shape[-1]).T, g.reshape(-1, g.shape[-1])
        if w._gzero and in_place:
            out = w.grad
            xp.matmul(x2, g2, out=out)
            w._gzero = False
            if replays is not None:
                replays.append(lambda: xp.matmul(x2, g2, out=out))
            return None
        gw = _mm(xp, x2, g2)
        if replays is not None:
            replays.append(lambda: xp.matmul(x2, g2, out=gw))
        return gw
    if w._gzero and in_place and wd.ndim == 3 and g.ndim == 3 and xd.ndim in (2, 3):
        out, xt = w.grad, xp.swapaxes(xd, -1, -2)
        xp.matmul(xt, g, out=out)  # a population: each member's dW into its row
        w._gzero = False
        if replays is not None:
            replays.append(lambda: xp.matmul(xt, g, out=out))
        return None
    if replays is not None:
        replays.append(None)
    return unbroadcast(_mm(xp, xp.swapaxes(xd, -1, -2), g), wd.shape)


def _bias_grad(bias, g, members: bool, in_place: bool, replays: list | None):
    """db = Σ g over the batch, into the bias's freshly zeroed gradient slot where it can be."""
    if bias._gzero and in_place and g.ndim == (3 if members else 2):
        out = bias.grad
        kern = _cpu_kernel("sum_rows", g, out)
        if kern is not None:  # NumPy's sum over a middle axis of a (P, m, C) array is slow
            g3, out3 = (g, out) if members else (g[None], out[None])
            kern(g3, out3)
            if replays is not None:
                settled = cpu_kernels.settled(kern)
                replays.append(lambda: settled(g3, out3))
        else:
            g.sum(axis=-2, out=out)
            if replays is not None:
                replays.append(lambda: g.sum(axis=-2, out=out))
        bias._gzero = False
        return None
    if replays is not None:
        replays.append(None)
    if members:
        return g.sum(axis=-2)
    return unbroadcast(g, bias.data.shape)
