"""Batch normalization as one node: its NumPy form, the compiled CPU kernels and the fused CUDA kernels."""
from __future__ import annotations

import numpy as np

from .. import backend, cpu_kernels, cuda_kernels
from ..capture.record import record_forward
from ..tensor import _CAPTURE, _make, unbroadcast
from ..tensor import _MODE as _grad_mode
from ._common import _FLOATS, _cpu_kernel, _row_stride, _tensor, _xp
from .elementwise import relu

__all__ = ["batch_norm"]


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

    batch_sum, batch_dot = _batch_reducers(xp, flat, members)

    def forward():
        m, xc, inv_std = _statistics(xd, running_mean, running_var, training, momentum, eps, members,
                                     (batch_sum, batch_dot))
        scale = gd * inv_std  # γ/√(σ² + ε) per feature
        out = xc * scale
        out += bd
        return m, xc, inv_std, scale, out

    m, xc, inv_std, scale, out = _recorded(forward, xd is x.data, in_dtype)

    def backward(g):
        if g.dtype != xd.dtype:
            g = g.astype(xd.dtype)
        return _backward(xp, x, gamma, beta, g, xc, inv_std, scale, m, (batch_sum, batch_dot), members, in_dtype)

    return _make(out, (x, gamma, beta), backward)


def _recorded(forward, same_input: bool, in_dtype):
    """The NumPy form's ``forward()``, its output cast back to ``in_dtype``; while a step is
    captured, it is also the replay (into the same arrays) when no cast was needed."""
    m, xc, inv_std, scale, out = forward()
    if out.dtype != in_dtype:
        return m, xc, inv_std, scale, out.astype(in_dtype)
    if same_input:
        record_forward(lambda: forward()[1:], (xc, inv_std, scale, out))
    return m, xc, inv_std, scale, out


def _statistics(xd, running_mean, running_var, training, momentum, eps, members, reducers):
    """``(m, xc, 1/√(σ² + ε))`` of the NumPy form: in training the batch's μ and biased σ² (the
    running averages updated), m its size; in evaluation the running averages, m None."""
    batch_sum, batch_dot = reducers
    if training:
        m = xd.shape[-2]
        mu = batch_sum(xd)
        mu *= 1.0 / m
        xc = xd - mu
        var = batch_dot(xc, xc)
        var *= 1.0 / m
        if running_mean is not None:
            _update_running(running_mean, running_var, mu, var, momentum)
        return m, xc, (var + eps) ** -0.5
    if running_mean is None:
        raise ValueError("batch_norm in evaluation mode needs running_mean and running_var")
    rm, rv = running_mean.data, running_var.data
    if members:
        rm, rv = rm[:, None, :], rv[:, None, :]
    return None, xd - rm, (rv + eps) ** -0.5


def _batch_reducers(xp, flat: bool, members: bool):
    """Σ over the batch axis, and Σ over it of a·b in one pass (member by member, each as the same
    model's alone), for an (m, F) input (``flat``), a population's (P, m, F) one, or (..., m, F)."""
    def batch_sum(a):
        return a.sum(axis=-2, keepdims=not flat)

    def batch_dot(a, b):
        if flat:
            return xp.einsum("ij,ij->j", a, b)
        if members:
            return xp.einsum("pij,pij->pj", a, b)[:, None, :]
        return (a * b).sum(axis=-2, keepdims=True)

    return batch_sum, batch_dot


def _backward(xp, x, gamma, beta, g, xc, inv_std, scale, m, reducers, members, in_dtype):
    """The NumPy form's gradients (dx, dγ, dβ) from g = dJ/dz̃, xc = z − μ and scale = γ/√(σ²+ε):
    dβ = Σ g, dγ = Σ g·z_norm, and dx = scale · (g − Σg/m − z_norm·Σ(g·z_norm)/m) in training
    (``m`` the batch size) or dx = scale · g in evaluation (``m`` None: μ and σ² are constants)."""
    batch_sum, batch_dot = reducers
    gbeta = batch_sum(g)
    ggamma = batch_dot(g, xc)
    ggamma *= inv_std  # Σ g·z_norm
    gx = None
    if x.requires_grad:
        if m is not None:
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
    """running = momentum · running + (1 − momentum) · batch, in place (one compiled pass where
    the CPU kernels run, the same arithmetic)."""
    mom = float(momentum)
    rm, rv = running_mean.data, running_var.data
    if type(rm) is np.ndarray and rm.flags.c_contiguous and rv.flags.c_contiguous and mu.flags.c_contiguous \
            and var.flags.c_contiguous and rm.dtype == rv.dtype == mu.dtype == var.dtype and rm.size == mu.size:
        kern = _cpu_kernel("bn_running", rm)
        if kern is not None:
            t = rm.dtype.type
            kern(rm.reshape(-1), rv.reshape(-1), mu.reshape(-1), var.reshape(-1), t(mom), t(1 - mom))
            return
    rm *= mom
    rm += (1 - mom) * mu.reshape(rm.shape)
    rv *= mom
    rv += (1 - mom) * var.reshape(rv.shape)


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
    args = (xd, gd, bd, np.int64(m), np.int64(f), _row_stride(gd), _row_stride(bd), inv_m, T(eps), np.int32(relu_),
            out, stats, rm, rv, _row_stride(rm) if update else np.int64(0), T(momentum), T(1 - float(momentum)),
            np.int32(update))
    kern(grid, cuda_kernels.BN_BLOCK, args)
    if _CAPTURE.rec is not None:
        _CAPTURE.rec.op(lambda: kern(grid, cuda_kernels.BN_BLOCK, args))

    def backward(g):
        g_in = g
        if g.dtype != xd.dtype or not g.flags.c_contiguous:
            g = xp.ascontiguousarray(g, dtype=xd.dtype)
        grads = xp.empty((2, n, f), dt)  # dγ, dβ
        gx = xp.empty_like(xd) if x.requires_grad else None
        back_args = (g, xd, out if relu_ else xd, stats, np.int64(m), np.int64(f), inv_m, np.int32(relu_),
                     np.int32(gx is not None), g if gx is None else gx, grads)
        kern_back(grid, cuda_kernels.BN_BLOCK, back_args)
        if _CAPTURE.rec is not None:
            _CAPTURE.rec.grad(_kernel_replay(lambda: kern_back(grid, cuda_kernels.BN_BLOCK, back_args), (), g_in, g))
        return gx, grads[0].reshape(gd.shape), grads[1].reshape(bd.shape)

    return _make(out, (x, gamma, beta), backward)


def _batch_norm_cpu(x, xd, gamma, beta, running_mean, running_var, training, momentum, eps, relu_=False):
    """``batch_norm`` of an (m, F) input, or of a population's (P, m, F) one, through the compiled
    CPU kernels (two passes forward, two backward; an ordinary model is the population of one, so
    each member is computed exactly as the same model alone), followed by ReLU in the same node
    when ``relu_``; None where the kernels do not apply. No centred copy of the input is kept:
    like ``linear``, the backward pass reads the input array itself (the per-feature statistics
    and γ are those of the forward pass)."""
    if type(xd) is not np.ndarray:  # CuPy data where the CUDA kernels do not apply: the NumPy form
        return None
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
        g_src = g2
        g2 = np.array(g2, order="C")  # γ as it was in the forward pass, whatever the optimizer does before backward
        mu, var, inv_std = np.empty((n, f), dt), np.empty((n, f), dt), np.empty((n, f), dt)
        kern(x3, g2, b2, float(eps), relu_, out3, mu, var, inv_std)
        if running_mean is not None:
            _update_running(running_mean, running_var, mu, var, momentum)
        if _CAPTURE.rec is not None:
            _CAPTURE.rec.op(_cpu_train_replay(cpu_kernels.settled(kern),
                                              (x3, g_src, g2, bd, b2, float(eps), relu_, out3, mu, var, inv_std),
                                              running_mean, running_var, momentum))
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

    if not training:
        return _make(out, (x, gamma, beta), _eval_backward(x, gamma, beta, xd, out, mu, inv_std, scale, relu_))

    def backward(g):
        g_in = g
        if g.dtype != dt or not g.flags.c_contiguous:
            g = np.ascontiguousarray(g, dtype=dt)
        ggamma, gbeta = np.empty((n, f), dt), np.empty((n, f), dt)
        gx = np.empty_like(xd) if x.requires_grad else None
        args = (g if members else g[None], x3, mu, inv_std, g2, (out3 if relu_ else None),
                gx if (gx is None or members) else gx[None], ggamma, gbeta)
        kern_back(*args)
        if _CAPTURE.rec is not None:
            _CAPTURE.rec.grad(_kernel_replay(cpu_kernels.settled(kern_back), args, g_in, g))
        return gx, ggamma.reshape(gd.shape), gbeta.reshape(bd.shape)

    return _make(out, (x, gamma, beta), backward)


def _cpu_train_replay(kern, args, running_mean, running_var, momentum):
    """The compiled training forward into its recorded arrays: γ and (a population's) β copied as
    the eager step copied them, the kernel, the running averages."""
    x3, g_src, g2, bd, b2, eps, relu_, out3, mu, var, inv_std = args
    copy_beta = b2 is not bd and not np.shares_memory(b2, bd)
    running = None if running_mean is None else _running_replay(running_mean, running_var, mu, var, momentum)

    def replay():
        np.copyto(g2, g_src)
        if copy_beta:
            np.copyto(b2, bd)
        kern(x3, g2, b2, eps, relu_, out3, mu, var, inv_std)
        if running is not None:
            running()

    return replay


def _running_replay(running_mean, running_var, mu, var, momentum):
    """:func:`_update_running` of the recorded arrays as a replay: the compiled pass with its
    arguments made once where it ran (a captured step replays only while the buffers' arrays are
    the ones recorded), else the function itself."""
    rm, rv = running_mean.data, running_var.data
    kern = _cpu_kernel("bn_running", rm) if type(rm) is np.ndarray else None
    if (kern is None or not (rm.flags.c_contiguous and rv.flags.c_contiguous and mu.flags.c_contiguous
                             and var.flags.c_contiguous) or not rm.dtype == rv.dtype == mu.dtype == var.dtype
            or rm.size != mu.size):
        return lambda: _update_running(running_mean, running_var, mu, var, momentum)
    kern, mom, t = cpu_kernels.settled(kern), float(momentum), rm.dtype.type
    args = (rm.reshape(-1), rv.reshape(-1), mu.reshape(-1), var.reshape(-1), t(mom), t(1 - mom))
    return lambda: kern(*args)


def _kernel_replay(kern, args, g_in, g):
    """A backward kernel again on its recorded arrays, after the copy of an incoming gradient that
    the eager step made contiguous (``g`` a copy of ``g_in``)."""
    if g is g_in:
        return lambda: kern(*args)
    copyto = backend.get_array_module(g).copyto

    def replay():
        copyto(g, g_in)
        kern(*args)

    return replay


def _eval_backward(x, gamma, beta, xd, out, mu, inv_std, scale, relu_):
    """The backward closure of the compiled evaluation forward: the NumPy form's (:func:`_backward`)
    with that node's (P, F) statistics, after ReLU's mask when it was fused."""
    members = xd.ndim == 3
    if members:
        mu, inv_std, scale = mu[:, None, :], inv_std[:, None, :], scale[:, None, :]
    else:
        mu, inv_std, scale = mu[0], inv_std[0], scale[0]

    def backward(g):
        if relu_:
            g = g * (out > 0)
        if g.dtype != xd.dtype:
            g = g.astype(xd.dtype)
        return _backward(np, x, gamma, beta, g, xd - mu, inv_std, scale, None,
                         _batch_reducers(np, not members, members), members, xd.dtype)

    return backward
