"""The sources of the convolutional ops' compiled CPU kernels (plain Python loops that Numba
compiles; ``polydl.cpu_kernels`` says when they run), each the NumPy form of the same computation
in ``polydl.ops`` written per element: im2col and col2im around the convolution's GEMM, max and
average pooling, and batch normalization per channel of an NCHW input.

Images are C-contiguous (N, C, H, W) arrays; a window's geometry arrives as int64 scalars
(kernel kh × kw, stride sh × sw, padding ph × pw, dilation dh × dw). The columns of im2col are a
(C, kh, kw, N, OH, OW) array: row (c, i, j) of the GEMM's (C·kh·kw, N·OH·OW) operand.
"""
from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------------------- im2col / col2im
# Element offsets into the flat arrays are np.uint64: Numba checks every signed index for a
# negative value (Python's wrap-around), which keeps these short copy loops from vectorizing
# (4× slower); every offset here is a valid, non-negative one. (uint64 with int64 gives float64
# in Numba, so offsets are computed as int64 and converted once.)
def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, col):
    """col[c, i, j, n, y, x] = x[n, c, y·sh + i·dh − ph, x·sw + j·dw − pw], 0 in the padding."""
    n, c, h, w = x.shape
    oh, ow = col.shape[4], col.shape[5]
    xf = x.reshape(-1)
    cf = col.reshape(-1)
    step = np.uint64(sw)
    dst = np.uint64(0)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                offw = j * dw - pw
                lo = min(ow, max(0, -(offw // sw)))  # the columns x whose input column lies in [0, w)
                hi = max(lo, min(ow, (w - 1 - offw) // sw + 1))
                for b in range(n):
                    plane = (b * c + ci) * h
                    for y in range(oh):
                        hy = y * sh + i * dh - ph
                        if hy < 0 or hy >= h:
                            for xo in range(ow):
                                cf[dst + np.uint64(xo)] = 0
                        else:
                            for xo in range(lo):
                                cf[dst + np.uint64(xo)] = 0
                            src = np.uint64((plane + hy) * w + offw + lo * sw)
                            d = dst + np.uint64(lo)
                            for q in range(np.uint64(hi - lo)):
                                cf[d + q] = xf[src + q * step]
                            for xo in range(hi, ow):
                                cf[dst + np.uint64(xo)] = 0
                        dst += np.uint64(ow)


def _col2im(col, sh, sw, ph, pw, dh, dw, gx):
    """gx[n, c, h, w] = Σ col[c, i, j, n, y, x] over the (i, j, y, x) that im2col read from
    (h, w), added in the order of (i, j) as the NumPy form adds its slices."""
    n, c, h, w = gx.shape
    kh, kw, oh, ow = col.shape[1], col.shape[2], col.shape[4], col.shape[5]
    gf = gx.reshape(-1)
    cf = col.reshape(-1)
    gf[:] = 0
    step = np.uint64(sw)
    src = np.uint64(0)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                offw = j * dw - pw
                lo = min(ow, max(0, -(offw // sw)))
                hi = max(lo, min(ow, (w - 1 - offw) // sw + 1))
                for b in range(n):
                    plane = (b * c + ci) * h
                    for y in range(oh):
                        hy = y * sh + i * dh - ph
                        if 0 <= hy < h:
                            d = np.uint64((plane + hy) * w + offw + lo * sw)
                            s = src + np.uint64(lo)
                            for q in range(np.uint64(hi - lo)):
                                gf[d + q * step] += cf[s + q]
                        src += np.uint64(ow)


# ---------------------------------------------------------------------------- pooling
# The window of output (y, x) covers rows h0 + [i0, i1) and columns w0 + [j0, j1) of the image.
def _max_pool2d_exact(x, kh, kw, sh, sw, ph, pw, out, arg):
    """out = the maximum of each window (the padding never wins), arg = its index h·W + w in the
    image plane; ties go to the first in row-major order, and a NaN wins (it propagates)."""
    n, c, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    af = arg.reshape(-1)
    o = np.uint64(0)
    for p in range(n * c):
        base = p * h * w
        for y in range(oh):
            h0 = y * sh - ph
            i0, i1 = max(0, -h0), min(kh, h - h0)
            for xo in range(ow):
                w0 = xo * sw - pw
                j0, j1 = max(0, -w0), min(kw, w - w0)
                a = (h0 + i0) * w + w0 + j0
                m = xf[np.uint64(base + a)]
                for i in range(i0, i1):
                    row = (h0 + i) * w + w0
                    r = np.uint64(base + row)
                    for j in range(j0, j1):
                        v = xf[r + np.uint64(j)]
                        if not v <= m and m == m:
                            m = v
                            a = row + j
                of[o] = m
                af[o] = a
                o += np.uint64(1)


def _max_pool2d_numbers(x, kh, kw, sh, sw, ph, pw, out, arg):
    """:func:`_max_pool2d_exact` for an input without NaN, where "larger" is one comparison
    (v > m) that compiles to a select instead of a branch (2.5× faster)."""
    n, c, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    af = arg.reshape(-1)
    o = np.uint64(0)
    for p in range(n * c):
        base = p * h * w
        for y in range(oh):
            h0 = y * sh - ph
            i0, i1 = max(0, -h0), min(kh, h - h0)
            for xo in range(ow):
                w0 = xo * sw - pw
                j0, j1 = max(0, -w0), min(kw, w - w0)
                a = (h0 + i0) * w + w0 + j0
                m = xf[np.uint64(base + a)]
                for i in range(i0, i1):
                    row = (h0 + i) * w + w0
                    r = np.uint64(base + row)
                    for j in range(j0, j1):
                        v = xf[r + np.uint64(j)]
                        larger = v > m
                        m = v if larger else m
                        a = row + j if larger else a
                of[o] = m
                af[o] = a
                o += np.uint64(1)


def _max_pool2d_2x2(x, out, arg):
    """:func:`_max_pool2d_numbers` of 2 × 2 windows with stride 2 and no padding, unrolled (5×
    faster again)."""
    n, c, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for b in range(n):
        for ci in range(c):
            for y in range(oh):
                r0 = 2 * y
                for xo in range(ow):
                    c0 = 2 * xo
                    m = x[b, ci, r0, c0]
                    a = r0 * w + c0
                    v = x[b, ci, r0, c0 + 1]
                    larger = v > m
                    m = v if larger else m
                    a = a + 1 if larger else a
                    v = x[b, ci, r0 + 1, c0]
                    larger = v > m
                    m = v if larger else m
                    a = (r0 + 1) * w + c0 if larger else a
                    v = x[b, ci, r0 + 1, c0 + 1]
                    larger = v > m
                    m = v if larger else m
                    a = (r0 + 1) * w + c0 + 1 if larger else a
                    out[b, ci, y, xo] = m
                    arg[b, ci, y, xo] = a


def _count_nan(x):
    """The number of NaNs in x (one comparison per element, vectorized)."""
    xf = x.reshape(-1)
    count = 0
    for i in range(xf.size):
        count += xf[i] != xf[i]
    return count


def _max_pool2d_forward_of(count_nan, exact, numbers, two_by_two):
    def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, out, arg):
        """:func:`_max_pool2d_exact`'s results: by its NaN-free forms when x holds no NaN (one
        comparison per element finds out), unrolled for 2 × 2 windows of stride 2."""
        if count_nan(x):
            exact(x, kh, kw, sh, sw, ph, pw, out, arg)
        elif kh == kw == sh == sw == 2 and ph == pw == 0:
            two_by_two(x, out, arg)
        else:
            numbers(x, kh, kw, sh, sw, ph, pw, out, arg)

    return max_pool2d_forward


def _max_pool2d_backward(g, arg, gx):
    """gx[n, c, arg] += g: each window's gradient to its maximum."""
    n, c, oh, ow = g.shape
    gf = g.reshape(-1)
    af = arg.reshape(-1)
    xf = gx.reshape(-1)
    xf[:] = 0
    plane = gx.shape[2] * gx.shape[3]
    o = np.uint64(0)
    for p in range(n * c):
        base = p * plane
        for _ in range(oh * ow):
            xf[np.uint64(base + af[o])] += gf[o]
            o += np.uint64(1)


def _avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, area, out):
    """out = (Σ of the window, the padding counting as 0) / area, summed in row-major order."""
    n, c, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    o = np.uint64(0)
    for p in range(n * c):
        base = p * h * w
        for y in range(oh):
            h0 = y * sh - ph
            i0, i1 = max(0, -h0), min(kh, h - h0)
            for xo in range(ow):
                w0 = xo * sw - pw
                j0, j1 = max(0, -w0), min(kw, w - w0)
                s = out.dtype.type(0)
                for i in range(i0, i1):
                    r = np.uint64(base + (h0 + i) * w + w0)
                    for j in range(j0, j1):
                        s += xf[r + np.uint64(j)]
                of[o] = s / area
                o += np.uint64(1)


def _avg_pool2d_backward(g, kh, kw, sh, sw, ph, pw, area, gx):
    """gx = Σ over the windows that hold each element of g/area."""
    n, c, oh, ow = g.shape
    h, w = gx.shape[2], gx.shape[3]
    gf = g.reshape(-1)
    xf = gx.reshape(-1)
    xf[:] = 0
    o = np.uint64(0)
    for p in range(n * c):
        base = p * h * w
        for y in range(oh):
            h0 = y * sh - ph
            i0, i1 = max(0, -h0), min(kh, h - h0)
            for xo in range(ow):
                w0 = xo * sw - pw
                j0, j1 = max(0, -w0), min(kw, w - w0)
                gv = gf[o] / area
                for i in range(i0, i1):
                    r = np.uint64(base + (h0 + i) * w + w0)
                    for j in range(j0, j1):
                        xf[r + np.uint64(j)] += gv
                o += np.uint64(1)


# ---------------------------------------------------------------------------- batch norm per channel
# x, g, out, gx: (N, C, H·W) views of NCHW arrays; per-channel arrays (C,). Channel c is
# normalized over its N·H·W values, as ``_bn_forward_train`` normalizes a feature over its batch:
# sums in float64, shifted by the channel's first value; ``relu`` fuses max(0, ·).
def _bn_nchw_forward_train(x, gamma, beta, eps, relu, out, mu, var, inv_std):
    """μ, σ² (biased) per channel; out = (x − μ)·γ/√(σ² + ε) + β."""
    n, c, hw = x.shape
    m = n * hw
    scale = np.empty(c, x.dtype)
    for ch in range(c):
        x0 = np.float64(x[0, ch, 0])
        s1 = 0.0
        s2 = 0.0
        for b in range(n):
            for k in range(hw):
                d = np.float64(x[b, ch, k]) - x0
                s1 += d
                s2 += d * d
        d1 = s1 / m
        vc = s2 / m - d1 * d1
        if vc < 0.0:
            vc = 0.0
        r = 1.0 / np.sqrt(vc + eps)
        mu[ch] = x0 + d1
        var[ch] = vc
        inv_std[ch] = r
        scale[ch] = np.float64(gamma[ch]) * r
        mc, sc, bc = mu[ch], scale[ch], beta[ch]
        for b in range(n):
            for k in range(hw):
                v = (x[b, ch, k] - mc) * sc + bc
                if relu and v <= 0:
                    v = v - v  # +0 (NaN stays NaN, as with NumPy's maximum)
                out[b, ch, k] = v


def _bn_nchw_forward_eval(x, mu, scale, beta, relu, out):
    """out = (x − μ)·scale + β per channel (μ, σ² the running averages, scale = γ/√(σ² + ε))."""
    n, c, hw = x.shape
    for b in range(n):
        for ch in range(c):
            mc, sc, bc = mu[ch], scale[ch], beta[ch]
            for k in range(hw):
                v = (x[b, ch, k] - mc) * sc + bc
                if relu and v <= 0:
                    v = v - v
                out[b, ch, k] = v


def _bn_nchw_backward_train(g, x, mu, inv_std, gamma, out, gx, ggamma, gbeta):
    """dβ = Σg, dγ = Σg·x̂ and gx = γ/√(σ²+ε)·(g − Σg/m − x̂·Σ(g·x̂)/m) per channel, as
    ``_bn_backward_train``; ``gx`` may be None, ``out`` is None or the fused ReLU's output."""
    n, c, hw = g.shape
    m = n * hw
    for ch in range(c):
        sg = 0.0
        sgx = 0.0
        for b in range(n):
            for k in range(hw):
                gv = np.float64(g[b, ch, k])
                if out is not None:
                    if not out[b, ch, k] > 0:
                        gv = gv * 0.0
                sg += gv
                sgx += gv * np.float64(x[b, ch, k])
        r = np.float64(inv_std[ch])
        mc = np.float64(mu[ch])
        sgz = (sgx - mc * sg) * r  # Σ g·x̂
        gbeta[ch] = sg
        ggamma[ch] = sgz
        if gx is None:
            continue
        ac = np.float64(gamma[ch]) * r
        a = g.dtype.type(ac)
        bb = g.dtype.type(-ac * r * sgz / m)
        cc = g.dtype.type(-ac * sg / m)
        mx = mu[ch]
        for b in range(n):
            for k in range(hw):
                gv = g[b, ch, k]
                if out is not None:
                    if not out[b, ch, k] > 0:
                        gv = gv - gv  # 0, and NaN for NaN or ±inf as NumPy's g·0
                gx[b, ch, k] = gv * a + (x[b, ch, k] - mx) * bb + cc


SOURCES = {
    "im2col": _im2col, "col2im": _col2im,
    "max_pool2d_exact": _max_pool2d_exact, "max_pool2d_numbers": _max_pool2d_numbers,
    "max_pool2d_2x2": _max_pool2d_2x2, "count_nan": _count_nan, "max_pool2d_backward": _max_pool2d_backward,
    "avg_pool2d_forward": _avg_pool2d_forward, "avg_pool2d_backward": _avg_pool2d_backward,
    "bn_nchw_forward_train": _bn_nchw_forward_train, "bn_nchw_forward_eval": _bn_nchw_forward_eval,
    "bn_nchw_backward_train": _bn_nchw_backward_train,
}
#: kernels made of compiled parts chosen between in Python
COMPOSITES = {"max_pool2d_forward": (_max_pool2d_forward_of, ("count_nan", "max_pool2d_exact", "max_pool2d_numbers",
                                                              "max_pool2d_2x2"))}
