"""Reading a finished (or running) study: the best trials, each round's box, the importance of
each hyperparameter beside the order in which they usually matter, ``tune.png``, and the best
trial's configuration as TOML.

``tune.png`` has one panel per searched key, the metric against the key on its sampling scale
(a log axis for log-uniform keys such as α, a log(1 − β) axis for one-minus-log-uniform keys,
log2 for powers of two), one colour per round with each later round's box shaded, and a last
panel with the optimisation history (the metric per trial and the best so far). Importances
come from Optuna's PED-ANOVA evaluator on the complete trials.
"""
from __future__ import annotations

import io
import math
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsafe
from ..training import checkpoint as ckpt
from ..training import plots
from ..training.config import ConfigError
from . import layout
from . import storage as _storage
from .distributions import Choice, Int, LogUniform, OneMinusLogUniform, Pow2
from .space import Space, priority

__all__ = ["ReportError", "open_study", "StudyReport", "build_report", "format_report", "plot_study",
           "best_toml", "PLOT_SOFTWARE", "written_by_report", "PRIORITY_NAMES"]

PLOT_SOFTWARE = "polydl tune report"
PRIORITY_NAMES = {1: "1 (α)", 2: "2 (β, hidden units, batch size)", 3: "3 (layers, decay)", 4: "4 (β1, β2, ε)"}


class ReportError(ConfigError):
    """A study that cannot be found or read."""


def open_study(ref, study_name: str | None = None):
    """(study, storage URL, study directory or None) for a study directory, a storage path or a
    storage URL; ``study_name`` picks one where a storage holds several."""
    from .study import require_optuna

    optuna = require_optuna()
    if study_name is not None and not str(study_name).strip():
        raise ReportError("--study-name is empty; give the name of a study, or leave it out")
    text = str(ref)
    path = Path(text)
    study_dir = None
    if path.is_dir():
        doc = layout.read_study_json(path)
        sref = _storage.of_study_dir(doc["storage"], path)  # the directory may have moved
        study_name = study_name or doc["study_name"]
        study_dir = path
    else:
        sref = _storage.resolve(text)
        if sref.path is not None and not os.path.lexists(sref.path):
            raise ReportError(f"no study directory, storage file or URL {text}: it does not exist")
    storage_obj = sref.open(readonly=True)
    names = [s.study_name for s in _storage.retrying(storage_obj.get_all_studies)]
    if study_name is None:
        if not names:
            raise ReportError(f"the storage {sref.url} holds no study")
        if len(names) > 1:
            raise ReportError(f"the storage {sref.url} holds {len(names)} studies ({', '.join(sorted(names))}); "
                              "pass --study-name NAME")
        study_name = names[0]
    if study_name not in names:
        from ..checks import did_you_mean
        raise ReportError(f"the storage {sref.url} has no study '{study_name}'{did_you_mean(study_name, names)}"
                          f" (it holds: {', '.join(sorted(names)) or 'none'})")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage_obj)
    return study, sref.url, study_dir


@dataclass
class StudyReport:
    name: str
    url: str
    metric: str
    direction: str
    space: Space | None
    trials: list
    counts: dict
    best: list
    boxes: dict
    importances: dict | None
    importance_note: str | None = None
    rounds: int = 1
    notes: list = field(default_factory=list)


def _space_of(study) -> Space | None:
    d = study.user_attrs.get("polydl_space")
    if d is None:
        return None
    try:
        return Space.from_dict(d, config_keys=False)
    except ValueError:
        return None


def _importances(study) -> tuple[dict | None, str | None]:
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if len(complete) < 2:
        return None, f"importances need at least 2 complete trials, the study has {len(complete)}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError, ZeroDivisionError, ArithmeticError) as exc:
        return None, f"importances could not be computed: {' '.join(str(exc).split())}"
    return dict(values), None


def build_report(study, url: str, top: int = 10) -> StudyReport:
    import optuna

    TrialState = optuna.trial.TrialState
    settings = study.user_attrs.get("polydl_settings") or {}
    metric = settings.get("metric", "value")
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    trials = study.get_trials(deepcopy=False)
    counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
    for t in trials:
        name = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                TrialState.RUNNING: "running"}.get(t.state)
        if name:
            counts[name] += 1
    sign = 1.0 if direction == "minimize" else -1.0
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                      key=lambda t: (sign * t.value, t.number))
    imp, note = _importances(study)
    boxes = study.user_attrs.get("boxes") or {}
    rounds = int(settings.get("rounds") or max([int(r) for r in boxes] or [1]))
    return StudyReport(study.study_name, url, metric, direction, _space_of(study), trials, counts,
                       complete[:max(0, int(top))], boxes, imp, note, rounds)


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(header: list, rows: list) -> list[str]:
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return ["  " + line for line in lines]


def _box_text(box: dict) -> str:
    if "choices" in box:
        return "{" + ", ".join(map(str, box["choices"])) + "}"
    return f"[{_cell(box['low'])}, {_cell(box['high'])}]"


def format_report(rep: StudyReport) -> str:
    c = rep.counts
    total = len(rep.trials)
    lines = [f"study '{rep.name}' in {rep.url}: {total} trials ({c['complete']} complete, {c['pruned']} pruned, "
             f"{c['failed']} failed, {c['running']} running); {rep.metric} ({rep.direction})"]
    keys = list(rep.space) if rep.space is not None else sorted({k for t in rep.trials for k in t.params})
    if rep.best:
        lines.append(f"best trials (top {len(rep.best)}):")
        rows = [[str(t.number), str(t.user_attrs.get("round", "-")), _cell(t.value)] +
                [_cell(t.params.get(k)) for k in keys] for t in rep.best]
        lines += _table(["trial", "round", rep.metric] + keys, rows)
    else:
        lines.append("no complete trial yet")
    if rep.boxes:
        lines.append("boxes (the range each round sampled, on each key's own scale):")
        rows = []
        for r in sorted(rep.boxes, key=int):
            rows.append([r] + [_box_text(rep.boxes[r][k]) if k in rep.boxes[r] else "-" for k in keys])
        lines += _table(["round"] + keys, rows)
    if rep.importances is not None:
        lines.append("importance (PED-ANOVA) beside the usual order (1 matters most):")
        order = sorted(rep.importances, key=lambda k: -rep.importances[k])
        rows = [[k, f"{rep.importances[k]:.3f}", PRIORITY_NAMES.get(priority(k), "-")] for k in order]
        lines += _table(["key", "importance", "priority"], rows)
    else:
        lines.append(f"importance: {rep.importance_note}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- the plot
def _png_text(data: bytes) -> dict:
    """The tEXt chunks of a PNG (keyword -> text)."""
    out = {}
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return out
    i = 8
    while i + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[i:i + 4]), data[i + 4:i + 8]
        body = data[i + 8:i + 8 + length]
        if kind == b"tEXt" and b"\x00" in body:
            k, _, v = body.partition(b"\x00")
            out[k.decode("latin-1")] = v.decode("latin-1")
        if kind == b"IEND":
            break
        i += 12 + length
    return out


def written_by_report(path) -> bool:
    """Whether ``path`` is a PNG that ``polydl tune report`` wrote."""
    try:
        data = fsafe.read_regular(path)
    except OSError:  # missing, a link, a FIFO: not a plot it wrote
        return False
    return _png_text(data).get("Software", "").startswith(PLOT_SOFTWARE)


def _scale_axis(ax, dist, values):
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    if isinstance(dist, OneMinusLogUniform):
        ax.set_xscale("function", functions=(lambda b: -_log10_1m(b), lambda x: 1 - 10.0 ** (-x)))
        lo, hi = dist.low, dist.high
        ticks = [1 - 10.0 ** -k for k in range(1, 10) if lo <= 1 - 10.0 ** -k <= hi] or [lo, hi]
        ax.xaxis.set_major_locator(FixedLocator(sorted({lo, hi, *ticks})))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.4g}"))
        ax.set_xlim(lo - 1e-12, hi + 1e-12)
        return "log(1 − β) scale"
    if isinstance(dist, LogUniform):
        ax.set_xscale("log")
        return "log scale"
    if isinstance(dist, Int) and not isinstance(dist, Pow2) and dist.log:
        ax.set_xscale("log")
        ticks = [2 ** k for k in range(0, 31) if dist.low <= 2 ** k <= dist.high] or [dist.low, dist.high]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(round(v))}"))
        ax.xaxis.set_minor_locator(NullLocator())
        return "log scale"
    if isinstance(dist, Pow2):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(dist.choices()))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(round(v))}"))
        ax.xaxis.set_minor_locator(NullLocator())
        return "log2 scale"
    return None


def _log10_1m(b):
    import numpy as np

    return np.log10(np.clip(1 - np.asarray(b, dtype=float), 1e-300, None))


def plot_study(rep: StudyReport, path) -> bool:
    """Write ``tune.png`` for the report's study; False (nothing written) without matplotlib."""
    if not plots.available():
        return False
    import optuna
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    TrialState = optuna.trial.TrialState
    space = rep.space
    keys = list(space) if space is not None else sorted({k for t in rep.trials for k in t.params})
    n = len(keys) + 1
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.3 * nrows), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    from matplotlib import colormaps

    colours = colormaps["tab10"]
    shown = [t for t in rep.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.value is not None
             and math.isfinite(t.value)]
    values = [t.value for t in shown]
    logy = rep.metric.endswith("loss") and values and min(values) > 0 and max(values) / min(values) > 20
    rounds = sorted({int(t.user_attrs.get("round", 1)) for t in shown}) or [1]
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        _plot_key(ax, rep, key, shown, rounds, colours)
        if logy:
            ax.set_yscale("log")
        if i == 0 and len(rounds) > 1:
            ax.legend(fontsize=7)
    ax = fig.add_subplot(nrows, ncols, n)
    _plot_history(ax, rep, shown, colours)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="trial", ylabel=rep.metric, title="optimisation history")
    fig.suptitle(f"study '{rep.name}': {rep.metric} ({rep.direction})")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": f"{PLOT_SOFTWARE} (polydl)"})
    ckpt.atomic_write(path, buf.getvalue())
    return True


def _plot_key(ax, rep: StudyReport, key: str, shown: list, rounds: list, colours) -> None:
    """The panel of hyperparameter ``key``: the metric against its value on its sampling scale,
    one colour per round (pruned trials hollow), each later round's box shaded."""
    import optuna

    TrialState = optuna.trial.TrialState
    dist = rep.space[key] if rep.space is not None else None
    pts = [t for t in shown if key in t.params]
    label = key
    if isinstance(dist, Choice):
        xs = [dist.index(t.params[key]) if dist.contains(t.params[key]) else -1 for t in pts]
        ax.set_xticks(range(len(dist.choices)), [str(c) for c in dist.choices])
    else:
        xs = [t.params[key] for t in pts]
    for r in rounds:
        sel = [(x, t) for x, t in zip(xs, pts, strict=True) if int(t.user_attrs.get("round", 1)) == r]
        comp = [(x, t.value) for x, t in sel if t.state == TrialState.COMPLETE]
        prun = [(x, t.value) for x, t in sel if t.state == TrialState.PRUNED]
        c = colours((r - 1) % 10)
        if comp:
            ax.scatter(*zip(*comp, strict=True), s=22, color=c, label=f"round {r}", zorder=3)
        if prun:
            ax.scatter(*zip(*prun, strict=True), s=22, facecolors="none", edgecolors=c, zorder=3,
                       label=f"round {r} (pruned)")
        box = rep.boxes.get(str(r), {}).get(key)
        if r > 1 and box is not None and "low" in box:
            ax.axvspan(box["low"], box["high"], color=c, alpha=0.1, zorder=1)
    if dist is not None and not isinstance(dist, Choice):
        scale = _scale_axis(ax, dist, xs)
        if scale:
            label = f"{key} ({scale})"
    ax.set(xlabel=label, ylabel=rep.metric)


def _plot_history(ax, rep: StudyReport, shown: list, colours) -> None:
    """The optimisation history: each trial's value by number, a colour per round, and the best so far."""
    import optuna

    TrialState = optuna.trial.TrialState
    order = sorted(shown, key=lambda t: t.number)
    ax.scatter([t.number for t in order], [t.value for t in order], s=16,
               c=[colours((int(t.user_attrs.get("round", 1)) - 1) % 10) for t in order], zorder=3)
    sign = 1.0 if rep.direction == "minimize" else -1.0
    best, xs, ys = None, [], []
    for t in order:
        if t.state == TrialState.COMPLETE and (best is None or sign * t.value < sign * best):
            best = t.value
        if best is not None:
            xs.append(t.number)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="black", linewidth=1, label="best so far")
        ax.legend(fontsize=7)


# ---------------------------------------------------------------------------- the best configuration
def best_toml(study) -> str:
    """The best complete trial's configuration as TOML for ``polydl train --config``."""
    import optuna

    from ..training import from_dict

    settings = study.user_attrs.get("polydl_settings") or {}
    metric = settings.get("metric", "value")
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.value is not None]
    if not done:
        raise ReportError(f"the study '{study.study_name}' has no complete trial yet")
    best = min(done, key=lambda t: (sign * t.value, t.number))
    config = best.user_attrs.get("config")
    if not isinstance(config, dict):
        raise ReportError(f"trial {best.number} of the study '{study.study_name}' has no polydl configuration (user "
                          "attr 'config'); it was not run by polydl tune")
    cfg = from_dict({**config, "out": None})
    values = " ".join(f"{k}={_cell(v)}" for k, v in best.params.items())
    head = (f"# the best trial of the study '{study.study_name}': trial {best.number} ({metric} {best.value:.6g}; "
            f"{values})\n")
    return head + cfg.to_toml()

