"""Sources of the convolutional ops' CUDA kernels: CuPy ``ElementwiseKernel`` sources,
``(in_params, out_params, body)``, merged into ``polydl.cuda_kernels.ELEMENTWISE`` (nothing here
imports CuPy). Each is the NumPy form of the same op in ``polydl.ops`` written per output element:

- ``im2col``: one thread per element of the columns (C, kh, kw, N, OH, OW);
- ``col2im``: one thread per input element, summing the columns that im2col read from it (a
  gather, in the order of the NumPy form's slices: deterministic, no atomics);
- ``max_pool2d_forward``: each window's maximum and its index h·W + w in the image plane (ties to
  the first in row-major order, a NaN wins); ``max_pool2d_backward``: one thread per input
  element, summing the gradients of the windows whose maximum it is;
- ``avg_pool2d_forward`` and ``avg_pool2d_backward`` likewise (the padding counts as 0).

Arrays are passed flat (1-D, C order); ``i`` is the flat index of the output element, and the
geometry arrives as int64 scalars: kernel kh × kw, stride sh × sw, padding ph × pw, dilation
dh × dw, output OH × OW.
"""
from __future__ import annotations

__all__ = ["ELEMENTWISE"]

_GEOMETRY = "int64 kh, int64 kw, int64 sh, int64 sw, int64 ph, int64 pw"

# the range [y0, y1] of the outputs whose window (no dilation) holds input row hy
_COVERING = ("long long y0 = hy + ph - kh + 1; y0 = y0 <= 0 ? 0 : (y0 + sh - 1) / sh; "
             "long long y1 = (hy + ph) / sh; if (y1 > oh - 1) y1 = oh - 1; "
             "long long x0 = wx + pw - kw + 1; x0 = x0 <= 0 ? 0 : (x0 + sw - 1) / sw; "
             "long long x1 = (wx + pw) / sw; if (x1 > ow - 1) x1 = ow - 1; ")
# the input element (plane, hy, wx) of this thread, over an (N·C, H, W) loop
_INPUT_INDEX = ("const long long wx = i % w; const long long hy = (i / w) % h; "
                "const long long plane = i / (w * h); ")
# the output window (plane, h0, w0) of this thread, over an (N·C, OH, OW) loop, and its rows and
# columns inside the image: [i0, i1) × [j0, j1)
_WINDOW = ("const long long xo = i % ow; const long long yo = (i / ow) % oh; "
           "const long long plane = i / (ow * oh); "
           "const long long h0 = yo * sh - ph, w0 = xo * sw - pw; "
           "const long long i0 = h0 < 0 ? -h0 : 0, i1 = h - h0 < kh ? h - h0 : kh; "
           "const long long j0 = w0 < 0 ? -w0 : 0, j1 = w - w0 < kw ? w - w0 : kw; ")

ELEMENTWISE = {
    # col[c, i, j, n, y, x] = x[n, c, y·sh + i·dh − ph, x·sw + j·dw − pw], 0 in the padding
    "im2col": (f"raw T x, int64 c, int64 h, int64 w, {_GEOMETRY}, int64 dh, int64 dw, int64 n, int64 oh, "
               "int64 ow", "T col",
               "long long t = i; const long long xo = t % ow; t /= ow; const long long yo = t % oh; t /= oh; "
               "const long long b = t % n; t /= n; const long long kj = t % kw; t /= kw; "
               "const long long ki = t % kh; const long long ch = t / kh; "
               "const long long hy = yo * sh + ki * dh - ph, wx = xo * sw + kj * dw - pw; "
               "col = (hy >= 0 && hy < h && wx >= 0 && wx < w) ? (T)x[((b * c + ch) * h + hy) * w + wx] : (T)0;"),
    # gx[n, c, h, w] = Σ over (i, j) of the column entries im2col took from (h, w)
    "col2im": (f"raw T col, int64 c, int64 h, int64 w, {_GEOMETRY}, int64 dh, int64 dw, int64 n, int64 oh, "
               "int64 ow", "T gx",
               "const long long wx = i % w; const long long hy = (i / w) % h; "
               "const long long ch = (i / (w * h)) % c; const long long b = i / (w * h * c); "
               "T s = (T)0; "
               "for (long long ki = 0; ki < kh; ++ki) { "
               "const long long ty = hy + ph - ki * dh; if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue; "
               "for (long long kj = 0; kj < kw; ++kj) { "
               "const long long tx = wx + pw - kj * dw; if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue; "
               "s += col[((((ch * kh + ki) * kw + kj) * n + b) * oh + ty / sh) * ow + tx / sw]; } } "
               "gx = s;"),
    "max_pool2d_forward": (f"raw T x, int64 h, int64 w, {_GEOMETRY}, int64 oh, int64 ow", "T out, int32 arg",
                           _WINDOW + "const T* xp = &x[plane * h * w]; "
                           "T m = xp[(h0 + i0) * w + w0 + j0]; long long a = (h0 + i0) * w + w0 + j0; "
                           "for (long long ki = i0; ki < i1; ++ki) { for (long long kj = j0; kj < j1; ++kj) { "
                           "const T v = xp[(h0 + ki) * w + w0 + kj]; "
                           "if (!(v <= m) && m == m) { m = v; a = (h0 + ki) * w + w0 + kj; } } } "
                           "out = m; arg = (int)a;"),
    "max_pool2d_backward": (f"raw T g, raw int32 arg, int64 h, int64 w, {_GEOMETRY}, int64 oh, int64 ow", "T gx",
                            _INPUT_INDEX + _COVERING + "const int self = (int)(hy * w + wx); T s = (T)0; "
                            "for (long long yo = y0; yo <= y1; ++yo) { for (long long xo = x0; xo <= x1; ++xo) { "
                            "const long long k = (plane * oh + yo) * ow + xo; if (arg[k] == self) s += g[k]; } } "
                            "gx = s;"),
    "avg_pool2d_forward": (f"raw T x, int64 h, int64 w, {_GEOMETRY}, int64 oh, int64 ow, T area", "T out",
                           _WINDOW + "const T* xp = &x[plane * h * w]; T s = (T)0; "
                           "for (long long ki = i0; ki < i1; ++ki) { for (long long kj = j0; kj < j1; ++kj) { "
                           "s += xp[(h0 + ki) * w + w0 + kj]; } } "
                           "out = s / area;"),
    "avg_pool2d_backward": (f"raw T g, int64 h, int64 w, {_GEOMETRY}, int64 oh, int64 ow, T area", "T gx",
                            _INPUT_INDEX + _COVERING + "T s = (T)0; "
                            "for (long long yo = y0; yo <= y1; ++yo) { for (long long xo = x0; xo <= x1; ++xo) { "
                            "s += g[(plane * oh + yo) * ow + xo] / area; } } "
                            "gx = s;"),
}
