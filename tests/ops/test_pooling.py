"""Pooling and ``flatten``: values against windows walked one at a time, gradients against
float64 central differences, the compiled CPU kernels and the CUDA kernels (through the emulator)
against the NumPy form, and one clear error for each input they cannot take."""
from __future__ import annotations

import cuda_emulator
import numpy as np
import pytest

import polydl
from polydl import backend, cpu_kernels
from polydl import functional as F
from polydl.ops import _windows, pooling
from polydl.testing import gradcheck

needs_cxx = pytest.mark.skipif(not cuda_emulator.available(), reason="needs a C++ compiler (g++)")


def pool_reference(x, kernel, stride, padding, op):
    """Each window's maximum (padding excluded) or mean (padding counted as 0), and for the
    maximum the index h·W + w of its first occurrence (row-major)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y, arg = np.zeros((n, c, oh, ow)), np.zeros((n, c, oh, ow), int)
    for b in range(n):
        for ch in range(c):
            for r in range(oh):
                for s in range(ow):
                    cells = [(r * sh + i - ph, s * sw + j - pw) for i in range(kh) for j in range(kw)]
                    inside = [(hy, wx) for hy, wx in cells if 0 <= hy < h and 0 <= wx < w]
                    values = [x[b, ch, hy, wx] for hy, wx in inside]
                    if op == "max":
                        k = int(np.argmax(values))
                        y[b, ch, r, s] = values[k]
                        arg[b, ch, r, s] = inside[k][0] * w + inside[k][1]
                    else:
                        y[b, ch, r, s] = sum(values) / (kh * kw)
    return y, arg


# (N, C, H, W), kernel, stride, padding
CASES = {
    "2x2": ((2, 3, 6, 8), (2, 2), (2, 2), (0, 0)),
    "3x3-stride2-pad1": ((2, 2, 7, 7), (3, 3), (2, 2), (1, 1)),
    "overlapping": ((1, 2, 5, 6), (3, 2), (1, 1), (1, 0)),
    "non-square-odd": ((3, 1, 9, 5), (3, 1), (2, 3), (1, 0)),
    "whole-plane": ((2, 2, 3, 4), (3, 4), (1, 1), (0, 0)),
}


def _distinct(shape, seed=0):
    """Values with gaps ≥ 0.01 between any two (no ties, clear of the kinks of max)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.01 - 0.005 * n).reshape(shape)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("name", list(CASES))
def test_pooling_matches_the_windows(device, name, op):
    shape, k, s, p = CASES[name]
    x = _distinct(shape)
    fn = F.max_pool2d if op == "max" else F.avg_pool2d
    y = fn(polydl.tensor(x, device=device), k, s, p)
    np.testing.assert_allclose(y.numpy(), pool_reference(x, k, s, p, op)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("name", list(CASES))
def test_pooling_gradcheck(device, name, op):
    shape, k, s, p = CASES[name]
    fn = F.max_pool2d if op == "max" else F.avg_pool2d
    x = polydl.tensor(_distinct(shape, seed=1), device=device, requires_grad=True)
    assert gradcheck(lambda t: fn(t, k, s, p), x)


def test_stride_defaults_to_the_kernel(device):
    x = polydl.tensor(_distinct((1, 1, 6, 6)), device=device)
    for fn in (F.max_pool2d, F.avg_pool2d):
        np.testing.assert_array_equal(fn(x, 3).numpy(), fn(x, (3, 3), (3, 3), 0).numpy())


def test_max_pool_gradient_goes_to_the_first_of_tied_maxima(device):
    """A window of equal values gives its whole gradient to its first element (row-major), and
    overlapping windows add up."""
    x = polydl.tensor(np.ones((1, 1, 3, 3)), device=device, requires_grad=True)
    F.max_pool2d(x, 2, 1).sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [[[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]])


def test_max_pool_propagates_nan(device):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 3, 3] = np.nan
    y = F.max_pool2d(polydl.tensor(x, device=device), 2).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 0, 1, 1]) and y[0, 0, 0, 1] == 7 and y[0, 0, 1, 0] == 13


def test_max_pool_never_picks_the_padding(device):
    x = polydl.tensor(-np.ones((1, 1, 2, 2)) - np.arange(4.0).reshape(1, 1, 2, 2), device=device)
    y = F.max_pool2d(x, 3, 1, 1).numpy()
    assert (y == -1).all()


def test_global_avg_pool(device):
    x = _distinct((2, 3, 4, 5))
    xt = polydl.tensor(x, device=device, requires_grad=True)
    y = F.global_avg_pool2d(xt)
    np.testing.assert_allclose(y.numpy(), x.mean(axis=(2, 3)), rtol=1e-12)
    assert F.global_avg_pool2d(xt, keepdims=True).shape == (2, 3, 1, 1)
    assert gradcheck(F.global_avg_pool2d, xt)


def test_flatten(device):
    x = _distinct((2, 3, 4, 5))
    xt = polydl.tensor(x, device=device, requires_grad=True)
    np.testing.assert_array_equal(F.flatten(xt).numpy(), x.reshape(2, 60))
    assert F.flatten(xt, 2).shape == (2, 3, 20) and F.flatten(xt, -1).shape == (2, 3, 4, 5)
    assert F.flatten(xt, 0).shape == (120,)
    assert gradcheck(lambda t: F.flatten(t) * polydl.tensor(np.arange(60.0), device=device), xt)
    with pytest.raises(ValueError, match=r"flatten start_dim must be an axis of the input's shape \(2, 3, 4, 5\), not 4"):
        F.flatten(xt, 4)


# ---------------------------------------------------------------------------- compiled forms
def _run(fn, x, k, s, p, g):
    xt = polydl.tensor(x, requires_grad=True)
    y = fn(xt, k, s, p)
    y.backward(polydl.tensor(g))
    return y.numpy(), xt.grad


def _pool_cases():
    for name, (shape, k, s, p) in CASES.items():
        for op in ("max", "avg"):
            yield pytest.param(shape, k, s, p, op, id=f"{name}-{op}")


def _ties_and_nan(shape, dtype, nan):
    x = np.round(np.random.default_rng(2).standard_normal(shape), 1).astype(dtype)  # many ties
    x.reshape(-1)[::7] = -np.inf
    if nan:
        x.reshape(-1)[3::11] = np.nan
    return x


@pytest.mark.parametrize("nan", [False, True], ids=["numbers", "nan"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, s, p, op", list(_pool_cases()))
def test_pooling_kernels_match_the_numpy_form(shape, k, s, p, op, dtype, nan):
    """The compiled CPU kernels against the NumPy form: the same outputs (bit for bit; the maximum
    with ties, −∞ and NaN), and gradients that differ at most in the order of their sums."""
    pytest.importorskip("numba")
    fn = F.max_pool2d if op == "max" else F.avg_pool2d
    x = _ties_and_nan(shape, dtype, nan and op == "max")
    g = np.random.default_rng(3).standard_normal(fn(polydl.tensor(x), k, s, p).shape).astype(dtype)
    with cpu_kernels.use("off"):
        want = _run(fn, x, k, s, p, g)
    with cpu_kernels.use("on"):
        got = _run(fn, x, k, s, p, g)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-6)


@needs_cxx
@pytest.mark.parametrize("nan", [False, True], ids=["numbers", "nan"])
@pytest.mark.parametrize("shape, k, s, p, op", list(_pool_cases()))
def test_pooling_cuda_kernels_match_the_numpy_form(shape, k, s, p, op, nan, monkeypatch):
    """The CUDA kernels, run on the CPU by the emulator, against the NumPy form."""
    fn = F.max_pool2d if op == "max" else F.avg_pool2d
    x = _ties_and_nan(shape, np.float64, nan and op == "max")
    g = np.random.default_rng(3).standard_normal(fn(polydl.tensor(x), k, s, p).shape)
    with cpu_kernels.use("off"):
        want = _run(fn, x, k, s, p, g)
        monkeypatch.setattr(pooling, "compiled", lambda name, *arrays: (None, arrays))
        monkeypatch.setattr(pooling, "cuda", lambda name, xd: True)
        monkeypatch.setattr(backend, "fused_kernel", cuda_emulator.fused_kernel)
        got = _run(fn, x, k, s, p, g)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-14, atol=1e-14)


def test_max_pool_kernel_forms_agree_with_the_exact_one():
    """The compiled max pooling picks a NaN-free form when it may (one comparison a tap, unrolled
    for 2 × 2 windows of stride 2): the same maxima and arg-max indices as the exact form."""
    pytest.importorskip("numba")
    import numba

    from polydl import cpu_kernel_sources_conv as src

    exact = numba.njit(src._max_pool2d_exact)
    composite = cpu_kernels.get("max_pool2d_forward", 1)
    for k, s, p in (((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((2, 3), (1, 2), (1, 1))):
        x = _ties_and_nan((2, 3, 8, 9), np.float32, False)
        win = _windows.window("max_pool2d", x.shape, k, s, p)
        outs = [np.empty(x.shape[:2] + (win.oh, win.ow), np.float32) for _ in range(2)]
        args = [np.empty(outs[0].shape, np.int32) for _ in range(2)]
        geometry = [np.int64(v) for v in win[:6]]
        exact(x, *geometry, outs[0], args[0])
        composite(x, *geometry, outs[1], args[1])
        np.testing.assert_array_equal(outs[1], outs[0])
        np.testing.assert_array_equal(args[1], args[0])


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn", [F.max_pool2d, F.avg_pool2d], ids=["max", "avg"])
@pytest.mark.parametrize("shape, args, message", [
    ((2, 1, 3, 3), (4,), r"_pool2d: the 4×4 kernel is larger than the padded input 3×3 \(input 3×3, padding 0×0\)"),
    ((2, 1, 3, 3), ((2, 6), 1, 1), r"the 2×6 kernel is larger than the padded input 5×5 \(input 3×3, padding 1×1\)"),
    ((2, 1, 8, 8), (2, 2, 2), r"_pool2d: padding 2×2 is more than half the 2×2 kernel"),
    ((32, 64), (2,), r"_pool2d needs input of shape \(batch, channels, height, width\), not \(32, 64\) \(flat data"),
    ((2, 1, 8, 8), (0,), r"_pool2d kernel_size must be a positive integer or a pair of them, not 0"),
    ((2, 1, 8, 8), (2, (1, 0)), r"_pool2d stride must be a positive integer or a pair of them, not \(1, 0\)"),
])
def test_bad_input_is_one_value_error_naming_the_sizes(fn, shape, args, message):
    with pytest.raises(ValueError, match=message):
        fn(polydl.tensor(np.zeros(shape, np.float32)), *args)


def test_global_avg_pool_of_flat_data_names_the_shape():
    with pytest.raises(ValueError, match=r"global_avg_pool2d needs input of shape \(batch, channels, height, "
                                         r"width\), not \(4, 10\)"):
        F.global_avg_pool2d(polydl.tensor(np.zeros((4, 10))))
