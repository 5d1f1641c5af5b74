"""The autodiff engine's per-op bookkeeping, as ``benchmarks/run.py`` reports it."""
from __future__ import annotations

import time

import numpy as np


def op_overhead(reps=200000):
    """Per-op bookkeeping of the autodiff engine: a recorded tiny op minus the bare NumPy call,
    and the backward walk per node."""
    import polydl

    a = polydl.tensor(np.ones(4, np.float32), requires_grad=True)
    b = polydl.tensor(np.ones(4, np.float32), requires_grad=True)
    ad, bd = a.data, b.data

    def timeit(fn, n):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - t0) / n)
        return best

    n = reps // 5
    raw = timeit(lambda: ad + bd, n)
    rec = timeit(lambda: a + b, n)

    chain = 200

    def fwd_bwd():
        x = a
        for _ in range(chain):
            x = x + b
        x.sum().backward()

    def fwd_only():
        x = a
        for _ in range(chain):
            x = x + b
        return x.sum()

    m = max(1, n // (chain * 4))
    both = timeit(fwd_bwd, m)
    fwd = timeit(fwd_only, m)
    return {"numpy_add_us": raw * 1e6, "recorded_add_us": rec * 1e6, "forward_overhead_us": (rec - raw) * 1e6,
            "backward_per_node_us": (both - fwd) / (chain + 1) * 1e6}
