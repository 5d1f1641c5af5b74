"""Tests of the LayerNorm normalizer plugin: values, gradients (both devices), registration."""
import ast
import pathlib

import numpy as np
import polydl_layernorm
import pytest
from polydl_layernorm import LayerNorm

import polydl
from polydl import functional as F
from polydl.testing import gradcheck, registered_plugin


def _reference(x, gamma, beta, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def test_forward_matches_the_formula(device):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4)).astype(np.float32) * 3 + 1
    norm = LayerNorm(4, eps=1e-3).to(device)
    norm.gamma.data[...] = polydl.tensor([0.5, 1.0, 2.0, -1.0], device=device).data
    norm.beta.data[...] = polydl.tensor([0.0, 0.1, -0.2, 0.3], device=device).data
    out = norm(polydl.tensor(x, device=device))
    assert out.device.type == polydl.device(device).type and out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), _reference(x, [0.5, 1.0, 2.0, -1.0], [0.0, 0.1, -0.2, 0.3], 1e-3),
                               rtol=1e-5, atol=1e-5)


def test_starts_as_plain_standardisation_and_eval_equals_train(device):
    x = polydl.tensor(np.arange(12, dtype=np.float32).reshape(3, 4) ** 1.5, device=device)
    norm = LayerNorm(4).to(device)
    train_out = norm(x).numpy()
    np.testing.assert_allclose(train_out.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(train_out.std(-1), 1, atol=1e-3)
    np.testing.assert_array_equal(norm.eval()(x).numpy(), train_out)  # no running statistics
    assert norm(x[:1]).shape == (1, 4)  # a batch of one is fine


def test_gradcheck_input_gamma_beta(device):
    rng = np.random.default_rng(1)
    x = polydl.tensor(rng.normal(size=(3, 5)), dtype=np.float64, device=device, requires_grad=True)
    g = polydl.tensor(rng.uniform(0.5, 1.5, 5), dtype=np.float64, device=device, requires_grad=True)
    b = polydl.tensor(rng.normal(size=5), dtype=np.float64, device=device, requires_grad=True)
    norm = LayerNorm(5, eps=1e-2)

    def fn(x, g, b):
        norm.gamma, norm.beta = g, b
        return norm(x)

    assert gradcheck(fn, x, g, b)


def test_gradcheck_without_affine(device):
    x = polydl.tensor(np.random.default_rng(2).normal(size=(2, 6)), dtype=np.float64, device=device,
                      requires_grad=True)
    norm = LayerNorm(6, affine=False)
    assert norm.parameters() == []
    assert gradcheck(norm, x)


def test_trains_inside_an_mlp(device):
    with registered_plugin(polydl_layernorm, name="layernorm"):
        polydl.manual_seed(0)
        model = polydl.nn.mlp([4, 8, 3], normalizer="layernorm").to(device)
    assert isinstance(model[1], LayerNorm) and model[0].bias is not None  # a bias: LayerNorm keeps it
    assert {"1.gamma", "1.beta"} <= set(model.state_dict())
    rng = np.random.default_rng(3)
    X = polydl.tensor(rng.normal(size=(32, 4)), device=device)
    y = polydl.tensor((rng.normal(size=32) > 0).astype(np.int64) + (rng.normal(size=32) > 1), device=device)
    opt = polydl.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert model[1].gamma.grad is not None


@pytest.mark.parametrize("args, message", [
    ((0,), "num_features must be a positive integer"),
    ((2.5,), "num_features must be a positive integer"),
    ((True,), "num_features must be a positive integer"),
    ((3, 0.0), "eps must be a finite number > 0"),
    ((3, float("inf")), "eps must be a finite number > 0"),
    ((3, 1e-5, "yes"), "affine must be True or False"),
])
def test_bad_parameters(args, message):
    with pytest.raises(ValueError, match=message):
        LayerNorm(*args)


def test_wrong_feature_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"LayerNorm\(4\) got an input of shape \(2, 3\)"):
        LayerNorm(4)(polydl.tensor(np.zeros((2, 3), np.float32)))


def test_registers_layernorm_through_the_hook():
    with registered_plugin(polydl_layernorm, name="layernorm") as info:
        assert info.registered == {"normalizers": ["layernorm"]}
        norm = polydl.normalizers.get("layernorm", 7, eps=1e-3)
        assert isinstance(norm, LayerNorm) and norm.num_features == 7 and norm.eps == 1e-3
        with pytest.raises(ValueError, match=r"normalizer 'layernorm' has no parameter 'momentum' \(its parameters: eps, affine\)"):
            polydl.normalizers.get("layernorm", 7, momentum=0.9)


def test_uses_polydl_ops_only():
    """No NumPy or CuPy import: the same code runs on both devices."""
    tree = ast.parse(pathlib.Path(polydl_layernorm.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"numpy", "cupy"}


def test_entry_point_is_declared():
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        dist = distribution("polydl-layernorm")
    except PackageNotFoundError:
        pytest.skip("polydl-layernorm is not installed (scripts/test installs it)")
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "polydl"] == [
        ("layernorm", "polydl_layernorm")]
    assert polydl.normalizers.registry.entry("layernorm").distribution == "polydl-layernorm"
