"""The checks every part of polydl shares for names and parameter values.

``did_you_mean`` for an unknown name; ``check_number`` / ``check_whole`` for a value, each
raising one ``ValueError`` line that names the value and the range it must lie in.
"""
from __future__ import annotations

import difflib
import math
import numbers

__all__ = ["closest", "did_you_mean", "check_number", "check_whole", "shown"]


def closest(name, choices, cutoff: float = 0.6) -> str | None:
    """The choice most similar to ``name`` (difflib ratio ≥ ``cutoff``), or None."""
    found = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(name, choices) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    best = closest(name, choices)
    return f"; did you mean '{best}'?" if best is not None else ""


def shown(value) -> str:
    """``value`` as a user reads it: NumPy scalars as plain numbers (``1.5``, not
    ``np.float64(1.5)``), everything else as its ``repr``."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        try:
            value = item()
        except (TypeError, ValueError):  # pragma: no cover - exotic 0-d objects
            pass
    return repr(value)


def _bound(value, low, high, low_open, high_open) -> str | None:
    """The violated range as text (``">= 0"``, ``"in (0, 1]"``), or None when ``value`` is in it."""
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not (below or above):
        return None
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


def check_number(label: str, value, low=None, high=None, *, low_open=False, high_open=False) -> float:
    """``value`` as a float if it is a finite real number within the bounds; else ``ValueError``
    ``"<label> must be a finite number"`` or ``"<label> must be >= low"`` (``in [low, high)``, ...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number, not {shown(value)}")
    value = float(value)
    rule = _bound(value, low, high, low_open, high_open)
    if rule is not None:
        raise ValueError(f"{label} must be {rule}, not {value:g}")
    return value


def check_whole(label: str, value, low=None, *, meaning: str = "", integral_floats=False) -> int:
    """``value`` as an int if it is a whole number ≥ ``low``; ``integral_floats`` also accepts
    ``10.0``. ``meaning`` is added to the message: ``"epochs must be >= 1 (<meaning>), not 0"``."""
    ok = isinstance(value, numbers.Integral) or (integral_floats and isinstance(value, numbers.Real)
                                                 and math.isfinite(value) and value == int(value))
    if isinstance(value, bool) or not ok:
        raise ValueError(f"{label} must be a whole number, not {shown(value)}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{label} must be >= {low}{f' ({meaning})' if meaning else ''}, not {value}")
    return value
