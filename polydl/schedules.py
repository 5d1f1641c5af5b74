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
``cosine``             α = α_min + (α0 − α_min) · (1 + cos(π (e − 1)/T)) / 2   (T: the run's epochs)
=====================  =====================================================

:func:`warmup` puts a linear warm-up in front of any schedule (a built-in or a plugin's): α is
multiplied by min(1, t/W), t the steps (or epochs) done with this one, so that it rises from 0 to
the schedule's own value over the first W steps (epochs).

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
           "inverse_sqrt_epoch", "inverse_sqrt_step", "staircase", "cosine", "warmup", "Warmup", "describe", "formula",
           "solve_lr0"]


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


def cosine(lr0=0.01, min_lr=0.0, epochs=None):
    """α = α_min + (α0 − α_min) · (1 + cos(π · min(1, (e − 1)/T))) / 2

    Half a cosine from α0 at the first epoch to ``min_lr`` after the last; T is ``epochs``, by
    default the length of the run it is used in (a resumed run that trains longer stretches it)."""
    lr0 = _lr0(lr0)
    min_lr = _number("min_lr", min_lr, 0)
    if epochs is not None:
        epochs = _number("epochs", epochs, 1)
        if epochs != int(epochs):
            raise ValueError(f"schedule parameter epochs must be a whole number >= 1, not {shown(epochs)}")
        epochs = int(epochs)

    def rate(pos):
        total = epochs if epochs is not None else pos.epochs
        if total is None:
            raise ValueError("schedule 'cosine' needs the run's length: give epochs=N, or read it at a position "
                             "with epochs (as training does)")
        p = min(1.0, (pos.fractional_epoch - 1) / total)
        return min_lr + (lr0 - min_lr) * (1.0 + math.cos(math.pi * p)) / 2.0

    return Schedule("cosine", {"lr0": lr0, "min_lr": min_lr, "epochs": epochs}, rate)


BUILTIN = {f.__name__: f for f in (constant, inverse_time, exponential, inverse_sqrt_epoch,
                                    inverse_sqrt_step, staircase, cosine)}


class Warmup(Schedule):
    """A schedule with a linear warm-up in front: ``name`` and ``params`` are the inner schedule's,
    ``warmup`` says how long (``epochs`` or ``steps``) and in which ``unit`` α is read."""

    __slots__ = ("inner", "warmup")

    def __init__(self, inner: Schedule, fn, warmup: dict):
        super().__init__(inner.name, inner.params, fn)
        self.inner, self.warmup = inner, dict(warmup)

    def __repr__(self):
        return f"{Schedule.__repr__(self)} after a warm-up of {_warmup_text(self.warmup)}"


def _warmup_text(w: dict) -> str:
    n, what = (w["epochs"], "epoch") if w.get("epochs") else (w["steps"], "step")
    return f"{n} {what}{'s' * (n != 1)}"


def warmup_factor(pos: Position, epochs: int = 0, steps: int = 0, unit: str = "epoch") -> float:
    """min(1, t/W): the share of the schedule's α at ``pos`` during a warm-up of ``epochs`` (t: the
    epochs begun, or with ``unit`` "step" the steps done with this one over W·steps_per_epoch) or
    of ``steps`` (t: the step, from 1). 1 without a warm-up."""
    if steps:
        return min(1.0, pos.step / steps)
    if not epochs:
        return 1.0
    if unit == "step" and pos.steps_per_epoch is not None:
        return min(1.0, pos.step / (epochs * pos.steps_per_epoch))
    return min(1.0, pos.fractional_epoch / epochs)


def warmup(schedule: Schedule, epochs: int = 0, steps: int = 0, unit: str = "epoch") -> Schedule:
    """``schedule`` with a linear warm-up: α = schedule(pos) · :func:`warmup_factor` (pos); the
    schedule itself where both lengths are 0."""
    epochs = _whole("warmup_epochs", epochs, 0)
    steps = _whole("warmup_steps", steps, 0)
    if epochs and steps:
        raise ValueError("give the warm-up in epochs or in steps, not both")
    if unit not in SCHEDULE_UNITS:
        raise ValueError(f"unit must be 'epoch' or 'step', not {unit!r}")
    if not epochs and not steps:
        return schedule
    inner = schedule if isinstance(schedule, Schedule) else Schedule(getattr(schedule, "__name__", "schedule"), {},
                                                                       schedule)
    return Warmup(inner, lambda pos: inner(pos) * warmup_factor(pos, epochs, steps, unit),
                  {"epochs": epochs, "steps": steps, "unit": unit})

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


def solve_lr0(name: str, params: dict, lr0: float, rate: float, position: Position, warm: dict | None = None) -> float:
    """The α0 with which schedule ``name`` (its other ``params`` unchanged; after the warm-up
    ``warm``, :func:`warmup`'s keywords, where given) gives ``rate`` at ``position``: what "the
    learning rate from now on is X" means for a run that continues.

    Exact for schedules affine in α0 (all built-ins, and most schedules); a ``ValueError`` says so
    where no α0 gives ``rate``."""
    rate = check_number("the new learning rate", rate, 0)
    lr0 = check_number("lr0", lr0, 0)
    base = lr0 if lr0 > 0 else 1.0

    def at(x):
        return warmup(get(name, lr0=x, **params), **(warm or {}))(position)

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
