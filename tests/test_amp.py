"""Mixed precision: half-precision products with float32 master weights, float32 BatchNorm
statistics and softmax cross-entropy, dynamic loss scaling."""
import numpy as np
import pytest

import polydl
from polydl import amp, backend, nn, optim
from polydl import functional as F
from polydl.training.config import TrainConfig
from polydl.training.run import run as train_run


def _t(a, device, requires_grad=False):
    return polydl.tensor(a, device=device, requires_grad=requires_grad)


def test_resolve_dtypes():
    assert amp.resolve("float16") == np.float16
    with pytest.raises(ValueError, match="floating"):
        amp.resolve("int32")


def test_bfloat16_needs_ml_dtypes(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "ml_dtypes":
            raise ImportError("no ml_dtypes")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ValueError, match="pip install ml_dtypes"):
        amp.resolve("bfloat16")


def test_autocast_linear_runs_in_half_and_keeps_float32_master_grads(device, rng):
    x = _t(rng.standard_normal((8, 5)).astype(np.float32), device)
    lin = nn.Linear(5, 3).to(device)
    with amp.autocast("float16"):
        out = lin(x)
    assert out.dtype == np.float16
    out.sum().backward()
    assert lin.weight.grad.dtype == np.float32 and lin.bias.grad.dtype == np.float32
    w32 = backend.to_numpy(lin.weight.data).astype(np.float64)
    expect_gw = backend.to_numpy(x.data).astype(np.float64).T @ np.ones((8, 3))
    np.testing.assert_allclose(backend.to_numpy(lin.weight.grad), expect_gw, rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(backend.to_numpy(out.data).astype(np.float64),
                               backend.to_numpy(x.data) @ w32, rtol=2e-2, atol=2e-2)
    assert amp.current() is None  # the context is left


def test_float16_products_accumulate_in_float32_and_round_once(device, rng):
    """float16 matmul and linear (forward and both backward products) equal the float32 product
    of the float16 operands rounded once to float16: a GPU's half GEMM with float32 accumulation,
    and on the CPU float32 BLAS instead of NumPy's slow float16 loop."""
    a = rng.standard_normal((6, 40)).astype(np.float16)
    b = rng.standard_normal((40, 7)).astype(np.float16)
    g = rng.standard_normal((6, 7)).astype(np.float16)

    def once(p, q):  # the reference: exact float32 product of half operands, rounded once
        return (p.astype(np.float32) @ q.astype(np.float32)).astype(np.float16)

    at, bt = _t(a, device, True), _t(b, device, True)
    out = F.matmul(at, bt)
    out.backward(backend.to_device(g, device))
    for got, want in ((out.data, once(a, b)), (at.grad, once(g, b.T)), (bt.grad, once(a.T, g))):
        got = backend.to_numpy(got)
        assert got.dtype == np.float16
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-3)
    x = _t(a.astype(np.float32), device, True)
    lin = nn.Linear(40, 7, bias=False).to(device)
    w = backend.to_numpy(lin.weight.data)
    with amp.autocast("float16"):
        z = lin(x)
    np.testing.assert_allclose(backend.to_numpy(z.data).astype(np.float32),
                               once(a, w.astype(np.float16)).astype(np.float32), rtol=2e-3, atol=2e-3)


def test_batchnorm_statistics_in_float32_under_half_input(device, rng):
    bn = nn.BatchNorm(4).to(device)
    x = _t(rng.standard_normal((16, 4)).astype(np.float16) * 3 + 1, device, requires_grad=True)
    out = bn(x)
    assert out.dtype == np.float16
    assert bn.running_mean.dtype == np.float32
    xs = backend.to_numpy(x.data).astype(np.float64)
    np.testing.assert_allclose(backend.to_numpy(bn.running_mean.data), 0.1 * xs.mean(0), rtol=1e-3, atol=1e-3)
    out.sum().backward()
    assert x.grad.dtype == np.float16 and bn.gamma.grad.dtype == np.float32


def test_softmax_cross_entropy_in_float32_for_half_scores(device, rng):
    z = rng.standard_normal((6, 4)).astype(np.float16) * 4
    y = np.array([0, 1, 2, 3, 0, 1])
    zt = _t(z, device, requires_grad=True)
    loss = F.softmax_cross_entropy(zt, backend.to_device(y, device))
    assert loss.dtype == np.float32
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(float(loss.item()), -np.log(p[np.arange(6), y]).mean(), rtol=1e-5)
    loss.backward()
    assert zt.grad.dtype == np.float16
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(backend.to_numpy(zt.grad).astype(np.float64), (p - onehot) / 6, atol=2e-3)


def _model_and_opt(device):
    model = nn.mlp([3, 4, 2]).to(device)
    return model, optim.SGD(model.parameters(), lr=0.1)


def test_grad_scaler_unscales_and_steps(device):
    model, opt = _model_and_opt(device)
    scaler = amp.GradScaler("float16", init_scale=1024.0)
    before = backend.to_numpy(opt.groups[0].data).copy()
    opt.zero_grad()
    opt.groups[0].grad[...] = 1024.0  # what a scaled backward of a loss with unit gradients gives
    assert scaler.step(opt) is True
    np.testing.assert_allclose(backend.to_numpy(opt.groups[0].data), before - 0.1, rtol=1e-6)
    assert scaler.scale_value == 1024.0 and scaler.good_steps == 1


def test_grad_scaler_skips_non_finite_steps_and_backs_off(device):
    model, opt = _model_and_opt(device)
    scaler = amp.GradScaler("float16", init_scale=1024.0)
    before = backend.to_numpy(opt.groups[0].data).copy()
    opt.zero_grad()
    opt.groups[0].grad[0] = np.inf
    assert scaler.step(opt) is False
    np.testing.assert_array_equal(backend.to_numpy(opt.groups[0].data), before)
    assert scaler.scale_value == 512.0 and scaler.skipped == 1 and opt.step_count == 0


def test_grad_scaler_grows_after_interval_and_round_trips():
    scaler = amp.GradScaler("float16", init_scale=8.0, growth_interval=3)
    for _ in range(3):
        scaler.update(True)
    assert scaler.scale_value == 16.0 and scaler.good_steps == 0
    other = amp.GradScaler("float16")
    other.load_state_dict(scaler.state_dict())
    assert other.scale_value == 16.0
    loss = polydl.tensor(2.0)
    assert float(scaler.scale(loss).item()) == 32.0


def test_grad_scaler_validation_and_bfloat16_is_unscaled():
    with pytest.raises(ValueError, match="growth_factor"):
        amp.GradScaler("float16", growth_factor=1.0)
    assert amp.GradScaler("float32").enabled is False
    loss = polydl.tensor(3.0)
    assert amp.GradScaler("float32").scale(loss) is loss


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_mixed_precision_training_matches_float32_accuracy(device, half, tmp_path):
    if half == "bfloat16":
        pytest.importorskip("ml_dtypes")
    cfg = dict(device=device, hidden=[64, 32], epochs=12, plot=False)
    base = train_run(TrainConfig(**cfg), tmp_path / "f32", handle_signals=False)
    mixed = train_run(TrainConfig(dtype=half, **cfg), tmp_path / half, handle_signals=False)
    assert base.test_accuracy >= 0.96 and mixed.test_accuracy >= 0.96
    assert abs(mixed.test_accuracy - base.test_accuracy) <= 0.015
    # master weights stay float32
    from polydl.training import checkpoint as ckpt
    meta, arrays = ckpt.load_checkpoint(tmp_path / half / ckpt.CHECKPOINT)
    assert arrays["model/0.weight"].dtype == np.float32
    if half == "float16":
        assert meta["loss_scaler"]["scale"] > 0
