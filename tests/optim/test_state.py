"""The two state-dict formats, and continuing a population from its members' state dicts."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import backend, optim


def _population(device, P=3):
    rng = np.random.default_rng(0)
    w = polydl.Parameter(backend.to_device(rng.normal(size=(P, 4, 3)), device), members=P)
    b = polydl.Parameter(backend.to_device(rng.normal(size=(P, 3)), device), members=P)
    return [w, b]


def _steps(opt, params, n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        opt.zero_grad()
        for p in params:
            p.grad[...] = backend.to_device(rng.normal(size=p.shape), p.device)
        opt.step()


def _adam(params):
    return optim.Adam(params, lr=[0.01, 0.02, 0.03], beta1=[0.9, 0.8, 0.7]).set_run(epochs=4, steps_per_epoch=3)


def test_load_member_state_dicts_continues_the_population_exactly(device):
    params = _population(device)
    opt = _adam(params)
    _steps(opt, params, 4, seed=1)
    sds = [opt.member_state_dict(k) for k in range(3)]
    copies = _population(device)
    for p, q in zip(copies, params, strict=True):
        p.data[...] = q.data
    other = _adam(copies)
    other.load_member_state_dicts(sds, clock_from=2)
    assert (other.step_count, other.epoch, other.batch, other.batches) == (4, 2, 1, 4)
    np.testing.assert_array_equal(other.last_lr, opt.last_lr)
    for name in ("m", "v"):
        np.testing.assert_array_equal(backend.to_numpy(other.state[0][name]), backend.to_numpy(opt.state[0][name]))
    _steps(opt, params, 3, seed=2)
    _steps(other, copies, 3, seed=2)
    for p, q in zip(params, copies, strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_the_clock_comes_from_one_member_and_last_lr_is_per_member():
    params = _population("cpu")
    opt = _adam(params)
    _steps(opt, params, 2, seed=1)
    early = opt.member_state_dict(0)  # a member stopped here
    _steps(opt, params, 3, seed=2)
    sds = [early, opt.member_state_dict(1), {**opt.member_state_dict(2), "last_lr": None}]
    other = _adam(_population("cpu"))
    other.load_member_state_dicts(sds, clock_from=1)
    assert (other.step_count, other.batches) == (5, 5)
    assert other.last_lr[:2].tolist() == [early["last_lr"], sds[1]["last_lr"]] and np.isnan(other.last_lr[2])
    other.load_member_state_dicts(sds, clock_from=2)
    assert other.last_lr is None
    with pytest.raises(ValueError, match="2 state dicts for an optimizer over a population of 3"):
        other.load_member_state_dicts(sds[:2])
    with pytest.raises(IndexError, match="clock_from=3 is not a member"):
        other.load_member_state_dicts(sds, clock_from=3)


def test_one_model_is_a_population_of_one():
    p = polydl.Parameter(np.arange(4.0))
    opt = optim.Momentum([p], lr=0.1, beta=0.5)
    _steps(opt, [p], 2, seed=1)
    sd = opt.member_state_dict(0)
    assert sd.keys() == opt.state_dict().keys() and sd["step"] == 2
    with pytest.raises(IndexError, match="member 1 of an optimizer over one model"):
        opt.member_state_dict(1)
    q = polydl.Parameter(np.arange(4.0))
    other = optim.Momentum([q], lr=0.1, beta=0.25)  # its own β: the saved buffer is rescaled to it
    other.load_member_state_dicts([sd])
    assert other.beta == 0.25 and other.step_count == 2 and other.last_lr == 0.1
    np.testing.assert_allclose(other.state[0]["v"] * (1 - 0.25), opt.state[0]["v"] * (1 - 0.5))
    with pytest.raises(ValueError, match="takes one state dict, not 2"):
        other.load_member_state_dicts([sd, sd])
