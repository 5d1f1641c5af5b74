"""What a checkpoint must hold to be used: the types, ranges and shapes of the metadata fields
and arrays that resuming, evaluating and predicting read, checked in one place.

:func:`validate` raises one :class:`~polydl.training.checkpoint.CheckpointError` line naming
the first damaged field (a hand-edited ``epoch: null``, a ``data/mean`` of the wrong length, an
all-zero ``data/std``); :func:`check_weights` one line for weights that are NaN or infinite. A
field that is absent is left to its consumer (older checkpoints lack some).
"""
from __future__ import annotations

import json
import math
import numbers

import numpy as np

from .checkpoint import CheckpointError

__all__ = ["validate", "check_weights"]

_FIX = "start a new run, or restore the file from a backup"
#: the numbers of an epoch's record (``metrics.jsonl``), None where there is no such split
_RECORD_NUMBERS = ("lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1", "val_auc", "val_rmse",
                   "val_mae", "val_r2", "seconds")
_TASKS = ("classification", "regression")
_KINDS = ("number", "category")
_IMPUTE = ("mean", "median", "most_frequent")


class _Damaged(Exception):
    def __init__(self, field: str, value, expected: str):
        super().__init__(field)
        self.field, self.value, self.expected = field, value, expected


def _shown(value) -> str:
    """``value`` as it stands in the checkpoint's JSON (``null``, ``"three"``), cut short."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole(meta: dict, key: str, low: int = 0, label: str | None = None) -> None:
    if key in meta:
        v = meta[key]
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
            raise _Damaged(label or key, v, f"a whole number >= {low}")


def _real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def _of_type(meta: dict, key: str, types, expected: str, optional: bool = True) -> None:
    if key in meta and not (isinstance(meta[key], types) or optional and meta[key] is None):
        raise _Damaged(key, meta[key], expected)


def _history(history) -> None:
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise _Damaged("history", history, "a list of epoch records")
    for i, r in enumerate(history):
        e = r.get("epoch")
        if e is not None and (isinstance(e, bool) or not isinstance(e, numbers.Integral)):
            raise _Damaged(f"history[{i}].epoch", e, "a whole number")
        for key in _RECORD_NUMBERS:
            v = r.get(key)
            if v is not None and not _real(v):
                raise _Damaged(f"history[{i}].{key}", v, "a number")


def _meta(meta: dict) -> None:
    for key in ("epoch", "step", "batch", "epoch_start_step"):
        _whole(meta, key)
    for key in ("num_features", "num_classes", "num_outputs"):
        _whole(meta, key, 1)
    if "epoch_seconds" in meta and not (_real(meta["epoch_seconds"]) and meta["epoch_seconds"] >= 0):
        raise _Damaged("epoch_seconds", meta["epoch_seconds"], "a number >= 0")
    if "history" in meta:
        _history(meta["history"])
    rng = meta.get("rng")
    if "rng" in meta and not (isinstance(rng, dict) and isinstance(rng.get("host"), dict)
                              and isinstance(rng.get("seed"), numbers.Integral)):
        raise _Damaged("rng", rng, "the state of a random generator")
    opt = meta.get("optimizer")
    if "optimizer" in meta:
        groups = opt.get("groups") if isinstance(opt, dict) else None
        if not (isinstance(groups, list) and all(isinstance(g, list) and all(isinstance(n, str) for n in g)
                                                 for g in groups)):
            raise _Damaged("optimizer", opt, "the optimizer's state (its 'groups' a list of lists of names)")
        _whole(opt, "step", label="optimizer.step")
        if "position" in opt and not isinstance(opt["position"], dict):
            raise _Damaged("optimizer.position", opt["position"], "a table")
    _of_type(meta, "pending_event", str, "a text or null")
    _of_type(meta, "loss_scaler", dict, "a table or null")
    _of_type(meta, "components", dict, "a table or null")
    _of_type(meta, "population", dict, "a table or null")
    _of_type(meta, "monitor", dict, "a table or null")
    _of_type(meta, "dataset", str, "a name", optional=False)
    names = meta.get("class_names")
    if names is not None:
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise _Damaged("class_names", names, "a list of names")
        if isinstance(meta.get("num_classes"), int) and len(names) != meta["num_classes"]:
            raise _Damaged("class_names", names, f"{meta['num_classes']} names (one per class)")


def _statistics(meta: dict, arrays: dict) -> None:
    n = meta.get("num_features")
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    k = len(data["targets"]) if isinstance(data.get("targets"), list) else None
    for key, size, what in (("data/mean", n, "feature"), ("data/std", n, "feature"),
                            ("data/target_mean", k, "target"), ("data/target_std", k, "target")):
        if key not in arrays:
            continue
        a = arrays[key]
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise _Damaged(f"array {key}", a.dtype, "real numbers")
        if isinstance(size, int) and a.shape != (size,):
            raise _Damaged(f"array {key}", f"of shape {a.shape}", f"of shape ({size},), one value per {what}")
        if not np.all(np.isfinite(a)):
            raise _Damaged(f"array {key}", "NaN or infinite in places", "finite")
        if key.endswith("std") and a.size and not np.all(a > 0):
            bad = int(np.flatnonzero(~(a > 0))[0])
            raise _Damaged(f"array {key}", f"{a[bad]:g} for {what} {bad}",
                           f"> 0 for every {what} (a standard deviation)")


def _names(d: dict, key: str, label: str) -> None:
    v = d.get(key)
    if not (isinstance(v, list) and all(isinstance(n, str) for n in v)):
        raise _Damaged(f"data.{key}", v, f"a list of {label}")


def _column(i: int, c) -> int:
    """The number of features column ``c`` (``data.columns[i]``) becomes."""
    if not (isinstance(c, dict) and isinstance(c.get("name"), str) and c.get("kind") in _KINDS):
        raise _Damaged(f"data.columns[{i}]", c, "a column: its name and kind (number or category)")
    fill = c.get("fill")
    if c["kind"] == "category":
        cats = c.get("categories")
        if not (isinstance(cats, list) and all(isinstance(x, str) for x in cats)):
            raise _Damaged(f"data.columns[{i}].categories", cats, "a list of the categories (texts)")
        if fill is not None and not isinstance(fill, str):
            raise _Damaged(f"data.columns[{i}].fill", fill, "a category or null")
        return len(cats)
    if fill is not None and not (_real(fill) and math.isfinite(fill)):
        raise _Damaged(f"data.columns[{i}].fill", fill, "a finite number or null")
    return 1


def _data(meta: dict) -> None:
    """``meta["data"]``: what the run knows of its data (``polydl.training.data.DataSpec``)."""
    d = meta.get("data")
    if d is None:
        return
    if not isinstance(d, dict):
        raise _Damaged("data", d, "a table (what the run knows of its data)")
    if d.get("task") not in _TASKS:
        raise _Damaged("data.task", d.get("task"), "classification or regression")
    if not isinstance(d.get("columns"), list):
        raise _Damaged("data.columns", d.get("columns"), "a list of columns")
    width = sum(_column(i, c) for i, c in enumerate(d["columns"]))
    if isinstance(meta.get("num_features"), int) and width != meta["num_features"]:
        raise _Damaged("data.columns", f"{width} features' worth", f"{meta['num_features']} (num_features)")
    _names(d, "targets", "target column names")
    _names(d, "layout", "column names")
    if not isinstance(d.get("named", False), bool):
        raise _Damaged("data.named", d.get("named"), "true or false")
    if d.get("impute") is not None and d.get("impute") not in _IMPUTE:
        raise _Damaged("data.impute", d.get("impute"), "mean, median, most_frequent or null")
    if d.get("source") is not None and not isinstance(d.get("source"), dict):
        raise _Damaged("data.source", d.get("source"), "a table or null")
    if d["task"] == "regression" and isinstance(meta.get("num_classes"), int) and meta["num_classes"] != len(
            d["targets"]):
        raise _Damaged("data.targets", d["targets"], f"{meta['num_classes']} targets (one per output)")


def validate(meta: dict, arrays: dict, path) -> None:
    """Raise one ``CheckpointError`` line naming the first field of ``meta`` or ``arrays`` (a
    checkpoint's, read from ``path``) that its consumers cannot use."""
    try:
        _meta(meta)
        _data(meta)
        _statistics(meta, arrays)
        for key, a in arrays.items():
            if key.startswith(("model/", "opt/", "partial/")) and (
                    not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating)):
                raise _Damaged(f"array {key}", a.dtype, "real numbers")
    except _Damaged as exc:
        value = exc.value if isinstance(exc.value, str) and exc.field.startswith("array ") else _shown(exc.value)
        raise CheckpointError(f"the checkpoint {path} is damaged: its {exc.field} is {value}, not {exc.expected}; "
                              f"{_FIX}") from None


def check_weights(arrays: dict, path) -> None:
    """Raise one ``CheckpointError`` line when a weight of the model (an array ``model/...``) holds
    NaN or infinity: such a run cannot be evaluated, predicted with or continued."""
    for key, a in arrays.items():
        if key.startswith("model/") and np.issubdtype(a.dtype, np.floating) and a.size:
            lo, hi = a.min(), a.max()
            if not (math.isfinite(lo) and math.isfinite(hi)):
                what = "nan" if np.isnan(a).any() else "inf"
                raise CheckpointError(f"the weights in the checkpoint {path} are not finite ({what} in {key[6:]}): "
                                      "the run diverged before this checkpoint was written, so it cannot be used; "
                                      "start a new run with a smaller --lr")
