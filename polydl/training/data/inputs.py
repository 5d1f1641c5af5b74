"""Inputs to predict on: a ``.npz`` (array ``X``, or its only array), a ``.csv``, an array or a
pandas DataFrame, matched to the columns of the run (:mod:`~polydl.training.data.matching`:
by name where both have names, else by position) and encoded with its preprocessing."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .checks import DataError, check_features, features
from .files import FEATURES_NPZ_FIX, find, read_npz, unknown_suffix
from .matching import match_columns
from .preprocessing import check_cells, encode
from .python_data import frame_of_dataframe, is_dataframe
from .spec import DataSpec
from .tables import Frame, frame_of_rows, read_table

__all__ = ["read_features", "read_inputs"]


def _npz_features(path: Path) -> np.ndarray:
    arrays = read_npz(path, FEATURES_NPZ_FIX)
    if "X" in arrays:
        return arrays["X"]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise DataError(f"{path} has no array 'X' (it has {', '.join(arrays) or 'none'})")


def read_features(path, num_features: int | None = None) -> np.ndarray:
    """Features (numbers) to predict on from ``.npz`` (array ``X``, or its only array) or ``.csv``
    (one row per sample; a trailing label column is ignored when there is one column too many)."""
    path = Path(path)
    find(path, "input file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        X = _npz_features(path)
    elif suffix == ".csv":
        header, rows = read_table(path)
        width = len(rows[0]) if rows else (len(header) if header else 0)
        cols = list(range(width))
        if num_features is not None and width == num_features + 1:
            cols = cols[:-1]
        X = frame_of_rows(path, header, rows, cols, ["number"] * len(cols)).matrix if rows else np.empty((0, width))
    else:
        raise unknown_suffix(path, FEATURES_NPZ_FIX)
    return check_features(X, str(path), num_features)


def _positional(X, what: str, spec: DataSpec) -> Frame:
    """An array of features by position, as many as the run's input columns, all numbers."""
    X = features(X, what)
    n = len(spec.columns)
    if X.shape[1] != n:
        raise DataError(f"{what} has {X.shape[1]} features per sample, but the model takes {n}")
    if not spec.numeric:
        text = ", ".join(c.name for c in spec.columns if c.kind != "number")
        raise DataError(f"{what} gives its features by position as numbers, but the run was trained on text columns "
                        f"({text}); give a .csv file with a header row, or a DataFrame")
    return Frame.from_matrix(X, what, spec.feature_columns)


def _csv_frame(path: Path, spec: DataSpec, notes: list) -> Frame:
    known = tuple(spec.layout) + tuple(spec.feature_columns) if spec.named else ()
    header, rows = read_table(path, known)
    width = len(rows[0]) if rows else (len(header) if header else 0)
    fcols, _ = match_columns(path, header, width, spec, None, "predict", notes)
    return frame_of_rows(path, header, rows, fcols, spec.kinds, spec.feature_columns)


def _frame(X_or_path, spec: DataSpec, notes: list) -> Frame:
    if isinstance(X_or_path, (str, Path)):
        path = Path(X_or_path)
        find(path, "input file")
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return _positional(_npz_features(path), str(path), spec)
        if suffix == ".csv":
            return _csv_frame(path, spec, notes)
        raise unknown_suffix(path, FEATURES_NPZ_FIX)
    if is_dataframe(X_or_path):
        names = [str(c) for c in X_or_path.columns]
        df = X_or_path.set_axis(names, axis=1)
        fcols, _ = match_columns("the DataFrame", names if spec.named else None, len(names), spec, None, "predict",
                                 notes)
        return replace(frame_of_dataframe(df, [names[c] for c in fcols]), names=list(spec.feature_columns))
    return _positional(X_or_path, "the input", spec)


def read_inputs(X_or_path, spec: DataSpec, notes: list | None = None) -> tuple:
    """(features (float64, not standardised), what they are called in messages) of ``X_or_path``
    (a ``.npz``/``.csv`` path, an array, or a DataFrame) for a run of ``spec``: its columns
    matched to the run's, checked (at least one sample; a missing value only where the run
    fills it) and encoded. Unknown categories and ignored columns go to ``notes``."""
    notes = notes if notes is not None else []
    frame = _frame(X_or_path, spec, notes)
    if len(frame) == 0:
        raise DataError(f"{frame.label} has no samples")
    check_cells(frame, spec.fillable(), fix="fill them in: the run was trained without --impute, so it has no values "
                "to fill them with")
    return encode(frame, spec.columns, notes), frame.label
