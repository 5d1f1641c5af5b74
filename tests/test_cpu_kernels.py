"""The fused CPU kernels (``polydl.cpu_kernels``, compiled by Numba) against the NumPy forms they
stand in for: the same results with the kernels ``off`` and forced ``on``, and the mode handling.

Tests that need Numba skip cleanly without it (the ``test`` extra installs it)."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import polydl
from polydl import cpu_kernel_sources, cpu_kernels, nn, optim
from polydl import functional as F
from polydl.testing import gradcheck

MODES = ("off", "on")


@pytest.fixture(autouse=True)
def _keep_mode(monkeypatch):
    """Whatever a test does to the mode, the next test starts from the mode it had before."""
    monkeypatch.setattr(cpu_kernels, "_MODE", cpu_kernels._MODE)


@pytest.fixture
def needs_numba():
    return pytest.importorskip("numba")


@pytest.fixture
def calls(monkeypatch):
    """Names of the compiled kernels actually called during the test, in order. (Wraps
    ``cpu_kernels.get``, through which the optimizers and ``functional`` fetch them.)"""
    names = []
    real_get = cpu_kernels.get

    def get(name, size):
        kern = real_get(name, size)
        if kern is None:
            return None

        def call(*args):
            names.append(name)
            return kern(*args)
        return call

    monkeypatch.setattr(cpu_kernels, "get", get)
    return names


def _params_of(opt):
    return [p for g in opt.groups for p in g.params]


def in_modes(fn, *args, **kwargs):
    """{mode: fn(*args, **kwargs)} with the kernels off (NumPy form) and forced on."""
    out = {}
    for m in MODES:
        with cpu_kernels.use(m):
            out[m] = fn(*args, **kwargs)
    return out


def same_bits(a, b):
    """Equal bit for bit (tells 0 from −0 and compares NaNs), with the same dtype and shape."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return np.array_equal(np.ascontiguousarray(a).view(u), np.ascontiguousarray(b).view(u))


# ---------------------------------------------------------------------------- optimizers
#: class, hyperparameters, and the changes made half-way through the run
OPTIMIZERS = {
    "sgd": (optim.SGD, {"lr": 0.1}, {"lr": 0.03}),
    "momentum": (optim.Momentum, {"lr": 0.1, "beta": 0.8}, {"lr": 0.05, "beta": 0.6}),
    "rmsprop": (optim.RMSprop, {"lr": 0.01, "beta": 0.9, "eps": 1e-3}, {"lr": 0.02, "beta": 0.8}),
    "adam": (optim.Adam, {"lr": 0.01, "beta1": 0.8, "beta2": 0.95},
             {"lr": 0.005, "beta1": 0.7, "beta2": 0.9}),
}
SHAPES = [(17, 9), (31,), (2, 3, 5)]  # 214 elements in one flat buffer: vector loop and tail


def _params(dtype):
    rng = np.random.default_rng(0)
    return [polydl.Parameter(rng.normal(size=s).astype(dtype)) for s in SHAPES]


def _set_grads(opt, rng, t):
    """Fresh gradients for step t, written straight into the flat gradient buffer (some exact
    zeros, and a scale that changes from step to step)."""
    for p in _params_of(opt):
        g = rng.normal(0, 1 + t, p.shape)
        g[rng.random(p.shape) < 0.1] = 0
        p.grad[...] = g.astype(p.dtype)


def _run(opt, steps, change=None, seed=1):
    rng = np.random.default_rng(seed)
    for t in range(steps):
        if change and t == steps // 2:
            for k, v in change.items():
                setattr(opt, k, v)  # β changes rescale the state buffers kept divided by 1 − β
        _set_grads(opt, rng, t)
        opt.step()
    return opt


def _train(name, dtype, weight_decay, steps=6):
    cls, hyper, change = OPTIMIZERS[name]
    return _run(cls(_params(dtype), weight_decay=weight_decay, **hyper), steps, change)


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_kernel_is_bit_identical_to_numpy_form(name, dtype, weight_decay, calls):
    """Six steps, with lr and β changed after three: parameters and state buffers agree bit for bit;
    the kernel ran at every step and the NumPy scratch buffer was never made for it."""
    runs = {}
    for m in MODES:
        calls.clear()
        with cpu_kernels.use(m):
            runs[m] = _train(name, dtype, weight_decay)
        assert calls == ([name] * 6 if m == "on" else [])
    off, on = runs["off"], runs["on"]
    start = _params(dtype)
    for p_off, p_on, p0 in zip(_params_of(off), _params_of(on), start):
        assert p_on.dtype == dtype
        assert not np.array_equal(p_off.numpy(), p0.numpy())  # the run moved the parameters
        assert same_bits(p_off.numpy(), p_on.numpy())
    for st_off, st_on in zip(off.state, on.state):
        assert "tmp" in st_off and "tmp" not in st_on
        assert set(st_on) == set(OPTIMIZERS[name][0].state_names) == set(st_off) - {"tmp"}
        for k in st_on:
            assert same_bits(st_off[k], st_on[k]), k


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_float16_falls_back_to_numpy_form(name, calls):
    """float16 parameters have no kernel: mode on runs the NumPy form, with the same result."""
    runs = in_modes(_train, name, np.float16, 0.1, steps=2)
    assert calls == [] and "tmp" in runs["on"].state[0]
    for p_off, p_on in zip(_params_of(runs["off"]), _params_of(runs["on"])):
        assert same_bits(p_off.numpy(), p_on.numpy())


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("save_mode, load_mode", [("on", "on"), ("off", "off"), ("on", "off"), ("off", "on")])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_state_dict_round_trip(name, save_mode, load_mode):
    """state_dict after three steps in one mode, loaded into a fresh optimizer, continues in the
    other mode exactly as the original does; no scratch buffer is saved. (After loading in mode
    off the NumPy form must create its scratch buffer itself.)"""
    cls, hyper, change = OPTIMIZERS[name]
    with cpu_kernels.use(save_mode):
        opt = _run(cls(_params(np.float32), weight_decay=0.05, **hyper), 3, seed=1)
    sd = opt.state_dict()
    assert all("tmp" not in st for st in sd["state"])
    assert sd["step"] == 3 and set(sd["state"][0]) == set(cls.state_names)
    copies = [polydl.Parameter(p.numpy().copy()) for p in _params_of(opt)]
    # lr and β come from the state dict (the buffers are loaded as saved, not rescaled)
    restored = cls(copies, lr=0.5)
    restored.load_state_dict(sd)
    with cpu_kernels.use(load_mode):
        for o in (opt, restored):
            o.lr = 0.02  # the same change on both, after loading
            _run(o, 3, seed=2)
    assert restored.hyperparameters() == opt.hyperparameters()
    for a, b in zip(_params_of(opt), _params_of(restored)):
        assert same_bits(a.numpy(), b.numpy())
    for st_a, st_b in zip(opt.state, restored.state):
        assert ("tmp" in st_b) == (load_mode == "off")
        for k in cls.state_names:
            assert same_bits(st_a[k], st_b[k]), k


class SignAdam(optim.Adam):
    """Changes the NumPy form only (W ← W − α sign(g)): Adam's compiled kernel must not run."""

    def _update_numpy(self, xp, p, g, state, coef):
        p -= xp.sign(g) * g.dtype.type(coef["lr"])


class AdamWithOwnKernel(optim.Adam):
    """Changes both forms: its ``_update_numba`` (handed Adam's kernel) runs."""

    _update_numpy = SignAdam._update_numpy

    def _update_numba(self, kernel, p, g, state, coef):
        p -= g.dtype.type(coef["lr"])


class PlainAdam(optim.Adam):
    """Changes nothing about the update: the kernel still stands in."""


@pytest.mark.usefixtures("needs_numba")
def test_subclass_overriding_kernel_keeps_its_own_update(calls):
    g = np.array([0.5, -2.0, 0.0, 3.0], np.float32)
    w0 = np.array([1.0, 2.0, 3.0, 4.0], np.float32)

    def step(cls):
        w = polydl.Parameter(w0.copy())
        opt = cls([w], lr=0.25)
        w.grad[...] = g
        opt.step()
        return w.numpy(), opt.state[0]

    with cpu_kernels.use("on"):
        w, st = step(SignAdam)
        assert same_bits(w, w0 - np.sign(g) * np.float32(0.25))
        assert calls == [] and "tmp" in st
        assert not st["m"].any() and not st["v"].any()  # Adam's moments were never touched

        w, st = step(AdamWithOwnKernel)
        assert same_bits(w, w0 - np.float32(0.25))
        assert "tmp" not in st

        w, st = step(PlainAdam)
        assert calls == ["adam"] and "tmp" not in st
    with cpu_kernels.use("off"):
        w_numpy, _ = step(optim.Adam)
    assert same_bits(w, w_numpy)


# ---------------------------------------------------------------------------- batch norm
def _bn(x, gamma, beta, g, training=True, x_grad=True):
    """batch_norm forward and backward (upstream gradient g): the output, the gradients of x,
    γ and β, and the running mean and variance after the call."""
    dt = gamma.dtype
    f = x.shape[-1]
    xt = polydl.Tensor(x, requires_grad=x_grad)  # Tensor keeps x as it is (views stay views)
    gt, bt = polydl.Tensor(gamma.copy(), requires_grad=True), polydl.Tensor(beta.copy(), requires_grad=True)
    rm = polydl.Tensor(np.linspace(-1, 1, f).astype(dt))
    rv = polydl.Tensor(np.linspace(0.5, 2, f).astype(dt))
    out = F.batch_norm(xt, gt, bt, rm, rv, training=training, momentum=0.8)
    out.backward(g)
    return {"out": out.numpy(), "gx": xt.grad, "ggamma": gt.grad, "gbeta": bt.grad,
            "running_mean": rm.numpy(), "running_var": rv.numpy()}


def _bn_data(m, f=7, loc=0.0, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = loc + rng.normal(size=(m, f)) * rng.uniform(0.5, 2, f)
    x[:, -1] = loc  # a constant feature: σ² = 0 exactly
    gamma = rng.uniform(0.5, 2, f)
    beta = rng.normal(size=f)
    g = rng.normal(size=(m, f))
    return [a.astype(dtype) for a in (x, gamma, beta, g)]


def _assert_bn_close(res, ref, x, gamma, g, rtol):
    """Each result within rtol of the reference, relative to the size of its terms (entries that
    cancel to about 0, such as dx for a batch of 2, are compared on that scale)."""
    x, gamma, g = (a.astype(np.float64) for a in (x, gamma, g))
    m = x.shape[0]
    inv_std = 1 / np.sqrt(x.var(0) + 1e-5)
    scale = {"out": np.abs(ref["out"]).max() + 1, "gx": np.abs(g).max() * np.abs(gamma * inv_std).max(),
             "ggamma": np.abs(g).max() * m, "gbeta": np.abs(g).max() * m,
             "running_mean": np.abs(ref["running_mean"]).max(), "running_var": np.abs(ref["running_var"]).max()}
    for k, want in ref.items():
        got = res[k]
        if want is None:
            assert got is None, k
            continue
        assert got.dtype == want.dtype and got.shape == want.shape, k
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0,
                                   atol=rtol * scale[k], err_msg=k)


BN_CASES = [  # batch size, mean of the input, training mode (one sample: evaluation only)
    pytest.param(m, loc, training, id=f"{name}-{'train' if training else 'eval'}")
    for m, loc, name in ((64, 0.0, "m64"), (64, 1e3, "m64-mean1e3"), (1, 0.0, "m1"), (2, 0.0, "m2"),
                         (2, 1e3, "m2-mean1e3"))
    for training in (True, False) if m > 1 or not training
]


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("m, loc, training", BN_CASES)
def test_batch_norm_float64_matches_numpy_form(m, loc, training, calls):
    """Output, running averages and the three gradients agree to about 1e-12."""
    x, gamma, beta, g = _bn_data(m, loc=loc)
    res = in_modes(_bn, x, gamma, beta, g, training)
    expected = ["bn_forward_train", "bn_running", "bn_backward_train"] if training else ["bn_forward_eval"]
    assert calls == expected
    _assert_bn_close(res["on"], res["off"], x, gamma, g, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn-relu"])
def test_batch_norm_rejects_a_training_batch_of_one_sample(mode, relu):
    """σ² of one sample is 0, so the output would be β whatever the input: an error in both forms
    (alone and fused with ReLU), before the running averages change; evaluation mode works."""
    if mode == "on":
        pytest.importorskip("numba")
    bn = nn.BatchNorm(3, dtype=np.float64)
    layers = nn.Sequential(bn, nn.ReLU()) if relu else bn
    x = polydl.tensor(np.array([[0.5, -1.0, 2.0]]), requires_grad=True)
    with cpu_kernels.use(mode), pytest.raises(ValueError, match=r"mini-batch of 1 sample: the σ² of one sample is 0.*"
                                                                r"batch size of at least 2, or evaluation mode"):
        layers(x)
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    with cpu_kernels.use(mode):
        out = layers.eval()(x)
    np.testing.assert_allclose(out.numpy(), np.maximum(x.numpy(), 0) if relu else x.numpy(), rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_batch_norm_rejects_an_input_of_another_width(mode):
    if mode == "on":
        pytest.importorskip("numba")
    bn = nn.BatchNorm(4)
    for training in (True, False):
        bn.train(training)
        with cpu_kernels.use(mode), pytest.raises(ValueError, match=r"got 5 features per sample \(input shape "
                                                                    r"\(3, 5\)\), but it normalizes 4"):
            bn(polydl.tensor(np.zeros((3, 5), np.float32)))


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("m, loc, training", BN_CASES)
def test_batch_norm_float32_matches_float64(m, loc, training, calls):
    """float32 in both modes against the float64 result of the same (float32) inputs: within 1e-5
    of the terms' size, or, for a mean 1000 times the spread, within the float32 rounding of μ
    (ulp(1000) ≈ 6e-5); a σ² computed as E[x²] − μ² in float32 would be far off there."""
    data = _bn_data(m, loc=loc, dtype=np.float32)
    with cpu_kernels.use("off"):
        ref = _bn(*(a.astype(np.float64) for a in data), training)
    rtol = 5e-4 if loc else 1e-5
    for mode in MODES:
        with cpu_kernels.use(mode):
            res = _bn(*data, training)
        want = {k: v.astype(np.float32) for k, v in ref.items()}
        _assert_bn_close(res, want, data[0], data[1], data[3], rtol)
    assert calls[0] == ("bn_forward_train" if training else "bn_forward_eval")


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_input_without_grad(training, dtype, rtol, calls):
    """x that needs no gradient: no dx, and γ, β gradients as in the NumPy form."""
    x, gamma, beta, g = _bn_data(16, dtype=dtype)
    res = in_modes(_bn, x, gamma, beta, g, training, x_grad=False)
    assert res["on"]["gx"] is None and res["off"]["gx"] is None
    assert calls[-1] == ("bn_backward_train" if training else "bn_forward_eval")
    _assert_bn_close(res["on"], res["off"], x, gamma, g, rtol)


@pytest.mark.usefixtures("needs_numba")
def test_batch_norm_gradcheck_with_kernels(calls):
    rng = np.random.default_rng(3)
    x = polydl.tensor(rng.normal(3, 2, (6, 4)), requires_grad=True)
    gamma = polydl.tensor(rng.uniform(0.5, 2, 4), requires_grad=True)
    beta = polydl.tensor(rng.normal(size=4), requires_grad=True)
    rm, rv = polydl.tensor(rng.normal(size=4)), polydl.tensor(rng.uniform(0.5, 2, 4))
    with cpu_kernels.use("on"):
        assert gradcheck(lambda x, g, b: F.batch_norm(x, g, b, training=True), x, gamma, beta)
        assert gradcheck(lambda x, g, b: F.batch_norm(x, g, b, rm, rv, training=False), x, gamma, beta)
    assert {"bn_forward_train", "bn_backward_train", "bn_forward_eval"} <= set(calls)


@pytest.mark.usefixtures("needs_numba")
def test_batch_norm_non_contiguous_and_float16_inputs_fall_back(calls):
    """Inputs the kernels do not take (a transposed view; float16 activations with float32 γ, β)
    give the NumPy form's results in mode on, without error."""
    x, gamma, beta, g = _bn_data(32, dtype=np.float64)
    xt = np.ascontiguousarray(x.T).T  # same values, Fortran order
    assert not xt.flags.c_contiguous
    res = in_modes(_bn, xt, gamma, beta, g)
    assert calls == ["bn_running"]  # only the running averages' update (element-wise, exact)
    _assert_bn_close(res["on"], res["off"], x, gamma, g, rtol=1e-12)
    with cpu_kernels.use("on"):
        contiguous = _bn(x, gamma, beta, g)
    _assert_bn_close(res["on"], contiguous, x, gamma, g, rtol=1e-12)

    x, gamma, beta, g = _bn_data(32, dtype=np.float32)
    half = [a.astype(np.float16) for a in (x, gamma, beta, g)]
    for args in ([half[0], gamma, beta, half[3]], half):  # float16 activations; all float16
        calls.clear()
        res = in_modes(_bn, *args)
        assert [c for c in calls if c != "bn_running"] == []
        assert res["on"]["out"].dtype == np.float16
        for k, v in res["off"].items():
            assert same_bits(res["on"][k], v), k


# ---------------------------------------------------------------------------- relu
def _relu_grad(x, g):
    xt = polydl.Tensor(x.copy(), requires_grad=True)
    F.relu(xt).backward(g)
    return xt.grad


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_bit_identical(dtype, calls):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 13)).astype(dtype)
    x[::3, ::2] = 0  # the kink: no gradient through 0
    g = rng.normal(size=x.shape).astype(dtype)
    res = in_modes(_relu_grad, x, g)
    assert calls == ["relu_backward"]
    assert same_bits(res["on"], res["off"])
    assert same_bits(res["on"], g * (x > 0))


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_propagates_nan_like_numpy(dtype):
    """g·[out > 0] as NumPy computes it: NaN and ±inf in g give NaN where the mask is 0, negative
    g gives −0 there, and a NaN input (NaN > 0 is false) passes no gradient."""
    x = np.array([1, -1, 0, 2, -3, 0.5, np.nan, -0.0, 3, -2, 1, -1], dtype)
    g = np.array([np.nan, np.nan, np.inf, -np.inf, -np.inf, -2, 1, -1, -0.0, -5, 0, 7], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf·0 in the NumPy form
        res = in_modes(_relu_grad, x, g)
        want = g * (x > 0)
    assert np.isnan(res["on"][[0, 1, 2, 4]]).all()
    assert np.signbit(res["on"][[7, 9]]).all()
    assert same_bits(res["on"], res["off"]) and same_bits(res["on"], want)


@pytest.mark.usefixtures("needs_numba")
def test_relu_backward_float16_and_views_fall_back(calls):
    """float16 (no kernel) and a non-contiguous view: the NumPy form's result in mode on."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(9, 6))
    g = rng.normal(size=(6, 9)).T  # a transposed view
    for args in ((x.astype(np.float16), g.astype(np.float16)), (x, g)):
        res = in_modes(_relu_grad, *args)
        assert same_bits(res["on"], res["off"]) and same_bits(res["on"], args[1] * (args[0] > 0))
    assert calls == []


@pytest.mark.usefixtures("needs_numba")
def test_relu_gradcheck_with_kernels(calls):
    x = np.random.default_rng(6).normal(size=(5, 6))
    x[np.abs(x) < 0.1] = 0.5  # away from the kink
    with cpu_kernels.use("on"):
        assert gradcheck(F.relu, polydl.tensor(x, requires_grad=True))
    assert "relu_backward" in calls


# ---------------------------------------------------------------------------- other fused kernels
@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_batch_norm_relu_in_sequential_matches(dtype, rtol, calls):
    """Sequential fuses BatchNorm → ReLU into one node where the kernels run: the same output and
    gradients as the two NumPy nodes, including a NaN in the upstream gradient."""
    rng = np.random.default_rng(7)
    x = rng.normal(2, 3, (24, 5)).astype(dtype)
    g = rng.normal(size=x.shape).astype(dtype)
    g[0, 0] = np.nan

    def run():
        polydl.manual_seed(0)
        model = nn.Sequential(nn.BatchNorm(5, dtype=dtype), nn.ReLU())
        xt = polydl.Tensor(x.copy(), requires_grad=True)
        out = model(xt)
        out.backward(g)
        bn = model._layers[0]
        return out.numpy(), xt.grad, bn.gamma.grad, bn.beta.grad

    res = in_modes(run)
    assert "bn_forward_train" in calls and "relu_backward" not in calls  # one fused node
    for a, b in zip(res["on"], res["off"]):
        assert np.array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.nanmax(np.abs(b)))
    assert (res["on"][0] >= 0).all()


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_softmax_cross_entropy_matches(dtype, rtol, calls):
    rng = np.random.default_rng(8)
    z = rng.normal(0, 4, (33, 5)).astype(dtype)
    y = rng.integers(0, 5, 33)

    def run():
        zt = polydl.Tensor(z.copy(), requires_grad=True)
        loss = F.softmax_cross_entropy(zt, y)
        loss.backward()
        return loss.numpy(), zt.grad

    res = in_modes(run)
    assert calls == ["softmax_xent", "softmax_xent_backward"]
    for a, b in zip(res["on"], res["off"]):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    for mode in MODES:  # a bad label is the same error either way
        with cpu_kernels.use(mode), pytest.raises(ValueError,
                                                  match=r"label 5 \(sample 3 of the batch\) is not a class index"):
            F.softmax_cross_entropy(polydl.tensor(z), np.array([0, 1, 5] + [0] * 30))


# ---------------------------------------------------------------------------- end to end
@pytest.mark.usefixtures("needs_numba")
def test_training_losses_match_between_modes(calls):
    """20 Adam steps of an MLP with batch norm: the same losses with the kernels off and on."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(64, 20)).astype(np.float32)
    y = rng.integers(0, 3, 64)

    def train():
        polydl.manual_seed(0)
        model = nn.mlp((20, 32, 32, 3))
        opt = optim.Adam(model, lr=0.01)
        losses = []
        for _ in range(20):
            opt.zero_grad()
            loss = F.softmax_cross_entropy(model(polydl.tensor(X)), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return np.array(losses)

    losses = in_modes(train)
    assert {"adam", "bn_forward_train", "bn_backward_train", "softmax_xent"} <= set(calls)
    assert losses["on"][-1] < 0.7 * losses["on"][0]  # it learns
    np.testing.assert_allclose(losses["on"], losses["off"], rtol=1e-5)


# ---------------------------------------------------------------------------- modes
def test_use_restores_the_mode_even_on_exception():
    cpu_kernels.use("off")  # called plainly, it sets the mode
    assert cpu_kernels.mode() == "off"
    with cpu_kernels.use("on"):
        assert cpu_kernels.mode() == "on"
        with cpu_kernels.use("auto"):
            assert cpu_kernels.mode() == "auto"
        assert cpu_kernels.mode() == "on"
    assert cpu_kernels.mode() == "off"
    with pytest.raises(KeyError), cpu_kernels.use("true"):  # an alias of on
        assert cpu_kernels.mode() == "on"
        raise KeyError("boom")
    assert cpu_kernels.mode() == "off"


@pytest.mark.parametrize("bad", ["fast", "", None, 2])
def test_use_rejects_invalid_modes(bad):
    with pytest.raises(ValueError, match="must be one of auto, on, off"):
        cpu_kernels.use(bad)
    assert cpu_kernels.mode() in ("auto", "on", "off")


@pytest.mark.parametrize("raw, mode", [("auto", "auto"), ("on", "on"), ("off", "off"), ("1", "on"),
                                       ("0", "off"), ("true", "on"), ("false", "off"), (" ON ", "on"),
                                       ("yes", "on"), ("no", "off"), ("", "auto"), (None, "auto")])
def test_mode_from_env(monkeypatch, raw, mode):
    if raw is None:
        monkeypatch.delenv("POLYDL_CPU_KERNELS", raising=False)
    else:
        monkeypatch.setenv("POLYDL_CPU_KERNELS", raw)
    assert cpu_kernels._mode_from_env() == mode


def test_mode_from_env_rejects_bad_values(monkeypatch):
    monkeypatch.setenv("POLYDL_CPU_KERNELS", "sometimes")
    with pytest.raises(ValueError, match=r"POLYDL_CPU_KERNELS must be one of auto, on, off, not 'sometimes'"):
        cpu_kernels._mode_from_env()


def test_env_var_is_read_at_import():
    """A valid value sets the mode; a typo warns and falls back to auto instead of breaking the
    import."""
    code = "import polydl; print(polydl.cpu_kernels.mode())"
    for raw, mode, warned in (("off", "off", False), ("sometimes", "auto", True)):
        env = {**os.environ, "POLYDL_CPU_KERNELS": raw}
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == mode
        assert ("RuntimeWarning" in r.stderr and "using auto" in r.stderr) == warned, r.stderr


def test_off_and_small_arrays_get_no_kernel(needs_numba):
    with cpu_kernels.use("off"):
        assert cpu_kernels.get("adam", 10 ** 6) is None
    with cpu_kernels.use("auto"):
        assert cpu_kernels.get("adam", cpu_kernels.MIN_SIZE - 1) is None
        kern = cpu_kernels.get("adam", cpu_kernels.MIN_SIZE)
        assert callable(kern)
    with cpu_kernels.use("on"):
        assert cpu_kernels.get("adam", 0) is kern  # compiled once
    assert cpu_kernels.available()
    assert cpu_kernels.numba_version() == needs_numba.__version__


@pytest.fixture
def no_numba(monkeypatch):
    """As if Numba could not be imported."""
    monkeypatch.setattr(cpu_kernels, "_numba", lambda: None)
    monkeypatch.setattr(cpu_kernels, "_COMPILED", {})


def test_without_numba_auto_uses_numpy_and_on_raises(no_numba):
    assert not cpu_kernels.available() and cpu_kernels.numba_version() is None
    w = polydl.Parameter(np.ones(4, np.float32))
    opt = optim.Adam([w], lr=0.1)
    w.grad[...] = 1
    with cpu_kernels.use("auto"):
        assert cpu_kernels.get("adam", 100) is None
        opt.step()  # the NumPy form
    assert "tmp" in opt.state[0]
    np.testing.assert_allclose(w.numpy(), 0.9, rtol=1e-6)  # Adam's first step is lr·sign(g)
    with cpu_kernels.use("on"):
        with pytest.raises(RuntimeError, match=r"polydl\[fast\]"):
            cpu_kernels.get("adam", 100)
        with pytest.raises(RuntimeError, match=r"needs Numba"):
            opt.step()


# ---------------------------------------------------------------------------- edge cases
@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("label_dtype", ["uint8", "int16", "int32", "uint64", ">i4", "<i8"])
def test_softmax_cross_entropy_label_dtypes(label_dtype, calls):
    """Any integer label dtype works with the kernels on; a non-native byte order (files from
    big-endian machines) takes the NumPy form instead of failing to compile."""
    rng = np.random.default_rng(9)
    z = rng.normal(0, 2, (12, 4))
    y = rng.integers(0, 4, 12).astype(label_dtype)
    res = in_modes(lambda: F.softmax_cross_entropy(polydl.tensor(z), y).item())
    np.testing.assert_allclose(res["on"], res["off"], rtol=1e-12)
    assert ("softmax_xent" in calls) == np.dtype(label_dtype).isnative


@pytest.mark.parametrize("mode", MODES)
def test_batch_norm_rejects_an_empty_training_batch(mode):
    if mode == "on":
        pytest.importorskip("numba")
    bn = nn.BatchNorm(4)
    with cpu_kernels.use(mode), pytest.raises(ValueError, match="empty mini-batch"):
        bn(polydl.tensor(np.zeros((0, 4), np.float32)))
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)


@pytest.mark.usefixtures("needs_numba")
def test_batch_norm_backward_uses_the_forward_passes_gamma_and_statistics(calls):
    """An optimizer step (γ changes) or a training pass (the running averages change) between a
    forward and its backward does not change the gradient, with the kernels on or off."""
    rng = np.random.default_rng(10)
    x = rng.normal(1, 2, (16, 3))
    g = rng.normal(size=x.shape)

    def run(training):
        bn = nn.BatchNorm(3, dtype=np.float64)
        bn(polydl.tensor(x * 0.5 + 1))  # running averages away from 0 and 1
        bn.training = training
        xt = polydl.tensor(x, requires_grad=True)
        out = bn(xt)
        with polydl.no_grad():
            bn.gamma.data *= 3.0
        bn.training = True
        bn(polydl.tensor(x * 2.0 - 5))  # updates the running averages in place
        out.backward(g)
        return xt.grad, bn.gamma.grad, bn.beta.grad

    for training in (True, False):
        res = in_modes(run, training)
        for a, b in zip(res["on"], res["off"]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert "bn_forward_train" in calls and "bn_forward_eval" in calls


@pytest.mark.usefixtures("needs_numba")
def test_use_object_entered_twice_and_nested():
    start = cpu_kernels.mode()
    cm = cpu_kernels.use("off")
    assert cpu_kernels.mode() == "off"  # a plain call sets the mode at once
    with cm:
        with cpu_kernels.use("on"):
            assert cpu_kernels.mode() == "on"
        assert cpu_kernels.mode() == "off"
    assert cpu_kernels.mode() == start
    with cm:  # the same object again
        assert cpu_kernels.mode() == "off"
    assert cpu_kernels.mode() == start


def test_patched_or_subclassed_forward_is_not_fused(monkeypatch):
    """Sequential only fuses the library's own BatchNorm → ReLU: a forward replaced on an
    instance or on the class is called."""
    seen = []
    x = polydl.tensor(np.random.default_rng(11).normal(size=(8, 3)))

    def spy(self_or_x, *rest):
        seen.append(1)
        return F.relu(rest[0] if rest else self_or_x)

    relu = nn.ReLU()
    relu.forward = spy
    nn.Sequential(nn.BatchNorm(3, dtype=np.float64), relu)(x)
    assert seen == [1]
    monkeypatch.setattr(nn.ReLU, "forward", spy)
    nn.Sequential(nn.BatchNorm(3, dtype=np.float64), nn.ReLU())(x)
    assert seen == [1, 1]


def test_build_compiles_without_a_cache_where_no_cache_directory_is_writable():
    """Numba refuses cache=True where it finds no writable cache directory (read-only
    site-packages and home): the kernel is then compiled without a cache, not an error."""
    asked = []

    class FakeNumba:
        @staticmethod
        def njit(cache, **options):
            asked.append((cache, options.get("fastmath")))
            if cache:
                raise RuntimeError("cannot cache function '_adam': no locator available for file")
            return lambda fn: fn

    assert cpu_kernels._build(FakeNumba, "adam") is cpu_kernel_sources._adam
    assert asked == [(True, None), (False, None)]
    cpu_kernels._build(FakeNumba, "bn_backward_train")
    assert asked[-1] == (False, {"reassoc", "nsz"})


@pytest.mark.usefixtures("needs_numba")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_gradients_sum_rows_bit_for_bit_as_numpy(dtype, calls):
    rng = np.random.default_rng(11)
    kern = cpu_kernels.get("sum_rows", 1)
    for shape in [(1, 32, 10), (32, 32, 10), (3, 7, 5), (2, 1, 4)]:
        g = rng.normal(size=shape).astype(dtype)
        flat = np.full((shape[0], shape[2] + 3), 7.0, dtype)   # rows of a flat gradient buffer
        out = flat[:, 1:1 + shape[2]]
        kern(g, out)
        assert same_bits(out, g.sum(axis=-2)) and (flat[:, 0] == 7).all() and (flat[:, -2:] == 7).all()
    out = np.ones((2, 3), dtype)
    kern(np.zeros((2, 0, 3), dtype), out)
    assert (out == 0).all()

    def run(members):
        kw = {"members": members} if members else {}
        w = polydl.Parameter(rng.normal(size=(members, 4, 3) if members else (4, 3)).astype(dtype), **kw)
        b = polydl.Parameter(rng.normal(size=(members, 3) if members else (3,)).astype(dtype), **kw)
        opt = optim.SGD([w, b], lr=0.0)  # the flat gradient buffer, whose zeroed slots the sum is written into
        x = rng.normal(size=(6, 4)).astype(dtype)
        weights = rng.normal(size=(members, 6, 3) if members else (6, 3)).astype(dtype)

        def grads():
            opt.zero_grad()
            (F.linear(polydl.Tensor(x), w, b) * polydl.Tensor(weights)).sum().backward()
            return b.grad.copy()
        return in_modes(grads)

    for members in (0, 3):
        calls.clear()
        res = run(members)
        assert "sum_rows" in calls and same_bits(res["on"], res["off"])
