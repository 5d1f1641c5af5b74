"""A run's model from its configuration (``polydl.training.model_build``): the default mlp as
before, a convolutional model on the digits as images (recorded, rebuilt by evaluate and predict,
resumed bit for bit), a population of them member by member, and the checks that refuse a
model before anything is written."""
from __future__ import annotations

import numpy as np
import pytest
from run_helpers import arrays, assert_same_run, meta, metrics

import polydl
from polydl import models, nn
from polydl.testing import registered_plugin
from polydl.training import ComponentError, ConfigError, TrainConfig, evaluate, load_model, predict, resume, run
from polydl.training.build import build_model
from polydl.training.model_build import check_model_keys, model_arguments, model_label, recorded_shape
from polydl.training.population import PopulationReporter, run_population

#: a convolutional run of about a second on the bundled digits
CNN = dict(model="cnn", model_params={"channels": [4, 8]}, hidden=[16], epochs=2, batch_size=64, plot=False)


def test_the_default_model_is_the_mlp_it_was():
    config = TrainConfig()
    assert config.model == "mlp" and config.model_params == {}
    model = build_model(config, 64, 10, polydl.device("cpu"), (1, 8, 8))
    polydl.manual_seed(config.seed)
    plain = nn.mlp([64, 128, 64, 10])
    assert repr(model) == repr(plain)
    assert all(np.array_equal(a, b) for a, b in zip(model.state_dict().values(), plain.state_dict().values(),
                                                    strict=True))
    assert model_label(config, (1, 8, 8), 10) == "64-128-64-10"
    assert model_arguments(config) == {"hidden": [128, 64], "activation": "relu", "normalizer": "batchnorm",
                                       "dropout": 0.0, "normalizer_params": {}}


def test_a_cnn_on_the_digits_is_recorded_and_used_again(tmp_path):
    result = run(TrainConfig(**CNN), tmp_path / "cnn")
    assert result.summary["test_accuracy"] > 0.5  # two short epochs of a tiny network
    m = meta(tmp_path / "cnn")
    assert m["input_shape"] == [1, 8, 8] and m["num_features"] == 64
    assert m["components"]["model"] == {"name": "cnn", "plugin": "polydl.models", "distribution": "polydl",
                                        "version": polydl.__version__}
    assert "model/1.weight" in arrays(tmp_path / "cnn")  # the first convolution's
    text = (tmp_path / "cnn" / "config.toml").read_text()
    assert 'model = "cnn"' in text and "[model_params]\nchannels = [4, 8]" in text
    loaded = load_model(tmp_path / "cnn")
    assert isinstance(loaded.model[0], nn.Unflatten) and loaded.model[0].shape == (1, 8, 8)
    ev = evaluate(tmp_path / "cnn")
    assert ev["accuracy"] == pytest.approx(result.summary["test_accuracy"])
    X = polydl.datasets.load("digits").X_test[:5]
    classes, probs = predict(tmp_path / "cnn", X)
    assert classes.shape == (5,) and probs.shape == (5, 10)


def test_a_resumed_cnn_ends_as_the_uninterrupted_run(tmp_path):
    run(TrainConfig(**{**CNN, "epochs": 3, "dropout": 0.2}), tmp_path / "whole")
    run(TrainConfig(**{**CNN, "epochs": 1, "dropout": 0.2}), tmp_path / "parts")
    resume(tmp_path / "parts", {"epochs": 3})
    assert_same_run(tmp_path / "whole", tmp_path / "parts")


class Notes(PopulationReporter):
    def __init__(self):
        self.notes = []

    def note(self, message):
        self.notes.append(message)


def test_a_population_of_cnns_trains_each_member_as_alone(tmp_path):
    base = {**CNN, "dtype": "float64"}
    configs = [TrainConfig(**base, lr=0.01, seed=0),
               TrainConfig(**base, lr=0.03, seed=1, dropout=0.2, schedule="exponential", schedule_params={"base": 0.5})]
    reporter = Notes()
    run_population(configs, [tmp_path / f"m{k}" for k in range(2)], reporter=reporter)
    assert len(reporter.notes) == 1 and reporter.notes[0].startswith(
        "the model 'cnn' (built-in) takes no population argument, so the population applies it member by member")
    for k, config in enumerate(configs):
        run(config, tmp_path / f"alone{k}")
        a, b = arrays(tmp_path / f"m{k}"), arrays(tmp_path / f"alone{k}")
        assert a.keys() == b.keys()
        for name in b:  # bit for bit: member k runs its own copy, exactly as the model alone
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        for ra, rb in zip(metrics(tmp_path / f"m{k}"), metrics(tmp_path / f"alone{k}"), strict=True):
            assert ra == pytest.approx(rb, rel=1e-12)  # the population's loss sums its members' in its own order
        assert meta(tmp_path / f"m{k}")["rng"] == meta(tmp_path / f"alone{k}")["rng"]


@pytest.mark.parametrize("changes, message", [
    ({"model": "lenet5", "hidden": [32]}, r"model 'lenet5' takes no hidden, so hidden = \[32\] would be ignored"),
    ({"model": "cnn", "model_params": {"chanels": [4]}}, r"model 'cnn' has no parameter 'chanels'"),
    ({"model": "mlp", "model_params": {"channels": [4]}}, r"model 'mlp' has no parameter 'channels' \(its parameters: "
                                                          r"none\)"),
])
def test_settings_a_model_does_not_take_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        check_model_keys(TrainConfig(**changes))


def test_an_image_model_on_a_table_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"model cnn takes images \(channels, height, width\), but the data's samples "
                                         r"have shape \(2,\) \(2 values each\)"):
        run(TrainConfig(model="cnn", dataset="moons", plot=False), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_model_parameter_is_a_table_that_belongs_to_its_model():
    with pytest.raises(ConfigError, match="model_params cannot set hidden: it comes from hidden"):
        TrainConfig(model="cnn", model_params={"hidden": [3]}).validate()
    merged = polydl.training.merge(TrainConfig(**CNN).to_dict(), {"model": "lenet5"})
    assert merged["model_params"] == {}  # another model drops the old one's parameters


def test_recorded_shape():
    assert recorded_shape({"input_shape": [1, 8, 8]}, 64) == (1, 8, 8)
    assert recorded_shape({}, 5) == (5,)  # a run written before runs recorded it
    with pytest.raises(ValueError, match=r"input_shape \[2, 2\] is not a list of sizes of 64 values"):
        recorded_shape({"input_shape": [2, 2]}, 64)


def _wide(input_shape, num_outputs):
    return nn.Sequential(nn.Linear(int(np.prod(input_shape)), num_outputs + 1))


def _broken(input_shape, num_outputs):
    raise RuntimeError("out of ideas")


class Bad:
    @polydl.hookimpl
    def polydl_register_models(self, register):
        register("wide", _wide)
        register("broken", _broken)


@pytest.mark.parametrize("name, message", [
    ("wide", r"model 'wide' of plugin 'bad' \(distribution polydl-bad 0.1\) returned a Tensor of shape \(2, 3\) for rows "
             r"of shape \(2, 2\) \(samples of shape \(2,\)\): a model must map them to scores of shape \(2, 2\)"),
    ("broken", r"model 'broken' of plugin 'bad' \(distribution polydl-bad 0.1\) raised RuntimeError: out of ideas when "
               r"built for samples of shape \(2,\) and 2 outputs"),
])
def test_a_plugin_model_that_fails_is_one_line_naming_it(tmp_path, name, message):
    with registered_plugin(Bad(), "bad", distribution="polydl-bad", version="0.1"):
        with pytest.raises(ComponentError, match=message):
            run(TrainConfig(model=name, dataset="moons", plot=False), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert "wide" not in models.names()
