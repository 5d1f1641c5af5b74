"""Coarse to fine: a polydl tune study in three rounds, each sampling inside a box around the
best trials of the round before.

An MLP trained with momentum on the digits, searched over the learning rate α (log-uniform on
[1e-4, 1]) and momentum's β (1 − β log-uniform on [0.001, 0.1], that is β in [0.9, 0.999]).
Round 1 samples the whole box; each later round samples inside the box of the best quarter of
the round before (on each key's own scale, widened by a tenth of the box before), so its
samples concentrate where the metric is low. The study is an ordinary polydl tune study (an
Optuna study on SQLite, a run directory per trial): ``--study DIR`` keeps it for ``polydl tune
report DIR`` or ``polydl watch DIR``.

    python examples/coarse_to_fine.py                 # writes examples/figures/coarse_to_fine.png
    python examples/coarse_to_fine.py --trials 60 --epochs 8 --study runs/c2f
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from polydl.training import TrainConfig
from polydl.tune import Space, TuneSettings, tune
from polydl.tune.report import open_study

FIGURES = Path(__file__).resolve().parent / "figures"
SPACE = {"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1.0},
         "beta": {"distribution": "one_minus_log_uniform", "low": 0.9, "high": 0.999}}
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def x_of(key, value):
    """Where a value of ``key`` is drawn: α itself, or 1 − β (both on log axes)."""
    return 1 - value if key == "beta" else value


def spans(ax) -> list[tuple[float, float]]:
    """The x extent of each shaded span (``axvspan``) of ``ax``, in data coordinates."""
    out = []
    for patch in ax.patches:
        if hasattr(patch, "get_width"):
            out.append(tuple(sorted((patch.get_x(), patch.get_x() + patch.get_width()))))
        else:
            xs = np.asarray(patch.get_xy())[:, 0]
            out.append((float(xs.min()), float(xs.max())))
    return out


def search(base, trials, rounds, workers, seed, out):
    """Run the study and read it back: its trials and the box of each round."""
    settings = TuneSettings(base=base, space=Space.from_dict(SPACE), trials=trials, rounds=rounds, out=out,
                            workers=workers, seed=seed)
    tune(settings, handle_signals=False)
    study, _, _ = open_study(out)
    found = [{"number": t.number, "round": t.user_attrs["round"], "state": t.state.name.lower(),
              "lr": t.params["lr"], "beta": t.params["beta"], "val_loss": t.value}
             for t in study.get_trials(deepcopy=False)]
    boxes = {int(r): {k: (b["low"], b["high"]) for k, b in box.items()} for r, box in study.user_attrs["boxes"].items()}
    return found, boxes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=36, help="trials of the whole study, split over the rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="trials trained at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--study", type=Path, default=None, help="keep the study in DIR (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.trials < 2 * args.rounds:
        parser.error(f"coarse to fine needs --rounds >= 2 and at least 2 trials per round, not --rounds {args.rounds} "
                     f"--trials {args.trials}")

    base = TrainConfig(dataset="digits", hidden=[args.hidden], optimizer="momentum", schedule="constant",
                       epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, plot=False)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.study if args.study is not None else Path(tmp) / "coarse_to_fine"
        trials, boxes = search(base, args.trials, args.rounds, args.workers, args.seed, out)
        # the same budget as one round: plain random search (its first trials are round 1's)
        random_trials, _ = search(base, args.trials, 1, args.workers, args.seed, Path(tmp) / "random")

    rounds = {}
    for r in range(1, args.rounds + 1):
        done = sorted((t for t in trials if t["round"] == r and t["state"] == "complete"), key=lambda t: t["val_loss"])
        losses = [t["val_loss"] for t in done]
        widths = {k: math.log10(x_of(k, boxes[r][k][0]) / x_of(k, boxes[r][k][1])) if k == "beta" else
                  math.log10(boxes[r][k][1] / boxes[r][k][0]) for k in SPACE}
        rounds[r] = {"trials": sum(t["round"] == r for t in trials), "complete": len(done),
                     "best": losses[0] if losses else None, "median": statistics.median(losses) if losses else None,
                     "best_trial": done[0] if done else None, "box": boxes[r], "decades": widths}
        box = "  ".join(f"{'α' if k == 'lr' else 'β'} [{lo:.4g}, {hi:.4g}] ({widths[k]:.2f} decades of "
                        f"{'α' if k == 'lr' else '1 − β'})" for k, (lo, hi) in boxes[r].items())
        print(f"round {r}: {rounds[r]['complete']} of {rounds[r]['trials']} trials complete, validation loss best "
              f"{rounds[r]['best']:.4f} median {rounds[r]['median']:.4f}; box {box}")
    first, last = rounds[1], rounds[args.rounds]
    better_best = min(r["best"] for k, r in rounds.items() if k > 1) < first["best"]
    better_median = last["median"] < first["median"]
    plain = sorted(t["val_loss"] for t in random_trials if t["state"] == "complete")
    overall = min(r["best"] for r in rounds.values())
    beats_random = overall < plain[0]
    if better_best:
        print(f"the zoom found a better region than round 1: the best trial of the later rounds has validation loss "
              f"{min(r['best'] for k, r in rounds.items() if k > 1):.4f} against round 1's {first['best']:.4f}, and "
              f"round {args.rounds}'s median is {last['median']:.4f} against {first['median']:.4f}")
    else:
        print(f"Not as the claim has it: the zoom did not find a better trial than round 1's best "
              f"({first['best']:.4f}); it concentrated the samples near it (round {args.rounds}'s median "
              f"{last['median']:.4f} against round 1's {first['median']:.4f}) without improving on it")
    if beats_random:
        print(f"with the same budget, plain random search ({args.trials} trials in one round) got to {plain[0]:.4f}, "
              f"coarse to fine to {overall:.4f}")
    else:
        print(f"Not as the claim has it: with the same budget, plain random search ({args.trials} trials in one "
              f"round) got to {plain[0]:.4f}, as good as coarse to fine's {overall:.4f} or better")

    fig = Figure(figsize=(13, 4.2), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = {"lr": fig.add_subplot(1, 3, 1), "beta": fig.add_subplot(1, 3, 2)}
    ax_h = fig.add_subplot(1, 3, 3)
    done = [t for t in trials if t["state"] == "complete"]
    shaded = {}
    for key, ax in axes.items():
        shaded[key] = {}
        for r in range(1, args.rounds + 1):
            c = COLOURS[(r - 1) % len(COLOURS)]
            lo, hi = sorted(x_of(key, v) for v in boxes[r][key])
            before = len(ax.patches)
            ax.axvspan(lo, hi, color=c, alpha=0.12, zorder=1)
            shaded[key][r] = spans(ax)[before]
            pts = [(x_of(key, t[key]), t["val_loss"]) for t in done if t["round"] == r]
            if pts:
                ax.scatter(*zip(*pts), s=24, color=c, edgecolors="k", linewidths=0.3, zorder=3,
                           label=f"round {r}: best {rounds[r]['best']:.3f}")
        ax.set(xscale="log", yscale="log", ylabel="validation loss")
    axes["lr"].set(xlabel="α (log scale)", title="validation loss against α, each round's box shaded")
    axes["beta"].set(xlabel="1 − β (log scale: β = 0.999 at the left, 0.9 at the right)",
                     title="against 1 − β")
    axes["lr"].legend(fontsize=8)
    order = sorted(done, key=lambda t: t["number"])
    ax_h.scatter([t["number"] for t in order], [t["val_loss"] for t in order], s=18, zorder=3,
                 c=[COLOURS[(t["round"] - 1) % len(COLOURS)] for t in order])
    best = np.minimum.accumulate([t["val_loss"] for t in order])
    ax_h.step([t["number"] for t in order], best, where="post", color="black", linewidth=1,
              label="best so far, coarse to fine")
    plain_order = sorted((t for t in random_trials if t["state"] == "complete"), key=lambda t: t["number"])
    ax_h.step([t["number"] for t in plain_order], np.minimum.accumulate([t["val_loss"] for t in plain_order]),
              where="post", color="grey", linestyle="--", linewidth=1, label="best so far, random search")
    ax_h.set(yscale="log", xlabel="trial", ylabel="validation loss", title="the trials in order, coloured by round")
    ax_h.legend(fontsize=8)
    fig.suptitle(f"coarse to fine: {args.trials} trials in {args.rounds} rounds, momentum on the digits")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "coarse_to_fine.png"
    fig.savefig(path)
    print(f"wrote {path}")
    return {"trials": trials, "boxes": boxes, "rounds": rounds, "shaded": shaded, "better_best": better_best,
            "better_median": better_median, "random_trials": random_trials, "random_best": plain[0],
            "beats_random": beats_random, "path": path}


if __name__ == "__main__":
    main()
