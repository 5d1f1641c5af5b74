"""Differentiable ops. Each computes its output with ``xp`` (NumPy or CuPy, from the input) and a
closure that maps the output's gradient to the gradients of its inputs.

Fused nodes use closed forms: ``softmax_cross_entropy`` has
dJ/dz = (ŷ − y)/m, ``batch_norm`` has the closed-form batch-normalization backward, ``linear``
is z = xW + b in one node.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import backend, cpu_kernels, cuda_kernels
from .amp import _STATE as _amp
from .tensor import _MODE as _grad_mode
from .tensor import Tensor, _make, unbroadcast

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul", "sum", "mean", "max", "exp", "log", "sqrt",
    "abs", "maximum", "minimum", "clip", "where", "reshape", "transpose", "getitem", "concatenate",
    "stack", "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "logsumexp",
    "linear", "batch_norm", "layer_norm", "dropout", "softmax_cross_entropy",
    "binary_cross_entropy_with_logits", "mse", "one_hot", "hardmax",
]


# ---------------------------------------------------------------------------- helpers
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


# ---------------------------------------------------------------------------- arithmetic
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

    return _make(ad + bd, (a, b), backward)


def sub(a, b):
    a, b = _operands(a, b)
    ad, bd = a.data, b.data

    def backward(g):
        return (unbroadcast(g, _shape(ad)) if a.requires_grad else None,
                unbroadcast(-g, _shape(bd)) if b.requires_grad else None)

    return _make(ad - bd, (a, b), backward)


def mul(a, b):
    a, b = _operands(a, b)
    ad, bd = a.data, b.data

    def backward(g):
        return (unbroadcast(g * bd, _shape(ad)) if a.requires_grad else None,
                unbroadcast(g * ad, _shape(bd)) if b.requires_grad else None)

    return _make(ad * bd, (a, b), backward)


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


# ---------------------------------------------------------------------------- reductions
def _expand(g, shape, axis, keepdims):
    xp = _xp(g)
    if not keepdims and axis is not None:
        for ax in sorted(_norm_axis(axis, len(shape))):
            g = xp.expand_dims(g, ax)
    return xp.broadcast_to(g, shape)


def sum(a, axis=None, keepdims=False):
    a = _tensor(a)
    shape = a.data.shape
    return _make(a.data.sum(axis=axis, keepdims=keepdims), (a,),
                 lambda g: (_expand(g, shape, axis, keepdims),))


def mean(a, axis=None, keepdims=False):
    a = _tensor(a)
    shape = a.data.shape
    n = 1
    for ax in _norm_axis(axis, len(shape)):
        n *= shape[ax]
    return _make(a.data.mean(axis=axis, keepdims=keepdims), (a,),
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


# ---------------------------------------------------------------------------- elementwise
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
    xp = _xp(a.data)
    out = xp.maximum(a.data, 0)

    def backward(g):
        kern = _cpu_kernel("relu_backward", g, out) if g.shape == out.shape else None
        if kern is None:
            return (g * (out > 0),)
        gx = np.empty_like(g)
        kern(g.reshape(-1), out.reshape(-1), gx.reshape(-1), g.dtype.type(0))
        return (gx,)

    return _make(out, (a,), backward)


def leaky_relu(a, negative_slope=0.01):
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)
    slope = ad.dtype.type(negative_slope)
    pos = ad > 0
    out = xp.where(pos, ad, ad * slope)
    return _make(out, (a,), lambda g: (xp.where(pos, g, g * slope),))


def sigmoid(a):
    a = _tensor(a)
    ad = a.data
    xp = _xp(ad)
    # stable for large |a|: exp of a non-positive number only
    e = xp.exp(-xp.abs(ad))
    out = xp.where(ad >= 0, 1 / (1 + e), e / (1 + e)).astype(ad.dtype, copy=False)
    return _make(out, (a,), lambda g: (g * out * (1 - out),))


def tanh(a):
    a = _tensor(a)
    out = _xp(a.data).tanh(a.data)
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


# ---------------------------------------------------------------------------- shape
def reshape(a, shape):
    a = _tensor(a)
    src = a.data.shape
    return _make(a.data.reshape(shape), (a,), lambda g: (g.reshape(src),))


def transpose(a, axes=None):
    a = _tensor(a)
    inv = None if axes is None else tuple(np.argsort([ax % a.data.ndim for ax in axes]))
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


# ---------------------------------------------------------------------------- fused layers
def linear(x, weight, bias=None):
    """z = x W + b in one node; W has shape (in, out) (leading batch axes allowed on both).

    A population of P models: W of shape (P, in, out) and b of shape (P, out), with x shared by
    the members, (m, in), or one per member, (P, m, in); z has shape (P, m, out), member p's
    product computed as the same model's alone. The gradient of a shared x sums the members'.

    Under ``polydl.amp.autocast`` the product runs in the half dtype (x, W and b cast to it) and
    W's gradient is accumulated in W's own dtype (float32 master weights)."""
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
        if x.requires_grad:
            gx = _mm(xp, g, wd.T if wd.ndim == 2 else xp.swapaxes(wd, -1, -2))
            if gx.shape != x.data.shape:
                gx = unbroadcast(gx, x.data.shape)  # a shared input: the sum over the members
            if gx.dtype != x.data.dtype:
                gx = gx.astype(x.data.dtype)
        if not w.requires_grad:
            gw = None
        elif wd.ndim == 2:
            x2, g2 = xd.reshape(-1, xd.shape[-1]).T, g.reshape(-1, g.shape[-1])
            if w._gzero and autocast_dtype is None:  # a freshly zeroed slot of the flat gradient buffer: write dW there
                xp.matmul(x2, g2, out=w.grad)
                w._gzero = False
                gw = None
            else:
                gw = _mm(xp, x2, g2)
        elif w._gzero and autocast_dtype is None and wd.ndim == 3 and g.ndim == 3 and xd.ndim in (2, 3):
            xp.matmul(xp.swapaxes(xd, -1, -2), g, out=w.grad)  # a population: each member's dW into its row
            w._gzero = False
            gw = None
        else:
            gw = unbroadcast(_mm(xp, xp.swapaxes(xd, -1, -2), g), wd.shape)
        if bias is None:
            return gx, gw
        if not bias.requires_grad:
            gb = None
        elif bias._gzero and g.ndim == (3 if members else 2) and autocast_dtype is None:
            kern = _cpu_kernel("sum_rows", g, bias.grad)
            if kern is not None:  # NumPy's sum over a middle axis of a (P, m, C) array is slow
                kern(g if members else g[None], bias.grad if members else bias.grad[None])
            else:
                g.sum(axis=-2, out=bias.grad)
            bias._gzero = False
            gb = None
        elif members:
            gb = g.sum(axis=-2)
        else:
            gb = unbroadcast(g, bias.data.shape)
        return gx, gw, gb

    return _make(out, parents, backward)


def batch_norm(x, gamma, beta, running_mean=None, running_var=None, training=True,
               momentum=0.9, eps=1e-5, activation=None):
    """Batch normalization over the batch axis (axis −2).

    Training: μ = mean(z), σ² = mean((z − μ)²) (biased), z_norm = (z − μ)/√(σ² + ε),
    z̃ = γ·z_norm + β, and the running averages become momentum·old + (1 − momentum)·batch.
    Evaluation: μ and σ² are the running averages.
    Backward (closed form): dz = γ/√(σ² + ε) · (g − mean(g) − z_norm·mean(g·z_norm)).

    A population of P models: x of shape (P, m, F) with γ, β and the running averages of shape
    (P, F); member p is normalised over its own batch with its own γ and β.

    ``activation="relu"`` returns relu(z̃): one fused node where the CPU kernels run, else the
    two nodes ``relu(batch_norm(...))``.

    Training needs at least two samples: the σ² of one sample is 0, so its normalised output is 0
    whatever the input, and nothing is learned."""
    x = _tensor(x)
    _check_batch_norm(x.data, gamma, training)
    xd, gd, bd = x.data, gamma.data, beta.data
    members = xd.ndim == 3 and gd.ndim == 2  # a population: one γ, β per member
    if activation is not None and activation != "relu":
        raise ValueError(f"batch_norm activation must be None or 'relu', not {activation!r}")
    if type(xd) is not np.ndarray:
        fast = _batch_norm_cuda(x, gamma, beta, running_mean, running_var, training, momentum, eps,
                                activation == "relu")
        if fast is not None:
            return fast
    if activation is not None:
        if (xd.ndim == 2 and gd.ndim == 1 or members) and bd.ndim == gd.ndim and xd.dtype == gd.dtype:
            fast = _batch_norm_cpu(x, xd, gamma, beta, running_mean, running_var, training, momentum, eps, True)
            if fast is not None:
                return fast
        return relu(batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps))
    xp = _xp(xd)
    in_dtype = xd.dtype
    if in_dtype != gd.dtype and in_dtype.itemsize < gd.dtype.itemsize:
        xd = xd.astype(gd.dtype)  # half activations: statistics in the parameters' precision
    flat = xd.ndim == 2  # (m, F); otherwise (..., m, F) with leading model axes
    if (flat and gd.ndim == 1 or members) and xd.dtype == in_dtype and bd.ndim == gd.ndim:
        fast = _batch_norm_cpu(x, xd, gamma, beta, running_mean, running_var, training, momentum, eps)
        if fast is not None:
            return fast
    if members:  # per-member vectors broadcast over the batch axis
        gd, bd = gd[:, None, :], bd[:, None, :]

    def batch_sum(a):
        return a.sum(axis=-2, keepdims=not flat)

    def batch_dot(a, b):  # Σ over the batch of a·b, one pass (member by member as an ordinary model's)
        if flat:
            return xp.einsum("ij,ij->j", a, b)
        if members:
            return xp.einsum("pij,pij->pj", a, b)[:, None, :]
        return (a * b).sum(axis=-2, keepdims=True)

    if training:
        m = xd.shape[-2]
        mu = batch_sum(xd)
        mu *= 1.0 / m
        xc = xd - mu
        var = batch_dot(xc, xc)
        var *= 1.0 / m
        inv_std = (var + eps) ** -0.5
        if running_mean is not None:
            _update_running(running_mean, running_var, mu, var, momentum)
    else:
        if running_mean is None:
            raise ValueError("batch_norm in evaluation mode needs running_mean and running_var")
        m = None
        rm, rv = running_mean.data, running_var.data
        if members:
            rm, rv = rm[:, None, :], rv[:, None, :]
        xc = xd - rm
        inv_std = (rv + eps) ** -0.5
    scale = gd * inv_std  # γ/√(σ² + ε) per feature
    out = xc * scale
    out += bd
    if out.dtype != in_dtype:
        out = out.astype(in_dtype)

    def backward(g):
        if g.dtype != xd.dtype:
            g = g.astype(xd.dtype)
        gbeta = batch_sum(g)
        ggamma = batch_dot(g, xc)
        ggamma *= inv_std  # Σ g·z_norm
        gx = None
        if x.requires_grad:
            if training:
                # γ/√(σ²+ε) · (g − Σg/m − z_norm·Σ(g·z_norm)/m), with z_norm = xc/√(σ²+ε)
                gx = xc * (ggamma * inv_std * (1.0 / m))
                xp.subtract(g, gx, out=gx)
                gx -= gbeta * (1.0 / m)
                gx *= scale
            else:
                gx = g * scale
            if gx.dtype != in_dtype:
                gx = gx.astype(in_dtype)
        if members:
            return gx, ggamma.reshape(gamma.data.shape), gbeta.reshape(beta.data.shape)
        return gx, unbroadcast(ggamma, gamma.data.shape), unbroadcast(gbeta, beta.data.shape)

    return _make(out, (x, gamma, beta), backward)


def _check_batch_norm(xd, gamma, training):
    """One line for an input batch normalization cannot use: not (batch, features), a width
    other than γ's, or fewer than two samples in training."""
    if xd.ndim < 2:
        raise ValueError(f"batch_norm needs input of shape (batch, features), not {xd.shape}")
    width = gamma.data.shape[-1] if gamma.data.ndim else 1
    if xd.shape[-1] != width:
        raise ValueError(f"batch_norm got {xd.shape[-1]} features per sample (input shape {xd.shape}), but it "
                         f"normalizes {width} (γ has shape {gamma.data.shape}); give BatchNorm the input's width")
    if training and xd.shape[-2] < 2:
        if xd.shape[-2] == 0:
            raise ValueError("batch_norm in training mode got an empty mini-batch (0 samples); it needs at least 2")
        raise ValueError("batch_norm in training mode got a mini-batch of 1 sample: the σ² of one sample is 0, so "
                         "the normalised output is 0 and nothing is learned; use a batch size of at least 2, "
                         "or evaluation mode (model.eval())")


def _update_running(running_mean, running_var, mu, var, momentum):
    """running = momentum · running + (1 − momentum) · batch, in place."""
    mom = float(momentum)
    rm, rv = running_mean.data, running_var.data
    rm *= mom
    rm += (1 - mom) * mu.reshape(rm.shape)
    rv *= mom
    rv += (1 - mom) * var.reshape(rv.shape)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _row_stride(a) -> np.int64:
    """The distance in elements between the rows of a per-member (P, F) vector (0 for a 1-D one)."""
    return np.int64(a.strides[0] // a.itemsize if a.ndim == 2 else 0)


def _batch_norm_cuda(x, gamma, beta, running_mean, running_var, training, momentum, eps, relu_):
    """``batch_norm`` of an (m, F) input, or of a population's (P, m, F) one, through the fused
    CUDA kernels (``polydl.cuda_kernels``), followed by ReLU in the same node when ``relu_``: one
    launch forward (the statistics, the output and the running averages) and one backward in
    training, one forward in evaluation. Activations may be half (float16, bfloat16) with float32
    parameters, as under autocast; the statistics are in the parameters' dtype. None where the
    kernels do not apply (the NumPy form runs)."""
    xd, gd, bd = x.data, gamma.data, beta.data
    dt = gd.dtype
    members = xd.ndim == 3 and gd.ndim == 2
    if (not (xd.ndim == 2 and gd.ndim == 1 or members) or dt not in _FLOATS or bd.dtype != dt
            or bd.shape != gd.shape or not (xd.dtype == dt or cuda_kernels.x_kind(xd.dtype) and dt == _FLOATS[0])
            or not xd.flags.c_contiguous or xd.shape[-1] != gd.shape[-1] or (members and xd.shape[0] != gd.shape[0])):
        return None
    vectors = [gd, bd] if running_mean is None else [gd, bd, running_mean.data, running_var.data]
    for v in vectors:
        if type(v) is not type(xd) or v.dtype != dt or v.shape != gd.shape or v.strides[-1] != v.itemsize:
            return None
    xp = _xp(xd)
    n, m, f = (xd.shape if members else (1,) + xd.shape)
    T = dt.type
    out = xp.empty_like(xd)
    bx = cuda_kernels.BN_BLOCK[0]
    grid = ((f + bx - 1) // bx, n, 1)
    if not training:
        if running_mean is None:
            return None
        kern = backend.fused_kernel("bn_eval")
        if kern is None:
            return None
        rm, rv = running_mean.data, running_var.data
        g3, b3, rm3, rv3 = (v[:, None, :] for v in (gd, bd, rm, rv)) if members else (gd, bd, rm, rv)
        kern(xd, rm3, rv3, g3, b3, float(eps), int(relu_), out)
        if not (_grad_mode.enabled and (x.requires_grad or gamma.requires_grad or beta.requires_grad)):
            return _make(out, (x, gamma, beta), None)
        # the running averages and γ as they are now, whatever a training pass does before backward
        mu, inv_std = rm.reshape(n, f).copy(), (rv.reshape(n, f) + T(eps)) ** -0.5
        scale = gd.reshape(n, f) * inv_std

        def backward_eval(g):
            if relu_:
                g = g * (out > 0)
            g3 = (g if members else g[None]).astype(dt, copy=False)
            x3 = (xd if members else xd[None]).astype(dt, copy=False)
            ggamma = (g3 * ((x3 - mu[:, None, :]) * inv_std[:, None, :])).sum(axis=1)
            gx = (g3 * scale[:, None, :]).reshape(xd.shape).astype(xd.dtype, copy=False) if x.requires_grad else None
            return gx, ggamma.reshape(gd.shape), g3.sum(axis=1).reshape(bd.shape)

        return _make(out, (x, gamma, beta), backward_eval)

    kern = backend.raw_kernel("bn_forward_train", xd.dtype, dt)
    kern_back = backend.raw_kernel("bn_backward_train", xd.dtype, dt)
    if kern is None or kern_back is None:
        return None
    stats = xp.empty((4, n, f), dt)  # μ, σ², 1/√(σ² + ε), γ/√(σ² + ε) per member and feature
    update = running_mean is not None
    rm = running_mean.data if update else stats  # not touched without running averages
    rv = running_var.data if update else stats
    inv_m = T(1.0 / m)
    kern(grid, cuda_kernels.BN_BLOCK,
         (xd, gd, bd, np.int64(m), np.int64(f), _row_stride(gd), _row_stride(bd), inv_m, T(eps), np.int32(relu_),
          out, stats, rm, rv, _row_stride(rm) if update else np.int64(0), T(momentum), T(1 - float(momentum)),
          np.int32(update)))

    def backward(g):
        if g.dtype != xd.dtype or not g.flags.c_contiguous:
            g = xp.ascontiguousarray(g, dtype=xd.dtype)
        grads = xp.empty((2, n, f), dt)  # dγ, dβ
        gx = xp.empty_like(xd) if x.requires_grad else None
        kern_back(grid, cuda_kernels.BN_BLOCK,
                  (g, xd, out if relu_ else xd, stats, np.int64(m), np.int64(f), inv_m, np.int32(relu_),
                   np.int32(gx is not None), g if gx is None else gx, grads))
        return gx, grads[0].reshape(gd.shape), grads[1].reshape(bd.shape)

    return _make(out, (x, gamma, beta), backward)


def _batch_norm_cpu(x, xd, gamma, beta, running_mean, running_var, training, momentum, eps, relu_=False):
    """``batch_norm`` of an (m, F) input, or of a population's (P, m, F) one, through the compiled
    CPU kernels (two passes forward, two backward; an ordinary model is the population of one, so
    each member is computed exactly as the same model alone), followed by ReLU in the same node
    when ``relu_``; None where the kernels do not apply. No centred copy of the input is kept:
    like ``linear``, the backward pass reads the input array itself (the per-feature statistics
    and γ are those of the forward pass)."""
    gd, bd = gamma.data, beta.data
    members = xd.ndim == 3
    x3 = xd if members else xd[None]
    n, m, f = x3.shape
    dt = xd.dtype
    out = np.empty_like(xd)
    out3 = out if members else out[None]
    g2 = gd if members else gd[None]
    # a population's β is a row of its flat parameter buffer: a contiguous copy compiles to faster loops
    b2 = np.ascontiguousarray(bd) if members else bd[None]
    if training:
        kern = _cpu_kernel("bn_forward_train", xd, gd, bd) if m else None
        kern_back = _cpu_kernel("bn_backward_train", xd)
        if kern is None or kern_back is None:
            return None
        g2 = np.array(g2, order="C")  # γ as it was in the forward pass, whatever the optimizer does before backward
        mu, var, inv_std = np.empty((n, f), dt), np.empty((n, f), dt), np.empty((n, f), dt)
        kern(x3, g2, b2, float(eps), relu_, out3, mu, var, inv_std)
        if running_mean is not None:
            _update_running(running_mean, running_var, mu, var, momentum)
    else:
        if running_mean is None:
            return None
        mu = running_mean.data.reshape(n, f).copy()  # a training pass may update it before backward
        inv_std = (running_var.data.reshape(n, f) + eps) ** -0.5
        scale = g2 * inv_std
        kern = _cpu_kernel("bn_forward_eval", xd, gd, bd, mu, scale)
        if kern is None:
            return None
        kern(x3, mu, scale, b2, relu_, out3)

    def backward(g):
        if not training:
            if relu_:
                g = g * (out > 0)
            g3 = g if members else g[None]
            ggamma = (g3 * ((x3 - mu[:, None, :]) * inv_std[:, None, :])).sum(axis=1)
            gx = (g3 * scale[:, None, :]).reshape(xd.shape) if x.requires_grad else None
            return gx, ggamma.reshape(gd.shape), g3.sum(axis=1).reshape(bd.shape)
        if g.dtype != dt or not g.flags.c_contiguous:
            g = np.ascontiguousarray(g, dtype=dt)
        ggamma, gbeta = np.empty((n, f), dt), np.empty((n, f), dt)
        gx = np.empty_like(xd) if x.requires_grad else None
        kern_back(g if members else g[None], x3, mu, inv_std, g2, (out3 if relu_ else None),
                  gx if (gx is None or members) else gx[None], ggamma, gbeta)
        return gx, ggamma.reshape(gd.shape), gbeta.reshape(bd.shape)

    return _make(out, (x, gamma, beta), backward)


def layer_norm(x, gamma, beta, eps=1e-5):
    """Normalization over the feature axis (−1) of each sample, then γ·x̂ + β."""
    x = _tensor(x)
    mu = mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = mean(xc * xc, axis=-1, keepdims=True)
    return xc / sqrt(var + eps) * gamma + beta


def dropout(x, p, training=True):
    """Inverted dropout: keep each unit with probability 1 − p and scale it by 1/(1 − p).

    For a population, x of shape (P, m, F) and ``p`` one probability per member: member k's mask
    is drawn from its own random stream (``polydl.random.members``), as the same model alone
    would draw it (none for a member with p = 0)."""
    x = _tensor(x)
    from . import random as _random

    if np.ndim(p):
        return _dropout_members(x, np.asarray(p, dtype=np.float64), training, _random.member_streams())
    if not training or p == 0:
        return x
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability p must be in [0, 1), not {p}")
    xd = x.data
    u = _random.uniform(xd.shape, xd.dtype, backend.device_of(xd))
    mask = (u >= p).astype(xd.dtype)
    mask *= xd.dtype.type(1.0 / (1.0 - p))
    return _make(xd * mask, (x,), lambda g: (g * mask,))


def _dropout_members(x, ps, training, streams):
    if not training or not ps.any():
        return x
    if ps.min() < 0 or ps.max() >= 1:
        raise ValueError(f"dropout probabilities must be in [0, 1), not {ps.tolist()}")
    xd = x.data
    if xd.ndim < 2 or xd.shape[0] != len(ps):
        raise ValueError(f"dropout with {len(ps)} probabilities (one per member) needs input of shape "
                         f"({len(ps)}, ..., features), not {xd.shape}")
    if streams is None or len(streams) != len(ps):
        raise ValueError("a population's dropout draws from its members' random streams: run it inside "
                         "polydl.random.members(streams) with one stream per member")
    xp = _xp(xd)
    dev = backend.device_of(xd)
    mask = xp.ones_like(xd)
    for k, pk in enumerate(ps.tolist()):
        if pk > 0:
            u = streams[k].uniform(xd.shape[1:], xd.dtype, dev)
            mk = (u >= pk).astype(xd.dtype)
            mk *= xd.dtype.type(1.0 / (1.0 - pk))
            mask[k] = mk
    return _make(xd * mask, (x,), lambda g: (g * mask,))


# ---------------------------------------------------------------------------- losses
def one_hot(labels, num_classes, dtype=np.float32):
    """Rows of zeros with a one at each label: an array on the labels' device."""
    ld = labels.data if isinstance(labels, Tensor) else labels
    xp = _xp(ld)
    out = xp.zeros((ld.shape[0], num_classes), dtype=dtype)
    out[xp.arange(ld.shape[0]), ld] = 1
    return out


def hardmax(scores):
    """Hard max: the one-hot of the arg-max of each row, e.g. [0.8, 0.1, 0.1] → [1, 0, 0]."""
    sd = scores.data if isinstance(scores, Tensor) else scores
    xp = _xp(sd)
    idx = sd.argmax(axis=-1)
    return Tensor((idx[..., None] == xp.arange(sd.shape[-1])).astype(sd.dtype))


def _targets(targets, ref, loss: str):
    """The targets of a loss as an array beside the scores' array ``ref``: a Tensor's array, an
    array as it is, a list or a number converted (a list of ints becomes integer labels)."""
    if type(targets) is np.ndarray:
        td = targets
    elif isinstance(targets, Tensor):
        td = targets.data
    elif hasattr(targets, "shape") and hasattr(targets, "dtype"):
        td = targets
    else:
        td = np.asarray(targets)
        if td.dtype.kind not in "biuf":
            raise ValueError(f"{loss} targets must be numbers (integer labels or target values), not "
                             f"{type(targets).__name__} of {td.dtype}")
        if type(ref) is not np.ndarray:
            td = backend.to_device(td, backend.device_of(ref))
    if not backend.same_device(ref, td):
        raise _dev_error(ref, td)
    return td


def _check_nonempty(loss: str, zd):
    if zd.size == 0:
        raise ValueError(f"{loss} got an empty batch (scores of shape {zd.shape}); it needs at least one sample")


def _check_labels(zd, yd):
    if yd.ndim != zd.ndim - 1 or yd.shape != zd.shape[:-1]:
        raise ValueError(f"labels of shape {yd.shape} do not match scores of shape {zd.shape}: "
                         "expected one integer label per row")


def _per_member(out):
    """Mark a population loss (one value per member): ``backward()`` seeds each member with 1."""
    out._per_member = True
    return out


def _member_labels(zd, td, what):
    """For scores (P, m, C) of a population: the labels (m,) shared by the members, or (P, m)."""
    if td.shape != zd.shape[1:-1] and td.shape != zd.shape[:-1]:
        raise ValueError(f"{what}: labels of shape {td.shape} do not match a population's scores of shape "
                         f"{zd.shape}: give one label per sample, shape {zd.shape[1:-1]} (shared by the members) "
                         f"or {zd.shape[:-1]}")


def softmax_cross_entropy(logits, targets):
    """J = −(1/m) Σᵢ Σⱼ yⱼ log ŷⱼ with ŷ = softmax(z); one node with dJ/dz = (ŷ − y)/m.

    ``targets`` are integer class labels (shape (m,); a list of ints is converted) or one-hot /
    probability rows (m, C); boolean labels are refused as ambiguous. Scores of a population of P
    models, shape (P, m, C), give one J per member (shape (P,), each the mean over that member's
    m samples) with labels (m,) shared by the members or (P, m)."""
    z = _tensor(logits)
    zd = z.data
    xp = _xp(zd)
    td = _targets(targets, zd, "softmax_cross_entropy")
    _check_nonempty("softmax_cross_entropy", zd)
    if td.dtype.kind == "b":
        raise ValueError("softmax_cross_entropy got boolean labels; give integer class indices "
                         "(labels.astype(int)), or use binary_cross_entropy for 0/1 targets")
    if type(zd) is not np.ndarray and td.dtype.kind in "iu":
        fast = _softmax_cross_entropy_cuda(z, zd, td)
        if fast is not None:
            return fast
    in_dtype = zd.dtype
    if in_dtype.itemsize < 4:
        zd = zd.astype(np.float32)  # half scores: the loss and ŷ in float32
    c = zd.shape[-1]
    members = zd.ndim == 3
    labels = td.dtype.kind in "iu"
    if members and labels:
        _member_labels(zd, td, "softmax_cross_entropy")
    if labels and c and (zd.ndim == 2 or members and td.ndim == 1):
        fast = _softmax_cross_entropy_cpu(z, zd, td, in_dtype)
        if fast is not None:
            return fast
    n = zd.shape[0] if members else 1
    m = zd.size // (c * n) if c else 0  # samples per member
    zmax = zd.max(axis=-1, keepdims=True)
    p = zd - zmax
    xp.exp(p, out=p)
    s = p.sum(axis=-1, keepdims=True)
    lse = xp.log(s)
    lse += zmax  # log Σ exp z, per row
    if labels:
        if not members:
            _check_labels(zd, td)
        rows = xp.arange(m)
        t1 = td.reshape(-1, m)  # (1, m) shared, or (P, m)
        if xp is np and m and (t1.min() < 0 or t1.max() >= c):
            _bad_label(t1.reshape(-1), c)
        z3 = zd.reshape(n, m, c)
        zy = z3[:, rows, t1[0]] if t1.shape[0] == 1 else xp.take_along_axis(z3, t1[:, :, None], axis=2)[:, :, 0]
        # −log ŷ_y = log Σ exp z − z_y
        if members:
            loss = (lse.reshape(n, m).sum(axis=1) - zy.sum(axis=1)) * (1.0 / m)
        else:
            loss = (lse.sum() - zy.sum()) * (1.0 / m)
    else:
        if td.shape != zd.shape:
            raise ValueError(f"targets of shape {td.shape} do not match scores of shape {zd.shape}")
        prod = td * (zd - lse)
        loss = -(prod.reshape(n, -1).sum(axis=1) if members else prod.sum()) * (1.0 / m)
    p /= s  # ŷ
    loss = xp.asarray(loss, dtype=zd.dtype)

    def backward(g):
        if labels:  # (ŷ − y)/m with y one-hot
            gz = p.reshape(n, m, c).copy()
            if t1.shape[0] == 1:
                gz[:, rows, t1[0]] -= 1
            else:
                xp.put_along_axis(gz, t1[:, :, None], xp.take_along_axis(gz, t1[:, :, None], axis=2) - 1, axis=2)
            gz = gz.reshape(zd.shape)
        else:
            gz = p - td
        gz *= (g[:, None, None] if members else g) * (1.0 / m)
        return (gz if gz.dtype == in_dtype else gz.astype(in_dtype),)

    out = _make(loss, (z,), backward)
    return _per_member(out) if members else out


def _bad_label(labels, c):
    bad = int(np.flatnonzero((labels < 0) | (labels >= c))[0])
    raise ValueError(f"label {int(labels[bad])} (sample {bad + 1} of the batch) is not a class index: "
                     f"labels must be integers in [0, {c}) for {c} classes")


def _softmax_cross_entropy_cpu(z, zd, td, in_dtype):
    """``softmax_cross_entropy`` of (m, C) scores, or a population's (P, m, C) with labels (m,)
    shared, with integer labels through the compiled CPU kernels (one call forward, one
    backward; an ordinary model is the population of one); None where they do not apply."""
    kern = _cpu_kernel("softmax_xent", zd)
    members = zd.ndim == 3
    m = zd.shape[-2]
    if (kern is None or type(td) is not np.ndarray or not td.dtype.isnative or td.shape != (m,) or not m
            or not zd.flags.c_contiguous):
        return None
    z3 = zd if members else zd[None]
    n, _, c = z3.shape
    p = np.empty_like(z3)
    totals = np.empty(n, np.float64)
    if kern(z3, td, p, totals) >= 0:
        _bad_label(td, c)
    loss = np.asarray(totals / m if members else totals[0] / m, dtype=zd.dtype)
    kern_back = cpu_kernels.get("softmax_xent_backward", zd.size)

    def backward(g):
        gz = np.empty_like(p)
        if members:
            scale = (np.asarray(g, np.float64) * (1.0 / m)).astype(zd.dtype).reshape(n)
        else:  # the same value, without three NumPy calls on a 0-d array
            scale = np.array((float(g) * (1.0 / m),), zd.dtype)
        kern_back(p, td, scale, gz)
        gz = gz if members else gz[0]
        return (gz if gz.dtype == in_dtype else gz.astype(in_dtype),)

    out = _make(loss, (z,), backward)
    return _per_member(out) if members else out


def _softmax_cross_entropy_cuda(z, zd, td):
    """``softmax_cross_entropy`` of (m, C) scores, or a population's (P, m, C) with labels (m,)
    shared, with integer labels through the fused CUDA kernels: one launch forward (ŷ and each
    member's loss), one backward ((ŷ − onehot(y))·g/m). Half scores are read as they are; ŷ and
    the loss are float32 (float64 for float64 scores). A label outside [0, C) gives a NaN loss.
    None where the kernels do not apply (the NumPy form runs)."""
    members = zd.ndim == 3
    if zd.ndim not in (2, 3) or not zd.flags.c_contiguous:
        return None
    m, c = zd.shape[-2], zd.shape[-1]
    in_dtype = zd.dtype
    if td.shape != (m,) or not m or not c or (in_dtype not in _FLOATS and not cuda_kernels.x_kind(in_dtype)):
        return None
    t_dtype = _FLOATS[1] if in_dtype == _FLOATS[1] else _FLOATS[0]
    kern = backend.raw_kernel("softmax_xent", in_dtype, t_dtype)
    kern_back = backend.fused_kernel("softmax_xent_backward")
    if kern is None or kern_back is None:
        return None
    xp = _xp(zd)
    labels = td if td.dtype == np.int64 and td.flags.c_contiguous else xp.ascontiguousarray(td, dtype=np.int64)
    n = zd.shape[0] if members else 1
    p = xp.empty(zd.shape, t_dtype)  # ŷ
    loss = xp.empty(n, t_dtype)
    kern((n, 1, 1), cuda_kernels.SOFTMAX_BLOCK, (zd, labels, np.int64(m), np.int64(c), np.float64(1.0 / m), p, loss))

    def backward(g):
        g = xp.asarray(g, dtype=t_dtype).reshape(-1)  # one value per member (one for a single model)
        gz = xp.empty(zd.shape, in_dtype)
        kern_back(p, labels, g, m, c, t_dtype.type(1.0 / m), gz)
        return (gz,)

    out = _make(loss if members else loss.reshape(()), (z,), backward)
    return _per_member(out) if members else out


def binary_cross_entropy_with_logits(logits, targets):
    """Logistic loss J = (1/m) Σ [log(1 + e^z) − y·z], stable form; dJ/dz = (σ(z) − y)/m.

    Targets are 0/1 labels or probabilities in [0, 1] (outside it J is unbounded below). The
    range is checked for NumPy targets (one min and one max); CUDA targets are not checked, which
    would cost a host synchronisation per step. Logits of a population, shape (P, m, 1), give one
    J per member (shape (P,)) with targets (m,) shared by the members."""
    z = _tensor(logits)
    zd = z.data
    xp = _xp(zd)
    td = _targets(targets, zd, "binary_cross_entropy")
    _check_nonempty("binary_cross_entropy", zd)
    members = zd.ndim == 3
    if members and td.size == zd.size // zd.shape[0]:
        td = td.reshape((1,) + zd.shape[1:])  # shared by the members
    elif td.size == zd.size:
        td = td.reshape(zd.shape)
    if td.shape != zd.shape and not (members and td.shape == (1,) + zd.shape[1:]):
        raise ValueError(f"targets of shape {td.shape} do not match scores of shape {zd.shape}")
    if type(td) is np.ndarray and not (td.min() >= 0 and td.max() <= 1):
        flat = td.reshape(-1)
        bad = flat[~((flat >= 0) & (flat <= 1))][0].item()
        raise ValueError(f"binary_cross_entropy targets must lie in [0, 1] (0/1 labels or probabilities), found "
                         f"{bad!r}; for more than two classes use softmax_cross_entropy")
    yd = td.astype(zd.dtype, copy=False)
    n = zd.shape[0] if members else 1
    m = zd.size // n
    terms = xp.maximum(zd, 0) - zd * yd + xp.log1p(xp.exp(-xp.abs(zd)))
    loss = xp.asarray((terms.reshape(n, -1).sum(axis=1) if members else terms.sum()) / m, dtype=zd.dtype)

    def backward(g):
        e = xp.exp(-xp.abs(zd))
        sig = xp.where(zd >= 0, 1 / (1 + e), e / (1 + e))
        scale = (g.reshape((n,) + (1,) * (zd.ndim - 1)) if members else g) / m
        return (((sig - yd) * scale).astype(zd.dtype, copy=False),)

    out = _make(loss, (z,), backward)
    return _per_member(out) if members else out


def mse(pred, target):
    """Mean squared error over all elements: (1/n) Σ (pred − target)². Predictions of a
    population, shape (P, m, C), give one error per member (shape (P,)) against targets shared by
    the members ((m,) labels or (m, C)) or one set per member (P, m, C)."""
    pred = _tensor(pred)
    pd = pred.data
    td = _targets(target, pd, "mse")
    _check_nonempty("mse", pd)
    members = pd.ndim == 3
    if td.dtype.kind in "iub" and pd.ndim == td.ndim + 1 + members:
        if td.dtype.kind == "b":
            raise ValueError("mse got boolean labels for (batch, classes) predictions; give integer class indices "
                             "(labels.astype(int))")
        if not members:
            _check_labels(pd, td)
        if type(pd) is np.ndarray and (td.min() < 0 or td.max() >= pd.shape[-1]):
            _bad_label(td.reshape(-1), pd.shape[-1])
        td = one_hot(td, pd.shape[-1], pd.dtype)
    if td.shape != pd.shape and not (members and td.shape == pd.shape[1:]):
        raise ValueError(f"targets of shape {td.shape} do not match predictions of shape {pd.shape}")
    diff = pd - td
    k = pd.shape[0] if members else 1
    n = diff.size // k
    sq = diff * diff
    loss = _xp(pd).asarray((sq.reshape(k, -1).sum(axis=1) if members else sq.sum()) / n, dtype=pd.dtype)
    if not members:
        return _make(loss, (pred,), lambda g: (diff * (g * (2.0 / n)),))
    return _per_member(_make(loss, (pred,), lambda g: (diff * (g[:, None, None] * (2.0 / n)),)))
