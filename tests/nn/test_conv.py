"""The image layers: Conv2d, BatchNorm2d, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Flatten and
Dropout on feature maps; values, initialisation, gradients, modes, and a LeNet-5-shaped model."""
from __future__ import annotations

import math

import numpy as np
import pytest

import polydl
from polydl import backend, cpu_kernels, nn, optim
from polydl import functional as F


def _images(device, shape=(3, 2, 6, 5), seed=0, dtype=np.float64, requires_grad=True):
    return polydl.tensor(np.random.default_rng(seed).normal(size=shape).astype(dtype), device=device,
                         requires_grad=requires_grad)


def _set(t, values):
    with polydl.no_grad():
        t.data[...] = backend.to_device(np.asarray(values, dtype=t.dtype), t.device)


# ---------------------------------------------------------------------------- Conv2d
def test_conv2d_shapes_and_forward(device):
    layer = nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2, device=device)
    assert layer.weight.shape == (6, 2, 3, 2) and layer.bias.shape == (6,)
    assert layer.weight.dtype == np.float32 and layer.weight.device.type == backend.device(device).type
    np.testing.assert_array_equal(layer.bias.numpy(), 0)
    _set(layer.bias, np.arange(6.0))
    x = _images(device, (2, 4, 7, 6), dtype=np.float32)
    y = layer(x)
    want = F.conv2d(x, layer.weight, layer.bias, (2, 1), 1, (1, 2), 2)
    assert y.shape == (2, 6, 4, 6)
    np.testing.assert_array_equal(y.numpy(), want.numpy())


def test_conv2d_he_initialisation_draws_n_0_2_over_fan_in():
    polydl.manual_seed(3)
    layer = nn.Conv2d(16, 64, 3, groups=2)
    w = layer.weight.numpy()
    fan_in = 8 * 3 * 3
    assert abs(w.mean()) < 0.01 and abs(w.std() - math.sqrt(2 / fan_in)) < 0.01 * math.sqrt(2 / fan_in) * 5
    xavier = nn.Conv2d(16, 64, 3, init="xavier").weight.numpy()
    assert abs(xavier.std() - math.sqrt(2 / (16 * 9 + 64 * 9))) < 0.003
    bound = math.sqrt(6 / (16 * 9 + 64 * 9))
    uniform = nn.Conv2d(16, 64, 3, init="xavier_uniform").weight.numpy()
    assert uniform.min() >= -bound and uniform.max() <= bound and uniform.max() > 0.9 * bound


def test_conv2d_draws_are_seeded():
    polydl.manual_seed(5)
    a = nn.Conv2d(3, 4, 3).weight.numpy()
    polydl.manual_seed(5)
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 3).weight.numpy(), a)


def test_conv2d_without_bias_and_repr():
    layer = nn.Conv2d(1, 6, 5, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert repr(layer) == "Conv2d(1, 6, kernel_size=(5, 5), bias=False)"
    assert repr(nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4)) == (
        "Conv2d(4, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), groups=4, bias=True)")


@pytest.mark.parametrize("kwargs, message", [
    ({"in_channels": 0}, r"Conv2d in_channels must be a positive integer, not 0"),
    ({"out_channels": 2.5}, r"Conv2d out_channels must be a positive integer, not 2.5"),
    ({"groups": 2, "in_channels": 3}, r"Conv2d groups=2 must divide in_channels \(3\) and out_channels \(4\)"),
    ({"kernel_size": (3, 0)}, r"Conv2d kernel_size must be a positive integer or a pair of them, not \(3, 0\)"),
    ({"padding": -1}, r"Conv2d padding must be an integer ≥ 0"),
    ({"init": "lecun"}, r"unknown initialisation 'lecun' \(valid: he, xavier, xavier_uniform\)"),
])
def test_conv2d_validates_its_arguments(kwargs, message):
    args = {"in_channels": 2, "out_channels": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        nn.Conv2d(**args)


def test_conv2d_gradcheck(device, module_gradcheck):
    layer = nn.Conv2d(4, 2, (2, 3), stride=2, padding=(1, 0), groups=2, device=device)
    assert module_gradcheck(layer, _images(device, (2, 4, 5, 6)))


def test_conv2d_of_flat_data_is_one_error_naming_the_shape(device):
    with pytest.raises(ValueError, match=r"conv2d needs input of shape \(batch, channels, height, width\), not "
                                         r"\(8, 64\) \(flat data"):
        nn.Conv2d(1, 2, 3, device=device)(polydl.tensor(np.zeros((8, 64), np.float32), device=device))


# ---------------------------------------------------------------------------- pooling and Flatten
def test_pooling_layers_are_their_functions(device):
    x = _images(device, (2, 3, 7, 6))
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).numpy(), F.max_pool2d(x, 2).numpy())
    np.testing.assert_array_equal(nn.MaxPool2d(3, 2, 1)(x).numpy(), F.max_pool2d(x, 3, 2, 1).numpy())
    np.testing.assert_array_equal(nn.AvgPool2d((3, 2), (1, 2), (1, 0))(x).numpy(),
                                  F.avg_pool2d(x, (3, 2), (1, 2), (1, 0)).numpy())
    np.testing.assert_allclose(nn.GlobalAvgPool2d()(x).numpy(), x.numpy().mean(axis=(2, 3)), rtol=1e-12)
    assert nn.GlobalAvgPool2d(keepdims=True)(x).shape == (2, 3, 1, 1)
    assert nn.Flatten()(x).shape == (2, 126) and nn.Flatten(2)(x).shape == (2, 3, 42)


def test_pooling_layer_reprs_and_checks():
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
    assert repr(nn.AvgPool2d(3, 1, 1)) == "AvgPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert repr(nn.GlobalAvgPool2d()) == "GlobalAvgPool2d()" and repr(nn.Flatten()) == "Flatten()"
    with pytest.raises(ValueError, match=r"MaxPool2d padding \(2, 2\) is more than half the kernel \(3, 3\)"):
        nn.MaxPool2d(3, padding=2)
    with pytest.raises(ValueError, match=r"AvgPool2d stride must be a positive integer"):
        nn.AvgPool2d(2, stride=0)
    with pytest.raises(ValueError, match=r"Flatten start_dim must be an integer"):
        nn.Flatten(1.5)


# ---------------------------------------------------------------------------- BatchNorm2d
def test_batchnorm2d_parameters_buffers_and_modes(device):
    bn = nn.BatchNorm2d(3, momentum=0.8, device=device)
    assert [n for n, _ in bn.named_parameters()] == ["gamma", "beta"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var"]
    assert bn.gamma.shape == (3,) and bn.cancels_bias and repr(bn) == "BatchNorm2d(3, momentum=0.8, eps=1e-05)"
    bn.to(dtype=np.float64)
    x = _images(device, (4, 3, 5, 5), requires_grad=False)
    xd = x.numpy()
    y = bn(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), xd.var(axis=(0, 2, 3)) / (xd.var(axis=(0, 2, 3)) + 1e-5),
                               rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * xd.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * xd.var(axis=(0, 2, 3)), rtol=1e-12)
    bn.eval()
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    c = (None, slice(None), None, None)
    np.testing.assert_allclose(bn(x).numpy(), (xd - rm[c]) / np.sqrt(rv[c] + 1e-5), rtol=1e-12)
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm2d_gradcheck(device, module_gradcheck, training):
    bn = nn.BatchNorm2d(3, device=device)
    bn.train(training)
    _set(bn.gamma, [1.5, -0.7, 0.9])
    _set(bn.beta, [0.2, 0.0, -0.4])
    _set(bn.running_mean, [0.3, -0.1, 0.2])
    _set(bn.running_var, [1.2, 0.8, 2.0])
    assert module_gradcheck(bn, _images(device, (2, 3, 3, 4)))


@pytest.mark.parametrize("mode", ["off", "on"])
def test_batchnorm2d_then_relu_fuses_in_sequential(device, mode):
    """BatchNorm2d → ReLU runs as one node in a Sequential, with the two layers' results."""
    if mode == "on":
        pytest.importorskip("numba")
    x = _images(device, (4, 3, 5, 6), dtype=np.float32)
    fused = nn.Sequential(nn.BatchNorm2d(3, device=device), nn.ReLU())
    alone = nn.BatchNorm2d(3, device=device)
    with cpu_kernels.use(mode):
        y = fused(x)
        z = F.relu(alone(x))
        np.testing.assert_allclose(y.numpy(), z.numpy(), rtol=1e-5, atol=1e-6)
        if mode == "on" and device == "cpu":
            assert y._parents[0] is x  # one node: BatchNorm2d's output never existed on its own
        y.sum().backward()
    np.testing.assert_allclose(fused[0].running_mean.numpy(), alone.running_mean.numpy(), rtol=1e-5)


def test_a_patched_batchnorm2d_forward_is_not_fused(monkeypatch):
    bn, seen = nn.BatchNorm2d(2), []
    monkeypatch.setattr(bn, "forward", lambda x: seen.append(1) or F.batch_norm2d(x, bn.gamma, bn.beta))
    nn.Sequential(bn, nn.ReLU())(_images("cpu", (2, 2, 3, 3), dtype=np.float32))
    assert seen == [1]


# ---------------------------------------------------------------------------- Dropout on feature maps
def test_dropout_on_feature_maps(device):
    x = polydl.tensor(np.ones((8, 4, 6, 6), np.float32), device=device, requires_grad=True)
    drop = nn.Dropout(0.25)
    y = drop(x)
    values = np.unique(y.numpy())
    assert y.shape == x.shape and set(values.tolist()) <= {0.0, float(np.float32(1.0 / 0.75))}
    assert 0.15 < (y.numpy() == 0).mean() < 0.35  # each unit of each map on its own
    y.sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), y.numpy())
    drop.eval()
    assert drop(x) is x


# ---------------------------------------------------------------------------- a LeNet-5-shaped model
def lenet(channels=(6, 16), device=None, image=28, hidden=(120, 84)):
    side = ((image - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(1, channels[0], 5, bias=False, device=device), nn.BatchNorm2d(channels[0], device=device), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels[0], channels[1], 5, bias=False, device=device), nn.BatchNorm2d(channels[1], device=device),
        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(channels[1] * side * side, hidden[0], device=device), nn.ReLU(),
        nn.Linear(hidden[0], hidden[1], device=device), nn.ReLU(), nn.Linear(hidden[1], 10, device=device))


def test_lenet_forward_backward_shapes(device):
    model = lenet(device=device)
    x = _images(device, (8, 1, 28, 28), dtype=np.float32, requires_grad=False)
    loss = F.softmax_cross_entropy(model(x), backend.to_device(np.arange(8) % 10, device))
    loss.backward()
    assert model(x).shape == (8, 10)
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    assert model.num_parameters() == 150 + 12 + 2400 + 32 + 256 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10


def test_small_lenet_gradcheck(device, module_gradcheck):
    model = lenet((2, 3), device=device, image=16, hidden=(5, 4))
    assert module_gradcheck(model, _images(device, (3, 1, 16, 16)))


def test_a_small_cnn_learns(device):
    """Twenty Adam steps on 32 images of two classes (a bright square left or right) fit them."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (32, 1, 8, 8)).astype(np.float32)
    y = np.arange(32) % 2
    x[y == 0, :, 2:6, 0:3] += 1.5
    x[y == 1, :, 2:6, 5:8] += 1.5
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False, device=device), nn.BatchNorm2d(4, device=device),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 2, device=device))
    opt = optim.Adam(model.parameters(), lr=0.02)
    xt, yt = polydl.tensor(x, device=device), backend.to_device(y, device)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    accuracy = (model(xt).numpy().argmax(axis=1) == y).mean()
    assert losses[-1] < 0.3 * losses[0] and accuracy == 1.0
