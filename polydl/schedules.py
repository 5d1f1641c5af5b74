"""Learning-rate decay schedules: pure functions of the epoch and the mini-batch step.

A schedule is called as ``schedule(epoch, step)`` with both counted from 1 and returns α.
Restoring the (epoch, step) position restores the learning rate. The formulas are the notes':

=====================  =====================================================
``constant``           α = α0
``inverse_time``       α = α0 / (1 + decay_rate · epoch)
``exponential``        α = base^epoch · α0                (base 0.95)
``inverse_sqrt_epoch`` α = k / √epoch · α0
``inverse_sqrt_step``  α = k / √t · α0                    (t: mini-batch step)
``staircase``          α = α0 · factor^⌊(epoch − 1)/every⌋ (discrete decay)
=====================  =====================================================
"""
from __future__ import annotations

import inspect
import math
import numbers

from .hookspecs import hookimpl
from .registry import Registry, RegistrationError, check_number, check_whole

__all__ = ["Schedule", "get", "names", "registry", "constant", "inverse_time", "exponential",
           "inverse_sqrt_epoch", "inverse_sqrt_step", "staircase", "describe"]


def _number(name, value, low=None, high=None, **bounds):
    return check_number(f"schedule parameter {name}", value, low, high, **bounds)


def _non_negative(name, value):
    return _number(name, value, 0)


def _positive(name, value):
    return _number(name, value, 0, low_open=True)


def _check_position(epoch, step):
    for name, value in (("epoch", epoch), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} is counted from 1, got {value!r}")
    return int(epoch), int(step)


class Schedule:
    """α as a function of (epoch, step); ``name`` and ``params`` say which formula."""

    __slots__ = ("name", "params", "_fn")

    def __init__(self, name, params, fn):
        self.name = name
        self.params = dict(params)
        self._fn = fn

    def __call__(self, epoch: int, step: int = 1) -> float:
        epoch, step = _check_position(epoch, step)
        value = _number_like(self._fn(epoch, step))
        _check_rate(self.name, value, epoch, step)
        return float(value)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"


def constant(lr0=0.01):
    """α = α0."""
    lr0 = _non_negative("lr0", lr0)
    return Schedule("constant", {"lr0": lr0}, lambda e, t: lr0)


def inverse_time(lr0=0.01, decay_rate=1.0):
    """α = α0 / (1 + decay_rate · epoch)."""
    lr0 = _non_negative("lr0", lr0)
    decay_rate = _non_negative("decay_rate", decay_rate)
    return Schedule("inverse_time", {"lr0": lr0, "decay_rate": decay_rate},
                    lambda e, t: lr0 / (1.0 + decay_rate * e))


def exponential(lr0=0.01, base=0.95):
    """α = base^epoch · α0, base in (0, 1]."""
    lr0 = _non_negative("lr0", lr0)
    base = _number("base", base, 0, 1, low_open=True)
    return Schedule("exponential", {"lr0": lr0, "base": base}, lambda e, t: base ** e * lr0)


def inverse_sqrt_epoch(lr0=0.01, k=1.0):
    """α = k / √epoch · α0."""
    lr0 = _non_negative("lr0", lr0)
    k = _positive("k", k)
    return Schedule("inverse_sqrt_epoch", {"lr0": lr0, "k": k}, lambda e, t: k / math.sqrt(e) * lr0)


def inverse_sqrt_step(lr0=0.01, k=1.0):
    """α = k / √t · α0, t the mini-batch step."""
    lr0 = _non_negative("lr0", lr0)
    k = _positive("k", k)
    return Schedule("inverse_sqrt_step", {"lr0": lr0, "k": k}, lambda e, t: k / math.sqrt(t) * lr0)


def staircase(lr0=0.01, factor=0.5, every=10):
    """α = α0 · factor^⌊(epoch − 1)/every⌋: α drops by ``factor`` every ``every`` epochs."""
    lr0 = _non_negative("lr0", lr0)
    factor = _number("factor", factor, 0, 1, low_open=True)
    every = check_whole("schedule parameter every", every, 1, meaning="epochs between drops", integral_floats=True)
    return Schedule("staircase", {"lr0": lr0, "factor": factor, "every": every},
                    lambda e, t: lr0 * factor ** ((e - 1) // every))


BUILTIN = {f.__name__: f for f in (constant, inverse_time, exponential, inverse_sqrt_epoch,
                                    inverse_sqrt_step, staircase)}


_PROBES = ((1, 1), (2, 3), (5, 40), (50, 1000))


def _check_rate(name, value, epoch, step):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"schedule '{name}' gave {value!r} at epoch {epoch}, step {step}: a learning rate "
                         "must be a finite number >= 0")


def _number_like(value):
    """Python and NumPy scalars (and 0-d arrays) as a float; anything else unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and value.dtype.kind in "iuf":
        return float(value)
    return value


def _validate(name, factory):
    """A factory ``(lr0, **params) -> schedule``: it rejects a negative ``lr0``, and its schedule is
    a pure function of (epoch, step) giving finite rates >= 0."""
    if not callable(factory):
        raise RegistrationError(f"schedule '{name}' must be a callable factory(lr0, **params), not {factory!r}")
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        sig = None
    if sig is not None and "lr0" not in sig.parameters and not any(
            p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        raise RegistrationError(f"schedule factory '{name}' must take an 'lr0' argument")
    if sig is not None and any(p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                               and p.name != "lr0" for p in sig.parameters.values()):
        return  # parameters without defaults: checked when the schedule is built
    probe = factory(lr0=0.1)
    if not callable(probe):
        raise RegistrationError(f"schedule factory '{name}' returned {probe!r}, not a callable (epoch, step) -> lr")
    values = {}
    for epoch, step in _PROBES:
        try:
            value = _number_like(probe(epoch, step))
        except Exception as exc:
            raise RegistrationError(f"schedule '{name}' failed at epoch {epoch}, step {step}: "
                                    f"{type(exc).__name__}: {exc}") from exc
        try:
            _check_rate(name, value, epoch, step)
        except ValueError as exc:
            raise RegistrationError(str(exc)) from None
        values[epoch, step] = float(value)
    for (epoch, step), first in values.items():
        again = float(_number_like(probe(epoch, step)))
        if again != first:
            raise RegistrationError(f"schedule '{name}' is not a pure function of (epoch, step): it gave {first} "
                                    f"and then {again} at epoch {epoch}, step {step}")
    try:
        factory(lr0=-1.0)
    except (ValueError, TypeError):
        pass
    else:
        raise RegistrationError(f"schedule factory '{name}' accepted lr0=-1.0: a factory must check its "
                                "parameters and raise ValueError for bad ones")


registry = Registry("schedules", _validate, singular="schedule")


def get(name: str, **params):
    """The schedule ``name`` with its parameters, e.g. ``get("inverse_time", lr0=0.2, decay_rate=1)``."""
    bound = registry.check_params(name, **params)
    shown = dict(params)
    if bound is not None:
        bound.apply_defaults()
        kinds = bound.signature.parameters
        shown = {k: v for k, v in bound.arguments.items()
                 if kinds[k].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
    schedule = registry.build(name, **params)
    if isinstance(schedule, Schedule):
        return schedule
    if not callable(schedule):
        raise ValueError(f"schedule factory '{name}' returned {type(schedule).__name__}, not a callable "
                         "(epoch, step) -> lr")
    return Schedule(name, shown, schedule)  # the same position and value checks as the built-ins


def names():
    return registry.names()


def describe(name: str) -> dict:
    """The parameters of a schedule factory and their defaults."""
    factory = registry.lookup(name)
    out = {}
    for p in inspect.signature(factory).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = None if p.default is p.empty else p.default
    return out


@hookimpl
def polydl_register_schedules(register):
    for name, factory in BUILTIN.items():
        register(name, factory)
