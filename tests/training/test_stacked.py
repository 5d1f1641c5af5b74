"""A population's parts: a plugin's loss or normalizer whose factory takes no ``population`` is
applied member by member (one note says so), and each member still ends exactly as the same model
trained alone; one that declares ``population`` is built for the population itself."""
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from run_helpers import arrays, meta, metrics

import polydl
from polydl import backend, losses, normalizers
from polydl.testing import registered_plugin
from polydl.training import TrainConfig, TrainingDiverged, run
from polydl.training.population import PopulationReporter, run_population

REPO = Path(__file__).resolve().parents[2]
BASE = dict(dataset="moons", dataset_params={"n_samples": 300}, hidden=[8, 6], epochs=3, batch_size=32, plot=False,
            dtype="float64")


def _example(dist: str, module: str):
    path = str(REPO / "plugins" / dist)
    if path not in sys.path:
        sys.path.append(path)
    return importlib.import_module(module)


@pytest.fixture
def focal_and_layernorm():
    with registered_plugin(_example("polydl-focal", "polydl_focal"), "focal", distribution="polydl-focal",
                           version="0.1.0"), \
            registered_plugin(_example("polydl-layernorm", "polydl_layernorm"), "layernorm",
                              distribution="polydl-layernorm", version="0.1.0"):
        yield


class Notes(PopulationReporter):
    def __init__(self):
        self.notes = []

    def note(self, message):
        self.notes.append(message)


def test_the_example_plugins_train_in_a_population_each_member_as_alone(tmp_path, focal_and_layernorm, device):
    configs = [TrainConfig(**BASE, device=device, lr=0.01, seed=0, loss="focal", normalizer="layernorm"),
               TrainConfig(**BASE, device=device, lr=0.05, seed=1, loss="focal", loss_params={"gamma": 1.0},
                           normalizer="layernorm", normalizer_params={"eps": 1e-3}, dropout=0.2,
                           schedule="exponential", schedule_params={"base": 0.5})]
    configs[0] = configs[0].replace(loss_params={"gamma": 1.0}, normalizer_params={"eps": 1e-3})
    reporter = Notes()
    got = run_population(configs, [tmp_path / f"m{k}" for k in range(2)], reporter=reporter)
    assert len(reporter.notes) == 1
    assert reporter.notes[0].startswith("the loss 'focal' of plugin 'focal' (distribution polydl-focal 0.1.0) and the "
                                        "normalizer 'layernorm' of plugin 'layernorm'")
    assert "member by member" in reporter.notes[0]
    for k, config in enumerate(configs):
        alone = run(config, tmp_path / f"alone{k}")
        a, b = arrays(tmp_path / f"m{k}"), arrays(tmp_path / f"alone{k}")
        assert a.keys() == b.keys() and "model/1.gamma" in a
        assert meta(tmp_path / f"m{k}")["rng"] == meta(tmp_path / f"alone{k}")["rng"]
        if device != "cpu":  # the population's batched products may round otherwise than one model's
            for name in b:
                np.testing.assert_allclose(a[name], b[name], rtol=1e-7, atol=1e-9, err_msg=name)
            continue
        for name in b:  # on the CPU bit for bit: member k's rows are computed exactly as the model alone computes
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        assert metrics(tmp_path / f"m{k}") == metrics(tmp_path / f"alone{k}")
        assert got[k].accuracy == alone.accuracy


def test_a_loss_for_one_model_is_applied_member_by_member(focal_and_layernorm, device):
    rng = np.random.default_rng(0)
    scores = polydl.tensor(rng.normal(size=(3, 6, 4)), requires_grad=True, device=device)
    labels = polydl.tensor(np.array([0, 1, 2, 3, 0, 1]), device=device).data
    loss = losses.get("focal", population=3, gamma=2.0)
    assert isinstance(loss, losses.MemberByMember) and not losses.takes_population("focal")
    together = loss(scores, labels)
    assert together.shape == (3,)
    together.backward()  # each member's gradient seeded with 1
    for k in range(3):
        one = polydl.tensor(scores.data[k].copy(), requires_grad=True)
        alone = losses.get("focal", gamma=2.0)(one, labels)
        alone.backward()
        assert together.numpy()[k] == alone.item()
        np.testing.assert_array_equal(backend.to_numpy(scores.grad[k]), backend.to_numpy(one.grad))
    assert losses.predict(loss, scores).shape == (3, 6)
    with pytest.raises(ValueError, match=r"needs a population's scores, shape \(3, batch, ...\)"):
        loss(polydl.tensor(rng.normal(size=(6, 4)), device=device), labels)


def test_the_built_in_components_declare_population():
    for name in [n for n in losses.names() if losses.registry.entry(n).builtin]:
        assert losses.takes_population(name)
        assert not isinstance(losses.get(name, population=2), losses.MemberByMember)
        assert "population" not in losses.registry.parameters(name)  # not a user's parameter
    for name in [n for n in normalizers.names() if normalizers.registry.entry(n).builtin]:
        assert normalizers.takes_population(name)


def test_a_normalizer_for_one_model_keeps_its_names_and_each_member_s_rows(focal_and_layernorm, device):
    model = polydl.nn.mlp([2, 5, 3], normalizer="layernorm", normalizer_params={"eps": 1e-3}, population=4).to(device)
    norm = model[1]
    assert isinstance(norm, normalizers.MemberByMember) and "member by member" in repr(norm)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.gamma", "1.beta", "3.weight",
                                                        "3.bias"]
    assert norm.gamma.shape == (4, 5) and norm.gamma.members == 4 and not norm.gamma.decay
    norm.gamma.data[...] = polydl.tensor(np.arange(20, dtype=np.float32).reshape(4, 5), device=device).data
    x = polydl.tensor(np.random.default_rng(1).normal(size=(4, 7, 5)).astype(np.float32), requires_grad=True,
                      device=device)
    y = norm(x)
    y.sum().backward()
    one = polydl.normalizers.get("layernorm", 5, eps=1e-3).to(device)
    same = lambda a, b: np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))  # noqa: E731
    for k in range(4):
        one.gamma.data[...] = norm.gamma.data[k]
        xk = polydl.tensor(x.data[k].copy(), requires_grad=True)
        yk = one(xk)
        yk.sum().backward()
        same(y.data[k], yk.data)
        same(x.grad[k], xk.grad)
        same(norm.gamma.grad[k], one.gamma.grad)
        one.gamma.grad = one.beta.grad = None
    with pytest.raises(ValueError, match=r"needs a population's input, shape \(4, batch, features\)"):
        norm(polydl.tensor(np.ones((7, 5), np.float32), device=device))


class _Running(polydl.nn.Module):
    """A normalizer for one model with a buffer it replaces in training (a running mean)."""

    def __init__(self, num_features):
        self.scale = polydl.Parameter(polydl.tensor([1.0] * num_features).data)
        self.running = polydl.tensor([0.0] * num_features)

    def forward(self, x):
        if self.training:
            self.running = polydl.tensor(0.5 * self.running.data + 0.5 * x.data.mean(axis=0))
        return (x - self.running.data) * self.scale


class _RunningPlugin:
    @polydl.hookimpl
    def polydl_register_normalizers(self, register):
        register("running", _Running)


def test_a_member_s_buffer_that_its_module_replaces_stays_its_own():
    with registered_plugin(_RunningPlugin(), "running"):
        norm = polydl.normalizers.get("running", 3, population=2)
        x = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
        norm(polydl.tensor(x))
        np.testing.assert_allclose(norm.running.data, 0.5 * x.mean(axis=1))
        norm.eval()
        out = norm(polydl.tensor(x))
        np.testing.assert_allclose(out.data, x - 0.5 * x.mean(axis=1, keepdims=True))
        assert [n for n, _ in norm.named_buffers()] == ["running"]


class _NanForMember1:
    """A population loss that is NaN for member 1 from the start."""

    @polydl.hookimpl
    def polydl_register_losses(self, register):
        from polydl import functional as F

        def make(population=None):
            def loss(scores, targets):
                value = F.softmax_cross_entropy(scores, targets)
                if population is None:
                    return value
                return value * polydl.tensor([1.0, float("nan"), 1.0][:population], dtype=value.dtype)
            return loss
        register("nan_for_1", make)


def test_a_member_whose_first_loss_is_not_finite_stops_alone_naming_the_loss(tmp_path):
    with registered_plugin(_NanForMember1(), "nanny", distribution="polydl-nanny", version="1.0"):
        configs = [TrainConfig(**BASE, loss="nan_for_1", seed=k) for k in range(3)]
        got = run_population(configs, [tmp_path / f"m{k}" for k in range(3)])
    assert isinstance(got[1], TrainingDiverged) and got[0].epochs == got[2].epochs == 3
    assert str(got[1]).startswith("the loss became nan at epoch 1, step 1 (mini-batch 1 of 7), before any update, so "
                                  "the learning rate is not the cause: the loss 'nan_for_1' of plugin 'nanny' "
                                  "(distribution polydl-nanny 1.0) returned it for scores that were finite")
    assert meta(tmp_path / "m1")["epoch"] == 0 and meta(tmp_path / "m2")["epoch"] == 3
