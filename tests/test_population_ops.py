"""Ops and layers of a population of P models: every member computed as the same model alone,
gradients against float64 finite differences, for P = 1 and P > 1."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import backend, nn
from polydl import functional as F
from polydl import random as prandom
from polydl.testing import gradcheck, gradcheck_module

PS = [1, 3]


def t(a, device, grad=False):
    return polydl.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


def npy(x):
    return backend.to_numpy(x.data if isinstance(x, polydl.Tensor) else x)


@pytest.mark.parametrize("P", PS)
def test_linear_per_member_equals_each_member_alone(device, P, rng):
    x = rng.normal(size=(5, 4))
    W, b = rng.normal(size=(P, 4, 3)), rng.normal(size=(P, 3))
    out = F.linear(t(x, device), t(W, device), t(b, device))
    assert out.shape == (P, 5, 3)
    for k in range(P):
        alone = F.linear(t(x, device), t(W[k], device), t(b[k], device))
        np.testing.assert_array_equal(npy(out)[k], npy(alone))
    xs = rng.normal(size=(P, 5, 4))  # one input per member
    out = F.linear(t(xs, device), t(W, device), t(b, device))
    for k in range(P):
        np.testing.assert_array_equal(npy(out)[k], npy(F.linear(t(xs[k], device), t(W[k], device), t(b[k], device))))


@pytest.mark.parametrize("P", PS)
@pytest.mark.parametrize("shared", [True, False], ids=["shared input", "input per member"])
def test_linear_gradients(device, P, shared, rng):
    x = t(rng.normal(size=(5, 4) if shared else (P, 5, 4)), device, grad=True)
    W, b = t(rng.normal(size=(P, 4, 3)), device, grad=True), t(rng.normal(size=(P, 3)), device, grad=True)
    assert gradcheck(F.linear, x, W, b)
    out = F.linear(x, W, b)
    out.backward(polydl.tensor(np.ones(out.shape), device=device))
    assert x.grad.shape == x.shape  # a shared input's gradient has the input's shape (the members' sum)


@pytest.mark.parametrize("P", PS)
@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_batch_norm_per_member(device, P, training, activation, rng):
    x = rng.normal(size=(P, 6, 4)) * rng.uniform(0.5, 2, (P, 1, 4)) + rng.normal(size=(P, 1, 4))
    g, b = rng.uniform(0.5, 2, (P, 4)), rng.normal(size=(P, 4))
    rm, rv = rng.normal(size=(P, 4)), rng.uniform(0.5, 2, (P, 4))
    rms, rvs = t(rm, device), t(rv, device)
    out = F.batch_norm(t(x, device), t(g, device), t(b, device), rms, rvs, training, 0.8, activation=activation)
    for k in range(P):
        rk, vk = t(rm[k], device), t(rv[k], device)
        alone = F.batch_norm(t(x[k], device), t(g[k], device), t(b[k], device), rk, vk, training, 0.8,
                             activation=activation)
        np.testing.assert_allclose(npy(out)[k], npy(alone), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(npy(rms)[k], npy(rk), rtol=1e-14)
        np.testing.assert_allclose(npy(rvs)[k], npy(vk), rtol=1e-14)
    xt, gt, bt = t(x, device, True), t(g, device, True), t(b, device, True)
    if activation == "relu":
        xt = t(x + np.sign(x) * 0.05, device, True)

    def fn(x_, g_, b_):
        return F.batch_norm(x_, g_, b_, t(rm, device), t(rv, device), training, 0.8, activation=activation)

    assert gradcheck(fn, xt, gt, bt, atol=1e-5)


@pytest.mark.parametrize("P", PS)
def test_softmax_cross_entropy_gives_each_member_its_own_mean(device, P, rng):
    """One loss per member, each the mean over its own batch, and each member's gradient the one
    it would have alone (not 1/P of it)."""
    z = rng.normal(size=(P, 7, 4))
    y = rng.integers(0, 4, 7)
    zt = t(z, device, True)
    loss = F.softmax_cross_entropy(zt, backend.to_device(y, device))
    assert loss.shape == (P,)
    loss.backward()  # seeds every member with 1
    for k in range(P):
        zk = t(z[k], device, True)
        alone = F.softmax_cross_entropy(zk, backend.to_device(y, device))
        alone.backward()
        np.testing.assert_allclose(npy(loss)[k], npy(alone), rtol=1e-14)
        np.testing.assert_allclose(npy(zt.grad)[k], npy(zk.grad), rtol=1e-14, atol=1e-16)
    per = rng.integers(0, 4, (P, 7))  # labels per member
    lp = F.softmax_cross_entropy(t(z, device), backend.to_device(per, device))
    for k in range(P):
        np.testing.assert_allclose(npy(lp)[k], npy(F.softmax_cross_entropy(t(z[k], device),
                                                                          backend.to_device(per[k], device))), rtol=1e-14)
    assert gradcheck(lambda a: F.softmax_cross_entropy(a, backend.to_device(y, device)), t(z, device, True))
    assert gradcheck(lambda a: F.softmax_cross_entropy(a, backend.to_device(per, device)), t(z, device, True))


@pytest.mark.parametrize("P", PS)
def test_binary_cross_entropy_and_mse_per_member(device, P, rng):
    z = rng.normal(size=(P, 6, 1))
    y = rng.integers(0, 2, 6)
    loss = F.binary_cross_entropy_with_logits(t(z, device), backend.to_device(y, device))
    assert loss.shape == (P,)
    for k in range(P):
        alone = F.binary_cross_entropy_with_logits(t(z[k], device), backend.to_device(y, device))
        np.testing.assert_allclose(npy(loss)[k], npy(alone), rtol=1e-14)
    assert gradcheck(lambda a: F.binary_cross_entropy_with_logits(a, backend.to_device(y, device)), t(z, device, True))
    s = rng.normal(size=(P, 6, 3))
    labels = rng.integers(0, 3, 6)
    loss = F.mse(t(s, device), backend.to_device(labels, device))
    for k in range(P):
        np.testing.assert_allclose(npy(loss)[k], npy(F.mse(t(s[k], device), backend.to_device(labels, device))),
                                   rtol=1e-14)
    assert gradcheck(lambda a: F.mse(a, backend.to_device(labels, device)), t(s, device, True))


def test_dropout_draws_each_member_s_masks_from_its_own_stream(device, rng):
    x = t(rng.normal(size=(3, 50, 8)) + 3.0, device)
    ps = [0.0, 0.2, 0.5]
    streams = [prandom.Stream(s) for s in (11, 12, 13)]
    with prandom.members(streams):
        out = F.dropout(x, ps)
    for k, (p, seed) in enumerate(zip(ps, (11, 12, 13))):
        polydl.manual_seed(seed)
        alone = F.dropout(t(npy(x)[k], device), p)
        np.testing.assert_array_equal(npy(out)[k], npy(alone))
    assert streams[0].get_state() == prandom.Stream(11).get_state()  # p = 0 draws nothing
    with pytest.raises(ValueError, match="members' random streams"):
        F.dropout(x, ps)


@pytest.mark.parametrize("P", PS)
def test_a_population_mlp_is_its_members(device, P, rng, module_gradcheck):
    polydl.manual_seed(3)
    pop = nn.mlp([4, 5, 3], population=P).to(device=device, dtype=np.float64)
    assert all(p.members == P and p.shape[0] == P for p in pop.parameters())
    assert pop[0].weight.shape == (P, 4, 5) and pop[1].gamma.shape == (P, 5) and pop[3].bias.shape == (P, 3)
    x = rng.normal(size=(6, 4))
    out = npy(pop(t(x, device)))
    for k in range(P):
        alone = nn.mlp([4, 5, 3]).to(device=device, dtype=np.float64)
        for (_, a), (_, p) in zip(alone.named_parameters(), pop.named_parameters()):
            a.data[...] = p.data[k]
        np.testing.assert_allclose(out[k], npy(alone(t(x, device))), rtol=1e-13, atol=1e-13)
    assert gradcheck_module(pop, t(x, device, True), atol=1e-5)


def test_population_layers_check_their_arguments():
    with pytest.raises(ValueError, match="population must be a positive number of members"):
        nn.Linear(2, 3, population=0)
    with pytest.raises(ValueError, match="one per member needs population=2"):
        nn.mlp([2, 3, 2], dropout=[0.1, 0.2])
    from polydl.testing import registered_plugin

    class Plain(nn.Module):
        def __init__(self, num_features):
            self.n = num_features

        def forward(self, x):
            return x

    plugin = type("P", (), {"polydl_register_normalizers": polydl.hookimpl(
        lambda self, register: register("plain_norm", Plain))})()
    with registered_plugin(plugin, "plain_norm"):  # a normalizer for one model: applied member by member
        model = nn.mlp([2, 3, 2], normalizer="plain_norm", population=2)
        assert isinstance(model[1], polydl.normalizers.MemberByMember)
        assert model(polydl.tensor(np.ones((4, 2), np.float32))).shape == (2, 4, 2)


def test_members_of_w2_size_train_bit_identical_to_each_alone():
    """At the benchmark's W2 size (784-256-256-10, batch 128, float32) the products run through
    BLAS's blocked and threaded paths, which the small models above never reach: a member still
    ends each Adam step exactly as the same model trained alone."""
    from polydl import losses, optim

    sizes, batch, P, steps = (784, 256, 256, 10), 128, 2, 3
    rng = np.random.default_rng(0)
    X = rng.standard_normal((steps * batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], steps * batch)
    lrs, betas = [1e-3, 3e-2], [0.9, 0.85]
    loss_fn = losses.get("softmax_cross_entropy")

    def train(model, opt):
        for i in range(0, steps * batch, batch):
            opt.zero_grad()
            loss_fn(model(polydl.Tensor(X[i:i + batch])), y[i:i + batch]).backward()
            opt.step()

    polydl.manual_seed(0)
    pop = nn.mlp(sizes, population=P)
    first = [np.array(p.data) for p in pop.parameters()]  # the initial weights, member k's rows
    train(pop, optim.Adam(pop.parameters(), lr=lrs, beta1=betas))
    for k in range(P):
        alone = nn.mlp(sizes)
        for a, p in zip(alone.parameters(), first):
            a.data[...] = p[k]
        train(alone, optim.Adam(alone.parameters(), lr=lrs[k], beta1=betas[k]))
        for (name, a), p in zip(alone.named_parameters(), pop.parameters()):
            np.testing.assert_array_equal(a.data, p.data[k], err_msg=f"member {k} {name}")
