"""Training data: a registered dataset by name, or the user's ``.npz`` / ``.csv`` file.

Every check on the user's data happens here, before anything is written, and fails with a
:class:`DataError` (a ``ValueError``) that names the problem and the fix. Standardisation
statistics come from the training split only and are applied to every split.
"""
from __future__ import annotations

import csv
import inspect
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import datasets

__all__ = ["DataError", "Data", "load_data", "load_dataset", "read_features", "check_features",
           "validate_split", "is_data_file"]

FILE_SUFFIXES = (".npz", ".csv")


class DataError(ValueError):
    """Data that cannot be trained on: missing, unreadable, mismatched, non-finite or empty."""


@dataclass
class Data(datasets.Dataset):
    """A :class:`polydl.datasets.Dataset` standardised with the training split's ``mean`` and ``std``."""

    mean: np.ndarray = None
    std: np.ndarray = None

    def split(self, name: str):
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split '{name}' (valid: train, val, test)")
        return getattr(self, f"X_{name}"), getattr(self, f"y_{name}")


def is_data_file(name: str) -> bool:
    return str(name).lower().endswith(FILE_SUFFIXES) or "/" in str(name) or "\\" in str(name)


# ---------------------------------------------------------------------------- reading files
@contextmanager
def _reading(path: Path, kind: str, invalid=(), fix: str = ""):
    """Turn the errors of reading the data file ``path`` into one :class:`DataError` each; a
    missing file stays ``FileNotFoundError`` (its callers name it). ``invalid``: the exception
    types that mean the content is not a valid ``kind`` file, ``fix``: how to write one."""
    try:
        yield
    except FileNotFoundError:
        raise
    except PermissionError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}; check its permissions") from None
    except IsADirectoryError:
        raise DataError(f"data file {path} is a directory, not a {kind} file") from None
    except (OSError, UnicodeDecodeError, *invalid) as exc:
        raise DataError(f"cannot read data file {path}: not a valid {kind} file ({exc}){fix}") from None


def _read_npz(path: Path) -> dict:
    with _reading(path, ".npz", (ValueError, zipfile.BadZipFile, EOFError, KeyError),
                  "; write it with numpy.savez(path, X=..., y=...)"):
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}


def _read_csv_rows(path: Path) -> list[list[str]]:
    with _reading(path, ".csv", (csv.Error,), "; save it as UTF-8 text with one sample per line"):
        with open(path, newline="", encoding="utf-8") as fh:
            return [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _csv_table(path: Path):
    """(header or None, rows of strings) with every row of the same width."""
    rows = _read_csv_rows(path)
    if not rows:
        raise DataError(f"data file {path} is empty: it has no rows")
    header = None
    if not all(_is_number(c) for c in rows[0] if c.strip()) or any(not c.strip() for c in rows[0]):
        header = [c.strip() for c in rows[0]]
        rows = rows[1:]
    width = len(header) if header is not None else len(rows[0]) if rows else 0
    for i, r in enumerate(rows):
        if len(r) != width:
            line = i + (2 if header is not None else 1)
            raise DataError(f"{path} line {line} has {len(r)} columns, expected {width}")
    return header, rows


def _to_float(path, rows, cols, header, first_line):
    out = np.empty((len(rows), len(cols)), dtype=np.float64)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            s = r[c].strip()
            if s == "":
                out[i, j] = np.nan
                continue
            try:
                out[i, j] = float(s)
            except ValueError:
                name = header[c] if header else f"column {c + 1}"
                raise DataError(f"{path} line {i + first_line}: {name} is {s!r}, not a number; "
                                "features must be numeric") from None
    return out


def _csv_columns(path: Path, header, width: int, target: str | None) -> int:
    """The index of the label column."""
    if target is None:
        return width - 1
    if header is not None and target in header:
        return header.index(target)
    if target.lstrip("-").isdigit():
        idx = int(target)
        if -width <= idx < width:
            return idx % width
    have = f"its columns are {', '.join(header)}" if header else f"it has no header row and {width} columns"
    raise DataError(f"--target {target!r} is not a column of {path}: {have}")


def _read_csv_xy(path: Path, target: str | None):
    header, rows = _csv_table(path)
    if not rows:
        raise DataError(f"data file {path} is empty: it has a header but no rows")
    width = len(rows[0])
    if width < 2:
        raise DataError(f"{path} has one column; it needs feature columns and a label column")
    t = _csv_columns(path, header, width, target)
    first = 2 if header is not None else 1
    X = _to_float(path, rows, [c for c in range(width) if c != t], header, first)
    labels = [r[t].strip() for r in rows]
    try:
        y = np.array([float(s) for s in labels], dtype=np.float64)
    except ValueError:
        bad = next(s for s in labels if not _is_number(s))
        raise DataError(f"labels in {path} must be integer class numbers 0, 1, 2, ..., not {bad!r}; "
                        f"map class names to numbers, or choose the label column with --target NAME") from None
    return X, y


def read_features(path, num_features: int | None = None) -> np.ndarray:
    """Features to predict on from ``.npz`` (array ``X``, or its only array) or ``.csv`` (one row
    per sample; a trailing label column is ignored when there is one column too many)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = _read_npz(path)
        if "X" in arrays:
            X = arrays["X"]
        elif len(arrays) == 1:
            X = next(iter(arrays.values()))
        else:
            raise DataError(f"{path} has no array 'X' (it has {', '.join(arrays) or 'none'})")
    elif suffix == ".csv":
        header, rows = _csv_table(path)
        width = len(rows[0]) if rows else (len(header) if header else 0)
        cols = list(range(width))
        if num_features is not None and width == num_features + 1:
            cols = cols[:-1]
        X = _to_float(path, rows, cols, header, 2 if header is not None else 1) if rows else np.empty((0, width))
    else:
        raise DataError(f"cannot read {path}: use a .npz or .csv file")
    return check_features(X, str(path), num_features)


def check_features(X, what: str, num_features: int | None = None) -> np.ndarray:
    """Features to predict on as float64 (m, n), checked: numbers, ``num_features`` per sample,
    at least one sample, no NaN or infinity."""
    X = _features(X, what)
    if num_features is not None and X.shape[1] != num_features:
        raise DataError(f"{what} has {X.shape[1]} features per sample, but the model takes {num_features}")
    if len(X) == 0:
        raise DataError(f"{what} has no samples")
    _check_finite(X, what)
    return X


# ---------------------------------------------------------------------------- checks
def _features(X, what) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{what}: features must be numbers, not {X.dtype}")
    if X.ndim == 1:
        X = X[:, None]
    elif X.ndim > 2:
        X = X.reshape(len(X), -1)
    return X.astype(np.float64, copy=False)


def _check_finite(X, what):
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        kind = "NaN" if np.isnan(X[rows[0]]).any() else "infinity"
        raise DataError(f"{what} has NaN or infinity in {len(rows)} sample(s) (first: {kind} in sample {rows[0]}); "
                        "remove or impute those values")


def _labels(y, what) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what}: labels must be one integer class per sample (shape (m,)), not shape {y.shape}")
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        raise DataError(f"{what}: labels must be integer class numbers 0, 1, 2, ..., not {y.dtype}")
    if y.dtype.kind == "f":
        finite = np.isfinite(y)
        if not finite.all() or not np.all(y == np.round(y)):
            bad = y[~finite | (y != np.round(np.where(finite, y, 0)))][0]
            raise DataError(f"{what}: labels must be integers (class numbers 0, 1, 2, ...), found {bad!r}")
    return y.astype(np.int64)


def validate_split(X, y, what: str, num_classes: int | None = None):
    """Features (m, n) float64 and labels (m,) int64 after every check."""
    X = _features(X, what)
    y = _labels(y, what)
    if len(X) != len(y):
        raise DataError(f"{what}: X has {len(X)} samples but y has {len(y)}; they must have the same length")
    _check_finite(X, what)
    if len(y) and y.min() < 0:
        raise DataError(f"{what}: labels must be in the range 0..C-1, found {int(y.min())}")
    if num_classes is not None and len(y) and y.max() >= num_classes:
        raise DataError(f"{what}: label {int(y.max())} is out of range: the model has {num_classes} classes "
                        f"(0..{num_classes - 1})")
    return X, y


# ---------------------------------------------------------------------------- loading
def _accepted(fn, params: dict) -> dict:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return params
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return params
    return {k: v for k, v in params.items() if k in sig.parameters}


def _from_file(path: Path, seed, val_split, test_split, target):
    suffix = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if suffix == ".npz":
        arrays = _read_npz(path)
        missing = [k for k in ("X", "y") if k not in arrays]
        if missing:
            raise DataError(f"{path} has no array {' or '.join(map(repr, missing))}: a .npz dataset needs X and y "
                            f"(and optionally X_val/y_val, X_test/y_test); it has {', '.join(arrays) or 'no arrays'}")
        splits = {"train": (arrays["X"], arrays["y"])}
        for s in ("val", "test"):
            if (f"X_{s}" in arrays) != (f"y_{s}" in arrays):
                raise DataError(f"{path} has only one of X_{s} and y_{s}; give both or neither")
            if f"X_{s}" in arrays:
                splits[s] = (arrays[f"X_{s}"], arrays[f"y_{s}"])
    elif suffix == ".csv":
        splits = {"train": _read_csv_xy(path, target)}
    else:
        raise DataError(f"cannot read data file {path}: use a .npz or .csv file, or a dataset name "
                        f"({', '.join(datasets.names())})")
    checked = {}
    for s, (X, y) in splits.items():
        what = f"{path}" if s == "train" else f"{path} ({s} split)"
        checked[s] = validate_split(X, y, what)
    X, y = checked["train"]
    if len(y) == 0:
        raise DataError(f"{path} is empty: it has no samples")
    widths = {s: xy[0].shape[1] for s, xy in checked.items() if len(xy[0])}
    if len(set(widths.values())) > 1:
        raise DataError(f"{path}: the splits have different numbers of features ({widths})")
    # split off what the file does not provide, with the seeded permutation of the named datasets
    train_idx, val_idx, test_idx = datasets.split_indices(len(y), seed, 0 if "val" in checked else val_split,
                                                          0 if "test" in checked else test_split)
    out = {"train": (X[train_idx], y[train_idx])}
    out["val"] = checked.get("val", (X[val_idx], y[val_idx]))
    out["test"] = checked.get("test", (X[test_idx], y[test_idx]))
    num_classes = int(max(int(v[1].max()) for v in out.values() if len(v[1])) + 1)
    return path.name, out, num_classes


def _from_registry(name, seed, val_split, test_split, params):
    loader = datasets.registry.lookup(name)
    extra = _accepted(loader, {"val_fraction": val_split, "test_fraction": test_split})
    ds = datasets.load(name, seed=seed, **{**extra, **params})
    out = {}
    for s in ("train", "val", "test"):
        out[s] = validate_split(getattr(ds, f"X_{s}"), getattr(ds, f"y_{s}"), f"dataset '{name}' ({s} split)",
                                ds.num_classes)
    return name, out, int(ds.num_classes)


def load_dataset(name: str, seed=0, val_split=0.1, test_split=0.2, target=None, params=None):
    """(name, {split: (X float64, y int64)}, num_classes), checked, not standardised."""
    params = dict(params or {})
    named = name in datasets.registry and not Path(name).is_file()
    if target is not None and (named or Path(name).suffix.lower() != ".csv"):
        raise DataError(f"--target {target!r} chooses the label column of a .csv file; {name} is not one "
                        "(a .npz file has its labels in y, a named dataset its own)")
    if named:
        return _from_registry(name, seed, val_split, test_split, params)
    if is_data_file(name) or Path(name).exists():
        if params:
            raise DataError(f"dataset parameters ({', '.join(params)}) apply to named datasets, not to the file {name}")
        return _from_file(Path(name), seed, val_split, test_split, target)
    raise DataError(f"{datasets.registry.unknown_message(name)}, or a path to a .npz or .csv file")


def standardization(X_train: np.ndarray, enabled: bool | str = True):
    """(mean, std) of the training features; constant features get std 1. ``enabled="auto"``
    standardises unless every training feature already lies in [-1, 1] (pixel intensities, 0/1
    columns), where dividing near-constant features by their tiny spread would blow them up."""
    n = X_train.shape[1]
    if enabled == "auto":
        enabled = len(X_train) > 0 and not (X_train.min() >= -1 and X_train.max() <= 1)
    if not enabled or len(X_train) == 0:
        return np.zeros(n), np.ones(n)
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return mean, std


def load_data(config) -> Data:
    """The data of a run, checked and standardised with training statistics."""
    name, splits, num_classes = load_dataset(config.dataset, config.data_seed, config.val_split, config.test_split,
                                             config.target, config.dataset_params)
    X_train, y_train = splits["train"]
    if len(y_train) == 0:
        raise DataError(f"the dataset {name} leaves no training samples after the validation and test splits")
    if config.batch_size > len(y_train):
        raise DataError(f"batch_size {config.batch_size} is larger than the training set ({len(y_train)} samples); "
                        f"use --batch-size {len(y_train)} or less")
    if num_classes < 2:
        raise DataError(f"the dataset {name} has only one class (label 0); classification needs at least two")
    mean, std = standardization(X_train, config.standardize)
    scaled = {s: ((X - mean) / std, y) for s, (X, y) in splits.items()}
    return Data(name, *scaled["train"], *scaled["val"], *scaled["test"], num_classes, mean, std)
