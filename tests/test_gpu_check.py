"""The GPU check script: fails clearly without a GPU; its parts keep to their budgets; its report
has the promised fields, and says which part failed or ran out of time."""
import importlib.util
import re
import subprocess
import sys
import time
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


@pytest.mark.parametrize("bad", ["0", "tests=-5", "nope=10", "tests=soon"])
def test_a_bad_budget_is_one_error_line(bad, tmp_path):
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--budget-s", bad, "--report", str(tmp_path / "r.md")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"Error: --budget-s '{bad}'") and not (tmp_path / "r.md").exists()


def test_budgets_per_part_or_for_all():
    mod = _module()
    assert mod.parse_budgets(None) == mod.PARTS
    assert sum(mod.PARTS.values()) <= 540  # the whole check in 9 minutes
    one = mod.parse_budgets(["tests=100"])
    assert one["tests"] == 100 and one["bench"] == mod.PARTS["bench"]
    total = mod.parse_budgets(["300"])
    assert abs(sum(total.values()) - 300) < 1e-9 and total["tests"] > total["population"]


def test_a_part_past_its_budget_is_stopped_and_says_so(tmp_path):
    mod = _module()
    t0 = time.monotonic()
    run = mod.run_budgeted([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                           1.0, tmp_path / "log")
    assert time.monotonic() - t0 < 30
    assert run["timed_out"] and run["exit"] != 0 and "started" in run["log_tail"]
    done = mod.run_budgeted([sys.executable, "-c", "print('fine')"], 60, tmp_path / "log2")
    assert not done["timed_out"] and done["exit"] == 0 and mod._status(done, True) == "ok"
    assert mod._status(run, True) == "timed out"


def test_junit_counts_and_skip_reasons_from_a_real_run(tmp_path):
    """Counts, failures and skip reasons (a missing module named as such) from pytest's own report."""
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_bad(): assert False\n"
        "def test_skip(): pytest.skip('slow on this machine')\n"
        "def test_needs(): pytest.importorskip('no_such_module_here')\n"
        "@pytest.mark.parametrize('device', ['cpu', 'cuda'])\n"
        "def test_dev(device):\n"
        "    if device == 'cuda': pytest.skip('no GPU')\n")
    (tmp_path / "test_mod.py").write_text("import pytest\npytest.importorskip('no_such_plotting_here')\n"
                                          "def test_never(): pass\n")
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", "test_x.py", "test_mod.py"],
                   cwd=tmp_path, capture_output=True, timeout=120)
    counts = _module().junit_counts(junit)
    assert (counts["passed"], counts["failed"], counts["skipped"]) == (2, 1, 4)
    assert counts["cuda_skipped"] == 1 and counts["failures"] == ["test_x::test_bad"]
    assert counts["skip_reasons"] == {"slow on this machine": 1, "no no_such_module_here": 1, "no GPU": 1,
                                      "no no_such_plotting_here": 1}
    assert _module().junit_counts(tmp_path / "absent.xml")["passed"] == 0


ENV = {"gpus": [{"name": "NVIDIA H200", "memory_gib": 139.8, "compute_capability": "9.0"}],
       "nvidia_smi": "NVIDIA H200, 580.1", "driver": "13.0", "runtime": "13.0", "cupy": "14.2.0",
       "numpy": "2.4.6", "python": "3.12.3", "torch": "2.11.0", "polydl": "0.1.0", "missing": ["optuna"]}


def _parts():
    return {
        "tests": {"status": "failed", "passed": 900, "failed": 1, "skipped": 3, "cuda_passed": 400, "cuda_skipped": 2,
                  "seconds": 80.0, "budget_s": 240, "exit": 1, "failures": ["tests/test_x.py::test_y[cuda]"],
                  "skip_reasons": {"no optuna": 2, "no GPU": 1}, "log_tail": "E   assert 1 == 2"},
        "parity": {"status": "ok", "seconds": 20.0, "budget_s": 60, "steps": 50, "max_loss_diff": 2e-6,
                   "loss_tolerance": 1e-3, "losses_agree": True, "cpu_accuracy": 0.9944, "cuda_accuracy": 0.9916,
                   "accuracy_diff_points": 0.28, "accuracies_agree": True},
        "mixed": {"status": "ok", "seconds": 50.0, "budget_s": 90, "accuracy_ok": True,
                  "train": {"float32": {"test_accuracy": 0.975, "seconds": 9.1},
                            "float16": {"test_accuracy": 0.972, "seconds": 9.9},
                            "bfloat16": {"test_accuracy": 0.969, "seconds": 9.8}},
                  "w3_epoch_s": {"float32": 0.080, "float16": 0.050, "bfloat16": 0.052}},
        "bench": {"status": "ok", "seconds": 60.0, "budget_s": 75, "table": "| W1 | ... |",
                  "ratios": {"W1": 0.85, "W2": 1.2, "W3": 0.9}},
        "population": {"status": "timed out", "seconds": 50.2, "budget_s": 50, "timed_out": True,
                       "log_tail": "still timing the sequential runs"},
    }


def test_report_has_commit_gpu_versions_counts_figures_and_targets():
    mod = _module()
    text = mod.render("a" * 40, ENV, _parts())
    assert f"`{'a' * 40}`" in text
    assert re.search(r"^900 passed, 1 failed, 3 skipped$", text, re.M)
    for needle in ("NVIDIA H200", "580.1", "CuPy 14.2.0", "NumPy 2.4.6", "| W1 | ... |", "Not installed: optuna",
                   "tests/test_x.py::test_y[cuda]", "agree", "| no optuna | 2 |", "E   assert 1 == 2",
                   "| float16 | 97.20% | 9.9 | 0.0500 | 1.60× |", "| W1 ≥ 0.8× PyTorch eager | 0.85× | yes |",
                   "| W3 ≥ 1.0× PyTorch eager | 0.90× | no |", "| W3 faster in bfloat16 than float32 | 1.54× | yes |",
                   "| population | **timed out** after 50.2 s (budget 50 s) |", "still timing the sequential runs",
                   "| W4 population ≥ 20× 32 sequential runs | — | — |", "| tests | **failed** (exit 1, 80.0 s) |"):
        assert needle in text, needle
    assert not mod.ok(_parts())


def test_report_of_a_clean_run_and_of_skipped_parts():
    mod = _module()
    parts = _parts()
    parts["tests"].update(status="ok", failed=0, failures=[], exit=0)
    parts["population"] = {"status": "ok", "seconds": 30.0, "budget_s": 50, "population_s": 0.2, "sequential_s": 5.0,
                           "ratio": 25.0}
    text = mod.render("b" * 40, ENV, parts)
    assert "Population 0.2000 s per epoch, sequential 5.0000 s: 25.0× faster." in text
    assert "| W4 population ≥ 20× 32 sequential runs | 25.0× | yes |" in text
    assert "E   assert" not in text and mod.ok(parts)
    skipped = {name: {"status": "skipped"} for name in mod.PARTS}
    text = mod.render("c" * 40, dict(ENV, missing=[]), skipped)
    assert "| tests | skipped |" in text and "Not installed: none of optuna" in text and mod.ok(skipped)


def test_commit_hash_from_environment(monkeypatch):
    mod = _module()
    monkeypatch.setenv("POLYDL_COMMIT", "b" * 40)
    assert mod.commit_hash() == "b" * 40
    monkeypatch.delenv("POLYDL_COMMIT")
    assert re.fullmatch(r"[0-9a-f]{40}|unknown.*", mod.commit_hash())


def test_every_report_says_what_the_checks_without_a_gpu_cannot_prove():
    """The report, and docs/gpu-report.md until a GPU run replaces it, end with what NVRTC and the
    CuPy stand-in leave to a GPU: speed, real memory, CUDA graphs on the card."""
    mod = _module()
    for needle in ("speed", "real device memory", "CUDA graphs running on the card", "cuRAND", "tests/test_nvrtc.py",
                   "--cuda-standin"):
        assert needle in mod.CPU_ONLY, needle
    assert mod.render("d" * 40, ENV, _parts()).rstrip().endswith(mod.CPU_ONLY)
    report = ROOT / "docs" / "gpu-report.md"
    assert report.read_text().rstrip().endswith(mod.CPU_ONLY)
