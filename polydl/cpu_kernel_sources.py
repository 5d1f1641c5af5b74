"""The sources of the fused CPU kernels (plain Python loops that Numba compiles; see
``polydl.cpu_kernels`` for when they run): the optimizer steps over flat buffers and a
population's rows, ReLU's backward, row sums for bias gradients, batch normalization's passes and
softmax cross-entropy's. Each is the NumPy form of the same computation written per element.
``SOURCES`` names each kernel, the convolutional ops' too (their sources are in
``polydl.cpu_kernel_sources_conv``); ``COMPOSITES`` are kernels made of compiled parts with a
NumPy call between them."""
from __future__ import annotations

import threading

import numpy as np

from .cpu_kernel_sources_conv import COMPOSITES as _CONV_COMPOSITES
from .cpu_kernel_sources_conv import SOURCES as _CONV_SOURCES


# ---------------------------------------------------------------------------- optimizers
# Flat 1-D buffers; scalars arrive in the buffers' dtype. Each loop body is the NumPy form of
# the optimizer (polydl.optim.optimizers) written per element, in the same order of operations.
def _sgd(p, g, lr):
    for i in range(p.shape[0]):
        p[i] -= g[i] * lr


def _momentum(p, g, v, beta, step):
    for i in range(p.shape[0]):
        vi = v[i] * beta + g[i]
        v[i] = vi
        p[i] -= vi * step


def _rmsprop(p, g, s, beta, step, eps):
    for i in range(p.shape[0]):
        gi = g[i]
        si = s[i] * beta + gi * gi
        s[i] = si
        p[i] -= gi / (np.sqrt(si) + eps) * step


def _adam(p, g, m, v, beta1, beta2, step, eps):
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] * beta1 + gi
        vi = v[i] * beta2 + gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= mi / (np.sqrt(vi) + eps) * step


# The same updates over the rows of a population's (P, N) buffers, each row with its own
# coefficients (arrays of P values in the buffers' dtype); the loop body is the 1-D kernel's.
def _sgd_rows(p, g, lr):
    for r in range(p.shape[0]):
        lr_r = lr[r]
        for i in range(p.shape[1]):
            p[r, i] -= g[r, i] * lr_r


def _momentum_rows(p, g, v, beta, step):
    for r in range(p.shape[0]):
        beta_r, step_r = beta[r], step[r]
        for i in range(p.shape[1]):
            vi = v[r, i] * beta_r + g[r, i]
            v[r, i] = vi
            p[r, i] -= vi * step_r


def _rmsprop_rows(p, g, s, beta, step, eps):
    for r in range(p.shape[0]):
        beta_r, step_r, eps_r = beta[r], step[r], eps[r]
        for i in range(p.shape[1]):
            gi = g[r, i]
            si = s[r, i] * beta_r + gi * gi
            s[r, i] = si
            p[r, i] -= gi / (np.sqrt(si) + eps_r) * step_r


def _adam_rows(p, g, m, v, beta1, beta2, step, eps):
    for r in range(p.shape[0]):
        b1, b2, step_r, eps_r = beta1[r], beta2[r], step[r], eps[r]
        for i in range(p.shape[1]):
            gi = g[r, i]
            mi = m[r, i] * b1 + gi
            vi = v[r, i] * b2 + gi * gi
            m[r, i] = mi
            v[r, i] = vi
            p[r, i] -= mi / (np.sqrt(vi) + eps_r) * step_r


# ---------------------------------------------------------------------------- activations
def _relu_backward(g, out, gx, zero):
    """gx = g·[out > 0] (flat 1-D views; ``zero`` in g's dtype, so NaN·0 stays NaN as in NumPy)."""
    for i in range(g.shape[0]):
        gi = g[i]
        gx[i] = gi if out[i] > 0 else gi * zero


def _bn_running(rm, rv, mu, var, mom, rest):
    """running = momentum·running + (1 − momentum)·batch for the mean and the variance (flat 1-D
    views; ``mom`` and ``rest`` in their dtype), as NumPy's ``rm *= mom; rm += rest * mu``."""
    for i in range(rm.shape[0]):
        rm[i] = rm[i] * mom + rest * mu[i]
        rv[i] = rv[i] * mom + rest * var[i]


def _sum_rows(g, out):
    """out[p] = Σᵢ g[p, i] in g's dtype, row after row (the order of NumPy's sum over axis −2):
    the bias gradient of a linear layer, for a population or (P = 1) one model."""
    n, m, f = g.shape
    for p in range(n):
        for j in range(f):
            out[p, j] = g[p, 0, j] if m > 0 else g.dtype.type(0)
        for i in range(1, m):
            for j in range(f):
                out[p, j] += g[p, i, j]


# ---------------------------------------------------------------------------- batch norm
# x, g, out: (P, m, F), row-contiguous; per-feature arrays (P, F): member p (p = 0 for an
# ordinary model, whose arrays arrive as [None] views) is normalised over its own batch axis.
# Sums in float64. With ``relu`` true the output is max(0, ·) of the normalized one (batch
# norm then ReLU in one node); the backward kernel then takes that output and masks the
# gradient with out > 0.
def _bn_forward_train(x, gamma, beta, eps, relu, out, mu, var, inv_std):
    """μ, σ² (biased) per feature; out = (x − μ)·γ/√(σ² + ε) + β. Two passes: float64 sums of
    x − x₀ and (x − x₀)² (shifted by the first row, which keeps σ² stable), then the output."""
    n, m, f = x.shape
    s1 = np.zeros(f, np.float64)
    s2 = np.zeros(f, np.float64)
    scale = np.empty(f, x.dtype)
    for p in range(n):
        for j in range(f):
            s1[j] = 0.0
            s2[j] = 0.0
        for i in range(m):
            for j in range(f):
                d = np.float64(x[p, i, j]) - np.float64(x[p, 0, j])
                s1[j] += d
                s2[j] += d * d
        for j in range(f):
            d1 = s1[j] / m
            vj = s2[j] / m - d1 * d1
            if vj < 0.0:
                vj = 0.0
            mj = np.float64(x[p, 0, j]) + d1
            r = 1.0 / np.sqrt(vj + eps)
            mu[p, j] = mj
            var[p, j] = vj
            inv_std[p, j] = r
            scale[j] = np.float64(gamma[p, j]) * r
        for i in range(m):
            for j in range(f):
                v = (x[p, i, j] - mu[p, j]) * scale[j] + beta[p, j]
                if relu and v <= 0:
                    v = v - v  # +0 (NaN stays NaN, as with NumPy's maximum)
                out[p, i, j] = v


def _bn_forward_eval(x, mu, scale, beta, relu, out):
    """out = (x − μ)·scale + β per feature (scale = γ/√(σ² + ε), μ and σ² the running averages)."""
    n, m, f = x.shape
    for p in range(n):
        for i in range(m):
            for j in range(f):
                v = (x[p, i, j] - mu[p, j]) * scale[p, j] + beta[p, j]
                if relu and v <= 0:
                    v = v - v
                out[p, i, j] = v


def _bn_backward_train(g, x, mu, inv_std, gamma, out, gx, ggamma, gbeta):
    """Σg, Σg·z_norm, and gx = γ/√(σ²+ε)·(g − Σg/m − z_norm·Σ(g·z_norm)/m), as
    gx = a·g + b·(x − μ) + c per feature. ``gx`` may be None (input needs no gradient); ``out``
    is None, or the fused ReLU's output, and then g is first multiplied by [out > 0]."""
    n, m, f = g.shape
    sg = np.zeros(f, np.float64)
    sgx = np.zeros(f, np.float64)
    a = np.empty(f, g.dtype)
    b = np.empty(f, g.dtype)
    c = np.empty(f, g.dtype)
    for p in range(n):
        for j in range(f):
            sg[j] = 0.0
            sgx[j] = 0.0
        for i in range(m):
            for j in range(f):
                gij = np.float64(g[p, i, j])
                if out is not None:
                    if not out[p, i, j] > 0:
                        gij = gij * 0.0
                sg[j] += gij
                sgx[j] += gij * np.float64(x[p, i, j])
        for j in range(f):
            r = np.float64(inv_std[p, j])
            mj = np.float64(mu[p, j])
            sgz = (sgx[j] - mj * sg[j]) * r  # Σ g·z_norm
            gbeta[p, j] = sg[j]
            ggamma[p, j] = sgz
            aj = np.float64(gamma[p, j]) * r
            bj = -aj * r * sgz / m
            a[j] = aj
            b[j] = bj
            c[j] = -aj * sg[j] / m
        if gx is not None:
            for i in range(m):
                for j in range(f):
                    gij = g[p, i, j]
                    if out is not None:
                        if not out[p, i, j] > 0:
                            gij = gij - gij  # 0, and NaN for NaN or ±inf as NumPy's g·0
                    gx[p, i, j] = gij * a[j] + (x[p, i, j] - mu[p, j]) * b[j] + c[j]


# ---------------------------------------------------------------------------- softmax cross-entropy
# z, p, gz: (P, m, C) (P = 1 for an ordinary model); labels (m,), shared by the members.
def _softmax_shift(z, labels, p, zmax):
    """Row-wise zmax = max_j z and p = z − zmax. Returns −1, or the first row whose label is
    outside [0, C)."""
    n, m, c = z.shape
    for i in range(m):
        t = labels[i]
        if t < 0 or t >= c:
            return i
    for q in range(n):
        for i in range(m):
            mx = z[q, i, 0]
            for j in range(1, c):
                if z[q, i, j] > mx:
                    mx = z[q, i, j]
            zmax[q, i] = mx
            for j in range(c):
                p[q, i, j] = z[q, i, j] - mx
    return -1


def _softmax_finish(z, labels, p, zmax, totals):
    """With p = exp(z − zmax): s = Σⱼ p (float64), ŷ = p/s into p and, per member,
    Σᵢ (log s + zmax − zᵢ,yᵢ) (float64) into totals."""
    n, m, c = z.shape
    for q in range(n):
        total = 0.0
        for i in range(m):
            s = 0.0
            for j in range(c):
                s += p[q, i, j]
            for j in range(c):
                p[q, i, j] = p[q, i, j] / s
            total += np.log(s) + zmax[q, i] - z[q, i, labels[i]]
        totals[q] = total


def _softmax_xent_of(shift, finish):
    scratch = threading.local()  # the row maxima's buffer, per thread, kept for the next call of the same shape

    def softmax_xent(z, labels, p, totals):
        """Row-wise ŷ = softmax(z) into p and, per member, Σᵢ (log Σⱼ exp zᵢⱼ − zᵢ,yᵢ) (float64)
        into totals; exp by NumPy's vectorised loop between the two compiled passes (a compiled
        loop calls the scalar exp once per element, several times slower). Returns −1, or the
        first row whose label is outside [0, C)."""
        zmax = getattr(scratch, "zmax", None)
        if zmax is None or zmax.shape != z.shape[:2] or zmax.dtype != z.dtype:
            zmax = scratch.zmax = np.empty(z.shape[:2], z.dtype)  # one shape at a time is all a loop needs
        bad = shift(z, labels, p, zmax)
        if bad >= 0:
            return bad
        np.exp(p, out=p)
        finish(z, labels, p, zmax, totals)
        return -1

    return softmax_xent


def _softmax_xent_backward(p, labels, scale, gz):
    """gz = (ŷ − onehot(y))·scale, with one scale per member."""
    n, m, c = p.shape
    for q in range(n):
        sq = scale[q]
        for i in range(m):
            t = labels[i]
            for j in range(c):
                gz[q, i, j] = p[q, i, j] * sq
            gz[q, i, t] = (p[q, i, t] - 1) * sq


SOURCES = {
    "sgd": _sgd, "momentum": _momentum, "rmsprop": _rmsprop, "adam": _adam,
    "sgd_rows": _sgd_rows, "momentum_rows": _momentum_rows, "rmsprop_rows": _rmsprop_rows, "adam_rows": _adam_rows,
    "relu_backward": _relu_backward, "sum_rows": _sum_rows, "bn_running": _bn_running,
    "bn_forward_train": _bn_forward_train, "bn_forward_eval": _bn_forward_eval,
    "bn_backward_train": _bn_backward_train,
    "softmax_shift": _softmax_shift, "softmax_finish": _softmax_finish,
    "softmax_xent_backward": _softmax_xent_backward,
    **_CONV_SOURCES,  # im2col/col2im, pooling, batch norm per channel (polydl.cpu_kernel_sources_conv)
}
#: kernels made of compiled parts and a NumPy call between them
COMPOSITES = {"softmax_xent": (_softmax_xent_of, ("softmax_shift", "softmax_finish")), **_CONV_COMPOSITES}
