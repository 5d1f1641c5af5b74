"""``batch_norm2d``: batch normalization per channel of NCHW images, against the formula over
(N, H, W) and against ``batch_norm`` of the (N·H·W, C) pixel rows; gradients against float64
central differences; the compiled CPU kernels against the NumPy form; one clear error for each
input it cannot take."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

from polydl import backend, cpu_kernels
from polydl import functional as F
from polydl.tensor import Parameter, Tensor
from polydl.testing import gradcheck


def case(seed=0, shape=(4, 3, 5, 6), dtype=np.float64):
    """Images with a different mean and scale per channel, γ, β and running averages (C,)."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 3, (1, c, 1, 1)) + rng.uniform(-3, 3, (1, c, 1, 1)))
    vecs = [rng.uniform(0.5, 1.5, c), rng.standard_normal(c) * 0.3, rng.standard_normal(c) * 0.1, rng.uniform(0.5, 2, c)]
    return x.astype(dtype), [v.astype(dtype) for v in vecs]


def reference(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (x - mu) / np.sqrt(var + eps) + beta[None, :, None, None], mu.ravel(), var.ravel()


def tensors(x, vecs, device):
    to = (lambda a: backend.to_device(a.copy(), device))
    return (Tensor(to(x), requires_grad=True), Parameter(to(vecs[0])), Parameter(to(vecs[1])), Tensor(to(vecs[2])),
            Tensor(to(vecs[3])))


def test_training_output_is_the_formula_per_channel(device):
    x, vecs = case()
    xt, g, b, rm, rv = tensors(x, vecs, device)
    y = F.batch_norm2d(xt, g, b, rm, rv, training=True, momentum=0.8)
    want, mu, var = reference(x, vecs[0], vecs[1])
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), 0.8 * vecs[2] + 0.2 * mu, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.8 * vecs[3] + 0.2 * var, rtol=1e-12)


def test_it_is_batch_norm_of_the_pixel_rows(device):
    x, vecs = case(1, dtype=np.float32)
    n, c, h, w = x.shape
    rows = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(-1, c)
    got = tensors(x, vecs, device)
    want = tensors(rows, vecs, device)
    y = F.batch_norm2d(*got[:5])
    z = F.batch_norm(*want[:5])
    np.testing.assert_allclose(y.numpy(), z.numpy().reshape(n, h, w, c).transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)
    weights = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    (y * Tensor(backend.to_device(weights, device))).sum().backward()
    rows_w = np.ascontiguousarray(weights.transpose(0, 2, 3, 1)).reshape(-1, c)
    (z * Tensor(backend.to_device(rows_w, device))).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(got[0].grad),
                               backend.to_numpy(want[0].grad).reshape(n, h, w, c).transpose(0, 3, 1, 2),
                               rtol=1e-4, atol=1e-5)
    for a, b in ((got[1], want[1]), (got[2], want[2]), (got[3], want[3]), (got[4], want[4])):
        np.testing.assert_allclose(backend.to_numpy(a.grad if a.grad is not None else a.data),
                                   backend.to_numpy(b.grad if b.grad is not None else b.data), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn-relu"])
def test_evaluation_uses_the_running_averages(device, relu):
    x, vecs = case(3)
    xt, g, b, rm, rv = tensors(x, vecs, device)
    y = F.batch_norm2d(xt, g, b, rm, rv, training=False, activation="relu" if relu else None)
    c = (None, slice(None), None, None)
    want = vecs[0][c] * (x - vecs[2][c]) / np.sqrt(vecs[3][c] + 1e-5) + vecs[1][c]
    np.testing.assert_allclose(y.numpy(), np.maximum(want, 0) if relu else want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rm.numpy(), vecs[2])


@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn-relu"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(3, 2, 3, 4), (2, 3, 1, 5)])
def test_gradcheck(device, training, relu, shape):
    x, vecs = case(4, shape)
    xt, g, b, rm, rv = tensors(x, vecs, device)
    assert gradcheck(lambda a, gg, bb: F.batch_norm2d(a, gg, bb, rm, rv, training, 0.0 if training else 0.9,
                                                      activation="relu" if relu else None), xt, g, b)


# ---------------------------------------------------------------------------- compiled forms
@contextlib.contextmanager
def numpy_forms():
    with pytest.MonkeyPatch.context() as mp, cpu_kernels.use("off"):
        mp.setattr(backend, "fused_kernel", lambda name: None)
        mp.setattr(backend, "raw_kernel", lambda name, x_dtype, t_dtype: None)
        yield


def _run(x, vecs, device, training, relu):
    xt, g, b, rm, rv = tensors(x, vecs, device)
    y = F.batch_norm2d(xt, g, b, rm, rv, training, 0.9, 1e-5, "relu" if relu else None)
    weights = np.random.default_rng(5).standard_normal(x.shape).astype(x.dtype)
    (y * Tensor(backend.to_device(weights, device))).sum().backward()
    return [backend.to_numpy(a) for a in (y.data, rm.data, rv.data, xt.grad, g.grad, b.grad)]


@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn-relu"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_match_the_numpy_form(device, dtype, training, relu):
    """The compiled CPU kernels over the NCHW array (or the CUDA kernels of the pixel rows) against
    the NumPy form; sums in float64 against float32 sums, so float32 agrees to its rounding."""
    if device == "cpu":
        pytest.importorskip("numba")
    x, vecs = case(6, (5, 4, 7, 3), dtype)
    with cpu_kernels.use("on" if device == "cpu" else "off"):
        got = _run(x, vecs, device, training, relu)
    with numpy_forms():
        want = _run(x, vecs, device, training, relu)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for a, b, what in zip(got, want, ("output", "running mean", "running variance", "dx", "dγ", "dβ"),
                            strict=True):
        assert a.dtype == b.dtype == dtype, what
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()), err_msg=what)


def test_the_kernels_read_non_contiguous_images():
    pytest.importorskip("numba")
    x, vecs = case(7, (3, 4, 5, 6))
    view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    with cpu_kernels.use("on"):
        got = _run(view, vecs, "cpu", True, True)
        want = _run(x, vecs, "cpu", True, True)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("mode", ["off", "on"])
@pytest.mark.parametrize("shape, training, message", [
    ((8, 3), True, r"batch_norm2d needs input of shape \(batch, channels, height, width\), not \(8, 3\) \(flat data"),
    ((2, 4, 3, 3), True, r"batch_norm2d got 4 channels \(input shape \(2, 4, 3, 3\)\), but it normalizes 3 \(γ has "
                         r"shape \(3,\)\); give BatchNorm2d the input's channels"),
    ((1, 3, 1, 1), True, r"batch_norm2d in training mode got 1 value\(s\) per channel \(input shape \(1, 3, 1, 1\)\): "
                         r"the σ² of one value is 0"),
])
def test_bad_input_is_one_value_error(mode, shape, training, message):
    g, b = Parameter(np.ones(3)), Parameter(np.zeros(3))
    with cpu_kernels.use(mode), pytest.raises(ValueError, match=message):
        F.batch_norm2d(Tensor(np.zeros(shape)), g, b, training=training)


def test_evaluation_needs_running_averages_and_activation_is_checked():
    x, g, b = Tensor(np.zeros((2, 3, 2, 2))), Parameter(np.ones(3)), Parameter(np.zeros(3))
    with pytest.raises(ValueError, match="batch_norm2d in evaluation mode needs running_mean and running_var"):
        F.batch_norm2d(x, g, b, training=False)
    with pytest.raises(ValueError, match="batch_norm2d activation must be None or 'relu', not 'tanh'"):
        F.batch_norm2d(x, g, b, activation="tanh")


def test_a_single_image_trains_on_its_pixels():
    """One sample has H·W values per channel: enough for the statistics."""
    x, vecs = case(8, (1, 2, 3, 3))
    xt, g, b, rm, rv = tensors(x, vecs, "cpu")
    np.testing.assert_allclose(F.batch_norm2d(xt, g, b).numpy(), reference(x, vecs[0], vecs[1])[0], atol=1e-10)
