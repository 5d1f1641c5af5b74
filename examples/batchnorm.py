"""Batch normalization: the same deep MLP trained with and without BatchNorm at the same learning
rates, how one hidden layer's pre-activations move during training, and what BatchNorm uses at
test time.

With BatchNorm a hidden layer computes z̃ = γ (z − μ)/√(σ² + ε) + β with μ, σ² of the mini-batch;
without it the activation gets z = W a + b directly. The pre-activations (what goes into the
ReLU: z̃ or z) are recorded after every epoch on one fixed batch of training data, in training
mode, with BatchNorm's running averages put back afterwards. At test time BatchNorm uses its
running averages (momentum 0.9) instead of batch statistics; they are compared with the mean and
variance of z over the whole training set, computed with the final weights.

    python examples/batchnorm.py              # writes examples/figures/batchnorm.png
    python examples/batchnorm.py --depth 8 --lrs 0.01 0.1 1
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import polydl
from polydl import datasets, losses, nn, optim, tensor

FIGURES = Path(__file__).resolve().parent / "figures"
PERCENTILES = (5, 25, 50, 75, 95)


def hidden_inputs(model, x, layer):
    """The input of the ``layer``-th activation (counted from 1) for the batch x, layer by layer."""
    seen = 0
    for module in model:
        if isinstance(module, nn.ReLU):
            seen += 1
            if seen == layer:
                return x.numpy()
        x = module(x)
    raise ValueError(f"the model has {seen} hidden layers, not {layer}")


def probe(model, x, layer):
    """``hidden_inputs`` in training mode, leaving the running averages as they were."""
    saved = [b.data.copy() for b in model.buffers()]
    with polydl.no_grad():
        z = hidden_inputs(model, x, layer)
    for b, s in zip(model.buffers(), saved):
        b.data[...] = s
    return z


def train(data, sizes, normalizer, lr, epochs, batches, layer, probe_rows, seed):
    """Mini-batch gradient descent; per epoch the mean training loss (NaN once it diverged) and the
    probe layer's pre-activations."""
    polydl.manual_seed(seed)
    model = nn.mlp(sizes, activation="relu", normalizer=normalizer)
    opt = optim.SGD(model.parameters(), lr=lr)
    loss_fn = losses.get("softmax_cross_entropy")
    rng = np.random.default_rng(seed)
    x_probe = tensor(data.X_train[probe_rows])
    out = {"loss": [], "z": [probe(model, x_probe, layer)], "model": model, "diverged": None}
    for epoch in range(1, epochs + 1):
        total = []
        for idx in np.array_split(rng.permutation(len(data.y_train)), batches):
            opt.zero_grad()
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows on its way to NaN
                loss = loss_fn(model(tensor(data.X_train[idx])), data.y_train[idx])
            total.append(float(loss.item()))
            if not np.isfinite(total[-1]):
                break
            loss.backward()
            opt.step()
        if not np.all(np.isfinite(total)):
            out["diverged"] = epoch
            out["loss"].extend([np.nan] * (epochs - epoch + 1))
            break
        out["loss"].append(float(np.mean(total)))
        out["z"].append(probe(model, x_probe, layer))
    return out


def shift(zs):
    """How far a layer's input distribution moved from the first record to the last: the mean over
    units of |μ_last − μ_first| / σ_first and of |log(σ_last / σ_first)|."""
    first, last = zs[0], zs[-1]
    s0 = first.std(axis=0) + 1e-12
    return (float(np.mean(np.abs(last.mean(axis=0) - first.mean(axis=0)) / s0)),
            float(np.mean(np.abs(np.log((last.std(axis=0) + 1e-12) / s0)))))


def running_vs_true(model, X):
    """For every BatchNorm layer: (running mean, true mean, running var, true var), the true ones of
    its input z over all of X, with the model in evaluation mode (as it runs at test time)."""
    model.eval()
    rows = []
    x = tensor(X)
    with polydl.no_grad():
        for module in model:
            if isinstance(module, nn.BatchNorm):
                z = x.numpy()
                rows.append((module.running_mean.numpy().copy(), z.mean(axis=0),
                             module.running_var.numpy().copy(), z.var(axis=0)))
            x = module(x)
    model.train()
    return rows


def report_shifts(runs, lrs, layer) -> dict:
    """Print each run's final loss and how far the watched layer's input distribution moved, and
    say where BatchNorm's layer moved no less than the plain one's; the figures per run."""
    print(f"{'α':>6s} {'normalizer':>10s} {'final loss':>11s} {'mean shift':>11s} {'|log std ratio|':>16s}"
          f"   (hidden layer {layer}, first record to last)")
    results = {}
    for (norm, lr), r in runs.items():
        mean_shift, std_shift = shift(r["z"]) if not r["diverged"] else (None, None)
        results[norm, lr] = {"loss": r["loss"], "diverged": r["diverged"], "mean_shift": mean_shift,
                             "std_shift": std_shift}
        if r["diverged"]:
            print(f"{lr:6g} {norm:>10s} {'diverged':>11s} {'—':>11s} {'—':>16s}   (NaN loss in epoch {r['diverged']})")
        else:
            print(f"{lr:6g} {norm:>10s} {r['loss'][-1]:11.4f} {mean_shift:11.3f} {std_shift:16.3f}")
    for lr in lrs:
        plain, bn = results["none", lr], results["batchnorm", lr]
        if not plain["diverged"] and not bn["diverged"] and bn["mean_shift"] >= plain["mean_shift"]:
            print(f"Not as the claim has it: at α = {lr:g} the BatchNorm layer's input mean moved no less than "
                  "the plain one's")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=6, help="hidden layers")
    parser.add_argument("--width", type=int, default=64, help="units per hidden layer")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.02, 0.2, 1.0], help="learning rates α")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batches", type=int, default=40, help="mini-batches per epoch")
    parser.add_argument("--layer", type=int, default=None, help="hidden layer to watch (default: the last)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    layer = args.layer or args.depth

    data = datasets.load("digits", seed=args.seed)
    sizes = [data.num_features] + [args.width] * args.depth + [data.num_classes]
    probe_rows = np.random.default_rng(args.seed).choice(len(data.y_train), 256, replace=False)
    runs = {}
    for lr in args.lrs:
        for norm in ("none", "batchnorm"):
            runs[norm, lr] = train(data, sizes, norm, lr, args.epochs, args.batches, layer, probe_rows, args.seed)

    print(f"MLP {'-'.join(map(str, sizes))}, ReLU, plain mini-batch gradient descent, {args.epochs} epochs of "
          f"{args.batches} mini-batches on digits")
    results = report_shifts(runs, args.lrs, layer)

    trained = [lr for lr in args.lrs if not runs["batchnorm", lr]["diverged"]]
    if not trained:
        parser.exit(1, "every run with BatchNorm diverged: give smaller --lrs\n")
    test_time = {}
    for lr in trained:
        table = running_vs_true(runs["batchnorm", lr]["model"], data.X_train)
        test_time[lr] = {"table": table,
                         "mean_error": max(float(np.max(np.abs(rm - tm) / np.sqrt(tv))) for rm, tm, _, tv in table),
                         "var_error": max(float(np.max(np.abs(rv / tv - 1))) for _, _, rv, tv in table),
                         "var_ratio": float(np.median(np.concatenate([rv / tv for _, _, rv, tv in table])))}
        t = test_time[lr]
        print(f"test time, α = {lr:g}: running means within {t['mean_error']:.3f} true standard deviations of the "
              f"training-set means, running variances within {100 * t['var_error']:.1f}% of the training-set "
              f"variances (median ratio {t['var_ratio']:.3f}) over {len(table)} BatchNorm layers")
    worse = [lr for lr in args.lrs if not runs["none", lr]["diverged"] and not runs["batchnorm", lr]["diverged"]
             and runs["batchnorm", lr]["loss"][-1] > runs["none", lr]["loss"][-1]]
    if worse:
        print("Not as the claim has it (BatchNorm speeds up training): at α = " + ", ".join(f"{lr:g}" for lr in worse)
              + " the network without BatchNorm ends with the lower training loss")
    lost = [lr for lr in args.lrs if runs["none", lr]["diverged"] and not runs["batchnorm", lr]["diverged"]]
    if lost:
        print("only with BatchNorm does training survive α = " + ", ".join(f"{lr:g}" for lr in lost))

    fig = Figure(figsize=(13, 7.5), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    ax_l, ax_t, ax_z0, ax_z1 = (fig.add_subplot(2, 2, i + 1) for i in range(4))
    epochs = np.arange(1, args.epochs + 1)
    for i, lr in enumerate(args.lrs):
        for norm, style in (("none", ":"), ("batchnorm", "-")):
            r = runs[norm, lr]
            label = f"α = {lr:g}, {'BatchNorm' if norm == 'batchnorm' else 'no normalizer'}"
            if r["diverged"]:
                label += f" (diverged in epoch {r['diverged']})"
            ax_l.plot(epochs, r["loss"], style, color=f"C{i}", label=label)
    ax_l.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="loss")
    ax_l.legend(fontsize=7)
    lr_z = next((lr for lr in sorted(args.lrs, reverse=True)
                 if not runs["none", lr]["diverged"] and not runs["batchnorm", lr]["diverged"]), trained[0])
    table = test_time[lr_z]["table"]
    for k, (rm, tm, rv, tv) in enumerate(table):
        ax_t.scatter(tm, rm, s=8, color="C0", label="mean" if k == 0 else None)
        ax_t.scatter(tv, rv, s=8, color="C3", marker="x", label="variance" if k == 0 else None)
    lo = min(min(t.min(), r.min()) for r, t, _, _ in table)
    hi = max(max(v.max(), r.max()) for _, _, r, v in table)
    ax_t.plot([lo, hi], [lo, hi], color="0.5", linewidth=0.8)
    ax_t.set(xlabel="statistic of z over the whole training set", ylabel="BatchNorm's running average",
             title=f"test time: running averages of every BatchNorm layer (α = {lr_z:g})")
    ax_t.legend(fontsize=8)
    for ax, norm, what in ((ax_z0, "none", "z"), (ax_z1, "batchnorm", "z̃")):
        zs = runs[norm, lr_z]["z"]
        q = np.array([np.percentile(z, PERCENTILES) for z in zs])
        e = np.arange(len(zs))
        ax.fill_between(e, q[:, 0], q[:, 4], alpha=0.2, color="C0", label="5–95%")
        ax.fill_between(e, q[:, 1], q[:, 3], alpha=0.4, color="C0", label="25–75%")
        ax.plot(e, q[:, 2], color="C0", label="median")
        unit = np.array([z[:, 0].mean() for z in zs])
        ax.plot(e, unit, color="C1", linewidth=1, label="mean of unit 0")
        ax.set(xlabel="epoch", ylabel=what, title=f"hidden layer {layer}'s pre-activations {what}, "
               f"{'BatchNorm' if norm == 'batchnorm' else 'no normalizer'}, α = {lr_z:g}")
        ax.legend(fontsize=7, loc="upper left")
    ylim = (min(a.get_ylim()[0] for a in (ax_z0, ax_z1)), max(a.get_ylim()[1] for a in (ax_z0, ax_z1)))
    ax_z0.set_ylim(ylim)
    ax_z1.set_ylim(ylim)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "batchnorm.png"
    fig.savefig(path)
    print(f"wrote {path}")
    return {"results": results, "test_time": test_time, "path": path}


if __name__ == "__main__":
    main()
