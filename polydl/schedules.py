"""Learning-rate decay schedules: α as a pure function of the position in the run.

A schedule is called with a :class:`Position` (the epoch and the mini-batch step, both counted
from 1, how far into the epoch the step is, and the run's length) and returns α, so restoring
the position restores the learning rate. With ``e`` the position's ``fractional_epoch``:

=====================  =====================================================
``constant``           α = α0
``inverse_time``       α = α0 / (1 + decay_rate · e)
``exponential``        α = base^e · α0                    (base 0.95)
``inverse_sqrt_epoch`` α = k / √e · α0
``inverse_sqrt_step``  α = k / √t · α0                    (t: the mini-batch step)
``staircase``          α = α0 · factor^⌊(e − 1)/every⌋    (α drops every ``every`` epochs)
=====================  =====================================================

An optimizer reads its schedule once per epoch at the epoch's first step (``schedule_unit``
``"epoch"``: e is the integer epoch, so α0 = 0.2, decay_rate = 1 gives 0.1, 0.067, 0.05, 0.04)
or at every step (``"step"``: e = epoch + b/n after b of the epoch's n mini-batches, so α
changes at every mini-batch and meets the per-epoch value at each epoch's first step).

A plugin's factory ``factory(lr0, **params)`` returns a function of one :class:`Position`;
``position.epochs`` and ``position.total_steps`` give the run's length where it is known.
"""
from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass

from .checks import check_number, shown
from .hookspecs import hookimpl
from .registry import RegistrationError, Registry

__all__ = ["SCHEDULE_UNITS", "Position", "Schedule", "get", "names", "registry", "constant", "inverse_time", "exponential",
           "inverse_sqrt_epoch", "inverse_sqrt_step", "staircase", "describe", "formula", "solve_lr0"]


#: when an optimizer reads its schedule: once per epoch, or at every mini-batch step
SCHEDULE_UNITS = ("epoch", "step")


def _whole(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} is counted from {low}, got {shown(value)}")
    return int(value)


@dataclass(frozen=True)
class Position:
    """Where a run is when it takes a mini-batch step.

    ``epoch``: the epoch being trained (from 1); ``step``: the step over the whole run (from 1);
    ``batch``: the mini-batches already done in this epoch (0 at its first step);
    ``steps_per_epoch`` and ``epochs``: the run's length, None where unknown."""

    epoch: int
    step: int = 1
    batch: int = 0
    steps_per_epoch: int | None = None
    epochs: int | None = None

    def __post_init__(self):
        _whole("epoch", self.epoch, 1)
        _whole("step", self.step, 1)
        _whole("batch", self.batch, 0)
        if self.steps_per_epoch is not None:
            _whole("steps_per_epoch", self.steps_per_epoch, 1)
            if self.batch >= self.steps_per_epoch:
                raise ValueError(f"batch {self.batch} is not within an epoch of {self.steps_per_epoch} steps")
        if self.epochs is not None:
            _whole("epochs", self.epochs, 1)

    def read_at(self, unit: str) -> "Position":
        """Where a schedule is read for this step: with ``unit`` ``"epoch"`` at the epoch's first
        step (α stays fixed for the epoch), with ``"step"`` at this step itself."""
        if unit == "step" or self.batch == 0:
            return self
        return Position(self.epoch, self.step - self.batch, 0, self.steps_per_epoch, self.epochs)

    @property
    def fractional_epoch(self) -> float:
        """epoch + batch/steps_per_epoch: the epoch, advanced by the part of it already done."""
        if self.batch == 0 or self.steps_per_epoch is None:
            return self.epoch
        return self.epoch + self.batch / self.steps_per_epoch

    @property
    def total_steps(self) -> int | None:
        """epochs · steps_per_epoch, the run's length in steps (None where unknown)."""
        if self.epochs is None or self.steps_per_epoch is None:
            return None
        return self.epochs * self.steps_per_epoch

    @property
    def progress(self) -> float | None:
        """The part of the run done before this step, in [0, 1) (None where the length is unknown)."""
        if self.epochs is None:
            return None
        return (self.fractional_epoch - 1) / self.epochs


class Schedule:
    """α as a function of a :class:`Position`; ``name`` and ``params`` say which formula.

    ``schedule(position)``, or ``schedule(epoch, step=1)`` for a position without the run's length."""

    __slots__ = ("name", "params", "_fn")

    def __init__(self, name, params, fn):
        self.name = name
        self.params = dict(params)
        self._fn = fn

    def __call__(self, epoch, step: int = 1) -> float:
        pos = epoch if isinstance(epoch, Position) else Position(epoch, step)
        value = _number_like(self._fn(pos))
        _check_rate(self.name, value, pos)
        return float(value)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"


def _number(name, value, low=None, high=None, **bounds):
    return check_number(f"schedule parameter {name}", value, low, high, **bounds)


def _lr0(value):
    return _number("lr0", value, 0)


def constant(lr0=0.01):
    """α = α0"""
    lr0 = _lr0(lr0)
    return Schedule("constant", {"lr0": lr0}, lambda pos: lr0)


def inverse_time(lr0=0.01, decay_rate=1.0):
    """α = α0 / (1 + decay_rate · e)"""
    lr0 = _lr0(lr0)
    decay_rate = _number("decay_rate", decay_rate, 0)
    return Schedule("inverse_time", {"lr0": lr0, "decay_rate": decay_rate},
                    lambda pos: lr0 / (1.0 + decay_rate * pos.fractional_epoch))


def exponential(lr0=0.01, base=0.95):
    """α = base^e · α0, base in (0, 1]"""
    lr0 = _lr0(lr0)
    base = _number("base", base, 0, 1, low_open=True)
    return Schedule("exponential", {"lr0": lr0, "base": base}, lambda pos: base ** pos.fractional_epoch * lr0)


def inverse_sqrt_epoch(lr0=0.01, k=1.0):
    """α = k / √e · α0"""
    lr0 = _lr0(lr0)
    k = _number("k", k, 0, low_open=True)
    return Schedule("inverse_sqrt_epoch", {"lr0": lr0, "k": k},
                    lambda pos: k / math.sqrt(pos.fractional_epoch) * lr0)


def inverse_sqrt_step(lr0=0.01, k=1.0):
    """α = k / √t · α0, t the mini-batch step"""
    lr0 = _lr0(lr0)
    k = _number("k", k, 0, low_open=True)
    return Schedule("inverse_sqrt_step", {"lr0": lr0, "k": k}, lambda pos: k / math.sqrt(pos.step) * lr0)


def staircase(lr0=0.01, factor=0.5, every=10):
    """α = α0 · factor^⌊(e − 1)/every⌋

    α drops by ``factor`` every ``every`` epochs (a fraction of an epoch too, read per step)."""
    lr0 = _lr0(lr0)
    factor = _number("factor", factor, 0, 1, low_open=True)
    every = _number("every", every, 0, low_open=True)
    every = int(every) if every == int(every) else every
    return Schedule("staircase", {"lr0": lr0, "factor": factor, "every": every},
                    lambda pos: lr0 * factor ** math.floor((pos.fractional_epoch - 1) / every))


BUILTIN = {f.__name__: f for f in (constant, inverse_time, exponential, inverse_sqrt_epoch,
                                    inverse_sqrt_step, staircase)}

# positions a registered schedule is tried at: first step, inside an epoch, late in a long run
_PROBES = (Position(1, 1, 0, 10, 50), Position(2, 13, 2, 10, 50), Position(5, 41, 0, 10, 50),
           Position(50, 499, 8, 10, 50))


def _check_rate(name, value, pos):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"schedule '{name}' gave {shown(value)} at epoch {pos.epoch}, step {pos.step}: a learning "
                         "rate must be a finite number >= 0")


def _number_like(value):
    """Python and NumPy scalars (and 0-d arrays) as a float; anything else unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and value.dtype.kind in "iuf":
        return float(value)
    return value


def _validate(name, factory):
    """A factory ``(lr0, **params) -> schedule``: it rejects a negative ``lr0``, and its schedule is
    a pure function of the position giving finite rates >= 0."""
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
        raise RegistrationError(f"schedule factory '{name}' returned {probe!r}, not a callable (position) -> lr")
    fn = probe._fn if isinstance(probe, Schedule) else probe
    values = {}
    for pos in _PROBES:
        try:
            value = _number_like(fn(pos))
        except Exception as exc:
            raise RegistrationError(f"schedule '{name}' failed at epoch {pos.epoch}, step {pos.step} (a run of "
                                    f"{pos.epochs} epochs of {pos.steps_per_epoch} steps): {type(exc).__name__}: "
                                    f"{exc}") from exc
        try:
            _check_rate(name, value, pos)
        except ValueError as exc:
            raise RegistrationError(str(exc)) from None
        values[pos] = float(value)
    for pos, first in values.items():
        again = float(_number_like(fn(pos)))
        if again != first:
            raise RegistrationError(f"schedule '{name}' is not a pure function of the position: it gave {first} "
                                    f"and then {again} at epoch {pos.epoch}, step {pos.step}")
    try:
        factory(lr0=-1.0)
    except (ValueError, TypeError):
        pass
    else:
        raise RegistrationError(f"schedule factory '{name}' accepted lr0=-1.0: a factory must check its "
                                "parameters and raise ValueError for bad ones")


registry = Registry("schedules", _validate, singular="schedule")


def get(name: str, **params) -> Schedule:
    """The schedule ``name`` with its parameters, e.g. ``get("inverse_time", lr0=0.2, decay_rate=1)``."""
    bound = registry.check_params(name, **params)
    shown_params = dict(params)
    if bound is not None:
        bound.apply_defaults()
        kinds = bound.signature.parameters
        shown_params = {k: v for k, v in bound.arguments.items()
                        if kinds[k].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
    schedule = registry.build(name, **params)
    if isinstance(schedule, Schedule):
        return schedule
    if not callable(schedule):
        raise ValueError(f"schedule factory '{name}' returned {type(schedule).__name__}, not a callable "
                         "(position) -> lr")
    return Schedule(name, shown_params, schedule)  # the same value checks as the built-ins


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


def formula(name: str) -> str:
    """The first line of the factory's docstring as plain text, without a final period (for the
    built-ins, the formula itself: ``α = α0 / (1 + decay_rate · e)``); "" without a docstring."""
    doc = (inspect.getdoc(registry.lookup(name)) or "").strip()
    first = doc.splitlines()[0].strip().replace("``", "") if doc else ""
    return first[:-1] if first.endswith(".") else first


def solve_lr0(name: str, params: dict, lr0: float, rate: float, position: Position) -> float:
    """The α0 with which schedule ``name`` (its other ``params`` unchanged) gives ``rate`` at
    ``position``: what "the learning rate from now on is X" means for a run that continues.

    Exact for schedules affine in α0 (all built-ins, and most schedules); a ``ValueError`` says so
    where no α0 gives ``rate``."""
    rate = check_number("the new learning rate", rate, 0)
    lr0 = check_number("lr0", lr0, 0)
    base = lr0 if lr0 > 0 else 1.0

    def at(x):
        return get(name, lr0=x, **params)(position)

    a1, a2 = at(base), at(2 * base)
    slope = (a2 - a1) / base
    if slope <= 0:
        raise ValueError(f"schedule '{name}' gives α = {a1:.6g} at epoch {position.epoch} whatever its lr0, so no "
                         f"lr0 gives {rate:g}; change the schedule with --schedule instead")
    solved = base * (rate / a1) if a2 == 2 * a1 else base + (rate - a1) / slope
    if solved < 0:
        raise ValueError(f"schedule '{name}' cannot give α = {rate:g} at epoch {position.epoch} with any lr0 >= 0; "
                         "give a larger rate or change the schedule")
    got = at(solved)
    for _ in range(3):  # the last bits: a proportional schedule then gives exactly ``rate``
        if got == rate or got == 0:
            break
        better = solved * (rate / got)
        got_better = at(better)
        if abs(got_better - rate) >= abs(got - rate):
            break
        solved, got = better, got_better
    if not math.isclose(got, rate, rel_tol=1e-9, abs_tol=1e-15):
        raise ValueError(f"schedule '{name}' is not proportional to its lr0, so no lr0 gives α = {rate:g} at epoch "
                         f"{position.epoch} exactly (closest: {got:.6g}); set its α0 with --lr0 instead")
    return solved


@hookimpl
def polydl_register_schedules(register):
    for name, factory in BUILTIN.items():
        register(name, factory)
