"""The GPU check: the whole test suite on CUDA, CPU/CUDA parity of a seeded ``polydl train`` run,
mixed precision on the card, the benchmarks against PyTorch CUDA and the population benchmark,
and ``docs/gpu-report.md`` with the results.

Run it through ``scripts/gpu-check`` on a machine with CuPy and an NVIDIA GPU. Without them it
stops at once with one ``Error:`` line and exit code 2. Each part runs in its own process with a
time budget (``--budget-s``): a part that fails, crashes or runs out of time is recorded in the
report as such, and the other parts still run, so the check always ends and writes its report.
The exit code is 0 when no part failed (the tests pass, the devices agree, half precision reaches
float32's accuracy); the speed targets are reported, met or missed, without changing it.

Without a GPU, CI proves less: every CUDA kernel compiles with NVRTC, and every test's ``cuda``
case passes on a CuPy stand-in. ``CPU_ONLY`` says what only this check establishes; every report
ends with it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: the parts in the order they run, with their default budgets (seconds of wall time): 8.6
#: minutes in all, which leaves an H100/H200 lease of 15 minutes room for its start
PARTS = {"tests": 240, "parity": 60, "mixed": 90, "bench": 75, "population": 50}
#: speed targets: polydl against PyTorch eager CUDA (its time over polydl's), the population of
#: 32 W1 members against 32 sequential runs
TARGETS = {"W1": 0.8, "W2": 1.0, "W3": 1.0, "W4": 20.0}
#: how far below float32's test accuracy a half-precision run may land (percentage points)
ACCURACY_POINTS = 1.0
#: modules the suite can do without; their tests skip, and the report names them
OPTIONAL = ("optuna", "numba", "matplotlib", "torch", "ml_dtypes", "hypothesis", "xdist")
#: what CI's two checks without a GPU establish, and what only a run on a GPU can
CPU_ONLY = """## What the checks without a GPU cannot prove

Without a GPU, CI compiles every CUDA kernel polydl launches with NVRTC, as CuPy compiles it, for
compute capabilities 7.0, 8.0 and 9.0 (`tests/test_nvrtc.py`), and runs every test's `cuda` case on
a strict CuPy stand-in (`pytest --cuda-standin`: NumPy arrays behind CuPy's refusals, the kernels'
CUDA sources run on the CPU by `tests/cuda_emulator.py`). Neither can show:

- speed: kernel times, launch overheads, the benchmark and population targets;
- real device memory: allocations, CuPy's memory pool, running out of memory (the stand-in is a
  nominal 16 GiB card with nothing allocated);
- a captured step's CUDA graphs running on the card (the stand-in records a capture and replays it
  on the CPU, refusing what CuPy refuses, but has no real graph, driver or cuBLAS behind it),
  events, and asynchronous execution (the stand-in finishes every launch before it returns);
- the card's own numbers: cuRAND's draws, the order of float operations in cuBLAS and CuPy's
  reductions (TF32 included), half-precision arithmetic as the card does it;
- the kernels on the card: the emulator runs a block's threads one at a time (in a random order
  at each barrier, no warps, one block at a time), so races that need threads truly running at
  once only show on a GPU, and so does compiling for the card's own architecture;
- the CUDA driver and runtime, and more than one GPU.

The parts of this check establish them: the suite on the card, the CPU/CUDA parity, mixed
precision, the benchmarks and the population."""


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
    import importlib.util

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
    info["missing"] = [m for m in OPTIONAL if importlib.util.find_spec(m) is None]
    return info


# ---------------------------------------------------------------------------- budgets
def parse_budgets(values) -> dict:
    """``--budget-s`` values: ``PART=SECONDS`` for one part, or ``SECONDS`` for all of them
    together (shared in proportion to the defaults)."""
    budgets = dict(PARTS)
    for v in values or ():
        name, sep, seconds = v.rpartition("=")
        try:
            s = float(seconds)
        except ValueError:
            s = -1.0
        if not s > 0:
            raise ValueError(f"--budget-s {v!r}: give seconds > 0, as 480 (all parts) or tests=240 (one part)")
        if not sep:
            total = sum(PARTS.values())
            budgets = {k: b * s / total for k, b in PARTS.items()}
        elif name in PARTS:
            budgets[name] = s
        else:
            raise ValueError(f"--budget-s {v!r}: no part {name!r}; the parts are {', '.join(PARTS)}")
    return budgets


def run_budgeted(cmd, budget_s: float, log: Path, env=None) -> dict:
    """Run ``cmd`` (output to ``log``) for at most ``budget_s`` seconds: then SIGINT (pytest still
    writes its report), and SIGKILL 20 s later. Its exit code, seconds and whether it ran out."""
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return {"exit": proc.returncode, "seconds": round(time.monotonic() - t0, 1), "timed_out": timed_out,
            "budget_s": round(budget_s), "log_tail": log.read_text(errors="replace")[-3000:]}


def _status(run: dict, ok: bool) -> str:
    if run.get("timed_out"):
        return "timed out"
    return "ok" if ok else "failed"


# ---------------------------------------------------------------------------- the parts
def part_tests(work: Path, budget_s: float) -> dict:
    """The whole suite, every device test on CPU and CUDA; counts and skips from the JUnit report."""
    import importlib.util

    junit = work / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", "-rfE"]
    if importlib.util.find_spec("xdist") is not None:  # the GPU machines have many cores
        cmd += ["-n", str(min(8, os.cpu_count() or 1))]
    env = dict(os.environ)
    env.pop("POLYDL_TEST_DEVICES", None)
    run = run_budgeted(cmd, budget_s, work / "pytest.log", env)
    res = dict(run, **junit_counts(junit))
    res["status"] = _status(run, res["failed"] == 0 and res["passed"] > 0 and run["exit"] == 0)
    return res


def junit_counts(junit: Path) -> dict:
    counts = {"passed": 0, "failed": 0, "skipped": 0, "cuda_passed": 0, "cuda_skipped": 0, "failures": [],
              "skip_reasons": {}}
    if not junit.exists():
        return counts
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        is_cuda = "[cuda" in name or "-cuda" in name
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            counts["failures"].append(name)
        elif skipped is not None:
            counts["skipped"] += 1
            counts["cuda_skipped"] += is_cuda
            message = skipped.get("message") or ""
            if message == "collection skipped":  # a module skipped whole: the reason is in the text
                message = skipped.text or message
            reason = skip_reason(message)
            counts["skip_reasons"][reason] = counts["skip_reasons"].get(reason, 0) + 1
        else:
            counts["passed"] += 1
            counts["cuda_passed"] += is_cuda
    return counts


def skip_reason(message: str) -> str:
    """A skip message, shortened to what it needs: ``could not import 'optuna': ...`` → ``no optuna``."""
    m = re.search(r"could not import '([\w.]+)'", message)
    if m:
        return f"no {m.group(1)}"
    return message.replace("\n", " ").strip()[:120] or "(no reason given)"


def part_parity(work: Path, budget_s: float) -> dict:
    return _child("parity", work, budget_s, ok=lambda r: r.get("losses_agree") and r.get("accuracies_agree"))


def part_mixed(work: Path, budget_s: float) -> dict:
    return _child("mixed", work, budget_s, ok=lambda r: r.get("accuracy_ok"))


def _child(name, work, budget_s, ok) -> dict:
    out = work / f"{name}.json"
    run = run_budgeted([sys.executable, str(Path(__file__).resolve()), "--part", name, "--json", str(out)],
                       budget_s, work / f"{name}.log")
    res = dict(run)
    if out.exists():
        res.update(json.loads(out.read_text()))
    res["status"] = _status(run, run["exit"] == 0 and out.exists() and bool(ok(res)))
    return res


def part_bench(work: Path, budget_s: float, reps: int) -> dict:
    md, raw = work / "bench.md", work / "bench.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--device", "cuda", "--reps", str(reps),
           "--pause", "0.1", "--no-memory", "--no-overhead", "--write", str(md), "--json", str(raw)]
    run = run_budgeted(cmd, budget_s, work / "bench.log")
    res = dict(run, table=md.read_text() if md.exists() else "", ratios={})
    if raw.exists():
        for r in json.loads(raw.read_text())["results"]:
            med = r["median_s"]
            if "torch" in med and "polydl" in med:
                res["ratios"][r["workload"]] = med["torch"] / med["polydl"]
    res["status"] = _status(run, run["exit"] == 0 and md.exists())
    return res


def part_population(work: Path, budget_s: float, reps: int) -> dict:
    raw = work / "population.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "population.py"), "--device", "cuda", "--only", "W4",
           "--reps", str(max(1, min(reps, 3))), "--no-jax", "--json", str(raw)]
    run = run_budgeted(cmd, budget_s, work / "population.log")
    res = dict(run)
    if raw.exists():
        w4 = json.loads(raw.read_text())["W4"]
        res.update(population_s=w4["population"], sequential_s=w4["sequential"],
                   ratio=w4["sequential"] / w4["population"])
    res["status"] = _status(run, run["exit"] == 0 and "ratio" in res)
    return res


# ---------------------------------------------------------------------------- child processes
def child_parity(save, steps: int = 50) -> None:
    from polydl.training import parity

    out = parity.compare_devices("cpu", "cuda", steps=steps)
    out.pop("losses", None)
    save(out)


def child_mixed(save, reps: int = 3) -> None:
    """``polydl train`` on the digits on CUDA in float32, float16 and bfloat16 (test accuracy and
    seconds), and the median epoch of W3 (784-1024-1024-10, batch 1024) in each dtype; saved
    after each, so what was measured reaches the report if the part runs out of time."""
    out = {"train": {}, "w3_epoch_s": {}, "accuracy_ok": False}
    with tempfile.TemporaryDirectory() as tmp:
        for dt in ("float32", "float16", "bfloat16"):
            run_dir = Path(tmp) / dt
            t0 = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "polydl_cli.main", "train", "--device", "cuda", "--dtype", dt,
                                   "--no-plot", "--quiet", "--out", str(run_dir)], cwd=ROOT, capture_output=True,
                                  text=True)
            entry = {"seconds": round(time.monotonic() - t0, 1), "exit": proc.returncode}
            if proc.returncode == 0:
                summary = json.loads((run_dir / "summary.json").read_text())
                entry["test_accuracy"] = summary["test_accuracy"]
            else:
                entry["error"] = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            out["train"][dt] = entry
            base = out["train"]["float32"].get("test_accuracy")
            out["accuracy_ok"] = base is not None and all(
                out["train"].get(h, {}).get("test_accuracy") is not None
                and out["train"][h]["test_accuracy"] >= base - ACCURACY_POINTS / 100 for h in ("float16", "bfloat16"))
            save(out)
    for dt in ("float32", "float16", "bfloat16"):
        try:
            out["w3_epoch_s"][dt] = w3_epoch(dt, reps)
        except Exception as exc:  # recorded; the other dtypes are still timed
            out.setdefault("w3_errors", {})[dt] = f"{type(exc).__name__}: {exc}"
        save(out)


def w3_epoch(dtype: str, reps: int) -> float:
    """Median seconds of one W3 training epoch on CUDA, mixed precision for the half dtypes
    (half products, float32 master weights, loss scaling for float16), as ``polydl train``."""
    import statistics

    import numpy as np

    import polydl
    from polydl import amp, backend, losses, nn, optim

    sizes, batch, samples = (784, 1024, 1024, 10), 1024, 40960
    rng = np.random.default_rng(0)
    X = backend.to_device(rng.standard_normal((samples, sizes[0]), dtype=np.float32), "cuda")
    y = backend.to_device(rng.integers(0, sizes[-1], samples), "cuda")
    polydl.manual_seed(0)
    model = nn.mlp(sizes).to("cuda")
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = losses.get("softmax_cross_entropy")
    half = None if dtype == "float32" else amp.resolve(dtype)
    scaler = amp.GradScaler(half) if half is not None else None
    xp = backend.get_array_module(X)

    def epoch():
        for i in range(0, samples - batch + 1, batch):
            opt.zero_grad()
            if half is None:
                loss_fn(model(polydl.Tensor(X[i:i + batch])), y[i:i + batch]).backward()
                opt.step()
            else:
                with amp.autocast(half):
                    loss = loss_fn(model(polydl.Tensor(X[i:i + batch])), y[i:i + batch])
                scaler.scale(loss).backward()
                scaler.step(opt)
        xp.cuda.get_current_stream().synchronize()

    epoch()  # warm-up: kernels compiled, memory pooled
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


CHILDREN = {"parity": child_parity, "mixed": child_mixed}


# ---------------------------------------------------------------------------- the report
def _fmt_status(part: dict) -> str:
    status = part.get("status", "skipped")
    if status == "timed out":
        return f"**timed out** after {part.get('seconds')} s (budget {part.get('budget_s')} s)"
    if status == "failed":
        return f"**failed** (exit {part.get('exit')}, {part.get('seconds')} s)"
    if status == "skipped":
        return "skipped"
    return f"ok ({part.get('seconds')} s of {part.get('budget_s')} s)"


def _log(part: dict) -> list:
    tail = (part.get("log_tail") or "").strip()
    return ["", "Last lines of its output:", "", "```", tail[-1500:], "```"] if tail else []


def render(commit, env, parts) -> str:
    gpus = "; ".join(f"{g['name']} ({g.get('memory_gib', '?')} GiB, compute {g.get('compute_capability', '?')})"
                     for g in env["gpus"]) or "none"
    missing = env.get("missing") or []
    lines = [
        "# GPU report", "",
        f"- Commit: `{commit}`",
        f"- GPU: {gpus}",
        f"- Driver: {env.get('nvidia_smi', 'unknown')}; CUDA driver API {env.get('driver', '?')}, "
        f"runtime {env.get('runtime', '?')}",
        f"- CuPy {env['cupy']}, NumPy {env['numpy']}, Python {env['python']}, PyTorch {env['torch']}, "
        f"polydl {env['polydl']}",
        f"- Not installed: {', '.join(missing) if missing else 'none of ' + ', '.join(OPTIONAL)}",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "", "| part | result |", "|---|---|",
        *[f"| {name} | {_fmt_status(parts.get(name, {}))} |" for name in PARTS],
    ]

    tests = parts.get("tests", {})
    lines += ["", "## Test suite (CPU and CUDA)", ""]
    if tests.get("status", "skipped") == "skipped":
        lines.append("Skipped.")
    else:
        lines += [f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped", "",
                  f"Of these, {tests['cuda_passed']} passed on CUDA and {tests['cuda_skipped']} CUDA tests were "
                  f"skipped; pytest exit code {tests['exit']}, {tests['seconds']} s."]
        if tests.get("timed_out"):
            lines += ["", f"The suite ran out of its {tests['budget_s']} s and was interrupted: the counts are of "
                          "the tests that ran."]
        if tests["failures"]:
            lines += ["", "Failed:", ""] + [f"- `{f}`" for f in tests["failures"][:50]]
        reasons = sorted(tests.get("skip_reasons", {}).items(), key=lambda kv: -kv[1])
        if reasons:
            lines += ["", "Skipped, by reason:", "", "| reason | tests |", "|---|---|"]
            lines += [f"| {r.replace('|', '/')} | {n} |" for r, n in reasons[:25]]
        if tests["failed"] or tests.get("timed_out") or not tests["passed"]:
            lines += _log(tests)

    parity = parts.get("parity", {})
    lines += ["", "## Parity: the same seeded run on CPU and CUDA", ""]
    if "max_loss_diff" in parity:
        lines += [f"- First {parity['steps']} step losses: max |Δ| = {parity['max_loss_diff']:.2e} "
                  f"(tolerance {parity['loss_tolerance']:.0e}) → {'agree' if parity['losses_agree'] else 'DIFFER'}",
                  f"- Final test accuracy: CPU {parity['cpu_accuracy']:.2%}, CUDA {parity['cuda_accuracy']:.2%} "
                  f"(Δ {parity['accuracy_diff_points']:.2f} points, limit 0.5) → "
                  f"{'agree' if parity['accuracies_agree'] else 'DIFFER'}"]
    else:
        lines.append(f"Parity check did not finish: {_fmt_status(parity)}")
        lines += _log(parity)

    mixed = parts.get("mixed", {})
    lines += ["", "## Mixed precision on the card", ""]
    if mixed.get("train"):
        base = mixed["train"]["float32"].get("test_accuracy")
        w3 = mixed.get("w3_epoch_s", {})
        lines += ["`polydl train --device cuda --dtype D` on the digits (20 epochs), and one W3 epoch "
                  "(784-1024-1024-10, batch 1024, 40,960 samples; median of the timed epochs).", "",
                  "| dtype | test accuracy | train run (s) | W3 epoch (s) | W3 speed-up over float32 |",
                  "|---|---|---|---|---|"]
        for dt, r in mixed["train"].items():
            acc = f"{r['test_accuracy']:.2%}" if r.get("test_accuracy") is not None else f"error: {r.get('error')}"
            t = w3.get(dt)
            speed = f"{w3['float32'] / t:.2f}×" if t and w3.get("float32") else "—"
            lines.append(f"| {dt} | {acc} | {r['seconds']} | {f'{t:.4f}' if t else '—'} | {speed} |")
        for dt, err in mixed.get("w3_errors", {}).items():
            lines.append(f"W3 in {dt} failed: {err}")
        lines += ["", f"Half precision within {ACCURACY_POINTS} point of float32's accuracy"
                      f"{f' ({base:.2%})' if base is not None else ''}: {'yes' if mixed.get('accuracy_ok') else 'NO'}."]
    else:
        lines.append(f"Mixed precision did not finish: {_fmt_status(mixed)}")
        lines += _log(mixed)

    bench, pop = parts.get("bench", {}), parts.get("population", {})
    lines += ["", "## Benchmarks (polydl on CuPy against PyTorch eager CUDA)", ""]
    lines += [bench["table"].strip()] if bench.get("table") else [f"Did not finish: {_fmt_status(bench)}"] + _log(bench)
    lines += ["", "## Population: 32 members of W1 in one computation against 32 sequential runs", ""]
    if "ratio" in pop:
        lines.append(f"Population {pop['population_s']:.4f} s per epoch, sequential {pop['sequential_s']:.4f} s: "
                     f"{pop['ratio']:.1f}× faster.")
    else:
        lines += [f"Did not finish: {_fmt_status(pop)}"] + _log(pop)

    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    ratios = bench.get("ratios", {})
    for w in ("W1", "W2", "W3"):
        r = ratios.get(w)
        lines.append(f"| {w} ≥ {TARGETS[w]}× PyTorch eager | {f'{r:.2f}×' if r is not None else '—'} | "
                     f"{'—' if r is None else ('yes' if r >= TARGETS[w] else 'no')} |")
    r = pop.get("ratio")
    lines.append(f"| W4 population ≥ {TARGETS['W4']:.0f}× 32 sequential runs | {f'{r:.1f}×' if r is not None else '—'} | "
                 f"{'—' if r is None else ('yes' if r >= TARGETS['W4'] else 'no')} |")
    if mixed.get("w3_epoch_s", {}).get("float32"):
        w3 = mixed["w3_epoch_s"]
        for dt in ("float16", "bfloat16"):
            if w3.get(dt):
                lines.append(f"| W3 faster in {dt} than float32 | {w3['float32'] / w3[dt]:.2f}× | "
                             f"{'yes' if w3[dt] < w3['float32'] else 'no'} |")
    lines += ["", CPU_ONLY, ""]
    return "\n".join(lines)


def ok(parts) -> bool:
    return all(parts[name].get("status") in ("ok", "skipped") for name in parts)


# ---------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", default=str(ROOT / "docs" / "gpu-report.md"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--budget-s", action="append", metavar="[PART=]SECONDS",
                    help=f"wall-time budget of one part (parts: {', '.join(PARTS)}; defaults "
                         f"{', '.join(f'{k}={v}' for k, v in PARTS.items())}) or of all together")
    ap.add_argument("--skip", action="append", default=[], choices=list(PARTS), help="leave out a part (repeatable)")
    ap.add_argument("--skip-tests", action="store_true", help="the same as --skip tests")
    ap.add_argument("--skip-bench", action="store_true", help="the same as --skip bench --skip population")
    ap.add_argument("--part", choices=list(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part:  # a child process of one part: its results as JSON, rewritten as they come
        from polydl.training.checkpoint import atomic_write

        CHILDREN[args.part](lambda result: atomic_write(args.json, json.dumps(result)))
        return
    try:
        budgets = parse_budgets(args.budget_s)
    except ValueError as exc:
        fail(str(exc))
    skip = set(args.skip) | ({"tests"} if args.skip_tests else set()) | (
        {"bench", "population"} if args.skip_bench else set())

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
    runners = {"tests": part_tests, "parity": part_parity, "mixed": part_mixed,
               "bench": lambda w, b: part_bench(w, b, args.reps),
               "population": lambda w, b: part_population(w, b, args.reps)}
    parts = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in PARTS:
            if name in skip:
                parts[name] = {"status": "skipped"}
                continue
            print(f"gpu-check: {name} (budget {budgets[name]:.0f} s)", file=sys.stderr, flush=True)
            try:
                parts[name] = runners[name](work, budgets[name])
            except Exception as exc:  # reported, not fatal: the rest of the report still matters
                parts[name] = {"status": "failed", "exit": None, "seconds": None,
                               "log_tail": f"{type(exc).__name__}: {exc}"}
            print(f"gpu-check: {name}: {parts[name]['status']}", file=sys.stderr, flush=True)
        text = render(commit, env, parts)
        from polydl.training.checkpoint import atomic_write

        report = Path(args.report)
        report.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(report, text)
        out = os.environ.get("OUT")
        if out:  # the device machine's folder that comes back
            Path(out, "gpu-report.md").write_text(text)
            for name in ("pytest.log", "junit.xml", "bench.json", "mixed.log"):
                if (work / name).exists():
                    Path(out, name).write_bytes((work / name).read_bytes())
    print(text)
    sys.exit(0 if ok(parts) else 1)


if __name__ == "__main__":
    main()
