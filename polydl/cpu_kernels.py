"""Fused CPU kernels: one pass over memory where NumPy needs several.

Each kernel sits beside the NumPy form of the same computation (in ``optim`` and
``functional``) and is tested against it: the optimizer steps (SGD, momentum, RMSprop, Adam),
batch normalization (alone or followed by ReLU in the same node), ReLU's backward and softmax
cross-entropy with integer labels. They are compiled by Numba (installed with polydl where
Numba has wheels; ``pip install numba`` elsewhere) on first use and cached on disk; without
Numba, or where it fails to import, the NumPy form runs. Nothing imports Numba before a kernel
is needed (``installed_version()`` reads its metadata; ``check()`` imports it and compiles one). The optimizer and ReLU
kernels compute exactly what the NumPy form computes, in the same order, so their results are
bit-identical; the batch-normalization and softmax kernels accumulate their sums in float64 and
agree with the NumPy form to float32 rounding.

``POLYDL_CPU_KERNELS`` picks when they run: ``auto`` (default: when Numba is installed, for
arrays of at least ``MIN_SIZE`` elements), ``on`` (always; an error if Numba is missing) or
``off``. ``use("off")`` does the same in code, also as a context manager.

Compiling happens once per install (and Numba version): each kernel, for the argument types a
run passes, on its first call; later processes load it from Numba's cache (``__pycache__`` beside
the sources, or ``NUMBA_CACHE_DIR``). While a kernel compiles, ``NOTE`` goes to standard error
once per process (or wherever ``notes(to)`` sends it), and on Linux helper processes compile the
kernels that follow it in parallel (``polydl.cpu_kernel_compile``).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .cpu_kernel_sources import COMPOSITES, SOURCES

__all__ = ["MIN_SIZE", "DTYPES", "NOTE", "available", "mode", "use", "notes", "get", "settled", "numba_version",
           "installed_version", "check"]

#: smallest array (elements) that ``auto`` hands to a kernel. One kernel call replaces 5 to 12
#: NumPy calls, so kernels pay off from a few elements on. The costs are one-off: compiling each
#: kernel for each dtype the first time it runs on a new install (0.2–0.6 s each, a few seconds
#: for a first training run), then 0.3–0.6 s per process to import Numba and load the cache.
MIN_SIZE = 1
#: the dtypes the kernels are compiled for
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_MODES = ("auto", "on", "off")
_ALIASES = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off"}


def _mode_from_env() -> str:
    raw = os.environ.get("POLYDL_CPU_KERNELS", "auto").strip().lower() or "auto"
    value = _ALIASES.get(raw, raw)
    if value not in _MODES:
        raise ValueError(f"POLYDL_CPU_KERNELS must be one of auto, on, off, not {raw!r}")
    return value


try:
    _MODE = _mode_from_env()
except ValueError as _exc:  # a typo in the environment must not stop the import
    warnings.warn(f"{_exc}; using auto", RuntimeWarning, stacklevel=1)
    _MODE = "auto"
_NUMBA = None        # the numba module once imported
_NUMBA_ERROR = None  # why it could not be imported
_COMPILED: dict = {}  # name -> kernel (a FirstCall until its first call returns)
_UNCACHED = False  # a kernel had to be compiled without a cache (no writable cache directory)
#: the note on standard error while a kernel compiles (a cache miss), once per process
NOTE = "Compiling polydl's CPU kernels (once per install)..."


def _numba():
    global _NUMBA, _NUMBA_ERROR
    if _NUMBA is None and _NUMBA_ERROR is None:
        try:
            import numba
            _NUMBA = numba
        except Exception as exc:  # not installed, or broken against this NumPy
            _NUMBA_ERROR = exc
        else:
            from . import cpu_kernel_compile

            cpu_kernel_compile.listen(numba)
    return _NUMBA


def available() -> bool:
    """Whether Numba can be imported (imports it)."""
    return _numba() is not None


def numba_version() -> str | None:
    """The version of the imported Numba (imports it), None where it cannot be imported."""
    nb = _numba()
    return None if nb is None else nb.__version__


def installed_version() -> str | None:
    """Numba's version as installed, without importing it (0.3–0.6 s): its distribution's
    metadata where its module can be found, ``"unknown"`` for a module without metadata, None
    where there is no module ``numba``."""
    import importlib.metadata
    import importlib.util

    if _NUMBA is not None:
        return _NUMBA.__version__
    try:
        if importlib.util.find_spec("numba") is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version("numba")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def check() -> float:
    """Import Numba, compile one kernel (ReLU's backward, for float32) and run it; the seconds
    that took. Raises ``RuntimeError`` saying what failed (``fails to import (...)``, ...)."""
    import time

    start = time.perf_counter()
    nb = _numba()
    if nb is None:
        raise RuntimeError(f"fails to import ({_NUMBA_ERROR or 'not installed'})")
    try:
        kern = _COMPILED.get("relu_backward")
        if kern is None:
            kern = _COMPILED["relu_backward"] = _build(nb, "relu_backward")
        g, out = np.array([1.0, 2.0], np.float32), np.array([0.5, -1.0], np.float32)
        gx = np.empty_like(g)
        kern(g, out, gx, np.float32(0))
    except Exception as exc:
        raise RuntimeError(f"fails to compile or run a kernel ({type(exc).__name__}: {exc})") from exc
    if gx.tolist() != [1.0, 0.0]:
        raise RuntimeError(f"compiled a kernel that computes {gx.tolist()}, not [1.0, 0.0]")
    return time.perf_counter() - start


def mode() -> str:
    return _MODE


def _check_mode(value) -> str:
    value = _ALIASES.get(str(value).lower(), str(value).lower())
    if value not in _MODES:
        raise ValueError(f"CPU kernel mode must be one of auto, on, off, not {value!r}")
    return value


class _Use:
    """Context manager returned by ``use``: restores the mode that was in place on entry."""

    def __init__(self, value):
        global _MODE
        self.value = value
        self._saved = [_MODE]
        self._pending = True  # use() has set the mode already; the first ``with`` only records it
        _MODE = value

    def __enter__(self):
        global _MODE
        if self._pending:
            self._pending = False
        else:  # the same object entered again
            self._saved.append(_MODE)
            _MODE = self.value
        return self

    def __exit__(self, *exc):
        global _MODE
        _MODE = self._saved.pop()
        return False


def use(value: str) -> _Use:
    """Set the mode (``auto``, ``on``, ``off``) for the whole process (all threads); used as
    ``with use("off"): ...`` the previous mode comes back at the end of the block."""
    return _Use(_check_mode(value))


class _Notes:
    """Returned by ``notes``: the previous destination comes back at the end of a ``with`` block."""

    def __init__(self, to):
        from .cpu_kernel_compile import NOTE_TO

        self._saved, NOTE_TO[0] = NOTE_TO[0], to

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        from .cpu_kernel_compile import NOTE_TO

        NOTE_TO[0] = self._saved
        return False


def notes(to) -> _Notes:
    """Send ``NOTE`` to ``to(message)`` (a run's reporter's ``note``; None: nowhere) instead of
    standard error, for the whole process; used as ``with notes(to): ...``, until the block ends."""
    return _Notes(to)


def settled(kern):
    """The kernel that ``kern`` (from :func:`get`) stands for once its first call is over: a kernel
    returned for its first call waits for the compile and records its arguments, which a kernel
    kept for many calls (a captured step's replay) should not pay every time."""
    if type(kern).__name__ != "FirstCall":
        return kern
    return kern.then if kern.then is not None else kern.kern


def get(name: str, size: int):
    """The compiled kernel ``name`` for an array of ``size`` elements, or None where the NumPy
    form should run (mode ``off``, a small array in mode ``auto``, or no Numba in ``auto``)."""
    m = _MODE
    if m == "off" or (m == "auto" and size < MIN_SIZE):
        return None
    kern = _COMPILED.get(name)
    if kern is not None:
        return kern
    nb = _numba()
    if nb is None:
        if m == "on":
            from .backend import DeviceError  # a RuntimeError, reported by the CLI as one line
            raise DeviceError(f"POLYDL_CPU_KERNELS=on needs Numba ({_NUMBA_ERROR or 'not installed'}); "
                               "install it with pip install numba (or pip install 'polydl[fast]') or set "
                               "POLYDL_CPU_KERNELS=auto")
        return None
    from .cpu_kernel_compile import first_call

    kern = _COMPILED[name] = first_call(nb, name, _COMPILED)
    return kern


def _build(nb, name):
    if name in COMPOSITES:
        make, parts = COMPOSITES[name]
        return make(*(_build(nb, part) for part in parts))
    # error_model="numpy": division by zero gives inf/nan as in NumPy (and lets loops vectorize).
    # No fastmath in element-wise kernels, so they round exactly as the NumPy form; the
    # reductions may reassociate (their sums are float64).
    options = {"nogil": True, "error_model": "numpy", "boundscheck": False}
    if name.startswith(("bn_", "softmax_")):
        options["fastmath"] = {"reassoc", "nsz"}
    global _UNCACHED
    try:
        return nb.njit(cache=True, **options)(SOURCES[name])
    except RuntimeError:  # no writable cache directory: compile in every process instead
        _UNCACHED = True
        return nb.njit(cache=False, **options)(SOURCES[name])
