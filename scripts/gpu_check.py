"""The GPU check: the whole test suite on CUDA, the benchmarks against PyTorch CUDA, CPU/CUDA
parity of a seeded ``polydl train`` run, and ``docs/gpu-report.md`` with the results.

Run it through ``scripts/gpu-check`` on a machine with CuPy and an NVIDIA GPU. Without them it
stops at once with one ``Error:`` line and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fail(message: str, code: int = 2):
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(code)


def commit_hash() -> str:
    env = os.environ.get("POLYDL_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git checkout; set POLYDL_COMMIT)"


def environment() -> dict:
    import numpy as np

    import polydl
    from polydl import backend

    info = {"polydl": polydl.__version__, "numpy": np.__version__, "cupy": backend.cupy_version(),
            "python": platform.python_version(), "gpus": backend.cuda_devices(), **backend.cuda_versions()}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        if smi.returncode == 0:
            info["nvidia_smi"] = smi.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = "not installed"
    return info


def run_tests(workdir: Path, timeout: int) -> dict:
    """The whole suite, every device test on CPU and CUDA; counts from the JUnit report."""
    junit = workdir / "junit.xml"
    log = workdir / "pytest.log"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", "-rfE"]
    import importlib.util
    if importlib.util.find_spec("xdist") is not None:  # the GPU machines have many cores
        cmd += ["-n", str(min(8, os.cpu_count() or 1))]
    env = dict(os.environ)
    env.pop("POLYDL_TEST_DEVICES", None)
    t0 = time.time()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout)
    counts = {"passed": 0, "failed": 0, "skipped": 0, "cuda_passed": 0, "cuda_skipped": 0,
              "seconds": round(time.time() - t0, 1), "exit": proc.returncode, "failures": []}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            is_cuda = "[cuda" in name or "-cuda" in name
            if case.find("failure") is not None or case.find("error") is not None:
                counts["failed"] += 1
                counts["failures"].append(name)
            elif case.find("skipped") is not None:
                counts["skipped"] += 1
                counts["cuda_skipped"] += is_cuda
            else:
                counts["passed"] += 1
                counts["cuda_passed"] += is_cuda
    counts["log_tail"] = log.read_text()[-3000:]
    return counts


def run_benchmarks(workdir: Path, reps: int, timeout: int) -> str:
    out = workdir / "bench.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--device", "cuda", "--reps", str(reps),
           "--no-memory", "--write", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return f"The benchmark run failed (exit {proc.returncode}):\n\n```\n{proc.stderr[-2000:]}\n```"
    return out.read_text()


def run_parity(steps: int = 50) -> dict:
    from polydl.training import parity

    return parity.compare_devices("cpu", "cuda", steps=steps)


def render(commit, env, tests, bench, parity) -> str:
    gpus = "; ".join(f"{g['name']} ({g.get('memory_gib', '?')} GiB, compute {g.get('compute_capability', '?')})"
                     for g in env["gpus"]) or "none"
    lines = [
        "# GPU report", "",
        f"- Commit: `{commit}`",
        f"- GPU: {gpus}",
        f"- Driver: {env.get('nvidia_smi', 'unknown')}; CUDA driver API {env.get('driver', '?')}, "
        f"runtime {env.get('runtime', '?')}",
        f"- CuPy {env['cupy']}, NumPy {env['numpy']}, Python {env['python']}, PyTorch {env['torch']}, "
        f"polydl {env['polydl']}",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "", "## Test suite (CPU and CUDA)", "",
        f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped",
        "",
        f"Of these, {tests['cuda_passed']} passed on CUDA and {tests['cuda_skipped']} CUDA tests were skipped; "
        f"pytest exit code {tests['exit']}, {tests['seconds']} s.",
    ]
    if tests["failures"]:
        lines += ["", "Failed:", ""] + [f"- `{f}`" for f in tests["failures"][:50]]
    lines += ["", "## Parity: the same seeded run on CPU and CUDA", ""]
    if "error" in parity:
        lines.append(f"Parity check failed to run: {parity['error']}")
    else:
        lines += [f"- First {parity['steps']} step losses: max |Δ| = {parity['max_loss_diff']:.2e} "
                  f"(tolerance {parity['loss_tolerance']:.0e}) → {'agree' if parity['losses_agree'] else 'DIFFER'}",
                  f"- Final test accuracy: CPU {parity['cpu_accuracy']:.2%}, CUDA {parity['cuda_accuracy']:.2%} "
                  f"(Δ {parity['accuracy_diff_points']:.2f} points, limit 0.5) → "
                  f"{'agree' if parity['accuracies_agree'] else 'DIFFER'}"]
    lines += ["", "## Benchmarks (polydl on CuPy against PyTorch eager CUDA)", "", bench.strip(), ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", default=str(ROOT / "docs" / "gpu-report.md"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--test-timeout", type=int, default=360)
    ap.add_argument("--bench-timeout", type=int, default=180)
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--skip-bench", action="store_true")
    args = ap.parse_args(argv)

    try:
        from polydl import backend
    except ImportError as exc:
        fail(f"polydl is not importable ({exc}); install it with pip install --no-deps -e .")
    try:
        backend.check_device("cuda")
    except backend.DeviceError as exc:
        fail(f"the GPU check needs a CUDA GPU: {exc}")

    commit = commit_hash()
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tests = {"passed": 0, "failed": 0, "skipped": 0, "cuda_passed": 0, "cuda_skipped": 0, "seconds": 0,
                 "exit": None, "failures": []} if args.skip_tests else run_tests(work, args.test_timeout)
        try:
            parity = run_parity()
        except Exception as exc:  # reported, not fatal: the rest of the report still matters
            parity = {"error": f"{type(exc).__name__}: {exc}"}
        bench = "(skipped)" if args.skip_bench else run_benchmarks(work, args.reps, args.bench_timeout)
    text = render(commit, env, tests, bench, parity)
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    from polydl.training.checkpoint import atomic_write

    atomic_write(report, text)
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu-report.md").write_text(text)
        Path(out, "pytest-tail.txt").write_text(tests.get("log_tail", ""))
    print(text)
    print(json.dumps({"failed": tests["failed"], "parity": {k: v for k, v in parity.items() if k != "losses"}}))
    ok = tests["failed"] == 0 and parity.get("losses_agree") and parity.get("accuracies_agree")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
