"""SGD, Momentum, RMSprop and Adam against their formulas computed by hand in NumPy."""
from __future__ import annotations

import json

import numpy as np
import pytest

import polydl
from polydl import backend, nn, optim
from polydl import functional as F


# ---------------------------------------------------------------------------- reference updates
def ref_sgd(lr, weight_decay=0.0):
    def step(w, g, st, t):
        g = g + weight_decay * w
        return w - lr * g
    return step


def ref_momentum(lr, beta=0.9, weight_decay=0.0):
    def step(w, g, st, t):
        g = g + weight_decay * w
        st["v"] = beta * st.get("v", 0.0) + (1 - beta) * g
        return w - lr * st["v"]
    return step


def ref_rmsprop(lr, beta=0.999, eps=1e-8, weight_decay=0.0):
    def step(w, g, st, t):
        g = g + weight_decay * w
        st["s"] = beta * st.get("s", 0.0) + (1 - beta) * g * g
        return w - lr * g / (np.sqrt(st["s"]) + eps)
    return step


def ref_adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    def step(w, g, st, t):
        g = g + weight_decay * w
        st["m"] = beta1 * st.get("m", 0.0) + (1 - beta1) * g
        st["v"] = beta2 * st.get("v", 0.0) + (1 - beta2) * g * g
        m_hat = st["m"] / (1 - beta1 ** t)
        v_hat = st["v"] / (1 - beta2 ** t)
        return w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return step


CASES = {
    "sgd": (optim.SGD, {"lr": 0.1}, ref_sgd),
    "sgd-wd": (optim.SGD, {"lr": 0.1, "weight_decay": 0.05}, ref_sgd),
    "momentum": (optim.Momentum, {"lr": 0.1, "beta": 0.8}, ref_momentum),
    "momentum-default": (optim.Momentum, {"lr": 0.05}, ref_momentum),
    "momentum-wd": (optim.Momentum, {"lr": 0.1, "beta": 0.7, "weight_decay": 0.1}, ref_momentum),
    "rmsprop": (optim.RMSprop, {"lr": 0.01, "beta": 0.9, "eps": 1e-3}, ref_rmsprop),
    "rmsprop-default": (optim.RMSprop, {"lr": 0.01}, ref_rmsprop),
    "rmsprop-wd": (optim.RMSprop, {"lr": 0.01, "beta": 0.95, "weight_decay": 0.2}, ref_rmsprop),
    "adam": (optim.Adam, {"lr": 0.01, "beta1": 0.8, "beta2": 0.9, "eps": 1e-3}, ref_adam),
    "adam-default": (optim.Adam, {}, ref_adam),
    "adam-wd": (optim.Adam, {"lr": 0.02, "weight_decay": 0.1}, ref_adam),
}


def _check_three_steps(device, name, shapes, dtype, rtol):
    cls, hyper, ref = CASES[name]
    rng = np.random.default_rng(0)
    init = [rng.normal(size=s) for s in shapes]
    params = [polydl.Parameter(backend.to_device(v.astype(dtype), device)) for v in init]
    opt = cls(params, **hyper)
    # L2 weight decay reaches the weights (two or more axes), not the biases
    no_decay = {k: v for k, v in hyper.items() if k != "weight_decay"}
    updates = [ref(**hyper) if len(shape) >= 2 else ref(**no_decay) for shape in shapes]
    expected = [v.astype(dtype).astype(np.float64) for v in init]
    states = [{} for _ in shapes]
    for t in (1, 2, 3):
        grads = [rng.normal(0, 1 + t, s) for s in shapes]
        opt.zero_grad()
        # L = Σ W·G has dL/dW = G: the gradient reaches the optimizer through backward
        loss = sum(((p * polydl.tensor(backend.to_device(g.astype(dtype), device))).sum()
                    for p, g in zip(params, grads, strict=True)), polydl.tensor(np.zeros((), dtype), device=device))
        loss.backward()
        opt.step()
        assert opt.step_count == t
        for i in range(len(shapes)):
            expected[i] = updates[i](expected[i], grads[i].astype(dtype).astype(np.float64), states[i], t)
            np.testing.assert_allclose(params[i].numpy(), expected[i], rtol=rtol, atol=rtol * 1e-2,
                                       err_msg=f"{name} step {t} param {i}")
            assert params[i].dtype == dtype


@pytest.mark.parametrize("name", sorted(CASES))
def test_three_steps_match_the_formula_float64(device, name):
    _check_three_steps(device, name, [(3, 2), (2,)], np.float64, 1e-11)


@pytest.mark.parametrize("name", ["sgd-wd", "momentum-wd", "rmsprop", "adam", "adam-wd"])
def test_three_steps_match_the_formula_float32(device, name):
    _check_three_steps(device, name, [(3, 2), (2,)], np.float32, 2e-5)


@pytest.mark.parametrize("name", ["sgd-wd", "momentum", "rmsprop-wd", "adam-wd"])
def test_three_steps_match_the_formula_large_buffer(device, name):
    # a flat buffer of more than 131,072 elements (the size of real models)
    _check_three_steps(device, name, [(400, 400), (3,), (50, 7)], np.float64, 1e-11)


def test_adam_first_step_moves_each_weight_by_lr(device):
    # bias correction: m̂₁ = g and v̂₁ = g², so the first step is −α g/(|g| + ε) ≈ −α sign(g)
    g = np.array([1e-4, -3.0, 250.0, -0.02])
    w = polydl.Parameter(backend.to_device(np.zeros(4), device))
    opt = optim.Adam([w], lr=0.01)
    (w * polydl.tensor(g, device=device)).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.numpy(), -0.01 * np.sign(g), rtol=1e-3)


# ---------------------------------------------------------------------------- convergence
@pytest.mark.parametrize("cls, hyper, steps", [
    (optim.SGD, {"lr": 0.3}, 200),
    (optim.Momentum, {"lr": 0.3, "beta": 0.9}, 300),
    (optim.RMSprop, {"lr": 0.01, "beta": 0.9}, 1000),
    (optim.Adam, {"lr": 0.05}, 1000),
], ids=["sgd", "momentum", "rmsprop", "adam"])
def test_converges_on_a_quadratic(device, cls, hyper, steps):
    # f(w) = ½ Σ aᵢ (wᵢ − cᵢ)², minimum at w = c
    a = polydl.tensor(np.array([1.0, 4.0, 0.5, 2.0]), device=device)
    c = np.array([1.0, -2.0, 3.0, 0.5])
    ct = polydl.tensor(c, device=device)
    w = polydl.Parameter(backend.to_device(np.zeros(4), device))
    opt = cls([w], **hyper)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (a * (w - ct) ** 2).sum()).backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), c, atol=1e-4)


# ---------------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize("cls, kwargs, name", [
    (optim.SGD, {"lr": -0.1}, "lr"), (optim.SGD, {"lr": float("nan")}, "lr"), (optim.SGD, {"lr": "0.1"}, "lr"),
    (optim.SGD, {"lr": True}, "lr"), (optim.SGD, {"lr": 0.1, "weight_decay": -1.0}, "weight_decay"),
    (optim.Momentum, {"lr": 0.1, "beta": 1.0}, "beta"), (optim.Momentum, {"lr": 0.1, "beta": -0.1}, "beta"),
    (optim.RMSprop, {"lr": 0.1, "beta": 1.5}, "beta"), (optim.RMSprop, {"lr": 0.1, "eps": 0.0}, "eps"),
    (optim.RMSprop, {"lr": -1.0}, "lr"),
    (optim.Adam, {"beta1": 1.0}, "beta1"), (optim.Adam, {"beta2": -0.5}, "beta2"),
    (optim.Adam, {"beta2": 1.0}, "beta2"), (optim.Adam, {"eps": -1e-8}, "eps"),
    (optim.Adam, {"lr": float("inf")}, "lr"), (optim.Adam, {"weight_decay": float("nan")}, "weight_decay"),
])
def test_hyperparameters_validated_at_construction(cls, kwargs, name):
    p = polydl.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        cls([p], **kwargs)


def test_needs_parameters():
    with pytest.raises(ValueError, match="no parameters"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError):
        optim.SGD([polydl.tensor([1.0])], lr=0.1)  # does not require grad
    with pytest.raises(TypeError):
        optim.SGD([np.zeros(2)], lr=0.1)


def test_accepts_a_module_and_skips_frozen_parameters():
    m = nn.Linear(2, 2)
    m.bias.requires_grad = False
    opt = optim.SGD(m, lr=0.1)
    assert [p for g in opt.groups for p in g.params] == [m.weight]


def test_lr_can_change_between_steps(device):
    w = polydl.Parameter(backend.to_device(np.array([1.0, 2.0]), device))
    opt = optim.SGD([w], lr=0.1)
    g = polydl.tensor(np.array([1.0, -1.0]), device=device)
    expected = np.array([1.0, 2.0])
    for lr in (0.1, 0.5, 0.01):
        opt.lr = lr
        opt.zero_grad()
        (w * g).sum().backward()
        opt.step()
        expected = expected - lr * np.array([1.0, -1.0])
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-14)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -0.1
    assert opt.lr == 0.01


def test_zero_grad_clears_gradients(device):
    m = nn.Linear(3, 2, device=device)
    opt = optim.Adam(m.parameters())
    m(polydl.tensor(np.ones((4, 3), np.float32), device=device)).sum().backward()
    assert np.abs(backend.to_numpy(m.weight.grad)).sum() > 0
    opt.zero_grad()
    for p in m.parameters():
        np.testing.assert_array_equal(backend.to_numpy(p.grad), 0)


def test_by_name():
    assert {"sgd", "momentum", "rmsprop", "adam"} <= set(optim.names())
    p = polydl.Parameter(np.zeros(2))
    opt = optim.get("adam", [p], lr=0.5, beta1=0.8)
    assert isinstance(opt, optim.Adam) and opt.lr == 0.5 and opt.beta1 == 0.8
    with pytest.raises(ValueError) as info:
        optim.get("adamw_typo", [p])
    assert "adam" in str(info.value) and "sgd" in str(info.value)
    with pytest.raises(ValueError):
        optim.get("sgd", [p], lr=0.1, beta=0.9)


# ---------------------------------------------------------------------------- state
def _train(model, opt, steps, start=0):
    rng = np.random.default_rng(100)
    data = [(rng.normal(size=(8, 3)).astype(np.float32), rng.integers(0, 2, 8)) for _ in range(10)]
    for i in range(start, start + steps):
        x, y = data[i]
        opt.zero_grad()
        F.softmax_cross_entropy(model(polydl.tensor(x, device=model.device)), backend.to_device(y, model.device)).backward()
        opt.step()


@pytest.mark.parametrize("cls, hyper", [(optim.SGD, {"lr": 0.1, "weight_decay": 0.01}),
                                        (optim.Momentum, {"lr": 0.1}), (optim.RMSprop, {"lr": 0.01}),
                                        (optim.Adam, {"lr": 0.01, "weight_decay": 0.001})],
                         ids=["sgd", "momentum", "rmsprop", "adam"])
def test_state_dict_resume_is_identical_to_not_interrupting(device, cls, hyper):
    polydl.manual_seed(0)
    straight = nn.mlp([3, 5, 2]).to(device=device)
    init = straight.state_dict()
    opt = cls(straight.parameters(), **hyper)
    _train(straight, opt, 6)

    polydl.manual_seed(0)
    first = nn.mlp([3, 5, 2]).to(device=device)
    first.load_state_dict(init)
    opt1 = cls(first.parameters(), **hyper)
    _train(first, opt1, 3)
    model_sd, opt_sd = first.state_dict(), opt1.state_dict()

    # plain data: numpy arrays and an integer step
    assert type(opt_sd["step"]) is int and opt_sd["step"] == 3
    for st in opt_sd["state"]:
        assert all(type(v) is np.ndarray for v in st.values())
    assert set(opt_sd["state"][0]) == set(cls.state_names)
    json.dumps(opt_sd["hyperparameters"])

    polydl.manual_seed(123)
    resumed = nn.mlp([3, 5, 2]).to(device=device)
    resumed.load_state_dict(model_sd)
    opt2 = cls(resumed.parameters(), lr=0.5)  # a different lr: the state dict restores it
    opt2.load_state_dict(opt_sd)
    assert opt2.lr == hyper["lr"] and opt2.step_count == 3
    _train(resumed, opt2, 3, start=3)
    for k, v in resumed.state_dict().items():
        np.testing.assert_array_equal(v, straight.state_dict()[k], err_msg=k)


def test_state_dict_is_a_copy():
    w = polydl.Parameter(np.array([1.0, 2.0]))
    opt = optim.Adam([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    sd = opt.state_dict()
    m = sd["state"][0]["m"].copy()
    opt.zero_grad()
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["m"], m)
    assert sd["step"] == 1


@pytest.mark.parametrize("cls, saved, default", [(optim.Momentum, {"beta": 0.5}, {}),
                                                  (optim.RMSprop, {"beta": 0.9}, {}),
                                                  (optim.Adam, {"beta1": 0.5, "beta2": 0.99}, {})],
                         ids=["momentum", "rmsprop", "adam"])
def test_load_state_dict_into_an_optimizer_built_with_other_betas(cls, saved, default):
    # the saved β comes back with buffers scaled for it, and the caller's dict is left alone
    def make(**kw):
        w = polydl.Parameter(np.array([1.0, 2.0, -3.0]))
        return w, cls([w], lr=0.1, **kw)

    w, opt = make(**saved)
    for g in ([1.0, -1.0, 0.5], [0.2, 0.3, -2.0]):
        w.grad[...] = g
        opt.step()
    sd = opt.state_dict()
    kept = {k: v.copy() for k, v in sd["state"][0].items()}
    w2, opt2 = make(**default)
    w2.data[...] = w.data
    opt2.load_state_dict(sd)
    for k, v in kept.items():
        np.testing.assert_array_equal(opt2.state[0][k], v, err_msg=k)
    for g in ([0.7, -0.1, 0.4],):
        w.grad[...] = g
        w2.grad[...] = g
        opt.step()
        opt2.step()
    np.testing.assert_array_equal(w2.data, w.data)
    for k, v in kept.items():
        np.testing.assert_array_equal(sd["state"][0][k], v, err_msg=f"{k} of the state dict was written to")


def test_load_state_dict_rejects_a_mismatch():
    w = polydl.Parameter(np.array([1.0, 2.0]))
    opt = optim.Adam([w])
    (w * w).sum().backward()
    opt.step()
    sd = opt.state_dict()
    other = optim.Adam([polydl.Parameter(np.zeros(3))])
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(sd)
    with pytest.raises(ValueError, match="Adam"):
        optim.RMSprop([polydl.Parameter(np.zeros(2))]).load_state_dict(sd)


def test_weight_shared_by_two_layers_gets_the_sum_of_both_gradients(device):
    # a weight used twice in one graph, packed in the flat buffer: dL/dW = xᵀg₁ + hᵀg₂
    rng = np.random.default_rng(1)
    wv, xv = rng.normal(size=(3, 3)), rng.normal(size=(4, 3))
    w = polydl.Parameter(backend.to_device(wv, device))
    b = polydl.Parameter(backend.to_device(np.zeros(3), device))
    opt = optim.SGD([w, b], lr=1.0)
    opt.zero_grad()
    x = polydl.tensor(xv, device=device)
    h = F.linear(x, w, b)
    (F.linear(h, w, b) * 1.0).sum().backward()
    # L = Σ (h W + b), h = x W + b: dL/dW = hᵀ 1 + xᵀ (1 Wᵀ); dL/db = 4·1 + (1 Wᵀ) summed over rows
    ones = np.ones((4, 3))
    hv = xv @ wv
    gh = ones @ wv.T
    np.testing.assert_allclose(backend.to_numpy(w.grad), hv.T @ ones + xv.T @ gh, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(b.grad), ones.sum(0) + gh.sum(0), rtol=1e-12)
    # and again without zero_grad: accumulated
    h = F.linear(x, w, b)
    F.linear(h, w, b).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(w.grad), 2 * (hv.T @ ones + xv.T @ gh), rtol=1e-12)


@pytest.mark.parametrize("cls,kw,hyper,new", [
    (optim.Adam, {"lr": 0.01, "beta1": 0.9, "beta2": 0.99}, "beta1", 0.5),
    (optim.Adam, {"lr": 0.01, "beta1": 0.9, "beta2": 0.99}, "beta2", 0.9),
    (optim.RMSprop, {"lr": 0.01, "beta": 0.9}, "beta", 0.5),
    (optim.Momentum, {"lr": 0.1, "beta": 0.9}, "beta", 0.5),
])
def test_changing_beta_between_steps_follows_the_formula(device, cls, kw, hyper, new):
    """Babysitting may change β mid-run: the moving averages carry over unchanged and the next
    step uses the new β, exactly as the written formula."""
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(3)]
    p = polydl.tensor(w0, device=device, requires_grad=True)
    opt = cls([p], **kw)
    ref_kw = dict(kw)
    refs = {optim.Adam: ref_adam, optim.RMSprop: ref_rmsprop, optim.Momentum: ref_momentum}
    w, st = w0.copy(), {}
    for t, g in enumerate(grads, start=1):
        if t == 3:
            setattr(opt, hyper, new)
            ref_kw[hyper] = new
        opt.zero_grad()
        p.grad[...] = backend.to_device(g, device)
        opt.step()
        w = refs[cls](**ref_kw)(w, g, st, t)
    np.testing.assert_allclose(backend.to_numpy(p.data), w, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- the optimizer owns α
def _quadratic_steps(opt, w, n):
    """n steps on f(w) = ½ Σ w², recording the α each step used."""
    used = []
    for _ in range(n):
        opt.zero_grad()
        (0.5 * (w * w).sum()).backward()
        opt.step()
        used.append(opt.last_lr)
    return used


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_the_optimizer_evaluates_its_schedule_at_its_own_position(unit):
    from polydl import schedules

    w = polydl.Parameter(np.ones(3))
    sched = schedules.get("inverse_time", lr0=0.2, decay_rate=1)
    opt = optim.SGD([w], lr=sched).set_run(epochs=3, steps_per_epoch=4, schedule_unit=unit)
    assert opt.last_lr is None and opt.next_lr() == pytest.approx(0.1)
    used = _quadratic_steps(opt, w, 12)
    if unit == "epoch":  # the lecture's table: 0.1, 0.067, 0.05, once per epoch
        assert used == [0.2 / 2] * 4 + [0.2 / 3] * 4 + [0.2 / 4] * 4
    else:  # at every step, at the fractional epoch e + b/4
        assert used == pytest.approx([0.2 / (1 + e + b / 4) for e in (1, 2, 3) for b in range(4)], rel=1e-15)
    assert (opt.epoch, opt.batch, opt.batches, opt.step_count) == (4, 0, 12, 12)


def test_without_steps_per_epoch_the_epoch_advances_when_set():
    from polydl import schedules

    w = polydl.Parameter(np.ones(2))
    opt = optim.SGD([w], lr=schedules.get("exponential", lr0=1.0, base=0.5))
    assert _quadratic_steps(opt, w, 3) == [0.5, 0.5, 0.5]
    opt.epoch = 3
    assert (opt.batch, _quadratic_steps(opt, w, 1)) == (0, [0.125])
    with pytest.raises(ValueError, match="epoch"):
        opt.epoch = 0


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_a_schedule_survives_state_dict_and_load_state_dict(unit):
    """Restoring the optimizer restores α: the next step of the restored optimizer uses the same α
    and lands on the same weights as the original's."""
    from polydl import schedules

    def make():
        w = polydl.Parameter(np.linspace(-1, 1, 5))
        opt = optim.Adam([w], lr=schedules.get("staircase", lr0=0.1, factor=0.5, every=1.5))
        return w, opt.set_run(epochs=6, steps_per_epoch=3, schedule_unit=unit)

    w, opt = make()
    _quadratic_steps(opt, w, 7)  # mid-epoch 3
    sd = json.loads(json.dumps({k: v for k, v in opt.state_dict().items() if k != "state"}))
    sd["state"] = opt.state_dict()["state"]
    assert sd["hyperparameters"]["lr"] == {"schedule": "staircase", "params": {"lr0": 0.1, "factor": 0.5, "every": 1.5}}
    w2, fresh = make()
    w2.data[...] = w.data
    fresh2 = optim.Adam([w2], lr=0.5)  # another α: the state dict brings the schedule back
    fresh2.load_state_dict(sd)
    assert fresh2.position() == opt.position() and fresh2.next_lr() == opt.next_lr()
    assert _quadratic_steps(fresh2, w2, 5) == _quadratic_steps(opt, w, 5)
    np.testing.assert_array_equal(w2.numpy(), w.numpy())


def test_load_state_dict_can_keep_the_optimizer_s_own_hyperparameters():
    w = polydl.Parameter(np.ones(4))
    opt = optim.Momentum([w], lr=0.1, beta=0.9)
    _quadratic_steps(opt, w, 3)
    sd = opt.state_dict()
    w2 = polydl.Parameter(w.numpy().copy())
    other = optim.Momentum([w2], lr=0.01, beta=0.5)
    other.load_state_dict(sd, hyperparameters=False)
    assert (other.lr, other.beta, other.step_count) == (0.01, 0.5, 3)
    # the velocity is the same moving average, kept scaled for the optimizer's own β
    np.testing.assert_allclose(other.state[0]["v"] * (1 - 0.5), opt.state[0]["v"] * (1 - 0.9), rtol=1e-15)


def test_skip_advances_the_position_but_not_the_update_count():
    from polydl import schedules

    w = polydl.Parameter(np.ones(2))
    opt = optim.Adam([w], lr=schedules.get("inverse_sqrt_step", lr0=1.0)).set_run(steps_per_epoch=2,
                                                                                   schedule_unit="step")
    before = w.numpy().copy()
    opt.skip()
    assert (opt.step_count, opt.batches, opt.epoch, opt.last_lr) == (0, 1, 1, 1.0)
    np.testing.assert_array_equal(w.numpy(), before)
    assert _quadratic_steps(opt, w, 1) == [pytest.approx(1 / np.sqrt(2))] and opt.step_count == 1
    assert opt.epoch == 2


@pytest.mark.parametrize("cls, name, bad", [
    (optim.Adam, "beta1", 5.0), (optim.Adam, "beta1", 1.0), (optim.Adam, "beta2", -0.1), (optim.Adam, "eps", 0.0),
    (optim.RMSprop, "beta", 1.0), (optim.RMSprop, "eps", float("nan")), (optim.Momentum, "beta", 1.5),
    (optim.SGD, "weight_decay", -1.0), (optim.SGD, "lr", "0.1"),
])
def test_hyperparameters_set_after_construction_are_validated(cls, name, bad):
    opt = cls([polydl.Parameter(np.zeros(2))])
    old = getattr(opt, name)
    with pytest.raises(ValueError, match=rf"optimizer {name} must be"):
        setattr(opt, name, bad)
    assert getattr(opt, name) == old


def test_hyperparameter_names_and_a_plain_function_as_lr():
    assert optim.Adam.hyperparameter_names() == ["lr", "weight_decay", "beta1", "beta2", "eps"]
    assert optim.SGD.hyperparameter_names() == ["lr", "weight_decay"]
    w = polydl.Parameter(np.ones(2))
    opt = optim.SGD([w], lr=lambda pos: 0.1 * pos.epoch).set_run(steps_per_epoch=1)
    assert _quadratic_steps(opt, w, 3) == pytest.approx([0.1, 0.2, 0.3])
    opt.lr = lambda pos: -1.0
    with pytest.raises(ValueError, match="a learning rate must be a finite number >= 0"):
        opt.step()


def test_coefficients_work_on_arrays_of_hyperparameters_elementwise():
    """The per-update scalars are written so that a hyperparameter may be an array over members
    (a population): each element equals the scalar computation."""
    opt = optim.Adam([polydl.Parameter(np.zeros(2))])
    opt.step_count = 3
    betas1, betas2, eps = np.array([0.9, 0.5]), np.array([0.999, 0.9]), np.array([1e-8, 1e-3])
    scalar = []
    for b1, b2, e in zip(betas1, betas2, eps, strict=True):
        opt.beta1, opt.beta2, opt.eps = float(b1), float(b2), float(e)
        scalar.append(opt._coefficients(0.01))
    opt.__dict__.update(beta1=betas1, beta2=betas2, eps=eps)  # arrays, bypassing the scalar check
    vec = opt._coefficients(np.array([0.01, 0.01]))
    for k in ("step_size", "eps_hat"):
        np.testing.assert_allclose(vec[k], [c[k] for c in scalar], rtol=1e-15)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Momentum, optim.RMSprop, optim.Adam], ids=lambda c: c.__name__)
def test_weight_decay_reaches_weights_only_unless_asked(device, cls):
    """λ W joins the gradient of the weights, not of biases and BatchNorm's γ and β; with
    ``weight_decay_all`` of every parameter; a parameter may also say so itself (``decay``)."""
    def step(**kw):
        polydl.manual_seed(0)
        model = nn.mlp([3, 4, 2]).to(device=device, dtype=np.float64)
        opt = cls(model.parameters(), lr=0.1, **kw)
        opt.zero_grad()  # zero gradients: what moves is the decay alone
        opt.step()
        return {k: v for k, v in model.state_dict().items()}, model

    before, model = step()
    decayed, _ = step(weight_decay=0.5)
    everything, _ = step(weight_decay=0.5, weight_decay_all=True)
    names = dict(model.named_parameters())
    assert {n: p.decay for n, p in names.items()} == {"0.weight": True, "1.gamma": False, "1.beta": False,
                                                       "3.weight": True, "3.bias": False}
    for name, p in names.items():
        moved = not np.array_equal(decayed[name], before[name])
        assert moved == p.decay, name
        assert not np.array_equal(everything[name], before[name]) or not before[name].any(), name
    assert np.array_equal(everything["1.gamma"], before["1.gamma"]) is False  # γ = 1 shrinks with decay on all


@pytest.mark.parametrize("value", ["False", "false", 0, 1, None, "yes"])
def test_weight_decay_all_must_be_a_boolean(value):
    """A string such as "False" is truthy: taking it as True would decay every parameter, the
    opposite of what was asked; anything but a boolean is refused."""
    model = nn.mlp([3, 4, 2])
    with pytest.raises(ValueError, match=r"weight_decay_all must be True or False"):
        optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1, weight_decay_all=value)
    assert optim.SGD(model.parameters(), lr=0.1, weight_decay_all=np.bool_(True)).weight_decay_all is True
