"""Where training data comes from, read into :class:`Raw`: the features of each split as a
:class:`~polydl.training.data.tables.Frame` and their targets as given (class labels, or the
numbers of a regression). A registered dataset comes split; a ``.npz`` may give its own
validation and test splits; a ``.csv`` is one table whose target column(s) ``--target`` names
(default: the last). Given a run's :class:`~polydl.training.data.spec.DataSpec`, a file's columns
are matched to the run's (:mod:`~polydl.training.data.matching`) and read as the run read them.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import datasets
from .checks import DataError, features, validate_split
from .files import NPZ_FIX, find, fingerprint, read_npz, unknown_suffix
from .labels import check_targets, regression_targets, text_labels
from .matching import match_columns, target_indices
from .spec import REGRESSION, DataSpec
from .tables import Frame, frame_of_rows, read_table

__all__ = ["Raw", "from_registry", "from_npz", "from_csv", "from_file", "SPLITS"]

SPLITS = ("train", "val", "test")


@dataclass
class Raw:
    """Data as read: ``frames`` and ``targets`` per split (the splits a source gives; the rest
    are split off the training data later), the target column names, every column of the table
    in order (``layout``), whether the names came with the data (``named``), and its ``source``."""

    name: str
    label: str
    frames: dict
    targets: dict
    target_names: list
    layout: list
    named: bool = False
    source: dict | None = None
    registry: bool = False
    origin: dict = field(default_factory=dict)
    num_classes: int | None = None
    input_shape: tuple | None = None   # the shape of one sample, where the data gives it (a dataset, a .npz's X)


def _accepted(fn, params: dict) -> dict:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return params
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return params
    return {k: v for k, v in params.items() if k in sig.parameters}


def _names(spec: DataSpec | None, n: int) -> list:
    """Positional column names: the run's where it has as many columns, else ``x0, x1, ...``."""
    if spec is not None and len(spec.feature_columns) == n:
        return list(spec.feature_columns)
    return [f"x{j}" for j in range(n)]


def from_registry(name, seed, val_split, test_split, params, spec=None) -> Raw:
    """A registered dataset, split by its loader; its features are positions, its label ``y``."""
    loader = datasets.registry.lookup(name)
    extra = _accepted(loader, {"val_fraction": val_split, "test_fraction": test_split})
    ds = datasets.load(name, seed=seed, **{**extra, **params})
    frames, targets = {}, {}
    for s in SPLITS:
        X, y = validate_split(getattr(ds, f"X_{s}"), getattr(ds, f"y_{s}"), f"dataset '{name}' ({s} split)",
                              ds.num_classes)
        frames[s] = Frame.from_matrix(X, f"dataset '{name}' ({s} split)", _names(spec, X.shape[1]))
        targets[s] = y
    names = frames["train"].names
    source = {"kind": "dataset", "name": name, "params": dict(params)}
    return Raw(name, name, frames, targets, ["y"], names + ["y"], False, source, registry=True,
               num_classes=int(ds.num_classes), input_shape=getattr(ds, "input_shape", None))


def from_npz(path: Path, task: str, loss: str, spec=None) -> Raw:
    """A ``.npz`` of ``X`` and ``y`` (and optionally ``X_val``/``y_val``, ``X_test``/``y_test``)."""
    arrays = read_npz(path)
    missing = [k for k in ("X", "y") if k not in arrays]
    if missing:
        raise DataError(f"{path} has no array {' or '.join(map(repr, missing))}: a .npz dataset needs X and y "
                        f"(and optionally X_val/y_val, X_test/y_test); it has {', '.join(arrays) or 'no arrays'}")
    given = {"train": (arrays["X"], arrays["y"])}
    for s in ("val", "test"):
        if (f"X_{s}" in arrays) != (f"y_{s}" in arrays):
            raise DataError(f"{path} has only one of X_{s} and y_{s}; give both or neither")
        if f"X_{s}" in arrays:
            given[s] = (arrays[f"X_{s}"], arrays[f"y_{s}"])
    frames, targets = {}, {}
    shape = tuple(int(d) for d in np.shape(given["train"][0])[1:])  # images: (C, H, W), kept flat
    for s, (X, y) in given.items():
        what = f"{path}" if s == "train" else f"{path} ({s} split)"
        X = features(X, what)
        if task == REGRESSION:
            y = check_targets(y, what, len(X), loss)
        frames[s] = Frame.from_matrix(X, what, _names(spec, X.shape[1]))
        targets[s] = y
    k = targets["train"].shape[1] if task == REGRESSION else 1
    tnames = ["y"] if k == 1 else [f"y{j}" for j in range(k)]
    origin = {s: (f"{path} (X_{s})", None) for s in given if s != "train"}
    return Raw(path.name, str(path), frames, targets, tnames, frames["train"].names + tnames, False,
               fingerprint(path), origin=origin, input_shape=shape if len(shape) > 1 else None)


def _labels_of(path, header, rows, tcols, task, loss, first):
    """The target(s) of a table: one column of class labels (text or numbers), or the numbers of
    each target column of a regression (m, k)."""
    def where(i):
        return f"line {i + first}"

    if task == REGRESSION:
        cols = [regression_targets([r[t] for r in rows], header[t] if header else f"column {t + 1}", str(path),
                                   where, loss) for t in tcols]
        return np.stack(cols, axis=1) if cols else np.empty((len(rows), 0))
    if len(tcols) > 1:
        names = ", ".join(header[t] if header else f"column {t + 1}" for t in tcols)
        raise DataError(f"--target names several columns ({names}), but {loss} is a classification loss, which takes "
                        "one label column; give one --target, or train a regression with --loss mse on numeric targets")
    t = tcols[0]
    labels = [r[t].strip() for r in rows]
    column = f"the {header[t]} column" if header else f"column {t + 1}"
    empty = next((i for i, v in enumerate(labels) if not v), None)
    if empty is not None:
        raise DataError(f"{path} line {empty + first} has no label ({column} is empty); give every sample its class")
    return text_labels(np.array(labels), str(path), where)


def from_csv(path: Path, target, task: str, loss: str, spec=None, notes=None) -> Raw:
    """A ``.csv`` of one sample per line; its header row (if any) names the columns."""
    known = tuple(spec.layout) + tuple(spec.feature_columns) if spec is not None and spec.named else ()
    header, rows = read_table(path, known)
    if not rows:
        raise DataError(f"data file {path} is empty: it has a header but no rows")
    width = len(rows[0])
    if spec is None:
        if width < 2:
            raise DataError(f"{path} has one column; it needs feature columns and a label column")
        tcols = target_indices(path, header, width, target)
        fcols, kinds, names = [c for c in range(width) if c not in tcols], None, None
    else:
        fcols, tcols = match_columns(path, header, width, spec, target, "evaluate", notes)
        kinds, names = spec.kinds, spec.feature_columns
    first = 2 if header is not None else 1
    y = _labels_of(path, header, rows, tcols, task, loss, first)
    frame = frame_of_rows(path, header, rows, fcols, kinds, names)
    layout = list(header) if header is not None else [f"x{j}" for j in range(width)]
    tnames = [layout[t] for t in tcols]
    return Raw(path.name, str(path), {"train": frame}, {"train": y}, tnames, layout, header is not None,
               fingerprint(path))


def from_file(path: Path, target, task: str, loss: str, spec=None, notes=None) -> Raw:
    """A data file by its suffix: ``.npz`` or ``.csv``."""
    suffix = path.suffix.lower()
    find(path)
    if suffix == ".npz":
        return from_npz(path, task, loss, spec)
    if suffix == ".csv":
        return from_csv(path, target, task, loss, spec, notes)
    raise unknown_suffix(path, NPZ_FIX, f", or a dataset name ({', '.join(datasets.names())})")
