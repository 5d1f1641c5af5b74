"""``Module`` and ``Sequential``: traversal, modes, devices and dtypes, state dicts."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import backend, nn


def _model(device="cpu"):
    return nn.Sequential(nn.Linear(3, 4, device=device), nn.BatchNorm(4, device=device), nn.ReLU(),
                         nn.Dropout(0.2), nn.Linear(4, 2, device=device))


class Encoder(nn.Module):
    def __init__(self):
        self.body = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Tanh())
        self.head = nn.Linear(3, 1)
        self.scale = polydl.Parameter(np.ones(1, np.float32))
        self.blocks = [nn.Linear(1, 1), nn.Linear(1, 1)]

    def forward(self, x):
        h = self.head(self.body(x)) * self.scale
        for b in self.blocks:
            h = b(h)
        return h


def test_named_parameters_order_and_names():
    m = _model()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.gamma", "1.beta", "4.weight", "4.bias"]
    assert [id(p) for p in m.parameters()] == [id(p) for _, p in m.named_parameters()]
    assert m.parameters()[0] is m[0].weight and m.parameters()[2] is m[1].gamma
    assert [n for n, _ in m.named_buffers()] == ["1.running_mean", "1.running_var"]
    assert m.num_parameters() == 3 * 4 + 4 + 4 + 4 + 4 * 2 + 2
    assert all(isinstance(p, polydl.Parameter) and p.requires_grad for p in m.parameters())


def test_nested_names():
    e = Encoder()
    assert [n for n, _ in e.named_parameters()] == [
        "body.0.weight", "head.weight", "head.bias", "scale", "blocks.0.weight", "blocks.0.bias",
        "blocks.1.weight", "blocks.1.bias"]
    assert [n for n, _ in e.named_modules()] == ["", "body", "body.0", "body.1", "head", "blocks.0", "blocks.1"]
    assert e(polydl.tensor(np.ones((5, 2), np.float32))).shape == (5, 1)


def test_train_and_eval_propagate():
    e = Encoder()
    m = nn.Sequential(e, _model())
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())
    m.train(False)
    assert not m[1][3].training


def test_call_runs_forward(device):
    m = _model(device)
    x = polydl.tensor(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32), device=device)
    m.eval()
    np.testing.assert_array_equal(m(x).numpy(), m.forward(x).numpy())
    with pytest.raises(NotImplementedError):
        nn.Module()(x)


def test_sequential_is_indexable_sliceable_iterable():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    m = nn.Sequential(*layers)
    assert len(m) == 3
    assert m[0] is layers[0] and m[-1] is layers[2]
    assert list(m) == layers
    head = m[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    assert head[0].weight is layers[0].weight
    assert list(nn.Sequential(layers)) == layers
    m.append(nn.Sigmoid())
    assert len(m) == 4
    with pytest.raises(TypeError):
        nn.Sequential(nn.ReLU(), "relu")
    x = polydl.tensor(np.ones((4, 2), np.float32))
    np.testing.assert_array_equal(m[:3](x).numpy(), m[2](m[1](m[0](x))).numpy())


def test_state_dict_round_trip(device):
    polydl.manual_seed(1)
    a = _model(device)
    a(polydl.tensor(np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32), device=device))  # moves BN stats
    sd = a.state_dict()
    assert set(sd) == {"0.weight", "0.bias", "1.gamma", "1.beta", "1.running_mean", "1.running_var",
                       "4.weight", "4.bias"}
    assert all(type(v) is np.ndarray for v in sd.values())
    polydl.manual_seed(2)
    b = _model(device)
    assert not np.array_equal(b.state_dict()["0.weight"], sd["0.weight"])
    keep = b[0].weight.data
    b.load_state_dict(sd)
    assert b[0].weight.data is keep  # copied in place
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
    # the state dict holds copies
    with polydl.no_grad():
        a[0].weight.data[...] = 0
    assert not np.array_equal(sd["0.weight"], 0)


def test_load_state_dict_errors():
    m = _model()
    sd = m.state_dict()
    bad = dict(sd, **{"0.weight": np.zeros((4, 3), np.float32)})
    with pytest.raises(ValueError) as info:
        m.load_state_dict(bad)
    assert "0.weight" in str(info.value) and "(4, 3)" in str(info.value) and "(3, 4)" in str(info.value)
    missing = {k: v for k, v in sd.items() if k != "1.beta"}
    with pytest.raises(KeyError, match="1.beta"):
        m.load_state_dict(missing)
    with pytest.raises(KeyError, match="extra"):
        m.load_state_dict(dict(sd, extra=np.zeros(1)))
    m.load_state_dict(missing, strict=False)


def test_to_float64_casts_parameters_and_buffers(device):
    m = _model(device)
    x = polydl.tensor(np.ones((4, 3)), device=device)  # float64 input
    assert m.to(dtype=np.float64) is m
    assert all(t.dtype == np.float64 for t in m.parameters() + m.buffers())
    out = m(x)
    assert out.dtype == np.float64
    out.sum().backward()
    assert all(p.grad.dtype == np.float64 for p in m.parameters())
    m.to(dtype=np.float32)
    assert all(t.dtype == np.float32 for t in m.parameters() + m.buffers())
    with pytest.raises(ValueError, match="floating"):
        m.to(dtype=np.int32)


def test_to_device(device):
    m = _model()
    before = m.state_dict()
    m.to(device=device)
    assert m.device.type == backend.device(device).type
    assert all(p.device.type == backend.device(device).type for p in m.parameters() + m.buffers())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    same = m[0].weight.data
    m.to(device=device)
    assert m[0].weight.data is same


def test_zero_grad():
    m = _model()
    m(polydl.tensor(np.ones((4, 3), np.float32))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_repr_names_layers():
    text = repr(_model())
    assert "Linear(3, 4, bias=True)" in text and "BatchNorm(4" in text and "(4): Linear" in text


@pytest.mark.parametrize("data", [np.arange(3), np.arange(3, dtype=np.uint8), np.array([True, False]),
                                  np.array([1j, 2j]), np.array([1.0, 2.0], dtype=object)])
def test_a_parameter_must_be_floating_as_a_tensor_that_requires_grad(data):
    with pytest.raises(ValueError) as tensor_error:
        polydl.tensor(data, requires_grad=True)
    with pytest.raises(ValueError) as param_error:
        polydl.Parameter(data)
    assert str(param_error.value) == str(tensor_error.value)
    assert str(param_error.value).startswith(f"only floating tensors can require grad, not {data.dtype}")


@pytest.mark.parametrize("data", [[1.0, 2.0], 3.0])
def test_a_parameter_of_no_array_is_refused(data):
    with pytest.raises(ValueError, match="only floating arrays can require grad, not (list|float); pass an array"):
        polydl.Parameter(data)


def test_a_floating_parameter_trains_and_a_tensor_gives_its_array():
    from polydl import optim

    p = polydl.Parameter(polydl.tensor(np.array([1.0, 2.0])))
    assert type(p.data) is np.ndarray and p.requires_grad
    opt = optim.get("sgd", [p], lr=0.5)
    (p * p).sum().backward()
    opt.step()
    assert p.data.tolist() == [0.0, 0.0]
