"""The Ray executor's error, Ray itself (imported only when asked for), and the checks of the
resources each trial asks for."""
from __future__ import annotations

import math

__all__ = ["RayExecutorError", "RAY_MISSING", "require_ray", "check_cpus", "check_gpus", "number"]

RAY_MISSING = "--executor ray needs Ray: pip install 'polydl[ray]'"


class RayExecutorError(ValueError):
    """A Ray executor that cannot run: Ray missing, resources out of range, a cluster that does
    not answer or lacks what the trials ask for."""


def require_ray():
    """The ``ray`` module; :class:`RayExecutorError` where it is not installed."""
    try:
        import ray
    except ImportError:
        raise RayExecutorError(RAY_MISSING) from None
    return ray


def check_cpus(value, error: type[ValueError] = RayExecutorError) -> float:
    """``--cpus-per-trial``: a number > 0 (Ray counts CPUs to 1e-4)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1e-4:
        raise error(f"--cpus-per-trial must be a number > 0 (the CPUs Ray gives each trial), not {value!r}")
    return float(value)


def check_gpus(value, error: type[ValueError] = RayExecutorError) -> float:
    """``--gpus-per-trial``: a fraction in (0, 1] (``0.25``: four trials share a GPU) or a whole
    number of GPUs above 1."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and (
        1e-4 <= value <= 1 or (value > 1 and float(value).is_integer()))
    if not ok:
        raise error(f"--gpus-per-trial must be a fraction in (0, 1] (0.25: four trials share a GPU) or a "
                    f"whole number of GPUs, not {value!r}")
    return float(value)


def number(x: float) -> str:
    """A count of CPUs or GPUs as written: ``2``, ``0.25``."""
    return f"{x:g}"
