"""Sizes that cannot fit: checked before allocating, so that a typo (``--hidden 1000000000000``,
a label of 10^12, a file header that claims terabytes) is one clear error instead of a
``MemoryError`` traceback or a process the kernel kills.

``check_bytes(what, nbytes, fix)`` raises :class:`MemoryLimitError` when ``nbytes`` exceeds
``limit()``: this machine's physical memory (``FALLBACK_LIMIT`` where it cannot be read).
``check_free(what, nbytes, fix, device)`` compares a whole computation (a model, its gradients
and optimizer state) with the memory free now on its device (:func:`available`).
"""
from __future__ import annotations

import os

__all__ = ["MemoryLimitError", "FALLBACK_LIMIT", "host_memory", "host_available", "device_available", "available",
           "limit", "format_bytes", "check_bytes", "check_free"]

#: the limit where the machine's memory cannot be read (1 TiB)
FALLBACK_LIMIT = 1 << 40


class MemoryLimitError(ValueError):
    """An array that would not fit in this machine's memory."""


def host_memory() -> int | None:
    """Physical memory in bytes (``sysconf`` pages × page size), or None where it is unknown."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # Windows, or a platform without the names
        return None
    return pages * size if pages > 0 and size > 0 else None


def host_available(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of host memory available now without swapping (Linux ``MemAvailable``), or None where
    it cannot be read."""
    try:
        with open(meminfo, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def device_available(index: int | None) -> int | None:
    """Bytes free on CUDA device ``index`` (what the driver reports free, plus what CuPy's pool
    holds unused), or None where it cannot be read."""
    from . import backend

    return backend.cuda_free_memory(index)


def available(device=None) -> tuple[int, str]:
    """``(bytes, where)``: the memory free now on ``device`` (a ``polydl.backend.Device`` or None
    for the host) and how a message names it; where that cannot be read, the physical memory (or
    ``FALLBACK_LIMIT``)."""
    if device is not None and getattr(device, "type", "cpu") == "cuda":
        free = device_available(device.index)
        if free is not None:
            return free, f"free on {device}"
    free = host_available()
    if free is not None:
        return free, "of memory available on this machine"
    host = host_memory()
    return (host, "of memory on this machine") if host is not None else (FALLBACK_LIMIT, "allowed")


def limit() -> int:
    """The most bytes one allocation may ask for: the physical memory, else ``FALLBACK_LIMIT``."""
    return host_memory() or FALLBACK_LIMIT


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``512 bytes``, ``1.5 KiB``, ``3.6 TiB``."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        n /= 1024
        if n < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}"
    raise AssertionError("unreachable")


def check_bytes(what: str, nbytes: int, fix: str, error=MemoryLimitError) -> None:
    """Raise ``error`` (a ``ValueError`` type) ``"<what> would need <size>, more than this machine's
    memory (<limit>); <fix>"`` when ``nbytes`` exceeds :func:`limit`."""
    cap = limit()
    if nbytes > cap:
        known = host_memory() is not None
        where = f"this machine's memory ({format_bytes(cap)})" if known else f"the limit of {format_bytes(cap)}"
        raise error(f"{what} would need {format_bytes(nbytes)}, more than {where}; {fix}")


def check_free(what: str, nbytes: int, fix: str, device=None, error=MemoryLimitError) -> None:
    """Raise ``error`` ``"<what> would need about <size>, more than the <free> free on <where>;
    <fix>"`` when ``nbytes`` exceeds the memory :func:`available` on ``device`` now."""
    free, where = available(device)
    if nbytes > free:
        raise error(f"{what} would need about {format_bytes(nbytes)}, more than the {format_bytes(free)} {where}; {fix}")
