"""The thread cap of a benchmark: ``cap()`` before NumPy is imported (BLAS reads it once)."""
from __future__ import annotations

import os
import sys


def cap(xla: bool = True) -> str:
    """Cap BLAS (and, with ``xla``, XLA) at ``--threads N`` of the command line (default 2), unless
    the environment already says; returns the number."""
    threads = "2"
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            threads = sys.argv[i + 1]
        elif a.startswith("--threads="):
            threads = a.split("=", 1)[1]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    if xla:
        os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}")
    return threads
