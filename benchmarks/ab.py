"""A/B: the training-step benchmarks of two polydl source trees, interleaved in one run.

Each round runs ``benchmarks/run.py`` once for tree A and once for tree B (in alternating order,
each in a fresh process with that tree first on ``sys.path``), so both see the same machine
load; the table gives the median over rounds of each tree's per-epoch median, PyTorch's from the
same processes, and the ratio B/A (below 1: B is faster).

    git worktree add /tmp/base main
    python benchmarks/ab.py /tmp/base . --workloads W1,W2 --rounds 4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(tree: Path, workloads: str, reps: int, sides: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        env = {**os.environ, "PYTHONPATH": str(tree)}
        cmd = [sys.executable, str(HERE / "run.py"), "--workloads", workloads, "--reps", str(reps), "--sides", sides,
               "--no-memory", "--no-overhead", "--json", str(out)]
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        return {r["workload"]: r["median_s"] for r in json.loads(out.read_text())["results"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="tree A (the reference, e.g. a worktree of main)")
    ap.add_argument("b", type=Path, help="tree B (the change)")
    ap.add_argument("--workloads", default="W1,W2,W3")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sides", default="polydl,torch")
    args = ap.parse_args(argv)
    runs = {"A": [], "B": []}
    for r in range(args.rounds):
        for label in ("A", "B") if r % 2 == 0 else ("B", "A"):
            tree = (args.a if label == "A" else args.b).resolve()
            runs[label].append(one(tree, args.workloads, args.reps, args.sides))
            print(f"round {r + 1} {label}: {runs[label][-1]}", file=sys.stderr)
    print("| workload | A polydl (s) | B polydl (s) | B / A | torch (s) | torch / A | torch / B |")
    print("|---|---|---|---|---|---|---|")
    for w in args.workloads.split(","):
        a = statistics.median(x[w]["polydl"] for x in runs["A"])
        b = statistics.median(x[w]["polydl"] for x in runs["B"])
        ts = [x[w]["torch"] for x in runs["A"] + runs["B"] if "torch" in x[w]]
        if not ts:
            print(f"| {w} | {a:.4f} | {b:.4f} | {b / a:.3f} | — | — | — |")
            continue
        t = statistics.median(ts)
        print(f"| {w} | {a:.4f} | {b:.4f} | {b / a:.3f} | {t:.4f} | {t / a:.2f}× | {t / b:.2f}× |")


if __name__ == "__main__":
    main()
