"""The ``mlp`` builder."""
from __future__ import annotations

import math

import numpy as np
import pytest

import polydl
from polydl import nn


def _kinds(model):
    return [type(layer).__name__ for layer in model]


def test_batchnorm_mlp_drops_the_bias_before_each_batchnorm():
    m = nn.mlp([4, 8, 6, 3])
    assert _kinds(m) == ["Linear", "BatchNorm", "ReLU", "Linear", "BatchNorm", "ReLU", "Linear"]
    assert m[0].bias is None and m[3].bias is None
    assert m[6].bias is not None  # the output layer is not followed by BatchNorm
    assert (m[0].in_features, m[0].out_features, m[1].num_features) == (4, 8, 8)
    assert (m[3].in_features, m[3].out_features, m[4].num_features) == (8, 6, 6)
    assert (m[6].in_features, m[6].out_features) == (6, 3)
    assert [n for n, _ in m.named_parameters()] == [
        "0.weight", "1.gamma", "1.beta", "3.weight", "4.gamma", "4.beta", "6.weight", "6.bias"]


def test_mlp_without_normalizer_keeps_every_bias():
    m = nn.mlp([4, 8, 3], normalizer="none", activation="tanh")
    assert _kinds(m) == ["Linear", "Tanh", "Linear"]
    assert all(layer.bias is not None for layer in m if isinstance(layer, nn.Linear))


def test_mlp_options():
    m = nn.mlp([5, 7, 2], activation="leaky_relu", dropout=0.3, normalizer_params={"momentum": 0.5})
    assert _kinds(m) == ["Linear", "BatchNorm", "LeakyReLU", "Dropout", "Linear"]
    assert m[1].momentum == 0.5 and m[3].p == 0.3
    assert _kinds(nn.mlp([3, 2])) == ["Linear"] and nn.mlp([3, 2])[0].bias is not None


def test_mlp_initialisation_follows_the_activation():
    polydl.manual_seed(0)
    relu = nn.mlp([400, 300, 2], normalizer="none")
    tanh = nn.mlp([400, 300, 2], normalizer="none", activation="tanh")
    assert relu[0].weight.numpy().std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert tanh[0].weight.numpy().std() == pytest.approx(math.sqrt(2 / 700), rel=0.02)


@pytest.mark.parametrize("kwargs, match", [
    ({"sizes": [4]}, "sizes"), ({"sizes": [4, 0, 2]}, "sizes"), ({"sizes": [4, 2.5, 2]}, "sizes"),
    ({"sizes": [4, 3], "activation": "swish_typo"}, "relu"),
    ({"sizes": [4, 3, 2], "dropout": 1.0}, "dropout"), ({"sizes": [4, 3, 2], "dropout": -0.5}, "dropout"),
    ({"sizes": [4, 3, 2], "normalizer": "groupnorm_typo"}, "batchnorm"),
])
def test_mlp_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.mlp(**kwargs)


def test_mlp_forward_shapes_and_modes(device):
    m = nn.mlp([4, 8, 3], dropout=0.5).to(device=device)
    x = polydl.tensor(np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32), device=device)
    assert m(x).shape == (10, 3) and m(x).dtype == np.float32
    m.eval()
    a, b = m(x).numpy(), m(x).numpy()
    np.testing.assert_array_equal(a, b)  # no dropout, running statistics: deterministic
    np.testing.assert_allclose(m(x[:1]).numpy(), a[:1], rtol=1e-6)


@pytest.mark.parametrize("activation, normalizer", [("relu", "batchnorm"), ("tanh", "batchnorm"),
                                                    ("sigmoid", "none"), ("leaky_relu", "none")])
def test_gradcheck_mlp(device, module_gradcheck, activation, normalizer):
    polydl.manual_seed(4)
    m = nn.mlp([3, 4, 2], activation=activation, normalizer=normalizer).to(device=device)
    x = polydl.tensor(np.random.default_rng(9).normal(size=(5, 3)), device=device, requires_grad=True)
    assert module_gradcheck(m, x)
    m.eval()
    assert module_gradcheck(m, x)


def test_mlp_checks_every_size_before_building_anything():
    """The normalizer of a layer is built before its Linear, so the sizes are checked first: a
    BatchNorm of 10^12 features must not be allocated on the way to the error."""
    with pytest.raises(ValueError, match=r"Linear\(64, 1000000000000\): drawing its weight .* would need 698 TiB"):
        nn.mlp([64, 10 ** 12, 10])
    with pytest.raises(ValueError, match=r"Linear\(128, 1000000000001\)"):  # a huge class count: the last layer
        nn.mlp([64, 128, 10 ** 12 + 1])
