"""The configuration of a training run: one flat dataclass, read from TOML and written back.

Every key has a default, so ``TrainConfig()`` is the default run (a BatchNorm MLP with Adam and
``inverse_time`` decay on the bundled digits). Parameters of registered components (a schedule's
``decay_rate``, a dataset's ``n_samples``, an optimizer's own hyperparameters, a model's
``channels``) live in the tables ``schedule_params``, ``dataset_params``, ``normalizer_params``,
``loss_params``, ``optimizer_params`` and ``model_params``; ``beta``, ``beta1``, ``beta2``, ``eps`` and ``weight_decay`` are shortcuts
for the built-in optimizers' hyperparameters. ``lr`` is α0, the schedule's initial rate.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsafe
from ..checks import check_number, check_whole, closest
from ..schedules import SCHEDULE_UNITS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["TrainConfig", "ConfigError", "load_toml", "from_dict", "merge", "PARAM_TABLES", "parse_param", "parse_params",
           "KEYS", "SHORTCUT_KEYS", "DTYPES", "SCHEDULE_UNITS", "UNSET_NOTES", "IMPUTE"]

DTYPES = ("float32", "float64", "float16", "bfloat16")
#: keys for the built-in optimizers' hyperparameters; ``None`` means the optimizer's own default
SHORTCUT_KEYS = ("beta", "beta1", "beta2", "eps", "weight_decay")
#: how ``impute`` fills a missing value: the training split's mean, median or most frequent value
IMPUTE = ("mean", "median", "most_frequent")


class ConfigError(ValueError):
    """A configuration that cannot be used: unknown key, wrong type, value out of range."""


@dataclass
class TrainConfig:
    """Everything that determines a run. A run is a function of its configuration."""

    # where and how precisely
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0                      # weights and dropout masks
    # data
    dataset: str = "digits"
    data_seed: int = 0                 # the train/validation/test split, synthetic data, the mini-batch order
    target: str | list | None = None   # label column(s) of a .csv (default: the last column); a regression
    #                                    may name several ("a,b" or a list), one output each
    val_split: float = 0.1             # fraction held out for validation
    test_split: float = 0.2            # fraction held out for testing (data without a test split)
    standardize: bool | str = "auto"   # z-score features with training-split statistics ("auto":
    #                                    unless they already lie in [-1, 1], like pixel intensities)
    impute: str | None = None          # fill missing values: mean, median or most_frequent (training split)
    # model
    model: str = "mlp"                 # mlp, cnn, lenet5 or a plugin's (its parameters: model_params)
    hidden: list = field(default_factory=lambda: [128, 64])
    activation: str = "relu"
    normalizer: str = "batchnorm"
    dropout: float = 0.0
    augment: bool = False              # random crops of zero-padded training images and horizontal flips
    augment_padding: int = 4           # the crops' padding in pixels (each image shifts by at most this)
    augment_flip: bool = True          # mirror half of the training images, left to right
    loss: str = "softmax_cross_entropy"
    # optimizer
    optimizer: str = "adam"
    lr: float = 0.01                   # α0: the schedule's initial learning rate
    beta: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    weight_decay: float | None = None  # L2 λ for the weights (the optimizer's default: 0)
    # learning-rate decay
    schedule: str = "inverse_time"
    schedule_unit: str = "epoch"       # α changes once per epoch, or at every mini-batch step
    # training
    epochs: int = 20
    batch_size: int = 64
    plot: bool = True                  # write curves.png (needs matplotlib)
    checkpoint_interval: float = 5.0   # seconds between checkpoints at least (0: every epoch); always at the
    #                                    end, on Ctrl-C/SIGTERM, before a pruning decision, at an early stop
    out: str | None = None             # the run directory (default: runs/<timestamp>)
    # the monitored metric: early stopping, the best epoch kept, α lowered on a plateau, warm-up
    monitor: str = "val_loss"          # a metric the run records (val_loss, val_accuracy, val_f1, ...)
    min_delta: float = 0.0             # an improvement is a change by more than this
    early_stopping_patience: int = 0   # stop after this many epochs without improvement (0: never)
    restore_best: bool = False         # keep best.npz, the checkpoint of the best epoch
    plateau_factor: float = 0.5        # α is multiplied by this when the metric stalls ...
    plateau_patience: int = 0          # ... for this many epochs (0: never)
    warmup_epochs: int = 0             # α rises linearly from 0 to the schedule's over these epochs
    warmup_steps: int = 0              # ... or over these mini-batch steps
    # parameter tables
    schedule_params: dict = field(default_factory=dict)
    dataset_params: dict = field(default_factory=dict)
    normalizer_params: dict = field(default_factory=dict)
    loss_params: dict = field(default_factory=dict)
    optimizer_params: dict = field(default_factory=dict)
    model_params: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ checks
    def validate(self) -> "TrainConfig":
        """Check types and ranges (names are checked against the registries when the run is built)."""
        _check_str(self, "device")
        from .. import backend
        try:
            backend.device(self.device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        _check_int(self, "seed", 0)
        _check_int(self, "data_seed", 0)
        _check_str(self, "dataset")
        if isinstance(self.target, (list, tuple)):  # several target columns (a regression)
            if not self.target or not all(isinstance(t, str) and t for t in self.target):
                raise ConfigError(f"target must be a column name or a list of them, not {self.target!r}")
            self.target = list(self.target)
        elif self.target is not None:
            _check_str(self, "target")
        if self.impute is not None and self.impute not in IMPUTE:
            raise ConfigError(f"impute must be one of {', '.join(IMPUTE)} (or not set), not {self.impute!r}")
        for key in ("val_split", "test_split"):
            _check_number(self, key, 0, 1, high_open=True)
        if self.val_split + self.test_split >= 1:
            raise ConfigError(f"val_split + test_split must be < 1 to leave training data, not "
                              f"{self.val_split} + {self.test_split}")
        if self.standardize != "auto" and not isinstance(self.standardize, bool):
            raise ConfigError(f"standardize must be true, false or \"auto\", not {self.standardize!r}")
        if not isinstance(self.hidden, (list, tuple)) or any(
                isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"hidden must be a list of positive layer sizes such as [128, 64], not {self.hidden!r}")
        self.hidden = [int(h) for h in self.hidden]
        for key in ("model", "activation", "normalizer", "loss", "optimizer", "schedule"):
            _check_str(self, key)
        _check_number(self, "dropout", 0, 1, high_open=True)
        _check_number(self, "lr", 0)  # the shortcut keys are checked by the optimizer they reach
        if self.schedule_unit not in SCHEDULE_UNITS:
            raise ConfigError(f"schedule_unit must be 'epoch' or 'step', not {self.schedule_unit!r}")
        _check_int(self, "epochs", 1, "the number of passes over the training data")
        _check_int(self, "batch_size", 1, "the number of samples per mini-batch")
        _check_bool(self, "plot")
        _check_number(self, "checkpoint_interval", 0)
        if self.out is not None:
            _check_str(self, "out")
        _check_tables(self)
        _check_monitoring(self)
        return self

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict:
        """The keys and values as plain JSON data (a deep copy)."""
        return json.loads(json.dumps({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}))

    def replace(self, **changes) -> "TrainConfig":
        return from_dict({**self.to_dict(), **changes})

    def shortcut_hyperparameters(self) -> list[str]:
        """The shortcut keys (``beta``, ``beta1``, ...) that are set, for the optimizer."""
        return [k for k in SHORTCUT_KEYS if getattr(self, k) is not None]

    def to_toml(self) -> str:
        """The configuration as TOML that ``load_toml`` reads back to an equal configuration."""
        d = self.to_dict()
        lines = ["# polydl training configuration (polydl train --config FILE)"]
        tables = {}
        for f in dataclasses.fields(self):
            v = d[f.name]
            if isinstance(v, dict):
                tables[f.name] = v
            elif v is None:
                lines.append(f"# {f.name} = (not set: {UNSET_NOTES.get(f.name, 'default')})")
            else:
                lines.append(f"{f.name} = {_toml_value(v)}")
        for name, table in tables.items():
            lines.append("")
            lines.append(f"[{name}]")
            for k, v in table.items():
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
            if name == "schedule_params":
                for k, v in _schedule_defaults(self.schedule).items():
                    if k != "lr0" and k not in table:
                        lines.append(f"# {_toml_key(k)} = {_toml_value(v) if v is not None else '(required)'}"
                                     "  (the schedule's default)")
        return "\n".join(lines) + "\n"


def _schedule_defaults(name) -> dict:
    from .. import schedules
    try:
        return schedules.describe(name)
    except (KeyError, ValueError, TypeError):
        return {}


#: what a key that is not set (None) means
UNSET_NOTES = {"target": "the last column of a .csv", "out": "a new directory runs/<timestamp>",
               "impute": "a missing value is an error"}
UNSET_NOTES.update({k: "the optimizer's default" for k in SHORTCUT_KEYS})

KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_TABLES = ("schedule_params", "dataset_params", "normalizer_params", "loss_params", "optimizer_params",
           "model_params")


#: names people reach for, and the key they mean
ALIASES = {"learning_rate": "lr", "lr0": "lr", "alpha": "lr", "learningrate": "lr", "num_epochs": "epochs",
           "n_epochs": "epochs", "epoch": "epochs", "batch": "batch_size", "batchsize": "batch_size",
           "minibatch_size": "batch_size", "mini_batch_size": "batch_size", "hidden_sizes": "hidden",
           "hidden_layers": "hidden", "layers": "hidden", "sizes": "hidden", "decay": "schedule_params",
           "decay_rate": "schedule_params", "lr_schedule": "schedule", "scheduler": "schedule", "optim": "optimizer",
           "momentum": "beta", "l2": "weight_decay", "lambda": "weight_decay", "lambd": "weight_decay",
           "random_seed": "seed", "data": "dataset", "label": "target", "norm": "normalizer",
           "batchnorm": "normalizer", "batch_norm": "normalizer", "keep_prob": "dropout", "epsilon": "eps",
           "output": "out", "normalize": "standardize", "fillna": "impute", "missing": "impute",
           "targets": "target", "architecture": "model", "arch": "model", "network": "model", "net": "model",
           "channels": "model_params", "kernel_size": "model_params"}


def _closest(key, valid=KEYS) -> str | None:
    """The key meant by ``key``: an alias people reach for, or a close spelling; None if neither."""
    alias = ALIASES.get(key.lower().replace("-", "_"))
    if alias is not None and alias in valid:
        return alias
    return closest(key, valid)


def _unknown_key(key, source) -> str:
    best = _closest(str(key))
    hint = (f"the closest valid key is '{best}'" if best is not None else
            "see polydl train --print-config for every key")
    return f"unknown key '{key}' in {source}; {hint}"


def _check_str(cfg, key):
    v = getattr(cfg, key)
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{key} must be a non-empty string, not {v!r}")


def _check_bool(cfg, key):
    v = getattr(cfg, key)
    if not isinstance(v, bool):
        raise ConfigError(f"{key} must be true or false, not {v!r}")


def _check_number(cfg, key, low=None, high=None, **bounds) -> float:
    try:
        return check_number(key, getattr(cfg, key), low, high, **bounds)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_int(cfg, key, low, meaning=""):
    try:
        return check_whole(key, getattr(cfg, key), low, meaning=meaning)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_tables(cfg: "TrainConfig") -> None:
    """The parameter tables: tables of name = value, none setting what another key sets."""
    for key in _TABLES:
        v = getattr(cfg, key)
        if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
            raise ConfigError(f"{key} must be a table of name = value, not {v!r}")
        for param, owner in RESERVED_PARAMS.get(key, {}).items():
            if param in v:
                raise ConfigError(f"{key} cannot set {param}: it comes from {owner}; set that instead")
    both = [k for k in SHORTCUT_KEYS if getattr(cfg, k) is not None and k in cfg.optimizer_params]
    if both:
        raise ConfigError(f"{both[0]} is set twice, as a key and in optimizer_params; keep one of them")


def _check_monitoring(cfg: "TrainConfig") -> None:
    """The monitored metric, patience, plateau and warm-up keys (whether the run records the
    metric is checked when its data is known: ``polydl.training.monitor.check_monitored``)."""
    from .. import metrics

    _check_str(cfg, "monitor")
    valid = metrics.recorded_names() + ["train_loss", "train_accuracy"]  # every epoch's record
    if cfg.monitor not in valid:
        hint = closest(cfg.monitor, valid)
        raise ConfigError(f"unknown monitor '{cfg.monitor}'" + (f"; did you mean '{hint}'?" if hint else "")
                          + f" (valid: {', '.join(valid)})")
    _check_number(cfg, "min_delta", 0)
    _check_int(cfg, "early_stopping_patience", 0, "epochs without improvement; 0: never stop early")
    _check_bool(cfg, "restore_best")
    _check_number(cfg, "plateau_factor", 0, 1, low_open=True, high_open=True)
    _check_int(cfg, "plateau_patience", 0, "epochs without improvement; 0: never lower α")
    _check_int(cfg, "warmup_epochs", 0)
    _check_int(cfg, "warmup_steps", 0)
    _check_bool(cfg, "augment")
    _check_int(cfg, "augment_padding", 0, "pixels of zero padding around each image before the random crop")
    _check_bool(cfg, "augment_flip")
    if cfg.warmup_epochs and cfg.warmup_steps:
        raise ConfigError("give the warm-up in epochs (warmup_epochs) or in steps (warmup_steps), not both")


#: parameters a table cannot set, because another key (its flag) does
RESERVED_PARAMS = {
    "schedule_params": {"lr0": "lr (--lr)"},
    "dataset_params": {"seed": "data_seed (--data-seed)", "val_fraction": "val_split (--val-split)",
                       "test_fraction": "test_split (--test-split)"},
    "normalizer_params": {"num_features": "hidden (--hidden)", "population": "the population it is trained in",
                          "dtype": "dtype (--dtype)", "device": "device (--device)"},
    "loss_params": {"population": "the population it is trained in"},
    "optimizer_params": {"lr": "lr (--lr)", "params": "the model"},
    "model_params": {"input_shape": "the data", "num_outputs": "the data and the loss", "hidden": "hidden (--hidden)",
                     "activation": "activation (--activation)", "normalizer": "normalizer (--normalizer)",
                     "dropout": "dropout (--dropout)", "normalizer_params": "normalizer_params (--normalizer-param)",
                     "population": "the population it is trained in"},
}


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else json.dumps(k)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ConfigError(f"cannot write {v!r} to TOML")


#: a component and the table of its parameters
PARAM_TABLES = {"schedule": "schedule_params", "normalizer": "normalizer_params", "loss": "loss_params",
                "dataset": "dataset_params", "optimizer": "optimizer_params", "model": "model_params"}


def merge(base: dict, over: dict, update_tables: bool = False) -> dict:
    """``base`` with the keys of ``over``. A parameter table belongs to its component: choosing
    another schedule (normalizer, loss, dataset) drops the old one's parameters unless ``over``
    gives new ones; otherwise ``update_tables`` adds ``over``'s parameters to the old ones (flags)
    instead of replacing the table (a config file)."""
    out = dict(base)
    for k, v in over.items():
        if k not in _TABLES:
            out[k] = v
    for comp, table in PARAM_TABLES.items():
        changed = comp in over and over[comp] != base.get(comp)
        if table in over:
            new = dict(over[table]) if isinstance(over[table], dict) else over[table]
            if update_tables and not changed and isinstance(new, dict):
                new = {**base.get(table, {}), **new}
            out[table] = new
        elif changed:
            out[table] = {}
    return out


def from_dict(d: dict, source: str = "configuration") -> TrainConfig:
    """A validated configuration from a dict; an unknown key names the closest valid one."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source} must be a table of keys, not {type(d).__name__}")
    _check_keys(d, source)
    d = dict(d)
    if isinstance(d.get("hidden"), tuple):
        d["hidden"] = list(d["hidden"])
    for key in _TABLES:
        if key in d and isinstance(d[key], dict):
            d[key] = dict(d[key])
    return TrainConfig(**d).validate()


def load_toml(path) -> dict:
    """The keys of a TOML file (a dict); errors name the file and the line."""
    path = Path(path)
    try:
        # links followed; a FIFO or a device is refused without blocking; "-sig": a byte-order mark is skipped
        text = fsafe.read_regular(path, follow=True).decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except fsafe.NotRegularFile:
        raise ConfigError(f"config file {path} is {fsafe.kind_of_path(path)}, not a TOML file; "
                          "give a regular file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: it is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                          "save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML in {path}: {exc}; check the syntax (key = value, strings in quotes)") from None
    _check_keys(data, path)
    return data


def _check_keys(d: dict, source) -> None:
    for key in d:
        if key not in KEYS:
            raise ConfigError(_unknown_key(key, source))


def parse_param(text: str, what: str = "parameter") -> tuple[str, object]:
    """``"decay_rate=1"`` → ``("decay_rate", 1)``; values are read as TOML (numbers, booleans,
    quoted strings) and fall back to a plain string."""
    if "=" not in text:
        raise ConfigError(f"{what} must look like name=value, not {text!r}")
    key, _, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"{what} {text!r} has no name before '='")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def parse_params(items, what="parameter") -> dict:
    return dict(parse_param(t, what) for t in items or ())
