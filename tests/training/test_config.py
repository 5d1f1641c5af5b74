"""TrainConfig: defaults, validation, TOML round trip, unknown keys, merging, name=value parsing."""
import dataclasses

import pytest

from polydl.training import config as C
from polydl.training.config import ConfigError, TrainConfig


def test_defaults_are_the_default_run():
    c = TrainConfig().validate()
    assert (c.dataset, c.normalizer, c.optimizer, c.schedule, c.device) == ("digits", "batchnorm", "adam",
                                                                           "inverse_time", "cpu")
    assert c.epochs >= 1 and c.batch_size >= 1 and c.hidden


def test_toml_round_trip_is_equal(tmp_path):
    c = TrainConfig(hidden=[7, 5], lr=0.123, beta1=0.8, schedule="staircase",
                    schedule_params={"factor": 0.5, "every": 3}, dataset_params={"n_samples": 300},
                    target="label", standardize=False, out="some/dir")
    p = tmp_path / "run.toml"
    p.write_text(c.to_toml())
    back = C.from_dict(C.load_toml(p))
    assert back == c


def test_to_toml_comments_unset_optional_keys():
    text = TrainConfig(beta=None).to_toml()
    assert "# beta = (not set" in text


@pytest.mark.parametrize("key", C.KEYS)
def test_every_key_is_written_to_toml(key):
    text = TrainConfig().to_toml()
    assert key in text


def test_unknown_key_names_it_and_the_closest_valid_key(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text("epochz = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'epochz'.*closest valid key is 'epochs'"):
        C.load_toml(p)
    with pytest.raises(ConfigError, match="'learning_rate'.*'lr'"):
        C.from_dict({"learning_rate": 0.1})


def test_malformed_toml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("epochs = 3\nlr = = 2\n")
    with pytest.raises(ConfigError, match=r"malformed TOML in .*bad.toml.*line 2"):
        C.load_toml(p)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        C.load_toml("/nonexistent/run.toml")


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"epochs": 2.5}, "epochs must be a whole number"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"batch_size": -3}, "batch_size must be >= 1"),
    ({"lr": -1.0}, "lr must be >= 0"),
    ({"lr": "fast"}, "lr must be a finite number"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"val_split": 1.5}, "val_split must be in"),
    ({"val_split": 0.5, "test_split": 0.5}, "val_split \\+ test_split must be < 1"),
    ({"hidden": [0]}, "hidden must be a list of positive"),
    ({"hidden": "128"}, "hidden must be a list"),
    ({"device": "tpu"}, "unknown device"),
    ({"dtype": "int8"}, "dtype must be one of"),
    ({"schedule_unit": "batch"}, "schedule_unit must be 'epoch' or 'step'"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"data_seed": True}, "data_seed must be a whole number"),
    ({"standardize": "yes"}, "standardize must be"),
    ({"plot": 1}, "plot must be true or false"),
    ({"schedule_params": [1]}, "schedule_params must be a table"),
    ({"schedule_params": {"lr0": 0.1}}, r"schedule_params cannot set lr0: it comes from lr \(--lr\)"),
    ({"dataset_params": {"seed": 1}}, r"dataset_params cannot set seed: it comes from data_seed \(--data-seed\)"),
    ({"dataset_params": {"test_fraction": 0.1}}, r"it comes from test_split \(--test-split\)"),
    ({"normalizer_params": {"num_features": 4}}, r"normalizer_params cannot set num_features"),
    ({"normalizer_params": {"dtype": "float64"}}, r"normalizer_params cannot set dtype: it comes from dtype \(--dtype\)"),
    ({"normalizer_params": {"device": "cuda"}}, r"normalizer_params cannot set device: it comes from device"),
    ({"optimizer": ""}, "optimizer must be a non-empty string"),
    ({"out": 3}, "out must be a non-empty string"),
])
def test_invalid_values_are_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        C.from_dict({**TrainConfig().to_dict(), **changes})


def test_optimizer_hyperparameters_are_the_set_shortcuts_and_the_table():
    from polydl.training.build import optimizer_hyperparameters

    c = TrainConfig(lr=0.5, beta1=0.8, weight_decay=None, optimizer_params={"eps": 1e-6})
    assert c.shortcut_hyperparameters() == ["beta1"]
    hyper = optimizer_hyperparameters(c)
    assert set(hyper) == {"lr", "beta1", "eps"} and (hyper["beta1"], hyper["eps"]) == (0.8, 1e-6)
    assert repr(hyper["lr"]) == "inverse_time(lr0=0.5, decay_rate=1.0)"  # α0 = lr: the schedule's initial rate


@pytest.mark.parametrize("changes, message", [
    ({"beta1": 0.8, "optimizer_params": {"beta1": 0.9}}, "beta1 is set twice, as a key and in optimizer_params"),
    ({"optimizer_params": {"lr": 0.1}}, "optimizer_params cannot set lr: it comes from lr"),
    ({"optimizer_params": []}, "optimizer_params must be a table"),
])
def test_optimizer_params_conflicts(changes, message):
    with pytest.raises(ConfigError, match=message):
        C.from_dict({**TrainConfig().to_dict(), **changes})


def test_switching_optimizer_drops_its_table():
    base = {**TrainConfig().to_dict(), "optimizer": "rmsprop", "optimizer_params": {"beta": 0.5}}
    assert C.merge(base, {"optimizer": "adam"})["optimizer_params"] == {}
    assert C.merge(base, {"lr": 0.1})["optimizer_params"] == {"beta": 0.5}


def test_replace_validates():
    assert TrainConfig().replace(epochs=3).epochs == 3
    with pytest.raises(ConfigError):
        TrainConfig().replace(epochs=0)


def test_merge_drops_parameters_of_a_replaced_component():
    base = TrainConfig(schedule_params={"decay_rate": 0.5}).to_dict()
    assert C.merge(base, {"schedule": "constant"})["schedule_params"] == {}
    assert C.merge(base, {"schedule": "constant", "schedule_params": {"lr0": 1}})["schedule_params"] == {"lr0": 1}
    # same schedule: flags add to the table, a file replaces it
    upd = C.merge(base, {"schedule_params": {"x": 1}}, update_tables=True)["schedule_params"]
    assert upd == {**base["schedule_params"], "x": 1}
    assert C.merge(base, {"schedule_params": {"x": 1}})["schedule_params"] == {"x": 1}
    for comp, table in C.PARAM_TABLES.items():
        assert C.merge({**base, table: {"a": 1}}, {comp: "other"})[table] == {}


@pytest.mark.parametrize("text, expected", [
    ("decay_rate=1", ("decay_rate", 1)),
    ("k = 0.5", ("k", 0.5)),
    ("flag=true", ("flag", True)),
    ("name=abc", ("name", "abc")),
    ('name="a b"', ("name", "a b")),
])
def test_parse_param(text, expected):
    assert C.parse_param(text) == expected


@pytest.mark.parametrize("text", ["decay_rate", "=3"])
def test_parse_param_rejects_malformed(text):
    with pytest.raises(ConfigError):
        C.parse_param(text)


def test_parse_params_builds_a_dict():
    assert C.parse_params(["a=1", "b=x"]) == {"a": 1, "b": "x"}


def test_keys_match_fields():
    assert C.KEYS == tuple(f.name for f in dataclasses.fields(TrainConfig))


def test_an_unknown_key_names_a_close_key_only_when_there_is_one():
    with pytest.raises(ConfigError, match=r"unknown key 'epochz' in configuration; the closest valid key is 'epochs'$"):
        C.from_dict({"epochz": 3})
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate'.*closest valid key is 'lr'$"):
        C.from_dict({"learning_rate": 3})
    with pytest.raises(ConfigError, match=r"unknown key 'qqqqqq' in configuration; see polydl train --print-config"):
        C.from_dict({"qqqqqq": 3})
