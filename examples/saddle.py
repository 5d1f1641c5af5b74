"""Saddle points, not local optima: how optimizers leave a saddle, and what the critical points of
small networks are.

(a) On f(w) = w1² + (w2² − 1)²/4, a saddle at the origin (f = 1/4, Hessian diag(2, −1)) between
minima at (0, ±1), plain gradient descent, gradient descent with mini-batch noise, momentum,
RMSprop and Adam start from the same point just off the saddle's stable line (w2 = 1e-4). The
mini-batch loss is f(w) + mean of aᵢ·w over the batch, with aᵢ drawn once with mean 0, so the full
batch gives exactly f and a mini-batch only adds noise to the gradient. "Left" is |w2| ≥ 1/2.

(b) For 2-h-1 tanh networks on 40 points of the moons (mean squared error plus (λ/2)‖W‖², which
leaves no critical points at infinity), full-batch gradient descent runs from several small
random starts; from snapshots along each run Newton's method (which converges to the nearest
critical point whatever its index) drives ‖∇J‖ below 1e-9. At each distinct critical point the
Hessian (central differences of polydl's float64 autodiff gradient) gives the fraction of
negative eigenvalues, plotted against the number of parameters.

    python examples/saddle.py                 # writes examples/figures/saddle.png
    python examples/saddle.py --hidden 1 2 4 8 16 --seeds 12
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from polydl import datasets, optim, tensor
from polydl import functional as F

FIGURES = Path(__file__).resolve().parent / "figures"
ESCAPED = 0.5  # |w2| at which an optimizer has left the saddle


# ---------------------------------------------------------------------------- (a) a 2-D saddle
def surface(w):
    """f(w) = w1² + (w2² − 1)²/4 for a parameter w of shape (2,)."""
    x, y = w[0], w[1]
    return x * x + (y * y - 1.0) ** 2 * 0.25


def descend(make_opt, start, steps, noise=None, batch=None, seed=0):
    """The path of ``make_opt([w])`` on the surface; with ``noise`` (an (n, 2) array of mean 0)
    each step sees f(w) + mean(aᵢ·w) over a mini-batch of ``batch`` rows."""
    w = tensor(np.array(start, dtype=np.float64), requires_grad=True)
    opt = make_opt([w])
    rng = np.random.default_rng(seed)
    path = [w.numpy().copy()]
    for _ in range(steps):
        opt.zero_grad()
        loss = surface(w)
        if noise is not None:
            a = noise[rng.choice(len(noise), batch, replace=False)]
            loss = loss + (tensor(a) @ w).mean()
        loss.backward()
        opt.step()
        path.append(w.numpy().copy())
    return np.array(path)


def steps_to_leave(path):
    """The first step at which |w2| ≥ 1/2 (None if it never does)."""
    far = np.flatnonzero(np.abs(path[:, 1]) >= ESCAPED)
    return int(far[0]) if far.size else None


def optimizers(lr, beta):
    return {
        "gradient descent": lambda p: optim.SGD(p, lr=lr),
        "mini-batch gradient descent": lambda p: optim.SGD(p, lr=lr),
        f"momentum (β = {beta})": lambda p: optim.Momentum(p, lr=lr, beta=beta),
        "RMSprop": lambda p: optim.RMSprop(p, lr=lr),
        "Adam": lambda p: optim.Adam(p, lr=lr),
    }


# ---------------------------------------------------------------------------- (b) small networks
class TanhNets:
    """k copies of a D-h-1 tanh network, one row of W (k, P) each: J_k(W_k) is the mean squared
    error of copy k on (X, y) plus (λ/2)‖W_k‖². Summing the J_k, one backward pass gives every
    copy's gradient at once (used for the k = 2P evaluations of a finite-difference Hessian)."""

    def __init__(self, X, y, hidden, lam):
        self.X, self.y, self.lam = tensor(X), tensor(y), lam
        d = X.shape[1]
        self.shapes = [(d, hidden), (1, hidden), (hidden, 1), (1, 1)]
        self.P = sum(a * b for a, b in self.shapes)

    def losses(self, W):
        k, parts, off = W.shape[0], [], 0
        for a, b in self.shapes:
            parts.append(W[:, off:off + a * b].reshape(k, a, b))
            off += a * b
        w1, b1, w2, b2 = parts
        err = F.tanh(self.X @ w1 + b1) @ w2 + b2 - self.y     # (k, m, 1)
        return (err * err).mean(axis=(1, 2)) + (W * W).sum(axis=1) * (self.lam / 2)

    def gradients(self, W):
        """(J, ∇J) of each row of W."""
        W = tensor(np.atleast_2d(W), requires_grad=True)
        J = self.losses(W)
        J.sum().backward()
        return J.numpy(), W.grad


def hessian(gradients, w, eps=1e-5, central=True):
    """H_ij = (∂_i J(w + eps e_j) − ∂_i J(w − eps e_j)) / 2 eps, symmetrised; with
    ``central=False`` the cheaper (∂_i J(w + eps e_j) − ∂_i J(w)) / eps."""
    E = np.eye(w.size) * eps
    if central:
        _, G = gradients(np.concatenate([w + E, w - E]))
        H = (G[:w.size] - G[w.size:]).T / (2 * eps)
    else:
        _, G = gradients(np.concatenate([w + E, w[None]]))
        H = (G[:w.size] - G[w.size]).T / eps
    return (H + H.T) / 2


def newton(gradients, w, iters=60, tol=1e-9):
    """Newton's method w ← w − t H⁻¹ ∇J, t halved until ‖∇J‖ decreases; (w, J, converged)."""
    J, g = (a[0] for a in gradients(w))
    for _ in range(iters):
        norm = np.linalg.norm(g)
        if norm < tol:
            return w, J, True
        try:  # forward differences are enough for the step; convergence is judged on ‖∇J‖ itself
            step = -np.linalg.solve(hessian(gradients, w, eps=1e-7, central=False), g)
        except np.linalg.LinAlgError:
            return w, J, False
        t = 1.0
        while True:
            J2, g2 = (a[0] for a in gradients(w + t * step))
            if np.linalg.norm(g2) < norm:
                break
            t /= 2
            if t < 1e-3:
                return w, J, False
        w, J, g = w + t * step, J2, g2
    return w, J, bool(np.linalg.norm(g) < tol)


def critical_points(X, y, hidden, lam, seeds, snapshots, lr, scale, seed=0):
    """Distinct critical points reached by Newton's method from snapshots of gradient-descent runs
    (dicts of w, J, ‖∇J‖ and the Hessian's eigenvalues), and how many snapshots did not converge."""
    nets = TanhNets(X, y, hidden, lam)
    W = tensor(np.random.default_rng([seed, hidden]).normal(0, scale, (seeds, nets.P)), requires_grad=True)
    opt = optim.SGD([W], lr=lr)  # the rows are independent: one gradient-descent run per row
    starts = []
    for step in range(max(snapshots) + 1):
        if step in snapshots:
            starts.extend(W.numpy().copy())
        opt.zero_grad()
        nets.losses(W).sum().backward()
        opt.step()
    found, failed = [], 0
    for w0 in starts:
        w, J, ok = newton(nets.gradients, w0)
        if not ok:
            failed += 1
        elif not any(np.abs(w - p["w"]).max() < 1e-6 for p in found):
            found.append({"w": w, "J": J, "grad_norm": float(np.linalg.norm(nets.gradients(w)[1])),
                          "eigenvalues": np.linalg.eigvalsh(hessian(nets.gradients, w))})
    return nets.P, found, failed


# ---------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="(a) steps of each optimizer")
    parser.add_argument("--lr", type=float, default=0.05, help="(a) α of every optimizer")
    parser.add_argument("--beta", type=float, default=0.9, help="(a) β of momentum")
    parser.add_argument("--noise", type=float, default=1.0, help="(a) std of the per-sample terms aᵢ")
    parser.add_argument("--batch", type=int, default=8, help="(a) mini-batch size (of 256 samples)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8], help="(b) widths h")
    parser.add_argument("--seeds", type=int, default=8, help="(b) gradient-descent runs per width")
    parser.add_argument("--snapshots", type=int, nargs="+", default=[0, 30, 100, 300, 1000],
                        help="(b) steps of each run that start Newton's method")
    parser.add_argument("--samples", type=int, default=40, help="(b) training points")
    parser.add_argument("--lam", type=float, default=1e-2, help="(b) L2 weight λ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args(argv)

    # (a)
    start = (1.5, 1e-4)
    noise = np.random.default_rng(args.seed).normal(0, args.noise, (256, 2))
    noise -= noise.mean(axis=0)  # the full batch is exactly f
    paths, left = {}, {}
    for name, make in optimizers(args.lr, args.beta).items():
        noisy = name.startswith("mini-batch")
        paths[name] = descend(make, start, args.steps, noise if noisy else None, args.batch, args.seed)
        left[name] = steps_to_leave(paths[name])
    print(f"(a) f(w) = w1² + (w2² − 1)²/4 from w = {start}, α = {args.lr}: steps until |w2| ≥ {ESCAPED}")
    for name, n in left.items():
        print(f"    {name:30s} {n if n is not None else f'not within {args.steps}'}")
    plain = left["gradient descent"]
    slower = [k for k, n in left.items() if k != "gradient descent" and plain is not None
              and (n is None or n > plain)]
    if slower:
        print("    slower than plain gradient descent here: " + ", ".join(slower))

    # (b)
    data = datasets.load("moons", seed=args.seed, n_samples=4 * args.samples)
    X = data.X_train[:args.samples].astype(np.float64)
    y = data.y_train[:args.samples].astype(np.float64)[:, None]
    snapshots = set(args.snapshots)
    sizes = {}
    print(f"(b) 2-h-1 tanh networks on {args.samples} moons points, λ = {args.lam}: critical points found by Newton's "
          f"method from {args.seeds} runs × {len(snapshots)} snapshots")
    print(f"    {'h':>3s} {'P':>4s} {'found':>6s} {'saddles':>8s} {'minima':>7s} {'failed':>7s} "
          f"{'J at minima':>14s} {'J at saddles':>14s}  negative eigenvalues at each saddle")
    span = (lambda v: f"{min(v):.4f}–{max(v):.4f}" if v else "—")
    for h in args.hidden:
        P, points, failed = critical_points(X, y, h, args.lam, args.seeds, snapshots, lr=0.2, scale=0.5, seed=args.seed)
        counts = [int((p["eigenvalues"] < 0).sum()) for p in points]
        saddles = [p["J"] for p, n in zip(points, counts) if n > 0]
        minima = [p["J"] for p, n in zip(points, counts) if n == 0]
        sizes[h] = {"P": P, "points": points, "failed": failed, "negative_fraction": [n / P for n in counts],
                    "saddle_share": len(saddles) / len(points) if points else None}
        index = ", ".join(str(n) for n in sorted(n for n in counts if n > 0)) or "—"
        print(f"    {h:3d} {P:4d} {len(points):6d} {len(saddles):8d} {len(minima):7d} {failed:7d} "
              f"{span(minima):>14s} {span(saddles):>14s}  {index}")
    shares = [(s["P"], s["saddle_share"]) for s in sizes.values() if s["saddle_share"] is not None]
    if len(shares) >= 2:
        (p0, s0), (p1, s1) = shares[0], shares[-1]
        print(f"    share of the critical points that are saddles: {s0:.2f} at P = {p0}, {s1:.2f} at P = {p1}")
        if s1 <= s0:
            print("    Not as the claim has it: the larger networks' critical points are no more often saddles.")

    # figure
    fig = Figure(figsize=(14, 4.2), dpi=85, layout="constrained")
    FigureCanvasAgg(fig)
    ax_p, ax_f, ax_h = (fig.add_subplot(1, 3, i + 1) for i in range(3))
    gx, gy = np.meshgrid(np.linspace(-1.7, 1.7, 200), np.linspace(-1.5, 1.5, 200))
    ax_p.contour(gx, gy, gx ** 2 + (gy ** 2 - 1) ** 2 / 4, levels=np.linspace(0, 3, 16), colors="0.8",
                 linewidths=0.7)
    for name, path in paths.items():
        ax_p.plot(path[:, 0], path[:, 1], label=name, linewidth=1.2)
        values = path[:, 0] ** 2 + (path[:, 1] ** 2 - 1) ** 2 / 4
        ax_f.plot(values, label=f"{name} ({left[name] if left[name] is not None else '—'})")
    ax_p.plot(*start, "ko", markersize=4)
    ax_p.set(xlabel="w1", ylabel="w2", title="(a) paths from (1.5, 1e-4) on w1² + (w2² − 1)²/4")
    ax_p.legend(fontsize=7, loc="lower left")
    ax_f.axhline(0.25, color="0.6", linestyle=":", linewidth=1)
    ax_f.set(xlabel="step", ylabel="f(w)", ylim=(-0.02, 1.0),
             title=f"(a) the plateau at the saddle (f = 1/4), α = {args.lr}")
    ax_f.legend(fontsize=7, title="steps to |w2| ≥ 1/2", title_fontsize=7)
    rng = np.random.default_rng(args.seed)
    found = {h: s for h, s in sizes.items() if s["points"]}
    if found:
        J = [p["J"] for s in found.values() for p in s["points"]]
        for s in found.values():
            xs = s["P"] * np.exp(rng.uniform(-0.06, 0.06, len(s["points"])))
            sc = ax_h.scatter(xs, s["negative_fraction"], c=[p["J"] for p in s["points"]], cmap="viridis", s=18,
                              vmin=min(J), vmax=max(J))
        fig.colorbar(sc, ax=ax_h, label="J at the critical point")
        ax_h.plot([s["P"] for s in found.values()],
                  [np.mean(np.array(s["negative_fraction"]) > 0) for s in found.values()],
                  "k--", marker="s", markersize=4, label="share of the critical points that are saddles")
        ax_h.legend(fontsize=7, loc="upper right")
    ax_h.set(xscale="log", xlabel="parameters P", ylabel="fraction of negative Hessian eigenvalues", ylim=(-0.03, 1.03),
             title="(b) critical points of 2-h-1 tanh networks")
    ax_h.set_xticks([s["P"] for s in sizes.values()], [str(s["P"]) for s in sizes.values()])
    ax_h.set_xticks([], minor=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "saddle.png"
    fig.savefig(path)
    print(f"wrote {path}")
    return {"paths": paths, "left": left, "sizes": sizes, "path": path}


if __name__ == "__main__":
    main()
