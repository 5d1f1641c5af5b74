"""Parameters packed into one flat buffer per device and dtype."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import backend, nn, optim
from polydl.optim.flat import pack


def _model(device):
    polydl.manual_seed(0)
    return nn.mlp([3, 4, 2]).to(device=device)


def _backward(model, device, seed=0):
    x = np.random.default_rng(seed).normal(size=(5, 3)).astype(np.float32)
    (model(polydl.tensor(x, device=device)) ** 2).sum().backward()


def test_data_and_grad_are_views_of_one_buffer(device):
    model = _model(device)
    before = [p.numpy().copy() for p in model.parameters()]
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert len(opt.groups) == 1
    group = opt.groups[0]
    assert group.data.shape == (model.num_parameters(),) and group.grad.shape == group.data.shape
    # values kept, and laid out in parameter order
    np.testing.assert_array_equal(backend.to_numpy(group.data), np.concatenate([b.ravel() for b in before]))
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.numpy(), b)
        assert p.shape == b.shape
    # writing the buffer writes every parameter: they are views
    group.data.fill(3.0)
    assert all((p.numpy() == 3.0).all() for p in model.parameters())
    _backward(model, device)
    np.testing.assert_array_equal(backend.to_numpy(group.grad),
                                  np.concatenate([backend.to_numpy(p.grad).ravel() for p in model.parameters()]))
    group.grad.fill(2.0)
    assert all((backend.to_numpy(p.grad) == 2.0).all() for p in model.parameters())


def test_zero_grad_is_one_fill_and_keeps_the_views(device):
    model = _model(device)
    opt = optim.Adam(model.parameters())
    grads = [p.grad for p in model.parameters()]
    _backward(model, device)
    assert [p.grad for p in model.parameters()] == grads  # same array objects: accumulated in place
    assert np.abs(backend.to_numpy(opt.groups[0].grad)).sum() > 0
    opt.zero_grad()
    np.testing.assert_array_equal(backend.to_numpy(opt.groups[0].grad), 0)
    assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))
    model.zero_grad()  # the module's zero_grad also fills instead of dropping the views
    assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))


def test_gradients_accumulate_in_the_buffer(device):
    model = _model(device)
    opt = optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    _backward(model, device, seed=1)
    one = backend.to_numpy(opt.groups[0].grad).copy()
    _backward(model, device, seed=1)
    np.testing.assert_allclose(backend.to_numpy(opt.groups[0].grad), 2 * one, rtol=1e-6)
    opt.zero_grad()
    _backward(model, device, seed=1)
    np.testing.assert_allclose(backend.to_numpy(opt.groups[0].grad), one, rtol=1e-6)


def test_packing_keeps_existing_gradients(device):
    model = _model(device)
    _backward(model, device)
    grads = [backend.to_numpy(p.grad).copy() for p in model.parameters()]
    optim.SGD(model.parameters(), lr=0.1)
    for p, g in zip(model.parameters(), grads, strict=True):
        np.testing.assert_array_equal(backend.to_numpy(p.grad), g)


def test_replacing_parameter_data_after_building_the_optimizer_is_an_error(device):
    model = _model(device)
    opt = optim.SGD(model.parameters(), lr=0.1)
    model[0].weight.data = model[0].weight.data.copy()
    _backward(model, device)
    with pytest.raises(RuntimeError, match="replaced.*optimizer"):
        opt.step()


def test_casting_the_model_after_building_the_optimizer_is_an_error(device):
    model = _model(device)
    opt = optim.Adam(model.parameters())
    model.to(dtype=np.float64)
    with pytest.raises(RuntimeError, match="build the optimizer after"):
        opt.step()
    model.to(device=device)  # same device: nothing moves, the optimizer stays valid
    opt = optim.Adam(model.parameters())
    _backward(model, device)
    opt.step()


def test_one_group_per_dtype(device):
    a = polydl.Parameter(backend.to_device(np.ones(3, np.float32), device))
    b = polydl.Parameter(backend.to_device(np.ones(2, np.float64), device))
    c = polydl.Parameter(backend.to_device(np.ones(4, np.float32), device))
    opt = optim.SGD([a, b, c, a], lr=0.5)  # a twice: packed once
    assert sorted((g.dtype.name, g.size) for g in opt.groups) == [("float32", 7), ("float64", 2)]
    assert a.dtype == np.float32 and b.dtype == np.float64
    ((a * 2.0).sum() + (b * 3.0).sum() + c.sum()).backward()
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.0)
    np.testing.assert_allclose(b.numpy(), -0.5)
    np.testing.assert_allclose(c.numpy(), 0.5)


def test_pack_groups_and_deduplicates():
    a = polydl.Parameter(np.ones(3, np.float32))
    b = polydl.Parameter(np.ones((2, 2), np.float32))
    groups = pack([a, b, a])
    assert len(groups) == 1 and groups[0].size == 7 and groups[0].params == [a, b]
    assert groups[0].slices == [(0, 3), (3, 7)]


def test_the_gradient_buffer_contract(device):
    """``_packed``: .grad is a view into the flat buffer; ``_gzero``: that slot holds zeros, so
    ``linear`` may write W's and b's gradients straight into it (the same values as returned ones)."""
    model, alone = _model(device), _model(device)
    opt = optim.SGD(model.parameters(), lr=0.1)
    params = list(model.parameters())
    assert all(p._packed and p._gzero for p in params)  # no gradient yet: the slots are zeros
    _backward(model, device)
    _backward(alone, device)
    assert not any(p._gzero for p in params)
    for p, q in zip(params, alone.parameters(), strict=True):
        np.testing.assert_allclose(backend.to_numpy(p.grad), backend.to_numpy(q.grad), rtol=1e-6, atol=1e-7)
    opt.zero_grad()
    assert all(p._gzero for p in params)
    model.to(dtype=np.float64)  # new arrays: the parameters leave the buffer
    assert not any(p._packed or p._gzero for p in model.parameters())
