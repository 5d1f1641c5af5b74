"""Batch normalization per channel of NCHW images: the compiled CPU kernels over the channels of
the NCHW array itself, and elsewhere :func:`~polydl.ops.batch_norm.batch_norm` of its (N·H·W, C)
rows (its NumPy form and its CUDA kernels)."""
from __future__ import annotations

import numpy as np

from .. import cpu_kernels
from ..capture.record import record_forward
from ..tensor import _CAPTURE, _make
from ._common import _FLOATS, _tensor
from ._windows import check_image
from .batch_norm import _update_running, batch_norm
from .shapes import reshape, transpose

__all__ = ["batch_norm2d"]


def batch_norm2d(x, gamma, beta, running_mean=None, running_var=None, training=True,
                 momentum=0.9, eps=1e-5, activation=None):
    """Batch normalization of each channel of images x (N, C, H, W) over its N·H·W values: the
    notes' batch norm with the N·H·W values of a channel as its mini-batch.

    Training: μ_c = mean of x[:, c], σ²_c their (biased) variance, y = γ_c (x − μ_c)/√(σ²_c + ε)
    + β_c, and the running averages become momentum·old + (1 − momentum)·batch. Evaluation: μ and
    σ² are the running averages. γ, β and the running averages have shape (C,). The backward is
    batch norm's closed form, dx = γ/√(σ² + ε)·(g − mean(g) − x̂·mean(g·x̂)) per channel: it is
    :func:`batch_norm` of the (N·H·W, C) matrix whose rows are the pixels, exactly.

    ``activation="relu"`` returns relu(y) in the same node where the compiled kernels run."""
    x = _tensor(x)
    _check(x.data.shape, gamma, training, running_mean)
    if activation is not None and activation != "relu":
        raise ValueError(f"batch_norm2d activation must be None or 'relu', not {activation!r}")
    fast = _batch_norm2d_cpu(x, gamma, beta, running_mean, running_var, training, momentum, eps,
                             activation == "relu")
    if fast is not None:
        return fast
    n, c, h, w = x.data.shape
    rows = reshape(transpose(x, (0, 2, 3, 1)), (n * h * w, c))
    out = batch_norm(rows, gamma, beta, running_mean, running_var, training, momentum, eps, activation)
    return transpose(reshape(out, (n, h, w, c)), (0, 3, 1, 2))


def _check(shape, gamma, training, running_mean):
    """One line for an input batch normalization per channel cannot use."""
    check_image("batch_norm2d", shape)
    gshape = tuple(gamma.data.shape)
    if gshape != (shape[1],):
        raise ValueError(f"batch_norm2d got {shape[1]} channels (input shape {tuple(shape)}), but it normalizes "
                         f"{gshape[0] if len(gshape) == 1 else gshape} (γ has shape {gshape}); give BatchNorm2d the "
                         "input's channels")
    values = shape[0] * shape[2] * shape[3]
    if training and values < 2:
        raise ValueError(f"batch_norm2d in training mode got {values} value(s) per channel (input shape "
                         f"{tuple(shape)}): the σ² of one value is 0, so the normalised output is 0 and nothing "
                         "is learned; use more samples, or evaluation mode (model.eval())")
    if not training and running_mean is None:
        raise ValueError("batch_norm2d in evaluation mode needs running_mean and running_var")


def _batch_norm2d_cpu(x, gamma, beta, running_mean, running_var, training, momentum, eps, relu_):
    """:func:`batch_norm2d` through the compiled CPU kernels over the (N, C, H·W) array, followed
    by ReLU in the same node when ``relu_``; None where they do not apply (not NumPy float32 or
    float64 of one dtype, or no kernels)."""
    xd, gd, bd = x.data, gamma.data, beta.data
    dt = xd.dtype
    if type(xd) is not np.ndarray or dt not in _FLOATS or gd.dtype != dt or bd.dtype != dt:
        return None
    n, c, h, w = xd.shape
    names = ("bn_nchw_forward_train", "bn_nchw_backward_train") if training else ("bn_nchw_forward_eval",)
    kernels = [cpu_kernels.get(name, xd.size) for name in names]
    if None in kernels:
        return None
    if not training:
        def forward_eval():
            x3 = np.ascontiguousarray(xd).reshape(n, c, h * w)
            out = np.empty_like(x3)
            mu = np.array(running_mean.data, dt)  # a training pass may update them before backward
            inv_std = (np.asarray(running_var.data, dt) + dt.type(eps)) ** -0.5
            scale = gd * inv_std
            kernels[0](x3, mu, scale, np.ascontiguousarray(bd), relu_, out)
            return x3, out, mu, inv_std, scale

        x3, out, mu, inv_std, scale = recorded = forward_eval()
        record_forward(forward_eval, recorded)
        return _make(out.reshape(xd.shape), (x, gamma, beta), _eval_backward(x, x3, out, mu, inv_std, scale, relu_))
    kern, kern_back = kernels
    xc = np.ascontiguousarray(xd)
    x3 = xc.reshape(n, c, h * w)
    b1 = np.ascontiguousarray(bd)
    out = np.empty_like(x3)
    g1 = np.array(gd, order="C")  # γ as it is now, whatever the optimizer does before backward
    mu, var, inv_std = np.empty(c, dt), np.empty(c, dt), np.empty(c, dt)
    args = (x3, g1, b1, float(eps), relu_, out, mu, var, inv_std)
    kern(*args)
    if running_mean is not None:
        _update_running(running_mean, running_var, mu, var, momentum)
    if _CAPTURE.rec is not None:
        settled = cpu_kernels.settled(kern)

        def replay():  # the same copies and calls into the same arrays
            if xc is not xd:
                np.copyto(xc, xd)
            if b1 is not bd:
                np.copyto(b1, bd)
            np.copyto(g1, gd)
            settled(*args)
            if running_mean is not None:
                _update_running(running_mean, running_var, mu, var, momentum)

        _CAPTURE.rec.op(replay)

    def backward(g):
        g3 = np.ascontiguousarray(g, dtype=dt).reshape(x3.shape)
        ggamma, gbeta = np.empty(c, dt), np.empty(c, dt)
        gx = np.empty_like(x3) if x.requires_grad else None
        kern_back(g3, x3, mu, inv_std, g1, out if relu_ else None, gx, ggamma, gbeta)
        return None if gx is None else gx.reshape(xd.shape), ggamma, gbeta

    return _make(out.reshape(xd.shape), (x, gamma, beta), backward)


def _eval_backward(x, x3, out, mu, inv_std, scale, relu_):
    """The gradients of the evaluation forward, where μ and σ² are constants: dx = g·scale,
    dγ = Σ g·(x − μ)/√(σ² + ε), dβ = Σ g (after ReLU's mask when it was fused)."""
    def backward(g):
        g3 = np.asarray(g, dtype=x3.dtype).reshape(x3.shape)
        if relu_:
            g3 = g3 * (out > 0)
        gbeta = g3.sum(axis=(0, 2))
        ggamma = np.einsum("ncl,ncl->c", g3, x3 - mu[:, None]) * inv_std
        gx = (g3 * scale[:, None]).reshape(x.data.shape) if x.requires_grad else None
        return gx, ggamma, gbeta

    return backward
