"""Softmax, hardmax and C = 2.

Softmax turns the scores z of C classes into probabilities, ŷ_i = e^(z_i) / Σ_j e^(z_j); hardmax
puts a 1 at the largest score and 0 elsewhere. With C = 2 and the scores [0, z], softmax gives
ŷ_1 = e^z / (1 + e^z) = σ(z), the logistic function, and softmax cross-entropy is the logistic
loss; training a two-class softmax regression is logistic regression (the difference of its two
weight columns follows the logistic weights when the logistic rate is twice the softmax one).
For the loss J = −(1/m) Σ_i Σ_j y_j log ŷ_j, dJ/dz = (ŷ − y)/m; it is checked here against
central finite differences. Everything in float64.

    python examples/softmax.py                # writes examples/figures/softmax.png
    python examples/softmax.py --scores 2 1 0.1 --label 0
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import polydl
from polydl import datasets, losses, nn, optim, tensor
from polydl import functional as F
from polydl.testing import gradcheck

FIGURES = Path(__file__).resolve().parent / "figures"


def softmax(z):
    return F.softmax(tensor(np.asarray(z, dtype=np.float64)), axis=-1).numpy()


def two_classes(z):
    """(softmax([0, z])_1, σ(z), softmax cross-entropy on [0, z], logistic loss on z) per z, label 1."""
    z = np.asarray(z, dtype=np.float64)
    scores = np.stack([np.zeros_like(z), z], axis=1)
    p_soft = softmax(scores)[:, 1]
    p_logistic = F.sigmoid(tensor(z)).numpy()
    xent, bce = losses.get("softmax_cross_entropy"), losses.get("binary_cross_entropy")
    ones = np.ones(len(z), dtype=np.int64)
    l_soft = np.array([xent(tensor(s[None]), ones[:1]).item() for s in scores])
    l_logistic = np.array([bce(tensor(v[None]), np.ones(1)).item() for v in z])
    return p_soft, p_logistic, l_soft, l_logistic


def regressions(X, y, lr, steps, seed):
    """Train a 2-class softmax regression (rate α) and a logistic regression (rate 2α, started from
    the softmax's W1 − W0, b1 − b0) with full-batch gradient descent; per step the largest
    difference between their probabilities of class 1 on X."""
    polydl.manual_seed(seed)
    soft = nn.Linear(X.shape[1], 2).to(dtype=np.float64)
    logistic = nn.Linear(X.shape[1], 1).to(dtype=np.float64)
    logistic.weight.data[...] = soft.weight.data[:, 1:] - soft.weight.data[:, :1]
    logistic.bias.data[...] = soft.bias.data[1:] - soft.bias.data[:1]
    opt_s, opt_l = optim.SGD(soft.parameters(), lr=lr), optim.SGD(logistic.parameters(), lr=2 * lr)
    xent, bce = losses.get("softmax_cross_entropy"), losses.get("binary_cross_entropy")
    x = tensor(X)
    gaps = []
    for _ in range(steps + 1):
        with polydl.no_grad():
            p_s = F.softmax(soft(x), axis=-1).numpy()[:, 1]
            p_l = F.sigmoid(logistic(x)).numpy()[:, 0]
        gaps.append(float(np.abs(p_s - p_l).max()))
        for opt, model, loss_fn, target in ((opt_s, soft, xent, y), (opt_l, logistic, bce, y.astype(np.float64))):
            opt.zero_grad()
            loss_fn(model(x), target).backward()
            opt.step()
    return np.array(gaps), float(((p_s > 0.5) == y).mean())


def dj_dz(z, label, h=1e-6):
    """(autodiff dJ/dz, ŷ − y, central differences) for one sample (m = 1)."""
    xent = losses.get("softmax_cross_entropy")
    labels = np.array([label])
    zt = tensor(np.asarray(z, dtype=np.float64)[None], requires_grad=True)
    xent(zt, labels).backward()
    formula = softmax(z) - np.eye(len(z))[label]
    numeric = np.empty(len(z))
    for i in range(len(z)):
        e = np.zeros((1, len(z)))
        e[0, i] = h
        plus = xent(tensor(zt.numpy() + e), labels).item()
        minus = xent(tensor(zt.numpy() - e), labels).item()
        numeric[i] = (plus - minus) / (2 * h)
    return zt.grad[0].copy(), formula, numeric


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=float, nargs="+", default=[5.0, 2.0, -1.0, 3.0], help="z of the example")
    parser.add_argument("--label", type=int, default=0, help="true class of the example (for dJ/dz)")
    parser.add_argument("--points", type=int, default=2001, help="values of z in the C = 2 comparison")
    parser.add_argument("--steps", type=int, default=500, help="gradient-descent steps of the two regressions")
    parser.add_argument("--lr", type=float, default=0.5, help="α of the softmax regression")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    if not 0 <= args.label < len(args.scores):
        parser.error(f"--label must be a class index in [0, {len(args.scores)}), not {args.label}")

    z = np.array(args.scores)
    p, hard = softmax(z), F.hardmax(tensor(z[None])).numpy()[0]
    print(f"z = {z.tolist()}: softmax {np.round(p, 4).tolist()}, hardmax {hard.astype(int).tolist()}")

    zs = np.linspace(-30, 30, args.points)
    p_soft, p_logistic, l_soft, l_logistic = two_classes(zs)
    c2_prob = float(np.abs(p_soft - p_logistic).max())
    c2_loss = float((np.abs(l_soft - l_logistic) / np.maximum(1.0, np.abs(l_logistic))).max())
    print(f"C = 2, {args.points} values of z in [-30, 30]: max |softmax([0, z])_1 − σ(z)| = {c2_prob:.2e}, "
          f"max |softmax cross-entropy − logistic loss| / max(1, loss) = {c2_loss:.2e}")
    data = datasets.load("moons", seed=args.seed)
    gaps, accuracy = regressions(data.X_train.astype(np.float64), data.y_train, args.lr, args.steps, args.seed)
    print(f"softmax regression (α = {args.lr}) against logistic regression (α = {2 * args.lr}) on the moons: "
          f"largest difference of their probabilities over {args.steps} steps {gaps.max():.2e} "
          f"(training accuracy {100 * accuracy:.1f}%)")

    auto, formula, numeric = dj_dz(z, args.label)
    fd_err = float(np.abs(auto - numeric).max())
    formula_err = float(np.abs(auto - formula).max())
    print(f"dJ/dz for label {args.label}: autodiff {np.round(auto, 6).tolist()}; |autodiff − (ŷ − y)| ≤ "
          f"{formula_err:.1e}, |autodiff − finite differences| ≤ {fd_err:.1e}")
    rng = np.random.default_rng(args.seed)
    batch = tensor(rng.normal(0, 2, (8, len(z))), requires_grad=True)
    labels = rng.integers(0, len(z), 8)
    ok = gradcheck(lambda s: losses.get("softmax_cross_entropy")(s, labels), batch, raise_exception=False)
    print(f"polydl.testing.gradcheck of softmax cross-entropy on a batch of 8: {'passed' if ok else 'failed'}")

    fig = Figure(figsize=(13, 7.5), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    ax_p, ax_c, ax_r, ax_g = (fig.add_subplot(2, 2, i + 1) for i in range(4))
    classes = np.arange(len(z))
    ax_p.bar(classes - 0.2, p, 0.4, label="softmax")
    ax_p.bar(classes + 0.2, hard, 0.4, label="hardmax")
    for c in classes:
        ax_p.text(c - 0.2, p[c] + 0.02, f"{p[c]:.3f}", ha="center", fontsize=8)
    ax_p.set(xticks=classes, xlabel="class", ylabel="output", ylim=(0, 1.12),
             title=f"softmax against hardmax, z = [{', '.join(f'{v:g}' for v in z)}]")
    ax_p.legend(fontsize=8)
    ax_c.plot(zs, p_soft, label="softmax([0, z])₁", linewidth=3, alpha=0.5)
    ax_c.plot(zs, p_logistic, "--", label="σ(z) = 1/(1 + e^(−z))")
    ax_c.set(xlabel="z", ylabel="probability of class 1", title="C = 2: softmax is the logistic function")
    twin = ax_c.twinx()
    rel = np.abs(l_soft - l_logistic) / np.maximum(1.0, np.abs(l_logistic))
    twin.semilogy(zs[rel > 0], rel[rel > 0], ".", color="C3", markersize=2)
    twin.set_ylim(1e-18, 1e-13)
    twin.set_ylabel("loss difference / max(1, loss)  (dots; 0 not drawn)", color="C3")
    ax_c.text(1, 0.25, f"max |softmax([0, z])₁ − σ(z)| = {c2_prob:.1e}", fontsize=8)
    ax_c.legend(fontsize=8, loc="upper left")
    ax_r.semilogy(np.maximum(gaps, 1e-18), color="C2")
    ax_r.set(xlabel="gradient-descent step", ylabel="max |ŷ₁ softmax − ŷ logistic|", ylim=(1e-18, 1e-12),
             title="softmax regression (α) against logistic regression (2α), float64")
    width = 0.27
    ax_g.bar(classes - width, auto, width, label="autodiff")
    ax_g.bar(classes, formula, width, label="ŷ − y")
    ax_g.bar(classes + width, numeric, width, label="central differences")
    ax_g.axhline(0, color="0.5", linewidth=0.8)
    ax_g.set(xticks=classes, xlabel="class", ylabel="dJ/dz", title=f"dJ/dz = ŷ − y (true class {args.label}); "
             f"autodiff vs differences ≤ {fd_err:.0e}")
    ax_g.legend(fontsize=8)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "softmax.png"
    fig.savefig(path)
    print(f"wrote {path}")
    return {"softmax": p, "hardmax": hard, "c2_prob_diff": c2_prob, "c2_loss_diff": c2_loss,
            "regression_gap": float(gaps.max()), "dj_dz": auto, "dj_dz_formula": formula,
            "dj_dz_numeric": numeric, "gradcheck": ok, "path": path}


if __name__ == "__main__":
    main()
