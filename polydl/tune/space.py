"""A search space: which configuration keys to sample and how, read from TOML.

One table per searched key, named by the configuration key (``lr``, ``beta``, ``beta1``,
``batch_size``, ...), with its ``distribution`` and ``low``/``high`` (or ``choices``)::

    [lr]
    distribution = "log_uniform"     # uniform, log_uniform, one_minus_log_uniform, int, pow2, choice
    low = 1e-4
    high = 1.0

    [schedule_params.decay_rate]     # a dotted key reaches a parameter table
    distribution = "log_uniform"
    low = 0.01
    high = 10.0

``int`` takes ``log = true`` for a log scale. Two keys are not configuration keys of their own:
``hidden`` (``int``, ``pow2`` or ``choice``) sets the width of every hidden layer, and ``layers``
(``int`` or ``choice``) the number of hidden layers; the one not searched comes from the base
configuration (its number of hidden layers, or the width of its first). Like ``hidden``,
``model_params.channels`` (``int``, ``pow2`` or ``choice``) sets a convolutional model's widths:
the first layer's channels, the later layers keeping the base's ratios (the base's channels, or
the model's default: a sampled 16 makes cnn's [32, 64] [16, 32]).

Without a space file, :func:`default_space` gives the tiers of the hyperparameters by priority:

- tier 1: ``lr`` (α), log-uniform on [1e-4, 1];
- tier 2 adds ``beta`` (momentum, RMSprop) or ``beta1`` (Adam), one-minus-log-uniform on
  [0.9, 0.999]; ``hidden``, int on a log scale in [16, 256] (for a model that takes hidden
  layers); ``model_params.channels``, pow2 in [8, 128] (for a model that takes ``channels``);
  ``batch_size``, pow2 in [16, 256] clipped to the training set;
- tier 3 adds ``layers``, int in [1, 4], and the schedule's decay (``inverse_time``'s
  ``decay_rate`` log-uniform on [0.01, 10], ``exponential``'s ``base`` one-minus-log-uniform on
  [0.5, 0.999], ``staircase``'s ``factor`` log-uniform on [0.1, 0.9]).

β2 and ε keep the optimizer's defaults (0.999, 1e-8) unless a space names them. One key's table
is read by :mod:`polydl.tune.space_keys`.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

from .. import fsafe
from ..checks import closest
from ..training import config as _config
from ..training.config import TrainConfig
from .distributions import DISTRIBUTIONS, Choice, Distribution, Int, LogUniform, OneMinusLogUniform, Pow2
from .space_keys import CHANNELS, HIDDEN, LAYERS, SpaceError
from .space_keys import fmt as _fmt
from .space_keys import parse_key as _parse

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Space", "SpaceError", "default_space", "TIERS", "PRIORITY", "priority", "DECAY_PARAMS", "TABLES",
           "search_keys"]

#: configuration keys that a space cannot search (where the run is written)
UNSEARCHABLE = ("out",)
#: the parameter tables a dotted key can reach
TABLES = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.default_factory is dict)
#: the schedules' decay parameters that tier 3 searches: key -> (distribution, low, high)
DECAY_PARAMS = {"inverse_time": ("decay_rate", "log_uniform", 0.01, 10.0),
                "exponential": ("base", "one_minus_log_uniform", 0.5, 0.999),
                "staircase": ("factor", "log_uniform", 0.1, 0.9)}
TIERS = {1: "α (lr)", 2: "+ β or β1, hidden units, batch size", 3: "+ layers, learning-rate decay"}

#: the order in which hyperparameters matter: 1 α; 2 β, hidden units, mini-batch size; 3 layers,
#: learning-rate decay; 4 Adam's β1, β2, ε
PRIORITY = {"lr": 1, "beta": 2, "hidden": 2, "batch_size": 2, "layers": 3, "beta1": 4, "beta2": 4, "eps": 4,
            CHANNELS: 2}


def priority(key: str) -> int | None:
    """The priority tier of a searched key (1 matters most), None for keys outside the order."""
    if key.startswith("schedule_params.") or key in ("schedule", "schedule_unit"):
        return 3
    return PRIORITY.get(key)


def search_keys() -> list[str]:
    """The keys a space may name (besides dotted ``table.parameter`` keys)."""
    keys = [k for k in _config.KEYS if k not in UNSEARCHABLE and k not in TABLES]
    return keys + [LAYERS]


class Space:
    """Ordered ``key -> Distribution``; keys are configuration keys, dotted ``table.param``
    keys, ``hidden`` (width of every hidden layer) and ``layers`` (number of hidden layers)."""

    def __init__(self, params: dict[str, Distribution]):
        self.params = dict(params)

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, d: dict, source="the search space", config_keys: bool = True) -> "Space":
        """The space of ``d`` (the TOML form); ``config_keys=False`` takes any parameter names
        (a space for plain Optuna objectives)."""
        if not isinstance(d, dict) or not d:
            raise SpaceError(f"{source} names no keys; add a table per key, such as [lr] with distribution = "
                             "\"log_uniform\", low = 1e-4, high = 1.0")
        flat = {}
        for key, spec in d.items():
            nested = config_keys and isinstance(spec, dict) and "distribution" not in spec and spec and all(
                isinstance(v, dict) for v in spec.values())
            if nested or (key in TABLES and isinstance(spec, dict) and "distribution" not in spec):
                if not spec:
                    raise SpaceError(f"[{key}] in {source} names no parameter; write [{key}.NAME] tables")
                for param, sub in spec.items():
                    flat[f"{key}.{param}"] = sub
            else:
                flat[key] = spec
        params = {}
        for key, spec in flat.items():
            if config_keys:
                _check_key(key, source)
            elif not isinstance(key, str) or not key:
                raise SpaceError(f"{source} has an empty key")
            params[key] = _parse(key, spec, source)
        return cls(params)

    @classmethod
    def from_toml(cls, path) -> "Space":
        path = Path(path)
        try:  # links followed; a FIFO or a device is refused without blocking; "-sig": a byte-order mark is skipped
            text = fsafe.read_regular(path, follow=True).decode("utf-8-sig")
        except FileNotFoundError:
            raise SpaceError(f"space file not found: {path}") from None
        except IsADirectoryError:
            raise SpaceError(f"space file {path} is a directory, not a TOML file") from None
        except fsafe.NotRegularFile:
            raise SpaceError(f"space file {path} is {fsafe.kind_of_path(path)}, not a TOML file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpaceError(f"cannot read space file {path}: {exc}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpaceError(f"the space file {path} is not valid TOML: {exc}; write one table per key, such as "
                             "[lr] with distribution = \"log_uniform\"") from None
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict:
        return {k: d.to_dict() for k, d in self.params.items()}

    def __eq__(self, other):
        return isinstance(other, Space) and self.to_dict() == other.to_dict()

    def __iter__(self):
        return iter(self.params)

    def __len__(self):
        return len(self.params)

    def __contains__(self, key):
        return key in self.params

    def __getitem__(self, key) -> Distribution:
        return self.params[key]

    def differences(self, other: "Space", here="here", there="there") -> list[str]:
        """What differs between two spaces, one phrase per key."""
        a, b = self.to_dict(), other.to_dict()
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            if key not in b:
                out.append(f"{key} only {here}")
            elif key not in a:
                out.append(f"{key} only {there}")
            elif a[key] != b[key]:
                fields = [f for f in list(a[key]) + [f for f in b[key] if f not in a[key]] if a[key].get(f) != b[key].get(f)]
                out.append(f"{key} " + ", ".join(f"{f} {_show(a[key].get(f))} {here}, {_show(b[key].get(f))} {there}"
                                                 for f in fields))
        return out

    # ------------------------------------------------------------------ applying
    def apply(self, base: dict, values: dict) -> dict:
        """The configuration dict ``base`` with the sampled ``values`` set (dotted keys go into
        their tables; ``hidden``/``layers`` give the list of hidden layer sizes)."""
        over, tables = {}, {}
        for key, v in values.items():
            v = _plain(v)
            if key in (HIDDEN, LAYERS):
                continue
            if "." in key:
                table, param = key.split(".", 1)
                tables.setdefault(table, {})[param] = v
            else:
                over[key] = v
        over.update(tables)
        out = _config.merge(base, over, update_tables=True)
        if CHANNELS in values:
            out["model_params"] = {**out["model_params"], "channels": _channels(base, int(_plain(values[CHANNELS])))}
        if HIDDEN in values or LAYERS in values:
            old = list(base.get(HIDDEN) or [])
            n = int(_plain(values[LAYERS])) if LAYERS in values else len(old)
            width = int(_plain(values[HIDDEN])) if HIDDEN in values else (old[0] if old else None)
            out[HIDDEN] = [width] * n if n else []
        return out

    def check(self, base: TrainConfig, train_size: int | None = None, source="the search space") -> None:
        """Raise :class:`SpaceError` unless every key's every bound (each choice) gives a valid
        configuration on top of ``base``."""
        if HIDDEN in self and LAYERS not in self and not base.hidden:
            raise SpaceError(f"{source} searches hidden, the width of every hidden layer, but the base configuration "
                             "has no hidden layer; give --hidden 64 (the number of layers) or search layers too")
        if LAYERS in self and HIDDEN not in self and not base.hidden:
            raise SpaceError(f"{source} searches layers but neither it nor the base configuration gives their width; "
                             "give --hidden 64 or search hidden too")
        base_dict = base.to_dict()
        for key, dist in self.params.items():
            for v in _corners(dist):
                try:
                    cfg = _config.from_dict(self.apply(base_dict, {key: v}))
                    _check_components(cfg)
                except (ValueError, TypeError) as exc:
                    raise SpaceError(f"{source}: {key} = {_fmt(v)} does not give a valid configuration: "
                                     f"{' '.join(str(exc).split())}") from None
                if key == "batch_size" and train_size is not None and isinstance(v, int) and v > train_size:
                    raise SpaceError(f"{source}: batch_size = {v} is larger than the training set ({train_size} "
                                     f"samples); lower its high")

    def describe(self, values: dict) -> str:
        """``lr=0.0123 beta1=0.953 hidden=64``: sampled values, 3 significant digits."""
        return " ".join(f"{k}={_short(values[k])}" for k in self.params if k in values)

    # ------------------------------------------------------------------ Optuna
    def optuna_distributions(self) -> dict:
        """The Optuna distribution of each key (the range the study records; the sampler samples
        on the key's own scale): log or linear floats, ints, and categoricals for pow2 and choice."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out = {}
        for key, d in self.params.items():
            if isinstance(d, Choice):
                out[key] = CategoricalDistribution(d.choices)
            elif isinstance(d, Pow2):
                out[key] = CategoricalDistribution(d.choices())
            elif isinstance(d, Int):
                out[key] = IntDistribution(d.low, d.high, log=d.log)
            else:
                out[key] = FloatDistribution(d.low, d.high, log=isinstance(d, LogUniform))
        return out

    def suggest(self, trial) -> dict:
        """Suggest every key on an Optuna trial (``trial.suggest_*``); the values by key."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        out = {}
        for key, dist in self.optuna_distributions().items():
            if isinstance(dist, CategoricalDistribution):
                out[key] = trial.suggest_categorical(key, dist.choices)
            elif isinstance(dist, IntDistribution):
                out[key] = trial.suggest_int(key, dist.low, dist.high, log=dist.log)
            else:
                out[key] = trial.suggest_float(key, dist.low, dist.high, log=dist.log)
        return out


def _show(v):
    return "(none)" if v is None else _fmt(v) if not isinstance(v, list) else "[" + ", ".join(map(_fmt, v)) + "]"


def _short(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _plain(v):
    """NumPy scalars as Python numbers."""
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        return v.item()
    return v


def _corners(dist: Distribution) -> list:
    if isinstance(dist, Choice):
        return list(dist.choices)
    return [dist.low, dist.high]


def _check_key(key, source):
    if not isinstance(key, str) or not key:
        raise SpaceError(f"{source} has an empty key")
    if "." in key:
        table, param = key.split(".", 1)
        if table not in TABLES:
            raise SpaceError(f"unknown table '{table}' in the key '{key}' in {source}; the closest valid table is "
                             f"'{closest(table, TABLES, cutoff=0.0)}' (dotted keys reach {', '.join(TABLES)})")
        if not param or "." in param:
            raise SpaceError(f"the key '{key}' in {source} must be TABLE.PARAMETER, such as schedule_params.decay_rate")
        return
    valid = search_keys()
    if key in TABLES:
        raise SpaceError(f"[{key}] in {source} must hold parameter tables such as [{key}.NAME]")
    if key not in valid:
        alias = _config.ALIASES.get(key.lower())
        hint = alias if alias in valid else closest(key, valid)
        if key == "out":
            raise SpaceError(f"{source} cannot search 'out': each trial's run directory is OUT/trials/NNNN")
        raise SpaceError(f"unknown key '{key}' in {source}; " + (f"the closest valid key is '{hint}'" if hint else
                                                                   f"valid keys: {', '.join(sorted(valid))}"))


def _check_components(cfg: TrainConfig) -> None:
    """Build the optimizer, schedule, loss and normalizer of ``cfg`` (unknown names, parameters)
    and check its model's parameters."""
    from .. import nn, normalizers, optim
    from ..training.build import build_loss, optimizer_hyperparameters
    from ..training.model_build import check_model_keys

    optim.get(cfg.optimizer, nn.Linear(2, 2).parameters(), **optimizer_hyperparameters(cfg))  # and the schedule
    build_loss(cfg)
    if cfg.hidden:
        normalizers.get(cfg.normalizer, 2, **cfg.normalizer_params)
    check_model_keys(cfg)


def _channels(base: dict, width: int) -> list:
    """The channels of a sampled first-layer ``width``: the base's channels (its ``model_params``,
    else its model's default) scaled by width / their first, at least 1 each."""
    from .. import models

    old = (base.get("model_params") or {}).get("channels")
    if old is None:
        old = models.defaults(base.get("model", "mlp")).get("channels", [width])
    old = [int(c) for c in ([old] if isinstance(old, int) else old)] or [width]
    return [max(1, round(width * c / old[0])) for c in old]


# ---------------------------------------------------------------------------- the tiers
def _takes(base: TrainConfig, param: str) -> bool:
    """Whether the base configuration's model takes ``param`` (an unknown model takes nothing)."""
    from .. import models
    from ..registry import UnknownNameError

    try:
        return models.takes(base.model, param)
    except UnknownNameError:
        return False


def _largest_pow2(n: int) -> int:
    return 2 ** int(math.floor(math.log2(n))) if n >= 1 else 1


def default_space(tier: int, base: TrainConfig, train_size: int | None = None) -> tuple[Space, list[str]]:
    """The default space of ``tier`` (1, 2 or 3) for the base configuration, and notes on what
    it leaves out (a β for an optimizer that has none, a schedule without a decay rate)."""
    if tier not in TIERS:
        raise SpaceError(f"--tier must be 1, 2 or 3, not {tier!r}")
    params: dict[str, Distribution] = {"lr": LogUniform(1e-4, 1.0)}
    notes = []
    if tier >= 2:
        if base.optimizer in ("momentum", "rmsprop"):
            params["beta"] = OneMinusLogUniform(0.9, 0.999)
        elif base.optimizer == "adam":
            params["beta1"] = OneMinusLogUniform(0.9, 0.999)
        else:
            notes.append(f"tier {tier}: optimizer {base.optimizer} has no β to search")
        if not _takes(base, "hidden"):
            pass
        elif base.hidden or tier >= 3:
            params[HIDDEN] = Int(16, 256, log=True)
        else:
            notes.append(f"tier {tier}: the base configuration has no hidden layer, so hidden units are not searched "
                         "(give --hidden 64)")
        if _takes(base, "channels"):
            params[CHANNELS] = Pow2(8, 128)
        high = 256 if train_size is None else min(256, _largest_pow2(train_size))
        if high > 16:
            params["batch_size"] = Pow2(16, high)
        else:
            notes.append(f"tier {tier}: the training set ({train_size} samples) is too small to search the batch size")
    if tier >= 3:
        if _takes(base, "hidden"):
            params[LAYERS] = Int(1, 4)
        decay = DECAY_PARAMS.get(base.schedule)
        if decay is None:
            notes.append(f"tier 3: schedule {base.schedule} has no decay rate to search (use --schedule inverse_time)")
        else:
            name, dist, low, high = decay
            params[f"schedule_params.{name}"] = DISTRIBUTIONS[dist](low, high)
    return Space(params), notes
