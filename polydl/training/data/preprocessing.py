"""Preprocessing learned on the training split and applied to every split, and later to every
file a run evaluates or predicts on, exactly the same way.

Each input column becomes features (:class:`Column`): a column of numbers one feature, a column
of text (a categorical feature) one 0/1 feature per category of the training split (one-hot; a
category the training split did not have encodes as all zeros, and is counted in a note). A
missing cell is refused, naming the column and the first row, unless the run imputes: ``mean``
or ``median`` of a column of numbers, or ``most_frequent`` value (text columns always take their
most frequent category), learned on the training split. Features of numbers are then
standardised with the training split's mean and standard deviation (one-hot features are not).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...checks import shown
from .checks import IMPUTE_HINT, DataError
from .tables import NUMBER, Frame

__all__ = ["IMPUTE", "Column", "fit_columns", "check_cells", "encode", "standardization", "fit_standardization",
           "feature_names", "CATEGORY"]

IMPUTE = ("mean", "median", "most_frequent")
CATEGORY = "category"
#: more categories than this, in more than half the rows, look like an identifier
MANY_CATEGORIES = 50


@dataclass
class Column:
    """An input column and how it becomes features: ``kind`` ``"number"`` (one feature) or
    ``"category"`` (a 0/1 feature per training category, ``categories`` in sorted order);
    ``fill``: the value a missing cell takes (None: a missing cell is refused)."""

    name: str
    kind: str = NUMBER
    categories: list | None = None
    fill: float | str | None = None

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == CATEGORY else 1

    def feature_names(self) -> list:
        return [f"{self.name}={c}" for c in self.categories] if self.kind == CATEGORY else [self.name]

    def to_dict(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "fill": self.fill}
        if self.kind == CATEGORY:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Column":
        return cls(str(d["name"]), d.get("kind", NUMBER), d.get("categories"), d.get("fill"))


def feature_names(columns) -> list:
    """The model's features in order: a column of numbers is its name, a categorical column
    ``name=category`` per category."""
    return [f for c in columns for f in c.feature_names()]


def _learned(values, how: str, kind: str):
    """The fill value of a column from its training values that are not missing."""
    if kind == NUMBER and how == "mean":
        return float(np.mean(values))
    if kind == NUMBER and how == "median":
        return float(np.median(values))
    uniq, counts = np.unique(values, return_counts=True)
    best = uniq[int(np.argmax(counts))]  # ties: the smallest value
    return float(best) if kind == NUMBER else str(best)


def fit_columns(frame: Frame, impute: str | None = None, notes: list | None = None) -> list:
    """The :class:`Column` of each column of the training split ``frame``: its kind, categories
    (sorted) and, with ``impute``, its fill value."""
    out = []
    for j, name in enumerate(frame.names):
        col = frame.columns[j]
        kind = NUMBER if frame.kind(j) == NUMBER else CATEGORY
        present = col[~np.isnan(col)] if kind == NUMBER else np.array([v for v in col if v is not None], dtype=object)
        if impute is not None and not len(present):
            raise DataError(f"{frame.label}: {name} has no value in the training split, so --impute {impute} has "
                            "nothing to learn from; drop that column or fill it in")
        fill = _learned(present.astype(str) if kind == CATEGORY else present, impute, kind) if impute else None
        categories = None
        if kind == CATEGORY:
            categories = sorted(set(present.tolist()))
            if notes is not None and len(categories) > MANY_CATEGORIES and 2 * len(categories) > len(present):
                notes.append(f"{name} has {len(categories):,} distinct values in {len(present):,} training rows: it "
                             "looks like an identifier, which one-hot encoding cannot generalise from; drop it if so")
        out.append(Column(name, kind, categories, fill))
    return out


def _refuse(frame: Frame, j: int, rows, fix: str, infinite: bool = False) -> DataError:
    name = frame.names[j]
    first = frame.where(int(rows[0]))
    if infinite:
        return DataError(f"{frame.label}: {name} is infinite at {first} ({len(rows)} row(s) in all); remove or "
                         "rescale those values")
    return DataError(f"{frame.label}: {name} has a missing value (empty, NA or NaN) at {first} ({len(rows)} row(s) in "
                     f"all); {fix}")


def _positional(frame: Frame, bad: np.ndarray, X: np.ndarray, fix: str) -> DataError:
    """The message of a table without column names: samples and features counted from 1."""
    rows = np.flatnonzero(bad.any(axis=1))
    col = int(np.flatnonzero(bad[rows[0]])[0])
    kind = "NaN" if np.isnan(X[rows[0], col]) else "infinity"
    hint = f" ({fix})" if kind == "NaN" else ""
    return DataError(f"{frame.label} has NaN or infinity in {len(rows)} sample(s) (first: {kind} in "
                     f"{frame.where(int(rows[0]))}, feature {col + 1}); remove or impute those values{hint}")


def check_cells(frame: Frame, fillable, fix: str = f"fill them in, or train with {IMPUTE_HINT}") -> None:
    """Refuse an infinite number anywhere in ``frame``, and a missing cell in a column that cannot
    be filled (``fillable[j]`` False), naming the column and the first row (a table without
    column names: the sample and the feature)."""
    if frame.matrix is not None:
        X = frame.matrix
        bad = ~np.isfinite(X)
        if not bad.any():
            return
        bad &= ~(np.isnan(X) & np.asarray(fillable, dtype=bool))
        if not bad.any():
            return
        if not frame.named:
            raise _positional(frame, bad, X, fix)
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        rows = np.flatnonzero(bad[:, j])
        raise _refuse(frame, j, rows, fix, infinite=bool(np.isinf(X[rows[0], j])))
    for j, col in enumerate(frame.columns):
        if col.dtype.kind == "f":
            inf = np.flatnonzero(np.isinf(col))
            if len(inf):
                raise _refuse(frame, j, inf, fix, infinite=True)
            gaps = np.flatnonzero(np.isnan(col))
        else:
            gaps = np.flatnonzero(np.array([v is None for v in col], dtype=bool))
        if len(gaps) and not fillable[j]:
            raise _refuse(frame, j, gaps, fix)


def encode(frame: Frame, columns, notes: list | None = None) -> np.ndarray:
    """The features (float64, (m, Σ widths)) of ``frame``, whose columns are ``columns`` in order
    (checked by :func:`check_cells`): missing cells filled, categories one-hot. Rows with a
    category the training split did not have get zeros there, counted in ``notes``."""
    if frame.matrix is not None and all(c.kind == NUMBER for c in columns):
        X = frame.matrix
        gaps = np.isnan(X)
        if gaps.any():
            fills = np.array([np.nan if c.fill is None else c.fill for c in columns])
            X = np.where(gaps, fills, X)
        return X
    m = len(frame)
    out = np.zeros((m, sum(c.width for c in columns)))
    k = 0
    for c, values in zip(columns, frame.columns, strict=True):
        if c.kind == NUMBER:
            v = np.asarray(values, dtype=np.float64)
            out[:, k] = np.where(np.isnan(v), np.nan if c.fill is None else c.fill, v)
        else:
            index = {cat: i for i, cat in enumerate(c.categories)}
            unknown = []
            for i, v in enumerate(values.tolist()):
                v = c.fill if v is None else v
                pos = index.get(None if v is None else str(v))
                if pos is None:
                    unknown.append(i)
                else:
                    out[i, k + pos] = 1.0
            if unknown and notes is not None:
                i = unknown[0]
                notes.append(f"{frame.label}: {len(unknown)} row(s) have a category of {c.name} that the training "
                             f"split did not have (first: {shown(str(values[i]))} at {frame.where(i)}); they are "
                             "encoded as all zeros there")
        k += c.width
    return out


def standardization(X_train: np.ndarray, enabled: bool | str = True):
    """(mean, std) of the training features; constant features get std 1. ``enabled="auto"``
    standardises unless every training feature already lies in [-1, 1] (pixel intensities, 0/1
    columns), where dividing near-constant features by their tiny spread would blow them up.
    A feature so large that its sums overflow float64 (1e300) is scaled by its largest magnitude
    s first: mean = s·mean(x/s), std = s·std(x/s)."""
    n = X_train.shape[1]
    if enabled == "auto":
        enabled = len(X_train) > 0 and not (X_train.min() >= -1 and X_train.max() <= 1)
    if not enabled or len(X_train) == 0:
        return np.zeros(n), np.ones(n)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = X_train.mean(axis=0)
        std = X_train.std(axis=0)
    huge = ~(np.isfinite(mean) & np.isfinite(std))
    if huge.any():
        scale = np.abs(X_train[:, huge]).max(axis=0)
        mean[huge] = scale * (X_train[:, huge] / scale).mean(axis=0)
        std[huge] = scale * (X_train[:, huge] / scale).std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return mean, std


def data_dtype(config) -> np.dtype:
    """The dtype the data trains in: float64 for ``dtype = "float64"``, else float32 (half
    precision keeps float32 data beside its float32 master weights)."""
    return np.dtype(np.float64) if str(config.dtype) == "float64" else np.dtype(np.float32)


def fit_standardization(X: np.ndarray, columns, enabled: bool | str = True):
    """(mean, std) of every feature of the encoded training split ``X``: :func:`standardization`
    of the features of numbers, mean 0 and std 1 for the one-hot ones."""
    if all(c.kind == NUMBER for c in columns):
        return standardization(X, enabled)
    numeric = np.array([c.kind == NUMBER for c in columns for _ in range(c.width)], dtype=bool)
    mean, std = np.zeros(X.shape[1]), np.ones(X.shape[1])
    if numeric.any():
        mean[numeric], std[numeric] = standardization(X[:, numeric], enabled)
    return mean, std
