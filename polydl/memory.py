"""Sizes that cannot fit: checked before allocating, so that a typo (``--hidden 1000000000000``,
a label of 10^12, a file header that claims terabytes) is one clear error instead of a
``MemoryError`` traceback or a process the kernel kills.

``check_bytes(what, nbytes, fix)`` raises :class:`MemoryLimitError` when ``nbytes`` exceeds
``limit()``: this machine's physical memory (``FALLBACK_LIMIT`` where it cannot be read).
"""
from __future__ import annotations

import os

__all__ = ["MemoryLimitError", "FALLBACK_LIMIT", "host_memory", "limit", "format_bytes", "check_bytes"]

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
