"""What this machine holds for trials: CPUs, memory, and from them the default number of
workers of the ``local`` executors and the BLAS threads of each."""
from __future__ import annotations

import os

from ...memory import host_available

__all__ = ["available_cpus", "available_memory", "default_workers", "blas_threads", "WORKER_MEMORY"]

#: the memory a default worker is given room for (a small model, its data and NumPy)
WORKER_MEMORY = 1 << 30


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available (Linux ``MemAvailable``), None where unknown."""
    return host_available()


def default_workers(device: str = "cpu") -> int:
    """What the machine can hold: one worker per CPU, at most one per :data:`WORKER_MEMORY` of
    available memory; one on a GPU (its processes would share it)."""
    if str(device).startswith("cuda"):
        return 1
    n = available_cpus()
    mem = available_memory()
    if mem is not None:
        n = min(n, max(1, mem // WORKER_MEMORY))
    return max(1, n)


def blas_threads(workers: int) -> int:
    """BLAS threads per worker: ``cpu_count // workers``, at least 1."""
    return max(1, available_cpus() // max(1, int(workers)))
