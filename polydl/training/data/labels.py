"""Labels and targets: class labels given as numbers or as names (numbered in sorted order, or by
a trained run's list), and the numeric targets of a regression, one column each.

A classification loss on numbers that look like a regression target (many distinct values that
are not the class numbers 0..C-1) is refused with one line that says how to train a regression.
"""
from __future__ import annotations

import numpy as np

from ... import datasets
from ...checks import shown
from .checks import DataError
from .tables import MISSING, is_number

__all__ = ["text_labels", "class_indices", "looks_like_regression", "regression_targets", "check_targets",
           "REGRESSION_HINT"]

#: how to train a regression
REGRESSION_HINT = "train a regression with --loss mse (or mae, huber)"
#: more distinct values than this, not the class numbers 0..C-1, look like a regression target
MANY_VALUES = 20


def text_labels(values: np.ndarray, what: str, where=lambda i: f"sample {i + 1}") -> np.ndarray:
    """Labels given as text: all numbers become float64 (checked as class numbers later), all
    names stay strings (:func:`class_indices` numbers them); a mix is an error naming one of
    each (``where(i)``: how to point at item i, e.g. ``line 5``)."""
    numeric = np.array([is_number(v) for v in values.tolist()], dtype=bool)
    if numeric.all():
        return values.astype(np.float64)
    if numeric.any():
        i, j = int(np.flatnonzero(numeric)[0]), int(np.flatnonzero(~numeric)[0])
        raise DataError(f"labels in {what} mix numbers and names ({where(i)}: {shown(values[i])}, {where(j)}: "
                        f"{shown(values[j])}); use class numbers 0, 1, 2, ... or class names throughout")
    return values.astype(str)


def class_indices(what: str, splits: dict, known=None):
    """(splits with integer labels, class names or None): string labels become the index of their
    name in ``sorted(set(training names))``, or in ``known`` (a trained run's names) where given;
    a validation or test split, or a file evaluated by a run, may only use those names."""
    kinds = {s: np.asarray(y).dtype.kind for s, (_, y) in splits.items()}
    if not any(k in "US" for k in kinds.values()):
        return splits, None

    def where(s):
        return what if s == "train" else f"{what} ({s} split)"

    texts = {s: text_labels(datasets.check_labels(y, where(s), DataError, names=True), where(s))
             if kinds[s] in "US" else np.asarray(y) for s, (_, y) in splits.items()}
    named = {s for s, y in texts.items() if y.dtype.kind in "US"}
    if not named:
        return {s: (splits[s][0], y) for s, y in texts.items()}, None
    if "train" not in named or len(named) != len(texts):
        numeric = next(s for s in texts if s not in named)
        raise DataError(f"{what}: the {'/'.join(sorted(named))} labels are class names but the {numeric} labels "
                        "are numbers; use names or numbers in every split")
    names = list(known) if known else sorted(set(texts["train"].tolist()))
    index = {n: i for i, n in enumerate(names)}
    out = {}
    for s, y in texts.items():
        values = y.tolist()
        unseen = [i for i, v in enumerate(values) if v not in index]
        if unseen and known:
            first = values[unseen[0]]
            where = f"sample {unseen[0] + 1}" if s == "train" else f"sample {unseen[0] + 1} of the {s} split"
            raise DataError(f"{what}: class name {shown(first)} ({where}) is not a class of the run, which was "
                            f"trained on {', '.join(names)}; remove those samples or train a run that has that class")
        if unseen:
            raise DataError(f"{what}: the {s} split has class name {shown(values[unseen[0]])}, which the training "
                            f"labels do not have (they have {', '.join(names)}); fix that label or add its class to y")
        out[s] = (splits[s][0], np.array([index[v] for v in values], dtype=np.int64))
    return out, names


def looks_like_regression(y) -> str | None:
    """Why the numeric labels ``y`` look like a regression target rather than class numbers (more
    than :data:`MANY_VALUES` distinct values that are fractions, or not the numbers 0..C-1), e.g.
    ``"214 distinct values such as 151, 75 and 141"``; None where they may be classes."""
    y = np.asarray(y)
    if y.dtype.kind not in "iuf" or y.ndim != 1 or not len(y):
        return None
    finite = y[np.isfinite(y)] if y.dtype.kind == "f" else y
    values = np.unique(finite)
    if len(values) <= MANY_VALUES:
        return None
    if np.array_equal(values, np.arange(len(values))):
        return None
    first = [shown(v) for v in finite[:3].tolist()]
    return f"{len(values):,} distinct values such as {', '.join(first[:-1])} and {first[-1]}"


def regression_targets(cells: list, name: str, what: str, where, loss: str) -> np.ndarray:
    """The cells (strings) of the target column ``name`` as float64: every cell a number; text is
    an error saying that ``loss`` is a regression loss, an empty cell one naming the row."""
    out = np.empty(len(cells))
    for i, c in enumerate(cells):
        c = c.strip()
        if c in MISSING:
            raise DataError(f"{what} {where(i)} has no target value ({name} is {'empty' if not c else shown(c)}); "
                            "give every sample its target")
        try:
            out[i] = float(c)
        except ValueError:
            raise DataError(f"{what}: the target {name} is text ({shown(c)}, {where(i)}), not numbers: {loss} is a "
                            "regression loss; to classify by it, train with --loss softmax_cross_entropy") from None
    return out


def check_targets(y, what: str, n: int | None = None, loss: str = "the loss") -> np.ndarray:
    """Regression targets as float64 (m, k): numbers (text is an error saying that ``loss`` is a
    regression loss), one row per sample (``n``), finite."""
    y = np.asarray(y)
    if y.dtype.kind in "USO":
        raise DataError(f"{what}: the targets are text ({y.dtype}), not numbers: {loss} is a regression loss; to "
                        "classify by them, train with --loss softmax_cross_entropy")
    if y.dtype.kind not in "biuf" or y.ndim == 0 or y.ndim > 2:
        got = f"a single value {shown(y)}" if y.ndim == 0 else f"{y.dtype} of shape {y.shape}"
        raise DataError(f"{what}: targets must be numbers of shape (m,) or (m, k), one row per sample, not {got}")
    y = y.astype(np.float64).reshape(len(y), -1)
    if n is not None and len(y) != n:
        raise DataError(f"{what}: X has {n} samples but y has {len(y)}; they must have the same length")
    bad = ~np.isfinite(y)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise DataError(f"{what}: target {j + 1} of sample {i + 1} is {shown(y[i, j])}; give every sample a finite "
                        "target")
    return y
