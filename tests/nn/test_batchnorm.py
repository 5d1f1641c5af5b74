"""BatchNorm exactly as the notes describe it."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import backend, nn, optim


def _batch(device, m=64, n=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    z = rng.normal(loc=[5.0, -2.0, 0.5][:n], scale=[3.0, 0.5, 10.0][:n], size=(m, n))
    return z, polydl.tensor(z.astype(dtype), device=device)


def _set(t, values, device):
    with polydl.no_grad():
        t.data[...] = backend.to_device(np.asarray(values, dtype=t.dtype), device)


def test_parameters_and_buffers_start_as_the_notes_say(device):
    bn = nn.BatchNorm(3, device=device)
    np.testing.assert_array_equal(bn.gamma.numpy(), [1, 1, 1])
    np.testing.assert_array_equal(bn.beta.numpy(), [0, 0, 0])
    np.testing.assert_array_equal(bn.running_mean.numpy(), [0, 0, 0])
    np.testing.assert_array_equal(bn.running_var.numpy(), [1, 1, 1])
    assert (bn.momentum, bn.eps) == (0.9, 1e-5)
    assert [n for n, _ in bn.named_parameters()] == ["gamma", "beta"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var"]
    assert not bn.running_mean.requires_grad


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-6), (np.float32, 1e-4)])
def test_train_output_has_mean_beta_and_variance_gamma_squared(device, dtype, tol):
    bn = nn.BatchNorm(3, dtype=dtype, device=device)
    gamma, beta = np.array([2.0, 0.5, -1.5]), np.array([1.0, -3.0, 0.25])
    _set(bn.gamma, gamma, device)
    _set(bn.beta, beta, device)
    z, zt = _batch(device, dtype=dtype)
    out = bn(zt).numpy().astype(np.float64)
    assert bn(zt).dtype == dtype
    np.testing.assert_allclose(out.mean(0), beta, atol=tol)
    np.testing.assert_allclose(out.var(0), gamma ** 2, rtol=1e-3)
    # exactly: ε shrinks the (biased) variance by σ²/(σ² + ε)
    np.testing.assert_allclose(out.var(0), gamma ** 2 * z.var(0) / (z.var(0) + 1e-5), rtol=tol * 10)
    ref = gamma * (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5) + beta
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


def test_running_averages_follow_the_ewma_formula(device):
    bn = nn.BatchNorm(3, momentum=0.8, device=device)
    rm, rv = np.zeros(3), np.ones(3)
    for seed in range(3):
        z, zt = _batch(device, m=16, seed=seed, dtype=np.float32)
        bn(zt)
        rm = 0.8 * rm + (1 - 0.8) * z.mean(0)
        rv = 0.8 * rv + (1 - 0.8) * z.var(0)  # biased σ² of the batch
        np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-5)
        np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-5)
    default = nn.BatchNorm(3, device=device)
    z, zt = _batch(device, m=16, dtype=np.float32)
    default(zt)
    np.testing.assert_allclose(default.running_mean.numpy(), 0.1 * z.mean(0), rtol=1e-5)
    np.testing.assert_allclose(default.running_var.numpy(), 0.9 + 0.1 * z.var(0), rtol=1e-5)


def test_train_output_does_not_depend_on_the_running_averages(device):
    bn = nn.BatchNorm(3, device=device, dtype=np.float64)
    _, zt = _batch(device)
    a = bn(zt).numpy()
    _set(bn.running_mean, [100.0, 100.0, 100.0], device)
    _set(bn.running_var, [50.0, 50.0, 50.0], device)
    np.testing.assert_array_equal(bn(zt).numpy(), a)


def test_eval_uses_the_running_averages(device):
    bn = nn.BatchNorm(3, device=device, dtype=np.float64)
    gamma, beta = np.array([1.5, -0.5, 2.0]), np.array([0.1, 0.2, 0.3])
    rm, rv = np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.25, 9.0])
    _set(bn.gamma, gamma, device)
    _set(bn.beta, beta, device)
    _set(bn.running_mean, rm, device)
    _set(bn.running_var, rv, device)
    bn.eval()
    z, zt = _batch(device, m=8)
    out = bn(zt).numpy()
    np.testing.assert_allclose(out, gamma * (z - rm) / np.sqrt(rv + 1e-5) + beta, rtol=1e-12)
    # unchanged by evaluation, and each sample is normalized on its own
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm)
    np.testing.assert_array_equal(bn.running_var.numpy(), rv)
    np.testing.assert_allclose(bn(zt[2:3]).numpy(), out[2:3], rtol=1e-12)


def test_after_training_eval_matches_the_data_statistics(device):
    bn = nn.BatchNorm(2, momentum=0.5, device=device, dtype=np.float64)
    rng = np.random.default_rng(1)
    for _ in range(40):
        bn(polydl.tensor(rng.normal([3.0, -1.0], [2.0, 0.5], (256, 2)), device=device))
    np.testing.assert_allclose(bn.running_mean.numpy(), [3.0, -1.0], atol=0.2)
    np.testing.assert_allclose(bn.running_var.numpy(), [4.0, 0.25], rtol=0.2)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck_batchnorm(device, module_gradcheck, training):
    bn = nn.BatchNorm(3, device=device)
    bn.to(dtype=np.float64)
    _set(bn.gamma, [1.5, -0.7, 0.9], device)
    _set(bn.beta, [0.2, 0.0, -0.4], device)
    _set(bn.running_mean, [0.3, -0.1, 0.2], device)
    _set(bn.running_var, [1.2, 0.8, 2.0], device)
    bn.train(training)
    x = polydl.tensor(np.random.default_rng(2).normal(size=(6, 3)), device=device, requires_grad=True)
    assert module_gradcheck(bn, x)


def test_gamma_and_beta_are_trained_by_the_optimizer(device):
    bn = nn.BatchNorm(2, device=device)
    opt = optim.SGD(bn.parameters(), lr=0.1)
    _, zt = _batch(device, m=8, n=2, dtype=np.float32)
    target = polydl.tensor(np.full((8, 2), 3.0, np.float32), device=device)
    opt.zero_grad()
    ((bn(zt) - target) ** 2).mean().backward()
    # d/dβ mean((γ ẑ + β − 3)²) = 2 (β − 3)/2 per feature (mean over 8·2 elements, Σ ẑ = 0) = −3
    np.testing.assert_allclose(backend.to_numpy(bn.beta.grad), [-3.0, -3.0], rtol=1e-5)
    opt.step()
    np.testing.assert_allclose(bn.beta.numpy(), [0.3, 0.3], rtol=1e-5)
    assert not np.allclose(bn.gamma.numpy(), 1.0)


def test_validation():
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="num_features"):
            nn.BatchNorm(bad)
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match="momentum"):
            nn.BatchNorm(3, momentum=bad)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm(3, eps=0.0)
    with pytest.raises(ValueError, match="batch"):
        nn.BatchNorm(3)(polydl.tensor(np.ones(3, np.float32)))


# ---------------------------------------------------------------------------- BatchNorm → ReLU
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kernels", ["off", "on"])
def test_batch_norm_with_relu_gradcheck(device, training, kernels, monkeypatch):
    """``batch_norm(..., activation="relu")`` is relu(batch_norm(...)) and its gradient is right,
    as one fused node (CPU kernels on) or two nodes (off, and on CUDA)."""
    from polydl import F, cpu_kernels
    from polydl.testing import gradcheck

    if kernels == "on":
        pytest.importorskip("numba")
    ran = []
    real_get = cpu_kernels.get

    def get(name, size):  # records which compiled kernels run
        kern = real_get(name, size)
        if kern is not None:
            ran.append(name)
        return kern

    monkeypatch.setattr(cpu_kernels, "get", get)
    z, x = _batch(device, m=16)
    rng = np.random.default_rng(3)
    gamma = polydl.tensor(rng.uniform(0.5, 1.5, 3), device=device, requires_grad=True)
    beta = polydl.tensor(rng.normal(0, 0.3, 3), device=device, requires_grad=True)
    rm, rv = polydl.tensor(z.mean(0) + 0.1, device=device), polydl.tensor(z.var(0) * 1.2, device=device)
    x.requires_grad = True
    with cpu_kernels.use(kernels):
        fused = F.batch_norm(x, gamma, beta, rm, rv, training=training, activation="relu")
        plain = F.relu(F.batch_norm(x, gamma, beta, rm, rv, training=training))
        np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-12, atol=1e-12)
        assert gradcheck(lambda x, g, b: F.batch_norm(x, g, b, rm, rv, training=training, activation="relu"),
                         x, gamma, beta)
    fused_ran = ("bn_forward_train" if training else "bn_forward_eval") in ran
    assert fused_ran == (kernels == "on" and device == "cpu")


def test_sequential_fuses_only_plain_batchnorm_then_relu():
    """A BatchNorm or ReLU subclass keeps its own forward: Sequential does not fuse it."""
    from polydl import F

    class ShiftedReLU(nn.ReLU):
        def forward(self, x):
            return F.relu(x) + 1.0

    class ScaledBatchNorm(nn.BatchNorm):
        def forward(self, x):
            return super().forward(x) * 2.0

    _, x = _batch("cpu", m=8)
    for model, expected in ((nn.Sequential(nn.BatchNorm(3, dtype=np.float64), ShiftedReLU()), lambda y: np.maximum(y, 0) + 1),
                            (nn.Sequential(ScaledBatchNorm(3, dtype=np.float64), nn.ReLU()), lambda y: np.maximum(2 * y, 0))):
        ref = nn.BatchNorm(3, dtype=np.float64)(x).numpy()
        np.testing.assert_allclose(model(x).numpy(), expected(ref), rtol=1e-12)
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        F.batch_norm(x, nn.BatchNorm(3).gamma, nn.BatchNorm(3).beta, activation="tanh")
