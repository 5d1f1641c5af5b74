"""``manual_seed`` fixes every draw; the generator state round-trips as plain data."""
from __future__ import annotations

import json

import numpy as np
import pytest

import polydl
from polydl import backend, nn, optim
from polydl import functional as F
from polydl import random as prandom


def _small_training(seed, device="cpu"):
    polydl.manual_seed(seed)
    model = nn.mlp([4, 6, 3], dropout=0.3).to(device=device)
    opt = optim.Adam(model.parameters(), lr=0.01)
    data = np.random.default_rng(0)
    X = data.normal(size=(40, 4)).astype(np.float32)
    y = data.integers(0, 3, 40)
    for _ in range(3):
        order = prandom.host_generator().permutation(40)  # shuffling draws from polydl's generator
        for idx in np.array_split(order, 5):
            opt.zero_grad()
            F.softmax_cross_entropy(model(polydl.tensor(X[idx], device=device)), backend.to_device(y[idx], device)).backward()
            opt.step()
    return model.state_dict()


def test_seeded_runs_are_bit_identical_on_cpu():
    a, b = _small_training(7), _small_training(7)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    c = _small_training(8)
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_seeded_runs_are_reproducible_on_the_device(device):
    a, b = _small_training(3, device), _small_training(3, device)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)


def test_seed_fixes_initialisation_and_dropout(device):
    polydl.manual_seed(5)
    w1 = nn.Linear(3, 3).weight.numpy()
    m1 = F.dropout(polydl.tensor(np.ones((4, 4)), device=device), 0.5).numpy()
    polydl.manual_seed(5)
    w2 = nn.Linear(3, 3).weight.numpy()
    m2 = F.dropout(polydl.tensor(np.ones((4, 4)), device=device), 0.5).numpy()
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(m1, m2)
    assert prandom.initial_seed() == 5


def test_get_state_set_state_round_trip():
    polydl.manual_seed(9)
    prandom.uniform((3,), np.float32, "cpu")
    state = prandom.get_state()
    a = (prandom.uniform((5,), np.float64, "cpu"), prandom.host_generator().normal(size=3),
         nn.Linear(2, 2).weight.numpy(), F.dropout(polydl.tensor(np.ones((4, 4))), 0.5).numpy())
    prandom.manual_seed(1234)  # move on elsewhere
    prandom.uniform((7,), np.float64, "cpu")
    prandom.set_state(state)
    b = (prandom.uniform((5,), np.float64, "cpu"), prandom.host_generator().normal(size=3),
         nn.Linear(2, 2).weight.numpy(), F.dropout(polydl.tensor(np.ones((4, 4))), 0.5).numpy())
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_device_draws_round_trip(device, request):
    if device != "cpu":
        request.applymarker(pytest.mark.xfail(reason="CuPy's RandomState has no get_state(): device draws "
                                                     "restart from the seed after set_state()", strict=False))
    polydl.manual_seed(9)
    prandom.uniform((3,), np.float32, device)
    state = prandom.get_state()
    a = backend.to_numpy(prandom.uniform((5,), np.float32, device))
    prandom.uniform((7,), np.float32, device)
    prandom.set_state(state)
    b = backend.to_numpy(prandom.uniform((5,), np.float32, device))
    np.testing.assert_array_equal(a, b)


def test_state_is_plain_data():
    polydl.manual_seed(2)
    state = json.loads(json.dumps(prandom.get_state()))
    expected = prandom.host_generator().random(4)
    prandom.manual_seed(3)
    prandom.set_state(state)
    np.testing.assert_array_equal(prandom.host_generator().random(4), expected)


def test_uniform_draws(device):
    u = backend.to_numpy(prandom.uniform((1000,), np.float32, device))
    assert u.dtype == np.float32 and u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.05


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_manual_seed_validates(bad):
    with pytest.raises(ValueError, match="seed"):
        polydl.manual_seed(bad)
