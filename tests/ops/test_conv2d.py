"""``conv2d``: values against a direct sum written as loops, gradients against float64 central
differences, the compiled CPU kernels (im2col, col2im) and the CUDA kernels (through the
emulator) against the NumPy form, and one clear error for each input it cannot take."""
from __future__ import annotations

import contextlib

import cuda_emulator
import numpy as np
import pytest

import polydl
from polydl import backend, cpu_kernels
from polydl import functional as F
from polydl.ops import _windows
from polydl.testing import gradcheck

needs_cxx = pytest.mark.skipif(not cuda_emulator.available(), reason="needs a C++ compiler (g++)")


def conv_reference(x, w, b, stride, padding, dilation, groups):
    """y[n, o, r, s] = b[o] + Σ_{c, i, j} w[o, c, i, j] x[n, group's c, r·sh + i·dh − ph, s·sw + j·dw − pw],
    one output element at a time (float64)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, oh, ow))
    for b_ in range(n):
        for oc in range(o):
            first = (oc // (o // groups)) * cg
            for r in range(oh):
                for s in range(ow):
                    acc = 0.0 if b is None else b[oc]
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                hy, wx = r * sh + i * dh - ph, s * sw + j * dw - pw
                                if 0 <= hy < h and 0 <= wx < wd:
                                    acc += w[oc, ci, i, j] * x[b_, first + ci, hy, wx]
                    y[b_, oc, r, s] = acc
    return y


# (N, C, H, W), out channels, kernel, stride, padding, dilation, groups, bias
CASES = {
    "3x3": ((2, 3, 6, 5), 4, (3, 3), (1, 1), (0, 0), (1, 1), 1, True),
    "stride2-pad1": ((2, 2, 7, 7), 3, (3, 3), (2, 2), (1, 1), (1, 1), 1, True),
    "dilation2": ((1, 2, 7, 8), 2, (3, 2), (1, 1), (1, 0), (2, 2), 1, False),
    "groups2": ((2, 4, 5, 6), 6, (2, 3), (1, 2), (1, 1), (1, 1), 2, True),
    "depthwise": ((1, 3, 5, 5), 3, (3, 3), (2, 1), (1, 2), (1, 1), 3, False),
    "non-square-odd": ((3, 1, 9, 4), 2, (4, 1), (3, 1), (2, 0), (1, 1), 1, True),
    "1x1": ((2, 3, 3, 3), 5, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    "mixed": ((2, 4, 8, 7), 4, (2, 3), (2, 3), (1, 2), (3, 1), 2, True),
}


def case_arrays(case, seed=0, dtype=np.float64):
    shape, o, k, _, _, _, groups, bias = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((o, shape[1] // groups) + k).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    return x, w, b


def run(case, x, w, b, device, requires_grad=True):
    """Output and gradients (x, W, b) of conv2d with fixed random output weights, as NumPy arrays."""
    _, _, _, stride, padding, dilation, groups, _ = case
    xt = polydl.tensor(x, device=device, requires_grad=requires_grad)
    wt = polydl.tensor(w, device=device, requires_grad=True)
    bt = None if b is None else polydl.tensor(b, device=device, requires_grad=True)
    y = F.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    weights = np.random.default_rng(7).standard_normal(y.shape).astype(x.dtype)
    (y * polydl.tensor(weights, device=device)).sum().backward()
    grads = [None if t is None or t.grad is None else backend.to_numpy(t.grad) for t in (xt, wt, bt)]
    return [y.numpy(), *grads]


@pytest.mark.parametrize("name", list(CASES))
def test_conv2d_matches_the_direct_sum(device, name):
    case = CASES[name]
    x, w, b = case_arrays(case)
    _, _, _, stride, padding, dilation, groups, _ = case
    y = F.conv2d(polydl.tensor(x, device=device), polydl.tensor(w, device=device),
                 None if b is None else polydl.tensor(b, device=device), stride, padding, dilation, groups)
    want = conv_reference(x, w, b, stride, padding, dilation, groups)
    assert y.shape == want.shape and y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_conv2d_gradcheck(device, name):
    case = CASES[name]
    x, w, b = case_arrays(case, seed=1)
    _, _, _, stride, padding, dilation, groups, _ = case
    inputs = [polydl.tensor(a, device=device, requires_grad=True) for a in (x, w) + ((b,) if b is not None else ())]
    assert gradcheck(lambda *t: F.conv2d(t[0], t[1], t[2] if len(t) > 2 else None, stride, padding, dilation,
                                         groups), *inputs)


def test_conv2d_float32_follows_float64(device):
    case = CASES["mixed"]
    x, w, b = case_arrays(case)
    ref = run(case, x, w, b, device)
    got = run(case, *(a.astype(np.float32) for a in (x, w, b)), device)
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


def test_conv2d_int_and_pair_arguments_agree(device):
    x, w, b = case_arrays(CASES["stride2-pad1"])
    t = [polydl.tensor(a, device=device) for a in (x, w, b)]
    a = F.conv2d(*t, stride=2, padding=1, dilation=1)
    c = F.conv2d(*t, stride=(2, 2), padding=[1, 1], dilation=(1, 1))
    np.testing.assert_array_equal(a.numpy(), c.numpy())


def test_conv2d_of_a_non_contiguous_input(device):
    """An input that is a transposed view (as batch_norm2d's rows give back) convolves as its copy."""
    case = CASES["groups2"]
    x, w, b = case_arrays(case)
    xt = polydl.tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), device=device, requires_grad=True)
    view = F.transpose(xt, (0, 3, 1, 2))
    assert not view.data.flags.c_contiguous
    y = F.conv2d(view, polydl.tensor(w, device=device), polydl.tensor(b, device=device), (1, 2), 1, 1, 2)
    np.testing.assert_allclose(y.numpy(), conv_reference(x, w, b, (1, 2), (1, 1), (1, 1), 2), rtol=1e-12, atol=1e-12)
    y.sum().backward()
    assert xt.grad.shape == xt.shape


def test_conv2d_without_input_gradient_skips_it(device):
    case = CASES["3x3"]
    x, w, b = case_arrays(case)
    out, gx, gw, gb = run(case, x, w, b, device, requires_grad=False)
    assert gx is None and gw.shape == w.shape and gb.shape == b.shape


# ---------------------------------------------------------------------------- compiled forms
@contextlib.contextmanager
def numpy_forms():
    """The NumPy forms: no CPU kernels, no CUDA kernels."""
    with pytest.MonkeyPatch.context() as mp, cpu_kernels.use("off"):
        mp.setattr(backend, "fused_kernel", lambda name: None)
        yield


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_conv2d_kernels_give_the_numpy_forms_results_bit_for_bit(device, name, dtype):
    """im2col copies and col2im adds in the NumPy form's order, so the compiled forms (Numba on
    the CPU, CUDA on the GPU) give the same bits; the GEMMs are the same calls."""
    pytest.importorskip("numba")
    case = CASES[name]
    arrays = [None if a is None else a.astype(dtype) for a in case_arrays(case, seed=3)]
    with cpu_kernels.use("on"):
        got = run(case, *arrays, device)
    with numpy_forms():
        want = run(case, *arrays, device)
    for g, r in zip(got, want, strict=True):
        if r is not None:
            np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("name", list(CASES))
def test_im2col_and_col2im_kernels_match_the_numpy_form(name, monkeypatch):
    """The compiled CPU kernels and the CUDA kernels (run on the CPU by the emulator) against the
    NumPy form, bit for bit, col2im summing overlapping taps."""
    pytest.importorskip("numba")
    shape, _, k, stride, padding, dilation, _, _ = CASES[name]
    x = np.random.default_rng(4).standard_normal(shape)
    win = _windows.window("conv2d", shape, k, stride, padding, dilation)
    gcol = np.random.default_rng(5).standard_normal((shape[1],) + k + (shape[0], win.oh, win.ow))
    with cpu_kernels.use("off"):
        col, gx = _windows.im2col(x, win), _windows.col2im(gcol, shape, win)
    with cpu_kernels.use("on"):
        np.testing.assert_array_equal(_windows.im2col(x, win), col)
        np.testing.assert_array_equal(_windows.col2im(gcol, shape, win), gx)
    if cuda_emulator.available():
        monkeypatch.setattr(backend, "fused_kernel", cuda_emulator.fused_kernel)
        np.testing.assert_array_equal(_windows._im2col_cuda(x, win), col)
        np.testing.assert_array_equal(_windows._col2im_cuda(gcol, shape, win), gx)


@needs_cxx
def test_conv2d_on_the_cuda_kernels_matches_the_numpy_form(monkeypatch):
    """The whole op with im2col and col2im by the CUDA kernels (run on the CPU)."""
    case = CASES["mixed"]
    arrays = case_arrays(case, seed=6)
    with cpu_kernels.use("off"):
        want = run(case, *arrays, "cpu")
        monkeypatch.setattr(_windows, "cuda", lambda name, xd: True)
        monkeypatch.setattr(_windows, "compiled", lambda name, *arrays: (None, arrays))
        monkeypatch.setattr(backend, "fused_kernel", cuda_emulator.fused_kernel)
        got = run(case, *arrays, "cpu")
    for g, r in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, r)


# ---------------------------------------------------------------------------- bad input
def _conv(x_shape, w_shape, **kw):
    x = polydl.tensor(np.zeros(x_shape, np.float32))
    w = polydl.tensor(np.zeros(w_shape, np.float32))
    b = kw.pop("bias", None)
    return F.conv2d(x, w, None if b is None else polydl.tensor(np.zeros(b, np.float32)), **kw)


@pytest.mark.parametrize("args, message", [
    (((2, 1, 4, 4), (3, 1, 5, 5), {}),
     r"conv2d: the 5×5 kernel is larger than the padded input 4×4 \(input 4×4, padding 0×0\)"),
    (((2, 1, 4, 4), (3, 1, 3, 3), {"dilation": 2}),
     r"conv2d: the 3×3 kernel \(dilated to 5×5\) is larger than the padded input 4×4 \(input 4×4, padding 0×0\)"),
    (((2, 1, 2, 2), (3, 1, 5, 3), {"padding": 1}),
     r"the 5×3 kernel is larger than the padded input 4×4 \(input 2×2, padding 1×1\)"),
    (((2, 3, 8, 8), (4, 1, 3, 3), {"groups": 2}),
     r"conv2d groups=2 must divide the input channels \(3\) and the output channels \(4\)"),
    (((2, 4, 8, 8), (3, 2, 3, 3), {"groups": 2}),
     r"conv2d groups=2 must divide the input channels \(4\) and the output channels \(3\)"),
    (((128, 64), (8, 1, 3, 3), {}),
     r"conv2d needs input of shape \(batch, channels, height, width\), not \(128, 64\) \(flat data: give each "
     r"sample as a \(channels, height, width\) image\)"),
    (((2, 3, 8, 8), (8, 2, 3, 3), {}),
     r"conv2d: the input has 3 channels, but the weight of shape \(8, 2, 3, 3\) takes 2 per group × 1 group\(s\) = 2"),
    (((2, 3, 8, 8), (8, 3, 3), {}), r"conv2d needs a weight of shape \(out_channels, in_channels/groups, kh, kw\)"),
    (((2, 3, 8, 8), (8, 3, 3, 3), {"bias": (4,)}),
     r"conv2d: the bias has shape \(4,\), the weight's 8 output channels need \(8,\)"),
    (((2, 3, 8, 8), (8, 3, 3, 3), {"stride": 0}), r"conv2d stride must be a positive integer or a pair of them, not 0"),
    (((2, 3, 8, 8), (8, 3, 3, 3), {"padding": -1}), r"conv2d padding must be an integer ≥ 0 or a pair of them"),
    (((2, 3, 8, 8), (8, 3, 3, 3), {"dilation": (1, 2, 3)}), r"conv2d dilation must be a positive integer"),
    (((2, 3, 8, 8), (8, 3, 3, 3), {"groups": 0}), r"conv2d groups must be a positive integer, not 0"),
])
def test_bad_input_is_one_value_error_naming_the_sizes(args, message):
    x_shape, w_shape, kw = args
    with pytest.raises(ValueError, match=message):
        _conv(x_shape, w_shape, **kw)
