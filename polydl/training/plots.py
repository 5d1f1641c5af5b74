"""Plots of a run (``curves.png``) and of a schedule, with matplotlib's Agg canvas (no display,
no global pyplot state). matplotlib is optional: ``pip install 'polydl[plot]'``."""
from __future__ import annotations

import io

from .checkpoint import atomic_write

__all__ = ["available", "MISSING_NOTE", "plot_curves", "plot_schedule"]

MISSING_NOTE = "matplotlib is not installed; pip install 'polydl[plot]' to get the plots"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(ncols, width):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())


def plot_curves(history, path, title: str | None = None) -> bool:
    """Loss, accuracy and learning rate against epoch; a regression (records with ``val_r2``):
    loss, validation RMSE and MAE (the target's units), R² and learning rate. False (nothing
    written) without matplotlib."""
    if not available():
        return False
    regression = any("val_r2" in r for r in history)  # a regression: R² instead of accuracy
    fig, axes = _figure(4, 16) if regression else _figure(3, 12)
    ax_loss, ax_acc, ax_lr = axes[0], axes[-2], axes[-1]
    epochs = [r["epoch"] for r in history]

    def series(key):
        pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        ax_loss.plot(*series(key), marker=".", label=label)
    if regression:
        for key, label in (("val_rmse", "RMSE"), ("val_mae", "MAE")):
            axes[1].plot(*series(key), marker=".", label=label)
        axes[1].set(xlabel="epoch", ylabel="error (target units)", title="validation RMSE / MAE")
        axes[1].legend()
    for key, label in ((("val_r2", "validation"),) if regression else
                       (("train_accuracy", "train"), ("val_accuracy", "validation"))):
        ax_acc.plot(*series(key), marker=".", label=label)
    ax_lr.plot(*series("lr"), marker=".", color="tab:green")
    for r in history:
        if r.get("lr_changed"):
            for ax in axes:
                ax.axvline(r["epoch"] - 0.5, color="grey", linestyle=":", linewidth=1)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="R²" if regression else "accuracy", title="R²" if regression else "accuracy")
    ax_lr.set(xlabel="epoch", ylabel="α", title="learning rate")
    ax_loss.legend()
    ax_acc.legend()
    if epochs:
        for ax in axes:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return True


def plot_schedule(epochs, values, path, title: str) -> bool:
    """α against epoch; False without matplotlib."""
    if not available():
        return False
    fig, (ax,) = _figure(1, 5)
    ax.plot(list(epochs), list(values), marker=".")
    ax.set(xlabel="epoch", ylabel="α", title=title)
    _save(fig, path)
    return True
