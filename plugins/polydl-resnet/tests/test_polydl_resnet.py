"""Tests of the residual-network model plugin: shapes, gradients (both devices), errors naming the
sizes, registration through the hook, and training on the bundled digits."""
import ast
import pathlib

import numpy as np
import polydl_resnet
import pytest
from polydl_resnet import ResidualBlock, resnet

import polydl
from polydl import nn
from polydl.testing import gradcheck_module, registered_plugin


def test_maps_rows_to_scores(device):
    model = resnet((1, 8, 8), 10).to(device)
    x = polydl.tensor(np.random.default_rng(0).random((5, 64), dtype=np.float32), device=device)
    out = model(x)
    assert out.shape == (5, 10) and out.dtype == np.float32
    assert out.device.type == polydl.device(device).type
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)  # each is followed by BatchNorm2d
    assert [c.out_channels for c in convs] == [16, 16, 16, 32, 32, 32]  # stem, block, block with its 1×1 shortcut


def test_stages_double_the_width_and_halve_the_size():
    model = resnet((3, 16, 16), 4, width=4, stages=3, blocks=2)
    blocks = [m for m in model if isinstance(m, ResidualBlock)]
    assert [b.conv2.out_channels for b in blocks] == [4, 4, 8, 8, 16, 16]
    assert [b.conv1.stride for b in blocks] == [(1, 1), (1, 1), (2, 2), (1, 1), (2, 2), (1, 1)]
    assert [b.shortcut is not None for b in blocks] == [False, False, True, False, True, False]
    assert model(polydl.tensor(np.zeros((2, 3 * 16 * 16), np.float32))).shape == (2, 4)


def test_gradcheck_block_and_network(device):
    rng = np.random.default_rng(1)
    x = polydl.tensor(rng.normal(size=(3, 2, 4, 4)), dtype=np.float64, device=device, requires_grad=True)
    polydl.manual_seed(0)
    assert gradcheck_module(ResidualBlock(2, 3, stride=2).to(device), x, atol=1e-5)
    rows = polydl.tensor(rng.normal(size=(3, 16)), dtype=np.float64, device=device, requires_grad=True)
    assert gradcheck_module(resnet((1, 4, 4), 3, width=2).to(device), rows, atol=1e-5)


@pytest.mark.parametrize("shape, params, message", [
    ((64,), {}, r"takes images \(channels, height, width\), but the samples have shape \(64,\)"),
    ((1, 8, 8), {"stages": 5}, r"5 stages halve the size 4 times, too often for 8×8 images"),
    ((1, 8, 8), {"width": 0}, r"width must be a whole number >= 1, not 0"),
    ((1, 8, 8), {"blocks": 1.5}, r"blocks must be a whole number >= 1, not 1.5"),
])
def test_bad_input_names_the_sizes(shape, params, message):
    with pytest.raises(ValueError, match=message):
        resnet(shape, 10, **params)


def test_registers_resnet_through_the_hook():
    with registered_plugin(polydl_resnet, name="resnet") as info:
        assert info.registered == {"models": ["resnet"]}
        model = polydl.models.get("resnet", (1, 8, 8), 10, width=4)
        assert isinstance(model, nn.Sequential) and model(polydl.tensor(np.zeros((2, 64), np.float32))).shape == (2, 10)
        assert polydl.models.registry.parameters("resnet", skip=2) == ["width", "stages", "blocks"]
        with pytest.raises(ValueError, match=r"model 'resnet' has no parameter 'size' \(its parameters: width, stages, "
                                             r"blocks\)"):
            polydl.models.get("resnet", (1, 8, 8), 10, size=3)


def test_trains_on_the_digits():
    data = polydl.datasets.load("digits")
    assert data.input_shape == (1, 8, 8)
    polydl.manual_seed(0)
    model = resnet(data.input_shape, data.num_classes, width=8)
    opt = polydl.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = polydl.losses.get("softmax_cross_entropy")
    X, y = data.X_train, data.y_train
    for _ in range(2):
        for i in range(0, len(y) - 63, 64):
            opt.zero_grad()
            loss = loss_fn(model(polydl.tensor(X[i:i + 64])), y[i:i + 64])
            loss.backward()
            opt.step()
    model.eval()
    with polydl.no_grad():
        predicted = model(polydl.tensor(data.X_test)).numpy().argmax(1)
    assert (predicted == data.y_test).mean() > 0.8


def test_uses_polydl_only():
    """No NumPy or CuPy import: the same code runs on both devices."""
    tree = ast.parse(pathlib.Path(polydl_resnet.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"numpy", "cupy"}


def test_entry_point_is_declared():
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        dist = distribution("polydl-resnet")
    except PackageNotFoundError:
        pytest.skip("polydl-resnet is not installed (scripts/test installs it)")
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "polydl"] == [("resnet", "polydl_resnet")]
    assert polydl.models.registry.entry("resnet").distribution == "polydl-resnet"
