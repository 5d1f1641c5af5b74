"""Two-dimensional convolution of NCHW images as one node: im2col, one GEMM per group, col2im."""
from __future__ import annotations

from ..tensor import _CAPTURE, _make
from ._common import _operands, _tensor, _xp
from ._windows import check_image, col2im, im2col, window

__all__ = ["conv2d"]


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, r, s] = b[o] + Σ_{c, i, j} W[o, c, i, j] · x[n, g·C/G + c, r·sh + i·dh − ph, s·sw + j·dw − pw]
    (as PyTorch and Chainer): x of shape (N, C, H, W), W of shape (O, C/G, kh, kw), b of shape (O,),
    y of shape (N, O, OH, OW) with OH = ⌊(H + 2ph − dh(kh − 1) − 1)/sh⌋ + 1 (OW likewise); the
    input is zero-padded, and output channel o of group g = ⌊o·G/O⌋ reads input channels
    [g·C/G, (g + 1)·C/G).

    Forward: col = im2col(x), a (C·kh·kw, N·OH·OW) matrix, and Y_g = W_g col_g per group g.
    Backward (g = dJ/dy as a (O, N·OH·OW) matrix): dW_g = g_g col_gᵀ, db = Σ g over (N, OH, OW),
    dx = col2im(W_gᵀ g_g). ``stride``, ``padding`` and ``dilation`` are an int or a (rows,
    columns) pair."""
    x, w = _operands(x, weight)
    bias = None if bias is None else _tensor(bias)
    xd, wd = x.data, w.data
    win = _check_conv(xd.shape, wd.shape, stride, padding, dilation, groups, bias)
    xp = _xp(xd)
    n, c = xd.shape[:2]
    o = wd.shape[0]
    k = wd.shape[1] * win.kh * win.kw  # one group's rows of col
    spatial = win.oh * win.ow
    w3 = wd.reshape(groups, o // groups, k)
    col6 = im2col(xd, win)
    col = col6.reshape(groups, k, n * spatial)
    ym = xp.matmul(w3[0], col[0]) if groups == 1 else xp.matmul(w3, col)
    y = (ym[None] if groups == 1 else ym).reshape(o, n, spatial)
    out = xp.empty((n, o, win.oh, win.ow), y.dtype)
    out3 = out.reshape(n, o, spatial)
    bterm = None if bias is None else bias.data.reshape(1, o, 1).astype(y.dtype, copy=False)

    def finish():  # y, laid out (N, O, OH·OW), plus the bias
        if bterm is not None:
            xp.add(y.transpose(1, 0, 2), bterm, out=out3)
        else:
            out3[...] = y.transpose(1, 0, 2)

    finish()
    y_dtype = y.dtype
    parents = (x, w) if bias is None else (x, w, bias)
    if _CAPTURE.rec is not None:
        if col.base is not None and col6.flags.c_contiguous and (bias is None or bterm.base is not None):
            def replay():  # the same calls into the same arrays
                im2col(xd, win, out=col6)
                xp.matmul(w3[0], col[0], out=ym) if groups == 1 else xp.matmul(w3, col, out=ym)
                finish()

            _CAPTURE.rec.op(replay)

    def backward(g):
        # g as the GEMM's (G, O/G, N·OH·OW) output
        g3 = xp.ascontiguousarray(g.reshape(n, o, spatial).transpose(1, 0, 2), dtype=y_dtype)
        g3 = g3.reshape(groups, o // groups, n * spatial)
        gx = gw = None
        if x.requires_grad:
            gcol = xp.matmul(w3[0].T, g3[0])[None] if groups == 1 else xp.matmul(w3.transpose(0, 2, 1), g3)
            gx = col2im(gcol.reshape(c, win.kh, win.kw, n, win.oh, win.ow), xd.shape, win)
            gx = gx.astype(xd.dtype, copy=False)
        if w.requires_grad:
            gw = (xp.matmul(g3[0], col[0].T)[None] if groups == 1 else xp.matmul(g3, col.transpose(0, 2, 1)))
            gw = gw.reshape(wd.shape).astype(wd.dtype, copy=False)
        if bias is None:
            return gx, gw
        gb = g3.reshape(o, n * spatial).sum(axis=1).astype(bias.data.dtype, copy=False) if bias.requires_grad else None
        return gx, gw, gb

    return _make(out, parents, backward)


def _check_conv(xshape, wshape, stride, padding, dilation, groups, bias):
    """The window of a convolution of images of ``xshape`` by a weight of ``wshape``; one
    ValueError naming the sizes for anything that does not fit."""
    check_image("conv2d", xshape)
    if len(wshape) != 4:
        raise ValueError(f"conv2d needs a weight of shape (out_channels, in_channels/groups, kh, kw), "
                         f"not {tuple(wshape)}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv2d groups must be a positive integer, not {groups!r}")
    c, o = xshape[1], wshape[0]
    if c % groups or o % groups:
        raise ValueError(f"conv2d groups={groups} must divide the input channels ({c}) and the output "
                         f"channels ({o})")
    if wshape[1] * groups != c:
        raise ValueError(f"conv2d: the input has {c} channels, but the weight of shape {tuple(wshape)} takes "
                         f"{wshape[1]} per group × {groups} group(s) = {wshape[1] * groups}")
    if bias is not None:
        bshape = tuple(bias.data.shape)
        if bshape != (o,):
            raise ValueError(f"conv2d: the bias has shape {bshape}, the weight's {o} output channels need ({o},)")
    return window("conv2d", xshape, wshape[2:], stride, padding, dilation)
