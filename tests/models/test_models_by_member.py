"""A model without a population form trained member by member: P copies whose parameters and
buffers are stacked under the model alone's names, each member computing exactly what its copy
computes alone (values, gradients, running averages, dropout masks)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import polydl
from polydl import models, nn
from polydl import random as _random


def _copies(P, dropout=0.0):
    out = []
    for k in range(P):
        polydl.manual_seed(10 + k)
        out.append(models.get("cnn", (1, 6, 6), 3, channels=[2], hidden=[5], dropout=dropout).to(dtype=np.float64))
    return out


def test_names_and_rows_are_the_models_alone():
    alone = _copies(3)
    pop = models.ModelByMember([copy.deepcopy(m) for m in alone], "cnn")
    names = [n for n, _ in alone[0].named_parameters()]
    assert [n for n, _ in pop.named_parameters()] == names
    assert [n for n, _ in pop.named_buffers()] == [n for n, _ in alone[0].named_buffers()]
    for name, p in pop.named_parameters():
        assert p.members == 3 and p.shape[0] == 3
        for k in range(3):
            assert np.array_equal(p.data[k], dict(alone[k].named_parameters())[name].data)
    assert pop.min_batch == 2 and pop.num_parameters() == 3 * alone[0].num_parameters()
    assert "cnn member by member, population=3" in repr(pop)


def test_each_member_trains_as_its_model_alone():
    alone = _copies(3)
    pop = models.ModelByMember([copy.deepcopy(m) for m in alone], "cnn")
    x = polydl.tensor(np.random.default_rng(0).normal(size=(4, 36)))
    out = pop(x)
    assert out.shape == (3, 4, 3)
    weights = polydl.tensor(np.random.default_rng(1).normal(size=(3, 4, 3)))
    (out * weights).sum().backward()
    for k, model in enumerate(alone):
        mine = model(x)
        np.testing.assert_array_equal(out.numpy()[k], mine.numpy())
        (mine * polydl.tensor(weights.numpy()[k])).sum().backward()
        for (name, p), (_, q) in zip(pop.named_parameters(), model.named_parameters(), strict=True):
            np.testing.assert_array_equal(p.grad[k], q.grad, err_msg=name)
        for (name, b), (_, c) in zip(pop.named_buffers(), model.named_buffers(), strict=True):
            np.testing.assert_array_equal(b.data[k], c.data, err_msg=name)  # BatchNorm's running averages
    pop.eval()
    np.testing.assert_array_equal(pop(x).numpy()[1], alone[1].eval()(x).numpy())


def test_one_input_per_member():
    alone = _copies(2)
    pop = models.ModelByMember([copy.deepcopy(m) for m in alone])
    x = np.random.default_rng(2).normal(size=(2, 5, 36))
    out = pop(polydl.tensor(x))
    for k in range(2):
        np.testing.assert_array_equal(out.numpy()[k], alone[k](polydl.tensor(x[k])).numpy())


def test_dropout_draws_from_each_members_stream():
    alone = _copies(2, dropout=0.5)
    pop = models.ModelByMember([copy.deepcopy(m) for m in alone])
    x = polydl.tensor(np.random.default_rng(3).normal(size=(4, 36)))
    streams = [_random.Stream(7), _random.Stream(8)]
    with _random.members(streams):
        out = pop(x).numpy()
    for k in range(2):
        with _random.using(_random.Stream(7 + k)):
            np.testing.assert_array_equal(out[k], alone[k](x).numpy())


def test_copies_of_different_models_are_refused():
    with pytest.raises(ValueError, match="P copies of one model \\(parameters and buffers of the same shapes"):
        models.ModelByMember([nn.Linear(2, 3), nn.Linear(3, 3)])
    with pytest.raises(ValueError, match="one polydl.nn.Module per member"):
        models.ModelByMember([])
