"""Checks on training data in arrays: features are numbers in a (samples, features) table without
NaN or infinity that survive the cast to the training dtype, labels are class indices, and the two
have one row per sample. Every failure is one :class:`DataError` (a ``ValueError``) naming the
problem and the fix; samples and features are counted from 1 in messages, like lines of a file."""
from __future__ import annotations

import math

import numpy as np

from ... import datasets
from ...checks import shown

__all__ = ["DataError", "check_features", "check_cast", "validate_split", "features", "check_finite",
           "IMPUTE_HINT"]

#: how to train on data with missing values
IMPUTE_HINT = "--impute mean|median|most_frequent"


class DataError(ValueError):
    """Data that cannot be trained on: missing, unreadable, mismatched, non-finite or empty."""


def check_features(X, what: str, num_features: int | None = None) -> np.ndarray:
    """Features to predict on as float64 (m, n), checked: numbers, ``num_features`` per sample,
    at least one sample, no NaN or infinity."""
    X = features(X, what)
    if num_features is not None and X.shape[1] != num_features:
        raise DataError(f"{what} has {X.shape[1]} features per sample, but the model takes {num_features}")
    if len(X) == 0:
        raise DataError(f"{what} has no samples")
    check_finite(X, what)
    return X


def features(X, what) -> np.ndarray:
    """``X`` as float64 (samples, features): a vector is one feature, more axes are flattened."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{what}: features must be numbers, not {X.dtype}")
    if X.ndim == 0:
        raise DataError(f"{what}: features must be an array of shape (samples, features), not a single number")
    if X.ndim == 1:
        X = X[:, None]
    elif X.ndim > 2:
        X = X.reshape(len(X), math.prod(X.shape[1:]))
    if X.shape[1] == 0 and len(X):
        raise DataError(f"{what} has no feature columns (its features have shape {X.shape}); "
                        "give every sample at least one feature")
    return X.astype(np.float64, copy=False)


def check_finite(X, what, impute: bool = True):
    """Refuse NaN (a missing value) or infinity in ``X``, naming the first sample and feature;
    ``impute``: the message says that ``--impute`` fills missing values."""
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        col = int(np.flatnonzero(bad[rows[0]])[0])
        kind = "NaN" if np.isnan(X[rows[0], col]) else "infinity"
        raise DataError(f"{what} has NaN or infinity in {len(rows)} sample(s) (first: {kind} in sample {rows[0] + 1}, "
                        f"feature {col + 1}); remove or impute those values"
                        + (f" (or train with {IMPUTE_HINT} to fill missing ones)" if impute and kind == "NaN" else ""))


def check_cast(X, dtype, what: str, raw=None, fixes: str = "rescale that feature", rows=None,
               split: str | None = None) -> None:
    """Refuse features that become infinite when cast to ``dtype`` (float32: beyond ±3.4e38),
    naming the first sample and feature (counted from 1; sample i is ``rows[i]`` of ``what``
    where ``rows`` is given, e.g. the file's row of a split's sample) and its value in ``raw`` (the
    features before standardisation, if given). One pass over ``X``: its minimum and maximum."""
    big = np.finfo(np.dtype(dtype)).max
    if not len(X) or not X.size or (X.max() <= big and X.min() >= -big):
        return
    i, j = (int(k) for k in np.argwhere(~(np.abs(X) <= big))[0])
    value = shown((raw if raw is not None else X)[i, j])
    after = "" if raw is None else f" (standardised: {X[i, j]:.3g})"
    sample = f"sample {i + 1}" if rows is None else f"sample {int(rows[i]) + 1}"
    if rows is not None and split:
        sample += f" ({split} split)"
    raise DataError(f"{what}: {sample} has feature {j + 1} = {value}{after}, beyond the range of "
                    f"{np.dtype(dtype)} (±{big:.3g}), where it would become infinity; {fixes}")


def _labels(y, what) -> np.ndarray:
    return datasets.check_labels(y, what, DataError)


def validate_split(X, y, what: str, num_classes: int | None = None):
    """Features (m, n) float64 and labels (m,) int64 after every check."""
    X = features(X, what)
    y = _labels(y, what)
    if len(X) != len(y):
        raise DataError(f"{what}: X has {len(X)} samples but y has {len(y)}; they must have the same length")
    check_finite(X, what)
    if len(y) and y.min() < 0:
        raise DataError(f"{what}: labels must be in the range 0..C-1, found {int(y.min())}")
    if num_classes is not None and len(y) and y.max() >= num_classes:
        raise DataError(f"{what}: label {int(y.max())} is out of range: the model has {num_classes} classes "
                        f"(0..{num_classes - 1})")
    return X, y
