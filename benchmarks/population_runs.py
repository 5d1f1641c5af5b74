"""End-to-end population runs: P members of W1 (64-32-10 BatchNorm MLP, Adam, batch 32, 4,000
training samples) trained by ``polydl.training.run_population`` into ordinary run directories
(configuration, metrics, checkpoints, summaries) against the same P configurations trained one
after the other by ``polydl.training.run``, at 2 and at 10 epochs, and the ratio; then the wall
time of the default ``polydl train`` (a fresh process each time).

The members' learning rates are log-uniform in [1e-4, 1e-1], β1 uniform in [0.8, 0.95], a seed
each (as in ``population.py``); the data is random (features N(0, 1), 10 classes), with 500
validation and 500 test samples, written once as a ``.npz``. A small run of each kind first loads
the imports and compiled kernels, so that neither side pays them.

    python benchmarks/population_runs.py                        # 32 members, 2 and 10 epochs, polydl train
    python benchmarks/population_runs.py --epochs 2 --reps 3 --no-train
    python benchmarks/population_runs.py --epochs 2 --profile pop.prof   # cProfile of the population run

The runs use the configuration's defaults otherwise (``checkpoint_interval`` among them), with
``--plot`` to write ``curves.png`` too. Compare two trees with ``PYTHONPATH=TREE`` (a tree
holding ``polydl`` and ``polydl_cli``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_threads

bench_threads.cap(xla=False)

import numpy as np  # noqa: E402

SIZES, BATCH, SAMPLES, HELD_OUT = (64, 32, 10), 32, 4000, 500


def write_data(path: Path, seed: int = 0) -> Path:
    """W1's data as a ``.npz``: ``SAMPLES`` training rows, ``HELD_OUT`` validation and test rows."""
    rng = np.random.default_rng(seed)

    def part(n):
        return rng.standard_normal((n, SIZES[0]), dtype=np.float32), rng.integers(0, SIZES[-1], n).astype(np.int64)

    X, y = part(SAMPLES)
    Xv, yv = part(HELD_OUT)
    Xt, yt = part(HELD_OUT)
    np.savez(path, X=X, y=y, X_val=Xv, y_val=yv, X_test=Xt, y_test=yt)
    return path


def configs(data: Path, members: int, epochs: int, plot: bool):
    """The members' configurations (``population.py``'s hyperparameters)."""
    from polydl.training import TrainConfig

    rng = np.random.default_rng(0)
    lrs, betas = 10 ** rng.uniform(-4, -1, members), rng.uniform(0.8, 0.95, members)
    return [TrainConfig(dataset=str(data), hidden=[SIZES[1]], batch_size=BATCH, epochs=epochs, lr=float(lr),
                        beta1=float(b1), seed=k, plot=plot)
            for k, (lr, b1) in enumerate(zip(lrs, betas))]


def time_population(cfgs, root: Path) -> float:
    from polydl.training import run_population

    dirs = [root / f"m{k}" for k in range(len(cfgs))]
    t0 = time.perf_counter()
    run_population(cfgs, dirs)
    return time.perf_counter() - t0


def time_sequential(cfgs, root: Path) -> float:
    from polydl import training

    t0 = time.perf_counter()
    for k, cfg in enumerate(cfgs):
        training.run(cfg, root / f"a{k}")
    return time.perf_counter() - t0


def time_train(reps: int, root: Path) -> list:
    """Wall times of the default ``polydl train`` (``--quiet``), a fresh process each."""
    out = []
    for r in range(reps):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "polydl_cli.main", "train", "--out", str(root / f"train{r}"), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return out


def profile(cfgs, root: Path, path: str) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(time_population, cfgs, root)
    prof.dump_stats(path)
    stats = pstats.Stats(prof)
    for key in ("cumulative", "tottime"):
        print(f"\n--- population run, top 30 by {key} ---")
        stats.sort_stats(key).print_stats(30)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--epochs", default="2,10", help="comma-separated epoch counts")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each comparison (the best is reported: "
                    "the least disturbed on a shared machine)")
    ap.add_argument("--plot", action="store_true", help="write curves.png in every run directory")
    ap.add_argument("--no-train", action="store_true", help="skip the default polydl train")
    ap.add_argument("--train-reps", type=int, default=3)
    ap.add_argument("--threads", default="2", help="BLAS threads")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the population run at the first --epochs instead")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = ap.parse_args(argv)
    epochs = [int(e) for e in args.epochs.split(",")]
    import polydl

    root = Path(tempfile.mkdtemp(prefix="polydl-popruns-"))
    results = {"polydl": str(Path(polydl.__file__).parent), "members": args.members, "runs": []}
    try:
        data = write_data(root / "w1.npz")
        if args.profile:
            time_population(configs(data, 2, 1, args.plot), root / "warm")
            profile(configs(data, args.members, epochs[0], args.plot), root / "prof", args.profile)
            return 0
        warm = configs(data, 2, 1, args.plot)  # imports and compiled kernels loaded before anything is timed
        time_population(warm, root / "warm")
        time_sequential(warm[:1], root / "warm")
        for E in epochs:
            cfgs = configs(data, args.members, E, args.plot)
            pop, seq = [], []
            for r in range(args.reps):
                pop.append(time_population(cfgs, root / f"pop{E}_{r}"))
                seq.append(time_sequential(cfgs, root / f"seq{E}_{r}"))
                shutil.rmtree(root / f"pop{E}_{r}")
                shutil.rmtree(root / f"seq{E}_{r}")
            p, s = min(pop), min(seq)
            results["runs"].append({"epochs": E, "population_s": pop, "sequential_s": seq, "ratio": s / p,
                                    "median_ratio": statistics.median(seq) / statistics.median(pop)})
            print(f"{args.members} x W1, {E:>2} epochs: population {p:7.2f} s   {args.members} sequential runs "
                  f"{s:7.2f} s   ratio {s / p:5.2f}x  (best of {args.reps}; of the medians "
                  f"{statistics.median(seq) / statistics.median(pop):.2f}x)", flush=True)
        if not args.no_train:
            times = time_train(args.train_reps, root)
            results["train_s"] = times
            print(f"default polydl train: best {min(times):.2f} s, median {statistics.median(times):.2f} s  "
                  f"({', '.join(f'{t:.2f}' for t in times)})")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
