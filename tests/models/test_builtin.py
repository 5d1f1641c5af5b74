"""The built-in models: ``mlp`` is ``nn.mlp`` (the same draws), ``cnn``'s stack and head,
``lenet5``'s sizes, and input they cannot take as one error naming the sizes."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import models, nn
from polydl.testing import gradcheck_module


def _rows(n, shape, seed=0, dtype=np.float32):
    return polydl.tensor(np.random.default_rng(seed).random((n, int(np.prod(shape)))).astype(dtype))


def test_mlp_is_nn_mlp_with_the_same_weights():
    polydl.manual_seed(3)
    built = models.get("mlp", (1, 8, 8), 10, hidden=[16, 8], dropout=0.1, normalizer_params={"momentum": 0.5})
    polydl.manual_seed(3)
    plain = nn.mlp([64, 16, 8, 10], dropout=0.1, normalizer_params={"momentum": 0.5})
    assert repr(built) == repr(plain)
    a, b = built.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_cnn_stacks_convolutions_then_the_hidden_head():
    model = models.get("cnn", (1, 8, 8), 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Unflatten", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d", "ReLU",
                     "MaxPool2d", "Flatten", "Linear", "BatchNorm", "ReLU", "Linear", "BatchNorm", "ReLU", "Linear"]
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1))]
    assert all(c.bias is None for c in convs)  # BatchNorm2d cancels it
    assert (model[10].in_features, model[10].out_features) == (64 * 2 * 2, 128)
    assert model(_rows(4, (1, 8, 8))).shape == (4, 10)


def test_cnn_options():
    model = models.get("cnn", (3, 12, 10), 2, channels=[4], kernel_size=5, pool=1, batchnorm=False, hidden=[],
                       activation="tanh")
    assert [type(m).__name__ for m in model] == ["Unflatten", "Conv2d", "Tanh", "Flatten", "Linear"]
    assert model[1].bias is not None and model[1].padding == (2, 2)
    assert model[4].in_features == 4 * 12 * 10
    assert model(_rows(2, (3, 12, 10))).shape == (2, 2)


def test_lenet5_has_the_classic_sizes():
    model = models.get("lenet5", (1, 28, 28), 10)
    assert model.num_parameters() == 150 + 12 + 2400 + 32 + 48000 + 240 + 10080 + 168 + 850
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 10)]
    assert model(_rows(2, (1, 28, 28))).shape == (2, 10)
    assert models.get("lenet5", (3, 32, 32), 10)[10].in_features == 16 * 6 * 6  # 32 → 16 → 12 → 6


@pytest.mark.parametrize("name, shape, params, message", [
    ("cnn", (64,), {}, r"model cnn takes images \(channels, height, width\), but the data's samples have shape "
                       r"\(64,\) \(64 values each\)"),
    ("lenet5", (2, 3), {}, r"model lenet5 takes images .* shape \(2, 3\) \(6 values each\)"),
    ("lenet5", (1, 8, 8), {}, r"model lenet5: convolution 2's 5×5 kernel is larger than its input of 4×4 padded by 0"),
    ("cnn", (1, 3, 8), {"channels": [4, 4]}, r"the feature maps of convolution 2 are 1×4, smaller than the 2×2 pool"),
    ("cnn", (1, 8, 8), {"channels": [4, 4, 4, 4]}, r"the feature maps of convolution 4 are 1×1, smaller than the 2×2 "
                                                   r"pool"),
    ("cnn", (1, 8, 8), {"channels": [4, 0]}, r"channels must be a list of positive sizes such as \[32, 64\], not "
                                             r"\[4, 0\]"),
    ("cnn", (1, 8, 8), {"pool": 0}, r"pool must be a whole number >= 1, not 0"),
    ("cnn", (1, 8, 8), {"activation": "swish"}, r"unknown activation 'swish'"),
])
def test_input_a_model_cannot_take_names_the_sizes(name, shape, params, message):
    with pytest.raises(ValueError, match=message):
        models.get(name, shape, 10, **params)


def test_cnn_gradcheck(device):
    polydl.manual_seed(0)
    model = models.get("cnn", (2, 4, 4), 3, channels=[3], hidden=[4]).to(device)
    x = polydl.tensor(np.random.default_rng(1).normal(size=(4, 32)), dtype=np.float64, device=device,
                      requires_grad=True)
    assert gradcheck_module(model, x, atol=1e-5)


def test_unflatten_views_rows_as_images(device):
    x = polydl.tensor(np.arange(24.0).reshape(2, 12), device=device, requires_grad=True)
    out = nn.Unflatten((3, 2, 2))(x)
    assert out.shape == (2, 3, 2, 2) and np.array_equal(out.numpy().reshape(2, 12), x.numpy())
    assert nn.Unflatten((3, 2, 2))(out).shape == (2, 3, 2, 2)  # images pass as they are
    out.sum().backward()
    assert x.grad.shape == (2, 12)
    with pytest.raises(ValueError, match=r"Unflatten to \(5,\) needs 5 values per sample, the input has 12"):
        nn.Unflatten(5)(x)
    with pytest.raises(ValueError, match=r"Unflatten shape must be positive sizes"):
        nn.Unflatten((1, 0))
