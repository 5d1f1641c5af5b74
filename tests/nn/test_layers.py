"""Linear, the activations and Dropout: values, initialisation and gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest

import polydl
from polydl import backend, nn


def _x(device, shape=(5, 3), seed=0, dtype=np.float64):
    return polydl.tensor(np.random.default_rng(seed).normal(size=shape).astype(dtype), device=device,
                         requires_grad=True)


def test_linear_shapes_and_forward(device):
    layer = nn.Linear(3, 4, device=device)
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (4,)
    assert layer.weight.dtype == np.float32 and layer.weight.device.type == backend.device(device).type
    np.testing.assert_array_equal(layer.bias.numpy(), 0)
    with polydl.no_grad():
        layer.bias.data[...] = backend.to_device(np.array([1.0, -1.0, 0.5, 0.0], np.float32), device)
    x = _x(device, dtype=np.float32)
    np.testing.assert_allclose(layer(x).numpy(), x.numpy() @ layer.weight.numpy() + layer.bias.numpy(), rtol=1e-6)
    assert layer(_x(device, (2, 5, 3), dtype=np.float32)).shape == (2, 5, 4)


def test_linear_without_bias(device):
    layer = nn.Linear(3, 2, bias=False, device=device)
    assert layer.bias is None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    x = _x(device, dtype=np.float32)
    np.testing.assert_allclose(layer(x).numpy(), x.numpy() @ layer.weight.numpy(), rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_linear_validates_sizes(bad):
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(bad, 3)
    with pytest.raises(ValueError, match="out_features"):
        nn.Linear(3, bad)


@pytest.mark.parametrize("init, std", [
    ("he", lambda i, o: math.sqrt(2 / i)),
    ("xavier", lambda i, o: math.sqrt(2 / (i + o))),
    ("xavier_uniform", lambda i, o: math.sqrt(6 / (i + o)) / math.sqrt(3)),
])
def test_initialisation_scale(init, std):
    fan_in, fan_out = 300, 200
    w = nn.Linear(fan_in, fan_out, init=init).weight.numpy().astype(np.float64)
    # 60,000 draws: the sample std is within 2% of the target with overwhelming probability
    assert w.std() == pytest.approx(std(fan_in, fan_out), rel=0.02)
    assert abs(w.mean()) < 0.01 * std(fan_in, fan_out) * 5
    if init == "xavier_uniform":
        assert np.abs(w).max() <= math.sqrt(6 / (fan_in + fan_out))


def test_default_initialisation_is_he():
    w = nn.Linear(300, 200).weight.numpy().astype(np.float64)
    assert w.std() == pytest.approx(math.sqrt(2 / 300), rel=0.02)


def test_unknown_initialisation():
    with pytest.raises(ValueError, match="he"):
        nn.Linear(2, 2, init="glorot_typo")


def test_linear_float64(device):
    layer = nn.Linear(3, 2, dtype=np.float64, device=device)
    assert layer.weight.dtype == np.float64 and layer(_x(device)).dtype == np.float64


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_linear(device, module_gradcheck, bias):
    layer = nn.Linear(3, 2, bias=bias, device=device)
    with polydl.no_grad():
        if bias:
            layer.bias.data[...] = backend.to_device(np.array([0.3, -0.2], np.float32), device)
    assert module_gradcheck(layer, _x(device))
    assert module_gradcheck(layer, _x(device, (2, 4, 3)))


ACTIVATIONS = {
    "ReLU": (nn.ReLU, lambda a: np.maximum(a, 0)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), lambda a: np.where(a > 0, a, 0.2 * a)),
    "LeakyReLU-default": (nn.LeakyReLU, lambda a: np.where(a > 0, a, 0.01 * a)),
    "Tanh": (nn.Tanh, np.tanh),
    "Sigmoid": (nn.Sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    "Softmax": (nn.Softmax, lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
    "Softmax-axis0": (lambda: nn.Softmax(axis=0), lambda a: np.exp(a) / np.exp(a).sum(0, keepdims=True)),
    "Identity": (nn.Identity, lambda a: a),
}


def _kink_free(device):
    rng = np.random.default_rng(3)
    v = rng.uniform(0.2, 2.0, (4, 3)) * rng.choice([-1.0, 1.0], (4, 3))
    return polydl.tensor(v, device=device, requires_grad=True)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_values_and_gradients(device, module_gradcheck, name):
    make, ref = ACTIVATIONS[name]
    layer = make()
    x = _kink_free(device)
    np.testing.assert_allclose(layer(x).numpy(), ref(x.numpy()), rtol=1e-12)
    assert layer.parameters() == []
    assert module_gradcheck(layer, x)


def test_activation_registry_matches_the_classes():
    assert nn.layers.ACTIVATIONS["relu"] is nn.ReLU and nn.layers.ACTIVATIONS["tanh"] is nn.Tanh
    assert {"relu", "leaky_relu", "tanh", "sigmoid"} <= set(nn.layers.ACTIVATIONS)


def test_dropout_layer(device):
    layer = nn.Dropout(0.25)
    x = polydl.tensor(np.ones((100, 100), np.float32), device=device)
    y = layer(x).numpy()
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.015
    layer.eval()
    assert layer(x) is x
    for p in (-0.1, 1.0, 2, True):
        with pytest.raises(ValueError, match="p"):
            nn.Dropout(p)


def test_gradcheck_dropout_with_a_fixed_mask(device, module_gradcheck):
    layer = nn.Dropout(0.5)

    class Seeded(nn.Module):
        def __init__(self):
            self.inner = layer

        def forward(self, x):
            polydl.manual_seed(5)
            return self.inner(x)

    assert module_gradcheck(Seeded(), _x(device, (4, 5)))


def test_a_weight_that_cannot_fit_is_refused_before_it_is_drawn():
    """Linear(64, 10^12) would draw 6.4·10^13 float64 normals (466 TiB): an error saying so, and
    the random stream is untouched."""
    state = polydl.random.get_state()
    with pytest.raises(ValueError, match=r"^Linear\(64, 1000000000000\): drawing its weight of 64 × "
                                         r"1,000,000,000,000 values would need 698 TiB, more than .*; use fewer "
                                         r"units per layer"):
        nn.Linear(64, 10 ** 12)
    assert polydl.random.get_state() == state
    with pytest.raises(ValueError, match=r"BatchNorm\(1000000000000\): its four vectors .* would need 14\.6 TiB"):
        nn.BatchNorm(10 ** 12)
