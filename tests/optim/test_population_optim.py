"""Optimizers over a population's (P, N) buffers: each member updated exactly as the same optimizer
over that member alone, with hyperparameters (and schedules) per member."""
import numpy as np
import pytest

import polydl
from polydl import backend, cpu_kernels, optim, schedules

CASES = {
    "sgd": (optim.SGD, {"lr": [0.1, 0.01, 0.3], "weight_decay": [0.0, 0.1, 0.01]}),
    "momentum": (optim.Momentum, {"lr": [0.1, 0.05, 0.2], "beta": [0.9, 0.5, 0.0]}),
    "rmsprop": (optim.RMSprop, {"lr": [0.01, 0.001, 0.02], "beta": [0.9, 0.99, 0.5], "eps": [1e-8, 1e-3, 1e-6]}),
    "adam": (optim.Adam, {"lr": [0.01, 0.001, 0.02], "beta1": [0.9, 0.5, 0.8], "beta2": [0.999, 0.9, 0.99],
                          "eps": [1e-8, 1e-3, 1e-6], "weight_decay": [0.0, 0.05, 0.0]}),
}


def _population_params(device, dtype, P=3):
    rng = np.random.default_rng(0)
    w = polydl.Parameter(backend.to_device(rng.normal(size=(P, 4, 3)).astype(dtype), device), members=P)
    b = polydl.Parameter(backend.to_device(rng.normal(size=(P, 3)).astype(dtype), device), members=P)
    return [w, b]


def _steps(opt, params, grads):
    for g in grads:
        opt.zero_grad()
        for p, gp in zip(params, g, strict=True):
            p.grad[...] = gp
        opt.step()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_member_is_updated_as_the_optimizer_alone(device, name, dtype):
    cls, hyper = CASES[name]
    params = _population_params(device, dtype)
    start = [p.numpy().copy() for p in params]
    opt = cls(params, **hyper)
    assert opt.groups[0].data.shape == (3, 15)
    rng = np.random.default_rng(1)
    grads = [[backend.to_device(rng.normal(size=p.shape).astype(dtype), device) for p in params] for _ in range(3)]
    _steps(opt, params, grads)
    for k in range(3):
        own = [polydl.Parameter(backend.to_device(s[k].copy(), device)) for s in start]
        alone = cls(own, **{h: v[k] for h, v in hyper.items()})
        _steps(alone, own, [[g[i][k] for i in range(2)] for g in grads])
        for p, q in zip(params, own, strict=True):
            np.testing.assert_array_equal(p.numpy()[k], q.numpy())
        sd = opt.member_state_dict(k)
        for key, value in alone.state_dict()["state"][0].items():
            np.testing.assert_array_equal(sd["state"][0][key], value)
        assert sd["hyperparameters"] == alone.state_dict()["hyperparameters"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_compiled_rows_kernels_equal_the_numpy_form(name):
    pytest.importorskip("numba")
    cls, hyper = CASES[name]
    out = {}
    for mode in ("off", "on"):
        with cpu_kernels.use(mode):
            params = _population_params("cpu", np.float32)
            opt = cls(params, **hyper)
            rng = np.random.default_rng(2)
            _steps(opt, params, [[rng.normal(size=p.shape).astype(np.float32) for p in params] for _ in range(3)])
            out[mode] = [p.numpy().copy() for p in params]
    for a, b in zip(out["off"], out["on"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_schedule_per_member_and_a_shared_position():
    params = _population_params("cpu", np.float64)
    lrs = [schedules.get("inverse_time", lr0=0.2, decay_rate=1), 0.05, schedules.get("exponential", lr0=0.1, base=0.5)]
    opt = optim.SGD(params, lr=lrs).set_run(epochs=3, steps_per_epoch=2)
    used = []
    for _ in range(4):
        opt.zero_grad()
        opt.step()
        used.append(opt.last_lr.tolist())
    assert used[0] == pytest.approx([0.1, 0.05, 0.05]) and used[2] == pytest.approx([0.2 / 3, 0.05, 0.025])
    assert opt.hyperparameters()["lr"][1] == 0.05 and opt.member_hyperparameters(0)["lr"]["schedule"] == "inverse_time"


def test_per_member_values_are_validated_one_by_one():
    params = _population_params("cpu", np.float64)
    with pytest.raises(ValueError, match=r"optimizer beta1\[1\] must be in \[0, 1\), not 1"):
        optim.Adam(params, beta1=[0.9, 1.0, 0.9])
    with pytest.raises(ValueError, match="optimizer lr has 2 values, one per member needs 3"):
        optim.Adam(params, lr=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"optimizer lr\[2\] must be >= 0"):
        optim.Adam(params, lr=[0.1, 0.2, -1.0])
    with pytest.raises(ValueError, match="one per member only for the parameters of a population"):
        optim.Adam([polydl.Parameter(np.zeros(3))], beta1=[0.9, 0.8])
    opt = optim.Adam(params, beta1=[0.9, 0.9, 0.9])
    assert opt.beta1 == 0.9  # one value for all: the scalar fast path
    with pytest.raises(ValueError, match="mix populations"):
        optim.Adam([*params, polydl.Parameter(np.zeros(3))])


def test_a_frozen_member_keeps_its_parameters():
    params = _population_params("cpu", np.float64)
    opt = optim.Adam(params, lr=0.1, weight_decay=0.1)
    rng = np.random.default_rng(3)
    _steps(opt, params, [[rng.normal(size=p.shape) for p in params]])
    before = [p.numpy().copy() for p in params]
    opt.freeze(1)
    _steps(opt, params, [[rng.normal(size=p.shape) for p in params]])
    for p, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.numpy()[1], b[1])
        assert not np.array_equal(p.numpy()[0], b[0])
    assert not opt.state[0]["m"][1].any()
