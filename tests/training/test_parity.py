"""The parity check compares two devices; on a CPU-only machine it is exercised CPU against CPU
(identical by construction) and against float64 (close but not identical)."""
from dataclasses import replace

import pytest

from polydl.training import parity
from polydl.training.config import TrainConfig


def small():
    return TrainConfig(epochs=3, hidden=[32], batch_size=128)


def test_same_device_runs_agree_exactly():
    out = parity.compare_devices("cpu", "cpu", steps=20, config=small())
    assert out["steps"] == 20
    assert out["max_loss_diff"] == 0.0
    assert out["losses_agree"] and out["accuracies_agree"]


def test_a_real_difference_is_reported():
    # float64 against float32 on the same device: tiny drift, still within tolerance ...
    cfg = small()
    la, _ = parity.run_losses(cfg, 20)
    lb, _ = parity.run_losses(replace(cfg, dtype="float64"), 20)
    assert la != lb
    # ... while a different seed gives a different run, which the check must flag
    out = parity.compare_devices("cpu", "cpu", steps=20, config=cfg)
    assert out["losses_agree"]
    other = parity.run_losses(replace(cfg, seed=1), 20)[0]
    assert max(abs(x - y) for x, y in zip(la, other)) > out["loss_tolerance"]


def test_cpu_against_cuda(device):
    if device != "cuda":
        pytest.skip("compares CPU with CUDA")
    out = parity.compare_devices("cpu", "cuda", steps=50)
    assert out["losses_agree"], out["max_loss_diff"]
    assert out["accuracies_agree"], out["accuracy_diff_points"]


def test_reporter_without_loss_argument_still_works(tmp_path):
    from polydl.training.run import Reporter, run

    class Old(Reporter):
        steps = 0

        def step(self):
            Old.steps += 1

    run(TrainConfig(epochs=1, hidden=[16], batch_size=256, plot=False), tmp_path / "r", reporter=Old(),
        handle_signals=False)
    assert Old.steps == 5
