"""One key of a search space read from its TOML table: the distribution it names and its bounds,
checked (a bad one is one :class:`SpaceError` line naming the key and the fix), and the keys that
are not configuration keys of their own (``hidden``, ``layers``, ``model_params.channels``)."""
from __future__ import annotations

import math

from ..checks import closest
from ..training.config import ConfigError
from .distributions import DISTRIBUTIONS, Choice, Distribution, Int, Pow2, is_power_of_two

__all__ = ["SpaceError", "HIDDEN", "LAYERS", "CHANNELS", "FIELDS", "KINDS", "parse_key", "fmt", "is_number"]

#: the hidden-layer keys of a space: width of every hidden layer, number of hidden layers
HIDDEN, LAYERS = "hidden", "layers"
#: the widths of a convolutional model's layers (the first layer's; the later ones keep the base's ratios)
CHANNELS = "model_params.channels"
#: the fields of each distribution's table
FIELDS = {"uniform": ("low", "high"), "log_uniform": ("low", "high"), "one_minus_log_uniform": ("low", "high"),
          "int": ("low", "high", "log"), "pow2": ("low", "high"), "choice": ("choices",)}
#: the distributions that the width keys take
KINDS = {HIDDEN: ("int", "pow2", "choice"), LAYERS: ("int", "choice"), CHANNELS: ("int", "pow2", "choice")}


class SpaceError(ConfigError):
    """A search space that cannot be used: unknown key or distribution, bad bounds."""


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else repr(v) if isinstance(v, str) else str(v)


def parse_key(key: str, spec, source) -> Distribution:
    """The distribution of ``key`` from its table ``spec`` (:class:`SpaceError` for a bad one)."""
    where = f"[{key}] in {source}"
    name = _distribution_name(key, spec, where)
    if name == "choice":
        return _parse_choice(key, spec, where)
    low, high = _parse_range(name, spec, where)
    if name in ("int", "pow2"):
        return _parse_whole(name, low, high, spec, where)
    return DISTRIBUTIONS[name](float(low), float(high))


def _distribution_name(key: str, spec, where: str) -> str:
    """The distribution ``spec`` names, checked against ``key`` and its fields against it."""
    if not isinstance(spec, dict):
        raise SpaceError(f"{where} must be a table with a distribution, such as distribution = \"log_uniform\", "
                         "low = 1e-4, high = 1.0")
    if "distribution" not in spec:
        raise SpaceError(f"{where} has no distribution; add distribution = one of {', '.join(DISTRIBUTIONS)}")
    name = spec["distribution"]
    if name not in DISTRIBUTIONS:
        raise SpaceError(f"unknown distribution {name!r} in {where}; the closest valid one is "
                         f"'{closest(str(name), list(DISTRIBUTIONS), cutoff=0.0)}'")
    allowed = KINDS.get(key)
    if allowed and name not in allowed:
        raise SpaceError(f"{key} takes the distribution {' or '.join(allowed)}, not {name!r} ({where})")
    fields = FIELDS[name]
    for f in spec:
        if f != "distribution" and f not in fields:
            raise SpaceError(f"unknown field '{f}' in {where}; the closest valid field for {name} is "
                             f"'{closest(f, fields, cutoff=0.0)}'")
    return name


def _parse_choice(key: str, spec: dict, where: str) -> Choice:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise SpaceError(f"{where}: choice needs a non-empty list, such as choices = [32, 64, 128]")
    for c in choices:
        if not isinstance(c, (bool, int, float, str)) or (isinstance(c, float) and not math.isfinite(c)):
            raise SpaceError(f"{where}: each choice must be a number, a string or a boolean, not {c!r}")
    if len({(type(c), c) for c in choices}) != len(choices):
        raise SpaceError(f"{where}: the choices {choices} repeat a value; list each once")
    if key in KINDS and any(isinstance(c, bool) or not isinstance(c, int) or c < (0 if key == LAYERS else 1)
                            for c in choices):
        raise SpaceError(f"{where}: the choices of {key} must be whole numbers >= {0 if key == LAYERS else 1}, "
                         f"not {choices}")
    return Choice(choices)


def _parse_range(name: str, spec: dict, where: str) -> tuple:
    """``low`` and ``high`` of a range distribution, checked for its scale."""
    for f in ("low", "high"):
        if f not in spec:
            raise SpaceError(f"{where} has no {f}; {name} needs low and high")
        if not is_number(spec[f]):
            raise SpaceError(f"{where}: {f} must be a finite number, not {spec[f]!r}")
    low, high = spec["low"], spec["high"]
    if not low < high:
        raise SpaceError(f"{where}: low ({fmt(low)}) must be < high ({fmt(high)})")
    if name == "log_uniform" and low <= 0:
        raise SpaceError(f"{where}: a log scale needs low > 0, not {fmt(low)}; use uniform for a range that "
                         "reaches 0")
    if name == "one_minus_log_uniform" and not (0 < low and high < 1):
        raise SpaceError(f"{where}: one_minus_log_uniform samples 1 − β on a log scale and needs 0 < low < high < 1, "
                         f"not [{fmt(low)}, {fmt(high)}]")
    return low, high


def _parse_whole(name: str, low, high, spec: dict, where: str) -> Distribution:
    """An ``int`` or ``pow2`` distribution over [low, high]."""
    for f, v in (("low", low), ("high", high)):
        if not isinstance(v, int):
            raise SpaceError(f"{where}: {f} of {name} must be a whole number, not {fmt(v)}")
    if name == "pow2":
        for f, v in (("low", low), ("high", high)):
            if not is_power_of_two(v):
                below = 2 ** max(0, math.floor(math.log2(v))) if v >= 1 else 1
                near = below if v - below <= 2 * below - v else 2 * below
                raise SpaceError(f"{where}: {f} of pow2 must be a power of two, not {v}; the closest is {near}")
        return Pow2(low, high)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log must be true or false, not {log!r}")
    if log and low < 1:
        raise SpaceError(f"{where}: an int on a log scale needs low >= 1, not {low}")
    return Int(low, high, log=log)
