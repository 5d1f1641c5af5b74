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


def test_a_config_file_that_is_not_utf8_says_so(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_bytes(b"\xff\xfe epochs = 3")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(invalid start byte at byte 0\); save it as UTF-8$"):
        C.load_toml(p)


# ---------------------------------------------------------------------------- boolean parameters
def _sgd_step(params_table):
    """Weight and bias after one SGD step with zero gradients, decay λ = 0.5 and α = 0.1."""
    import numpy as np

    from polydl import Parameter
    from polydl.training.build import build_optimizer

    w, b = Parameter(np.ones((2, 2), np.float32)), Parameter(np.ones(2, np.float32))
    cfg = C.from_dict({"optimizer": "sgd", "lr": 0.1, "weight_decay": 0.5, "schedule": "constant",
                       "optimizer_params": params_table})
    opt = build_optimizer(cfg, [w, b], 1)
    opt.zero_grad()
    opt.step()
    return float(w.data[0, 0]), b.data.tolist()


@pytest.mark.parametrize("text", ["False", "false", "FALSE", "no", "No", "0", " no "])
def test_weight_decay_all_false_as_text_leaves_biases_undecayed(text):
    w, b = _sgd_step(C.parse_params([f"weight_decay_all={text}"], "--optimizer-param"))
    assert w == pytest.approx(0.95) and b == [1.0, 1.0]


@pytest.mark.parametrize("text", ["True", "true", "YES", "1"])
def test_weight_decay_all_true_as_text_decays_biases(text):
    w, b = _sgd_step(C.parse_params([f"weight_decay_all={text}"]))
    assert w == pytest.approx(0.95) and b == pytest.approx([0.95, 0.95])


@pytest.mark.parametrize("value", ["maybe", "Falsch", "", 2, -1, 0.0, 1.5, [False]])
def test_a_boolean_parameter_refuses_anything_else_naming_the_key(value):
    with pytest.raises(ValueError, match=r"^optimizer 'sgd': weight_decay_all must be true or false "
                                         r"\(also yes/no or 1/0, in any case\), not "):
        _sgd_step({"weight_decay_all": value})


def test_booleans_in_a_toml_table_parse_as_booleans(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('optimizer = "sgd"\n[optimizer_params]\nweight_decay_all = "no"\n')
    table = C.from_dict(C.load_toml(p)).optimizer_params
    assert _sgd_step(table)[1] == [1.0, 1.0]
    p.write_text('optimizer = "sgd"\n[optimizer_params]\nweight_decay_all = 1\n')
    assert _sgd_step(C.from_dict(C.load_toml(p)).optimizer_params)[1] == pytest.approx([0.95, 0.95])


def test_a_normalizer_boolean_parameter_parses_as_a_boolean():
    from polydl import nn

    off = nn.mlp([3, 4, 2], normalizer="layernorm", normalizer_params=C.parse_params(["affine=False"]))
    on = nn.mlp([3, 4, 2], normalizer="layernorm", normalizer_params=C.parse_params(["affine=yes"]))
    assert off.num_parameters() == on.num_parameters() - 2 * 4
    with pytest.raises(ValueError, match="normalizer 'layernorm': affine must be true or false"):
        nn.mlp([3, 4, 2], normalizer="layernorm", normalizer_params={"affine": "sometimes"})


def test_a_plugin_factory_boolean_is_known_by_its_default_or_its_annotation():
    from polydl.registry import Registry

    def factory(a: bool, b=True, c: "bool | None" = None, d="text", e=0):
        return (a, b, c, d, e)

    reg = Registry("things")
    reg.add("f", factory)
    assert reg.build("f", a="yes", b="no", c="1", d="no", e=1) == (True, False, True, "no", 1)
    assert reg.build("f", a=0, c=None) == (False, True, None, "text", 0)
    with pytest.raises(ValueError, match=r"thing 'f': c must be true or false .*not 'x'"):
        reg.build("f", a=True, c="x")


# ---------------------------------------------------------------------------- reading the file
def test_a_config_file_with_a_byte_order_mark_loads(tmp_path):
    p = tmp_path / "bom.toml"
    p.write_bytes("\ufeffepochs = 3\n# a comment\nhidden = [4]\n".encode("utf-8"))
    assert C.load_toml(p) == {"epochs": 3, "hidden": [4]}


def test_a_config_file_through_a_link_is_read(tmp_path):
    (tmp_path / "real.toml").write_text("epochs = 2\n")
    (tmp_path / "link.toml").symlink_to(tmp_path / "real.toml")
    assert C.load_toml(tmp_path / "link.toml") == {"epochs": 2}


def _without_hanging(fn, seconds=20):
    """``fn()``'s exception, or its result; fails if it has not returned within ``seconds``."""
    import threading

    box = {}

    def run():
        try:
            box["out"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["out"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} is still blocked after {seconds} s"
    return box["out"]


def test_a_config_file_that_is_a_fifo_or_a_device_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    try:
        err = _without_hanging(lambda: C.load_toml(fifo))
    finally:  # unblock a reader that did open it
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert isinstance(err, ConfigError) and str(err) == (f"config file {fifo} is a named pipe (FIFO), not a TOML "
                                                         "file; give a regular file")
    err = _without_hanging(lambda: C.load_toml("/dev/zero"))
    assert isinstance(err, ConfigError) and "/dev/zero is a character device, not a TOML file" in str(err)
    with pytest.raises(ConfigError, match="is a directory, not a TOML file"):
        C.load_toml(tmp_path)


def test_a_config_file_name_too_long_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^cannot read config file .*: File name too long$"):
        C.load_toml(tmp_path / ("c" * 5000 + ".toml"))
