"""Learning-rate decay: α against epoch for five decay schedules, and what each does to training.

The same MLP (same initial weights, same mini-batch order) is trained on the digits with plain
mini-batch gradient descent under each schedule and under a constant α. Decay is meant to let
the iterates settle near a minimum instead of wandering around it, so besides the validation
loss the figure shows how far the weights move in each epoch, ‖W_e − W_(e−1)‖.

    python examples/decay.py                  # writes examples/figures/decay.png
    python examples/decay.py --epochs 60 --lr0 0.5
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import polydl
from polydl import datasets, losses, nn, optim, schedules, tensor

FIGURES = Path(__file__).resolve().parent / "figures"

# name in the legend: (schedule, its parameters)
SCHEDULES = {
    "constant": ("constant", {}),
    "α0/(1 + 0.2·epoch)": ("inverse_time", {"decay_rate": 0.2}),
    "0.95^epoch·α0": ("exponential", {"base": 0.95}),
    "1/√epoch·α0": ("inverse_sqrt_epoch", {"k": 1.0}),
    "3/√t·α0 (t: step)": ("inverse_sqrt_step", {"k": 3.0}),
    "staircase ×0.5 / 5 epochs": ("staircase", {"factor": 0.5, "every": 5}),
}


def flat_weights(model):
    return np.concatenate([p.numpy().ravel() for p in model.parameters()])


def train(schedule, data, hidden, epochs, batches, seed):
    """Train one model under ``schedule``; per epoch: α (at every step), validation loss and the
    distance the weights moved."""
    polydl.manual_seed(seed)
    model = nn.mlp([data.num_features, *hidden, data.num_classes], activation="relu", normalizer="none")
    opt = optim.SGD(model.parameters(), lr=schedule(1, 1))
    loss_fn = losses.get("softmax_cross_entropy")
    rng = np.random.default_rng(seed)
    weights = flat_weights(model)
    out = {"alpha": [], "val_loss": [], "movement": []}
    step = 0
    for epoch in range(1, epochs + 1):
        for idx in np.array_split(rng.permutation(len(data.y_train)), batches):
            step += 1
            opt.lr = schedule(epoch, step)
            out["alpha"].append(opt.lr)
            opt.zero_grad()
            loss_fn(model(tensor(data.X_train[idx])), data.y_train[idx]).backward()
            opt.step()
        with polydl.no_grad():
            out["val_loss"].append(float(loss_fn(model(tensor(data.X_val)), data.y_val).item()))
        now = flat_weights(model)
        out["movement"].append(float(np.linalg.norm(now - weights)))
        weights = now
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batches", type=int, default=80, help="mini-batches per epoch")
    parser.add_argument("--lr0", type=float, default=0.3, help="α0 of every schedule")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64])
    parser.add_argument("--last", type=int, default=10, help="epochs at the end to summarise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args(argv)

    data = datasets.load("digits", seed=args.seed)
    runs = {}
    for label, (name, params) in SCHEDULES.items():
        runs[label] = train(schedules.get(name, lr0=args.lr0, **params), data, args.hidden, args.epochs,
                            args.batches, args.seed)

    last = min(args.last, args.epochs)
    print(f"SGD, α0 = {args.lr0}, {args.epochs} epochs of {args.batches} mini-batches on digits; "
          f"over the last {last} epochs:")
    print(f"{'schedule':28s} {'final α':>9s} {'val loss':>9s} {'± (std)':>8s} {'moved/epoch':>12s}")
    summary = {}
    for label, r in runs.items():
        tail = np.array(r["val_loss"][-last:])
        summary[label] = {"val_loss": float(tail.mean()), "val_std": float(tail.std()),
                          "movement": float(np.mean(r["movement"][-last:]))}
        s = summary[label]
        print(f"{label:28s} {r['alpha'][-1]:9.4f} {s['val_loss']:9.4f} {s['val_std']:8.4f} {s['movement']:12.4f}")
    calmer = [k for k in runs if k != "constant" and summary[k]["movement"] < summary["constant"]["movement"]]
    better = [k for k in runs if k != "constant" and summary[k]["val_loss"] < summary["constant"]["val_loss"]]
    print(f"{len(calmer)} of {len(runs) - 1} decayed schedules move the weights less per epoch than constant α at "
          f"the end, {len(better)} of {len(runs) - 1} end with a lower validation loss.")
    for k in runs:
        if k != "constant" and k not in calmer:
            print(f"Not as the claim has it: under {k} the weights move no less than under constant α.")
        if k != "constant" and k not in better:
            drop = runs[k]["alpha"][args.batches - 1] / args.lr0
            print(f"Not as the claim has it: {k} ends with a validation loss no lower than constant α's "
                  f"(its α is already {drop:.2f}·α0 at the end of epoch 1).")

    fig = Figure(figsize=(13, 3.8), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    ax_a, ax_v, ax_m = (fig.add_subplot(1, 3, i + 1) for i in range(3))
    epochs = np.arange(1, args.epochs + 1)
    for label, r in runs.items():
        t = np.arange(len(r["alpha"])) / args.batches + 1  # fractional epoch of each step
        ax_a.plot(t, r["alpha"], label=label)
        ax_v.plot(epochs, r["val_loss"], label=label)
        ax_m.plot(epochs, r["movement"], label=label)
    ax_a.set(xlabel="epoch", ylabel="α", yscale="log", title="learning rate")
    ax_v.set(xlabel="epoch", ylabel="validation loss", yscale="log", title="validation loss")
    ax_m.set(xlabel="epoch", ylabel="‖W_e − W_(e−1)‖", yscale="log", title="how far the weights move per epoch")
    ax_a.legend(fontsize=7)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "decay.png"
    fig.savefig(path)
    print(f"wrote {path}")
    return {"runs": runs, "summary": summary, "path": path}


if __name__ == "__main__":
    main()
