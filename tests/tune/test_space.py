"""Search spaces: TOML in, one-line errors naming the fix, the tiers, values applied to a
configuration (dotted keys, hidden width and layers), Optuna distributions."""
import os

import pytest
from tune_helpers import tiny

from polydl.training import from_dict
from polydl.training.config import TrainConfig
from polydl.tune.distributions import Int, LogUniform, OneMinusLogUniform, Pow2
from polydl.tune.space import Space, SpaceError, default_space, priority, search_keys

EXAMPLE = """
[lr]
distribution = "log_uniform"
low = 1e-4
high = 1.0

[beta1]
distribution = "one_minus_log_uniform"
low = 0.9
high = 0.999

[hidden]
distribution = "int"
low = 16
high = 256
log = true

[batch_size]
distribution = "pow2"
low = 16
high = 128

[schedule_params.decay_rate]
distribution = "log_uniform"
low = 0.01
high = 10.0

["normalizer"]
distribution = "choice"
choices = ["batchnorm", "none"]
"""


def test_a_space_file(tmp_path):
    (tmp_path / "space.toml").write_text(EXAMPLE)
    space = Space.from_toml(tmp_path / "space.toml")
    assert list(space) == ["lr", "beta1", "hidden", "batch_size", "schedule_params.decay_rate", "normalizer"]
    assert space["lr"] == LogUniform(1e-4, 1.0) and space["beta1"] == OneMinusLogUniform(0.9, 0.999)
    assert space["hidden"] == Int(16, 256, log=True) and space["batch_size"] == Pow2(16, 128)
    assert Space.from_dict(space.to_dict()) == space
    space.check(TrainConfig(), train_size=1258)


def test_apply_sets_keys_tables_and_hidden_layers():
    base = TrainConfig(hidden=[128, 64], schedule_params={"decay_rate": 1.0}).to_dict()
    space = Space.from_dict({"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1},
                             "hidden": {"distribution": "pow2", "low": 16, "high": 64},
                             "schedule_params.decay_rate": {"distribution": "uniform", "low": 0, "high": 2}})
    cfg = from_dict(space.apply(base, {"lr": 0.5, "hidden": 32, "schedule_params.decay_rate": 0.25}))
    assert cfg.lr == 0.5 and cfg.hidden == [32, 32] and cfg.schedule_params == {"decay_rate": 0.25}
    layers = Space.from_dict({"layers": {"distribution": "int", "low": 1, "high": 4}})
    assert layers.apply(base, {"layers": 3})["hidden"] == [128, 128, 128]
    both = Space.from_dict({"layers": {"distribution": "int", "low": 0, "high": 4},
                            "hidden": {"distribution": "int", "low": 8, "high": 64}})
    assert both.apply(base, {"layers": 2, "hidden": 9})["hidden"] == [9, 9]
    assert both.apply(base, {"layers": 0, "hidden": 9})["hidden"] == []
    # choosing another schedule drops the old one's parameters, as with the flags
    sched = Space.from_dict({"schedule": {"distribution": "choice", "choices": ["inverse_time", "constant"]}})
    assert sched.apply(base, {"schedule": "constant"})["schedule_params"] == {}
    assert sched.apply(base, {"schedule": "inverse_time"})["schedule_params"] == {"decay_rate": 1.0}


def _space(tmp_path, text):
    (tmp_path / "s.toml").write_text(text)
    return tmp_path / "s.toml"


BAD = {
    "unknown distribution": ('[lr]\ndistribution = "loguniform"\nlow = 1e-4\nhigh = 1.0\n',
                             ["unknown distribution 'loguniform'", "'log_uniform'"]),
    "unknown key": ('[lrr]\ndistribution = "log_uniform"\nlow = 1e-4\nhigh = 1.0\n',
                    ["unknown key 'lrr'", "closest valid key is 'lr'"]),
    "an alias": ('[learning_rate]\ndistribution = "log_uniform"\nlow = 1e-4\nhigh = 1.0\n', ["'lr'"]),
    "unknown table": ('[shedule_params.decay_rate]\ndistribution = "uniform"\nlow = 0\nhigh = 1\n',
                      ["unknown table 'shedule_params'", "'schedule_params'"]),
    "low >= high": ('[lr]\ndistribution = "log_uniform"\nlow = 1.0\nhigh = 0.1\n', ["low (1) must be < high (0.1)"]),
    "equal bounds": ('[dropout]\ndistribution = "uniform"\nlow = 0.2\nhigh = 0.2\n', ["low (0.2) must be < high"]),
    "log with low <= 0": ('[lr]\ndistribution = "log_uniform"\nlow = 0\nhigh = 1.0\n', ["log scale needs low > 0"]),
    "beta range outside (0, 1)": ('[beta]\ndistribution = "one_minus_log_uniform"\nlow = 0.9\nhigh = 1.0\n',
                                  ["0 < low < high < 1", "[0.9, 1]"]),
    "pow2 bound not a power of two": ('[batch_size]\ndistribution = "pow2"\nlow = 16\nhigh = 100\n',
                                      ["high of pow2 must be a power of two, not 100", "the closest is 128"]),
    "not TOML": ("[lr\ndistribution = log_uniform\n", ["is not valid TOML"]),
    "no distribution": ("[lr]\nlow = 1\nhigh = 2\n", ["has no distribution"]),
    "unknown field": ('[lr]\ndistribution = "uniform"\nlow = 0\nhi = 1\n', ["unknown field 'hi'", "'high'"]),
    "missing high": ('[lr]\ndistribution = "uniform"\nlow = 0\n', ["has no high"]),
    "empty choices": ('[optimizer]\ndistribution = "choice"\nchoices = []\n', ["non-empty list"]),
    "repeated choices": ('[optimizer]\ndistribution = "choice"\nchoices = ["adam", "adam"]\n', ["repeat"]),
    "int with float bounds": ('[epochs]\ndistribution = "int"\nlow = 1.5\nhigh = 4\n', ["whole number"]),
    "hidden as a float": ('[hidden]\ndistribution = "uniform"\nlow = 8\nhigh = 64\n', ["hidden takes the distribution"]),
    "empty file": ("", ["names no keys"]),
    "the run directory": ('[out]\ndistribution = "choice"\nchoices = ["a"]\n', ["cannot search 'out'"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_space_files_are_one_line_errors(tmp_path, case):
    text, fragments = BAD[case]
    with pytest.raises(SpaceError) as err:
        Space.from_toml(_space(tmp_path, text))
    message = str(err.value)
    assert "\n" not in message
    for f in fragments:
        assert f in message, (f, message)


def test_a_missing_space_file():
    with pytest.raises(SpaceError, match="space file not found"):
        Space.from_toml("no/such/space.toml")


def test_a_space_file_that_is_a_fifo_or_a_directory_and_one_with_a_byte_order_mark(tmp_path):
    os.mkfifo(tmp_path / "fifo.toml")                  # refused, never waited on
    with pytest.raises(SpaceError, match="is a named pipe"):
        Space.from_toml(tmp_path / "fifo.toml")
    with pytest.raises(SpaceError, match="is a directory, not a TOML file"):
        Space.from_toml(tmp_path)
    (tmp_path / "bom.toml").write_bytes(b'\xef\xbb\xbf[lr]\ndistribution = "log_uniform"\nlow = 1e-4\nhigh = 1.0\n')
    os.symlink(tmp_path / "bom.toml", tmp_path / "link.toml")      # a file you name: its link is followed
    assert list(Space.from_toml(tmp_path / "link.toml").params) == ["lr"]


def test_check_rejects_values_the_configuration_rejects():
    base = tiny()
    cases = [({"dropout": {"distribution": "uniform", "low": 0.0, "high": 1.0}}, "dropout = 1"),
             ({"batch_size": {"distribution": "pow2", "low": 16, "high": 256}}, "larger than the training set (140"),
             ({"beta": {"distribution": "one_minus_log_uniform", "low": 0.9, "high": 0.99}}, "beta"),
             ({"schedule_params.decay_rat": {"distribution": "uniform", "low": 0, "high": 1}}, "decay_rat"),
             ({"optimizer": {"distribution": "choice", "choices": ["adam", "adom"]}}, "adom")]
    for d, fragment in cases:
        with pytest.raises(SpaceError) as err:
            Space.from_dict(d).check(base, train_size=140)
        assert fragment in str(err.value) and "\n" not in str(err.value), (d, str(err.value))
    with pytest.raises(SpaceError, match="no hidden layer"):
        Space.from_dict({"hidden": {"distribution": "int", "low": 8, "high": 16}}).check(tiny(hidden=[]))
    Space.from_dict({"beta": {"distribution": "one_minus_log_uniform", "low": 0.9, "high": 0.99}}).check(
        tiny(optimizer="momentum"), train_size=140)


def test_the_tiers():
    adam = TrainConfig()
    one, notes = default_space(1, adam, train_size=1258)
    assert one.to_dict() == {"lr": {"distribution": "log_uniform", "low": 0.0001, "high": 1.0}} and notes == []
    two, _ = default_space(2, adam, train_size=1258)
    assert list(two) == ["lr", "beta1", "hidden", "batch_size"]
    assert two["beta1"] == OneMinusLogUniform(0.9, 0.999) and two["hidden"] == Int(16, 256, log=True)
    assert two["batch_size"] == Pow2(16, 256)
    assert list(default_space(2, TrainConfig(optimizer="momentum"))[0])[:2] == ["lr", "beta"]
    assert list(default_space(2, TrainConfig(optimizer="rmsprop"))[0])[:2] == ["lr", "beta"]
    sgd, notes = default_space(2, TrainConfig(optimizer="sgd"))
    assert "beta" not in sgd and "beta1" not in sgd and "has no β" in notes[0]
    small, _ = default_space(2, tiny(), train_size=140)
    assert small["batch_size"] == Pow2(16, 128)                 # clipped to the training set
    three, _ = default_space(3, adam, train_size=1258)
    assert list(three)[4:] == ["layers", "schedule_params.decay_rate"] and three["layers"] == Int(1, 4)
    assert default_space(3, TrainConfig(schedule="exponential"))[0]["schedule_params.base"] == \
        OneMinusLogUniform(0.5, 0.999)
    const, notes = default_space(3, TrainConfig(schedule="constant"))
    assert not any(k.startswith("schedule_params") for k in const) and "no decay rate" in notes[0]
    for tier in (1, 2, 3):
        default_space(tier, adam, 1258)[0].check(adam, train_size=1258)
    with pytest.raises(SpaceError, match="--tier must be 1, 2 or 3"):
        default_space(4, adam)


def test_channels_are_searched_like_hidden_widths():
    cnn = TrainConfig(model="cnn")
    two, _ = default_space(2, cnn, train_size=1258)
    assert list(two) == ["lr", "beta1", "hidden", "model_params.channels", "batch_size"]
    assert two["model_params.channels"] == Pow2(8, 128) and priority("model_params.channels") == 2
    two.check(cnn, train_size=1258)
    assert list(default_space(3, TrainConfig(model="lenet5"))[0]) == ["lr", "beta1", "batch_size",
                                                                     "schedule_params.decay_rate"]
    space = Space.from_dict({"model_params": {"channels": {"distribution": "choice", "choices": [8, 16]}}})
    assert space.apply(cnn.to_dict(), {"model_params.channels": 8})["model_params"] == {"channels": [8, 16]}
    base = cnn.replace(model_params={"channels": [6, 6, 12], "pool": 1})
    assert space.apply(base.to_dict(), {"model_params.channels": 16})["model_params"] == {
        "channels": [16, 16, 32], "pool": 1}  # the first layer's width, the others in proportion
    with pytest.raises(SpaceError, match=r"model_params.channels = 8 does not give a valid configuration: model 'mlp' "
                                         r"has no parameter 'channels' \(its parameters: none\)"):
        space.check(TrainConfig())
    with pytest.raises(SpaceError, match=r"model_params.channels takes the distribution int or pow2 or choice"):
        Space.from_dict({"model_params": {"channels": {"distribution": "uniform", "low": 1, "high": 2}}})


def test_differences_say_what_differs():
    a = Space.from_dict({"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1.0},
                         "beta1": {"distribution": "one_minus_log_uniform", "low": 0.9, "high": 0.999}})
    b = Space.from_dict({"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 0.5},
                         "hidden": {"distribution": "int", "low": 8, "high": 16}})
    assert a.differences(b, here="here", there="there") == ["lr high 1 here, 0.5 there", "beta1 only here",
                                                            "hidden only there"]
    assert a.differences(a) == []


def test_describe_priority_and_keys():
    s = default_space(3, TrainConfig(), 1258)[0]
    assert s.describe({"lr": 0.012345, "beta1": 0.95, "hidden": 64, "batch_size": 32}) == \
        "lr=0.0123 beta1=0.95 hidden=64 batch_size=32"
    assert [priority(k) for k in ("lr", "beta", "hidden", "batch_size", "layers", "schedule_params.decay_rate",
                                  "beta1", "beta2", "eps", "dropout")] == [1, 2, 2, 2, 3, 3, 4, 4, 4, None]
    assert "layers" in search_keys() and "out" not in search_keys() and "schedule_params" not in search_keys()


def test_optuna_distributions_and_suggest():
    optuna = pytest.importorskip("optuna")
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    s = Space.from_dict({"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1.0},
                         "beta": {"distribution": "one_minus_log_uniform", "low": 0.9, "high": 0.999},
                         "hidden": {"distribution": "int", "low": 16, "high": 256, "log": True},
                         "batch_size": {"distribution": "pow2", "low": 16, "high": 64},
                         "optimizer": {"distribution": "choice", "choices": ["momentum", "rmsprop"]}})
    d = s.optuna_distributions()
    assert d["lr"] == FloatDistribution(1e-4, 1.0, log=True) and d["beta"] == FloatDistribution(0.9, 0.999)
    assert d["hidden"] == IntDistribution(16, 256, log=True)
    assert d["batch_size"] == CategoricalDistribution([16, 32, 64])
    assert d["optimizer"] == CategoricalDistribution(["momentum", "rmsprop"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = s.suggest(trial)
    assert values == trial.params and set(values) == set(s)
