"""CPU/CUDA parity: the same seeded ``polydl train`` run on two devices.

The per-step training losses of the first ``steps`` mini-batches must agree to float32 tolerance,
and the final test accuracies within ``accuracy_points`` percentage points.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .reporting import Reporter
from .run import run


class _StepLosses(Reporter):
    """Reads back the loss of each of the first ``limit`` steps (one device sync per step)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.losses: list[float] = []

    def step(self, loss=None) -> None:
        if loss is not None and len(self.losses) < self.limit:
            self.losses.append(float(loss.item()))


def run_losses(config: TrainConfig, steps: int) -> tuple[list[float], float]:
    """The first ``steps`` step losses and the final test accuracy of ``config``."""
    rec = _StepLosses(steps)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(replace(config, plot=False), Path(tmp) / "run", reporter=rec, handle_signals=False)
    return rec.losses, float(result.test_accuracy)


def compare_devices(a: str = "cpu", b: str = "cuda", steps: int = 50, config: TrainConfig | None = None,
                    loss_tolerance: float = 1e-3, accuracy_points: float = 0.5) -> dict:
    """Run ``config`` (default: the default ``polydl train``) on devices ``a`` and ``b`` and compare.

    ``loss_tolerance`` bounds |Δloss| / max(1, |loss|) per step: float32 arithmetic in a different
    order (other BLAS, other reductions) drifts by about 1e-6 per step and grows slowly."""
    config = config if config is not None else TrainConfig()
    la, acc_a = run_losses(replace(config, device=a), steps)
    lb, acc_b = run_losses(replace(config, device=b), steps)
    n = min(len(la), len(lb))
    diffs = np.abs(np.array(la[:n]) - np.array(lb[:n])) / np.maximum(1.0, np.abs(np.array(la[:n])))
    max_diff = float(diffs.max()) if n else float("nan")
    acc_diff = abs(acc_a - acc_b) * 100
    return {"steps": n, "devices": [a, b], "losses": [la[:n], lb[:n]], "max_loss_diff": max_diff,
            "loss_tolerance": loss_tolerance, "losses_agree": bool(n == steps and max_diff <= loss_tolerance),
            f"{a}_accuracy": acc_a, f"{b}_accuracy": acc_b, "cpu_accuracy": acc_a if a == "cpu" else acc_b,
            "cuda_accuracy": acc_b if b.startswith("cuda") else acc_a,
            "accuracy_diff_points": acc_diff, "accuracies_agree": bool(acc_diff <= accuracy_points)}
