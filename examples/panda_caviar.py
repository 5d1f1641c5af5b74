"""Panda or caviar: babysit one model, or train many at once.

Panda: one run of a BatchNorm MLP on the digits, watched epoch by epoch; whenever its validation
loss has not improved for ``--patience`` epochs, the run is resumed with a third of its
learning rate (``training.resume(run, {"lr": α/3})``), as someone watching the curves would do.
Caviar: a population of ``--members`` copies of the same model, each with a learning rate drawn
log-uniform on [1e-4, 1e-1] and its own seed, trained at once as one batched computation
(``training.run_population``) with no one watching. The figure shows the panda's validation loss
with its α changes marked, beside every member's curve, coloured by its α.

    python examples/panda_caviar.py          # writes examples/figures/panda_caviar.png
    python examples/panda_caviar.py --members 32 --epochs 30
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from matplotlib import cm
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from polydl import training
from polydl.training import TrainConfig

FIGURES = Path(__file__).resolve().parent / "figures"


def base_config(args) -> TrainConfig:
    return TrainConfig(dataset="digits", hidden=[args.hidden], epochs=args.epochs, batch_size=args.batch_size,
                       schedule="constant", lr=args.lr, plot=False)


def panda(args, root: Path) -> dict:
    """One run, resumed with α/3 whenever its validation loss stalls for ``patience`` epochs."""
    out = root / "panda"
    cfg = base_config(args)
    start = time.perf_counter()
    training.run(cfg.replace(epochs=1), out, reporter=training.Reporter())
    changes, lr, best, since = [], args.lr, math.inf, 0
    for epoch in range(2, args.epochs + 1):
        last = training.checkpoint.read_metrics(out / "metrics.jsonl")[-1]
        if last["val_loss"] < best - 1e-4:
            best, since = last["val_loss"], 0
        else:
            since += 1
        change = {"epochs": epoch}
        if since >= args.patience:
            lr, since = lr / 3, 0
            change["lr"] = lr
            changes.append((epoch, lr))
        training.resume(out, change, reporter=training.Reporter())
    history = training.checkpoint.read_metrics(out / "metrics.jsonl")
    return {"val_loss": [r["val_loss"] for r in history], "lr": [r["lr"] for r in history], "changes": changes,
            "seconds": time.perf_counter() - start, "final": history[-1]["val_loss"]}


def caviar(args, root: Path) -> dict:
    """A population of the same model with sampled learning rates, trained at once."""
    rng = np.random.default_rng(args.seed)
    lrs = (10 ** rng.uniform(-4, -1, args.members)).tolist()
    configs = [base_config(args).replace(lr=lr, seed=k) for k, lr in enumerate(lrs)]
    start = time.perf_counter()
    results = training.run_population(configs, [root / f"caviar/{k:02d}" for k in range(args.members)],
                                      reporter=training.population.PopulationReporter())
    curves = [[r["val_loss"] for r in res.history] for res in results]
    finals = [c[-1] for c in curves]
    best = int(np.argmin(finals))
    return {"lrs": lrs, "val_loss": curves, "best": best, "best_lr": lrs[best], "final": finals[best],
            "seconds": time.perf_counter() - start}


def figure(p: dict, c: dict, path: Path) -> None:
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, sharey=True)
    epochs = np.arange(1, len(p["val_loss"]) + 1)
    left.plot(epochs, p["val_loss"], color="black", marker="o", ms=3)
    for epoch, lr in p["changes"]:
        left.axvline(epoch, color="tab:red", alpha=0.4, lw=1)
        left.annotate(f"α→{lr:.2g}", (epoch, max(p["val_loss"])), fontsize=7, rotation=90, va="top", ha="right")
    left.set(title=f"panda: one model babysat ({p['seconds']:.1f} s)", xlabel="epoch", ylabel="validation loss",
             yscale="log")
    norm = LogNorm(min(c["lrs"]), max(c["lrs"]))
    for lr, curve in zip(c["lrs"], c["val_loss"]):
        right.plot(np.arange(1, len(curve) + 1), curve, color=cm.viridis(norm(lr)), lw=1, alpha=0.8)
    right.plot(np.arange(1, len(c["val_loss"][c["best"]]) + 1), c["val_loss"][c["best"]], color="black", lw=2,
               label=f"best member, α = {c['best_lr']:.2g}")
    right.set(title=f"caviar: {len(c['lrs'])} models at once ({c['seconds']:.1f} s)", xlabel="epoch")
    right.legend(fontsize=8)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=right, label="α")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.03, help="the panda's starting α")
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=FIGURES)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        p = panda(args, Path(tmp))
        c = caviar(args, Path(tmp))
    path = args.out / "panda_caviar.png"
    figure(p, c, path)
    print(f"panda: final validation loss {p['final']:.4f} after {len(p['changes'])} learning-rate change(s) "
          f"{[f'{lr:.3g} at epoch {e}' for e, lr in p['changes']]}, {p['seconds']:.1f} s")
    print(f"caviar: {args.members} members at once in {c['seconds']:.1f} s; best member α = {c['best_lr']:.3g}, "
          f"final validation loss {c['final']:.4f}")
    better = "caviar" if c["final"] < p["final"] else "panda"
    print(f"the lower final validation loss: {better}")
    print(f"figure written to {path}")
    return {"panda": p, "caviar": c, "better": better, "path": path}


if __name__ == "__main__":
    main()
