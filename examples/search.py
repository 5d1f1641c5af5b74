"""Random search beats a grid, on the right scale.

25 trials of the same small MLP trained with Adam on the digits, over two hyperparameters: the
learning rate α, which matters, and Adam's ε, which hardly does. A 5×5 grid (log-spaced) tries 5
values of α, each five times with a different ε; 25 random trials (both log-uniform) try 25.
Then where samples land: α uniform on [1e-4, 1] against log-uniform, and β uniform on
[0.9, 0.999] against 1 − β log-uniform on [0.001, 0.1].

    python examples/search.py                 # writes examples/figures/search.png
    python examples/search.py --trials 49 --epochs 8
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import polydl
from polydl import datasets, losses, nn, optim, tensor

FIGURES = Path(__file__).resolve().parent / "figures"
ALPHA = (1e-4, 1.0)     # range of the learning rate
EPS = (1e-10, 1e-6)     # range of Adam's ε
BETA = (0.9, 0.999)     # range of a moving-average β


def log_uniform(rng, low, high, n):
    """10^r with r uniform on [log10 low, log10 high]."""
    return 10 ** rng.uniform(math.log10(low), math.log10(high), n)


def grid(n_per_axis):
    """All pairs of n log-spaced values of α and of ε."""
    alphas = np.logspace(math.log10(ALPHA[0]), math.log10(ALPHA[1]), n_per_axis)
    epsilons = np.logspace(math.log10(EPS[0]), math.log10(EPS[1]), n_per_axis)
    return [(a, e) for a in alphas for e in epsilons]


def random_trials(rng, n):
    return list(zip(log_uniform(rng, *ALPHA, n), log_uniform(rng, *EPS, n)))


def validation_loss(data, lr, eps, epochs, batches, hidden, seed):
    """Validation loss after training with Adam(lr, eps); the same initial weights and mini-batch
    order for every trial. A diverged run counts as log(classes), the loss of a uniform guess."""
    polydl.manual_seed(seed)
    model = nn.mlp([data.num_features, hidden, data.num_classes], activation="relu", normalizer="none")
    opt = optim.Adam(model.parameters(), lr=lr, eps=eps)
    loss_fn = losses.get("softmax_cross_entropy")
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(epochs):
            for idx in np.array_split(rng.permutation(len(data.y_train)), batches):
                opt.zero_grad()
                loss_fn(model(tensor(data.X_train[idx])), data.y_train[idx]).backward()
                opt.step()
        with polydl.no_grad():
            val = float(loss_fn(model(tensor(data.X_val)), data.y_val).item())
    return min(val, math.log(data.num_classes)) if math.isfinite(val) else math.log(data.num_classes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=25, help="budget of each search (a square number)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=20, help="mini-batches per epoch")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--samples", type=int, default=10000, help="draws for the histograms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    side = math.isqrt(args.trials)
    if side * side != args.trials:
        parser.error(f"--trials must be a square number (a {side}×{side} grid is {side * side}), not {args.trials}")

    rng = np.random.default_rng(args.seed)
    data = datasets.load("digits", seed=args.seed)
    searches = {"grid": grid(side), "random": random_trials(rng, args.trials)}
    results = {}
    for name, trials in searches.items():
        scores = [validation_loss(data, a, e, args.epochs, args.batches, args.hidden, args.seed) for a, e in trials]
        best = int(np.argmin(scores))
        results[name] = {"trials": trials, "val_loss": scores, "distinct_alphas": len({a for a, _ in trials}),
                         "distinct_eps": len({e for _, e in trials}), "best": trials[best], "best_loss": scores[best]}
        print(f"{name:6s}: {args.trials} trials, {results[name]['distinct_alphas']} distinct values of α and "
              f"{results[name]['distinct_eps']} of ε; best α = {trials[best][0]:.3g} (ε = {trials[best][1]:.1e}) "
              f"with validation loss {scores[best]:.4f}")
    if results["random"]["best_loss"] < results["grid"]["best_loss"]:
        print("random search found the better α")
    else:
        print("Not as the claim has it: here the grid found an α at least as good as random search did (random "
              f"search still tried {results['random']['distinct_alphas']} values of α, the grid "
              f"{results['grid']['distinct_alphas']})")

    n = args.samples
    draws = {"α uniform": rng.uniform(*ALPHA, n), "α log-uniform": log_uniform(rng, *ALPHA, n),
             "β uniform": rng.uniform(*BETA, n),
             "β: 1 − β log-uniform": 1 - log_uniform(rng, 1 - BETA[1], 1 - BETA[0], n)}
    shares = {"α < 0.1": {k: float(np.mean(draws[k] < 0.1)) for k in ("α uniform", "α log-uniform")},
              "β > 0.99": {k: float(np.mean(draws[k] > 0.99)) for k in ("β uniform", "β: 1 − β log-uniform")}}
    for what, by in shares.items():
        print(f"share of samples with {what}: " + ", ".join(f"{k} {v:.3f}" for k, v in by.items()))

    fig = Figure(figsize=(13, 7.5), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    ax_s, ax_c, ax_a, ax_b = (fig.add_subplot(2, 2, i + 1) for i in range(4))
    everything = results["grid"]["val_loss"] + results["random"]["val_loss"]
    for name, marker in (("grid", "s"), ("random", "o")):
        a, e = np.array(results[name]["trials"]).T
        sc = ax_s.scatter(a, e, c=results[name]["val_loss"], marker=marker, s=40, cmap="viridis_r",
                          vmin=min(everything), vmax=max(everything), label=name, edgecolors="k", linewidths=0.3)
        order = np.argsort(a)
        ax_c.plot(a[order], np.array(results[name]["val_loss"])[order], marker=marker, linestyle="-" if name == "random"
                  else "none", label=f"{name}: {results[name]['distinct_alphas']} values of α")
    fig.colorbar(sc, ax=ax_s, label="validation loss")
    ax_s.set(xscale="log", yscale="log", xlabel="α", ylabel="Adam's ε", title="the 25 trials of each search")
    ax_s.legend(fontsize=8)
    ax_c.set(xscale="log", yscale="log", xlabel="α", ylabel="validation loss",
             title="validation loss against the hyperparameter that matters")
    ax_c.legend(fontsize=8)
    bins = np.logspace(-4, 0, 41)
    for k in ("α uniform", "α log-uniform"):
        ax_a.hist(draws[k], bins=bins, alpha=0.6, label=f"{k} ({100 * shares['α < 0.1'][k]:.0f}% below 0.1)")
    ax_a.set(xscale="log", xlabel="α", ylabel="samples", title=f"{n} draws of α on [1e-4, 1]")
    ax_a.legend(fontsize=8)
    bins = np.logspace(-3, -1, 41)
    for k in ("β uniform", "β: 1 − β log-uniform"):
        ax_b.hist(1 - draws[k], bins=bins, alpha=0.6, label=f"{k} ({100 * shares['β > 0.99'][k]:.0f}% above 0.99)")
    ax_b.set(xscale="log", xlabel="1 − β   (β = 0.999 at the left, 0.9 at the right)", ylabel="samples",
             title=f"{n} draws of β on [0.9, 0.999]")
    ax_b.legend(fontsize=8)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "search.png"
    fig.savefig(path)
    print(f"wrote {path}")
    return {"searches": results, "draws": draws, "shares": shares, "path": path}


if __name__ == "__main__":
    main()
