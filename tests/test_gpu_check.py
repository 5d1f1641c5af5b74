"""The GPU check script: fails clearly without a GPU; its report has the promised fields."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from polydl import backend

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(backend.cuda_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("cmd", [["bash", "scripts/gpu-check"], [sys.executable, "scripts/gpu_check.py"]])
def test_fails_with_one_error_line_without_a_gpu(cmd, tmp_path):
    report = tmp_path / "report.md"
    proc = subprocess.run(cmd + ([] if cmd[0] == "bash" else ["--report", str(report)]), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "CuPy" in lines[0]
    assert not report.exists()


def test_report_has_commit_gpu_versions_counts_and_benchmarks():
    mod = _module()
    env = {"gpus": [{"name": "NVIDIA H200", "memory_gib": 139.8, "compute_capability": "9.0"}],
           "nvidia_smi": "NVIDIA H200, 580.1", "driver": "13.0", "runtime": "13.0", "cupy": "14.2.0",
           "numpy": "2.4.6", "python": "3.12.3", "torch": "2.11.0", "polydl": "0.1.0"}
    tests = {"passed": 900, "failed": 1, "skipped": 3, "cuda_passed": 400, "cuda_skipped": 2, "seconds": 80.0,
             "exit": 1, "failures": ["tests/test_x.py::test_y[cuda]"]}
    parity = {"steps": 50, "max_loss_diff": 2e-6, "loss_tolerance": 1e-3, "losses_agree": True,
              "cpu_accuracy": 0.9944, "cuda_accuracy": 0.9916, "accuracy_diff_points": 0.28,
              "accuracies_agree": True}
    text = mod.render("a" * 40, env, tests, "| W1 | ... |", parity)
    assert f"`{'a' * 40}`" in text
    assert re.search(r"^900 passed, 1 failed, 3 skipped$", text, re.M)
    for needle in ("NVIDIA H200", "580.1", "CuPy 14.2.0", "NumPy 2.4.6", "| W1 | ... |",
                   "tests/test_x.py::test_y[cuda]", "agree"):
        assert needle in text


def test_commit_hash_from_environment(monkeypatch):
    mod = _module()
    monkeypatch.setenv("POLYDL_COMMIT", "b" * 40)
    assert mod.commit_hash() == "b" * 40
    monkeypatch.delenv("POLYDL_COMMIT")
    assert re.fullmatch(r"[0-9a-f]{40}|unknown.*", mod.commit_hash())
