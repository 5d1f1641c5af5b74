"""Data given in Python instead of a file: NumPy arrays ``(X, y)`` or a dict of them (``X``,
``y`` and optionally ``X_val``/``y_val``, ``X_test``/``y_test``, as in a ``.npz``), or a pandas
DataFrame whose columns are matched by name like a ``.csv`` with a header (its target column
``target``, default the last). pandas is never imported here: a DataFrame is recognised by what
it has, and read through its own methods.

A run trained on such data records ``dataset = "<DataFrame>"`` (or ``"<arrays>"``) and a
fingerprint of the content (SHA-256): ``polydl evaluate`` and ``polydl predict`` take its run
directory with a file of the same columns, and ``resume(run_dir, data=...)`` continues it on data
given in Python whose columns (a DataFrame's by name, arrays' by width) and classes match the
run's, with a note where their fingerprint differs from the recorded one (:func:`changed_note`).
"""
from __future__ import annotations

import hashlib

import numpy as np

from ...checks import shown
from .checks import DataError, features
from .labels import check_targets
from .matching import match_columns, target_indices
from .sources import Raw
from .spec import REGRESSION, DataSpec
from .tables import Frame

__all__ = ["from_python", "is_dataframe", "frame_of_dataframe", "changed_note", "described", "kind_of", "DATAFRAME",
           "ARRAYS"]

DATAFRAME, ARRAYS = "<DataFrame>", "<arrays>"


def kind_of(data) -> str:
    """The ``dataset`` a run on ``data`` records: ``"<DataFrame>"`` or ``"<arrays>"``."""
    return DATAFRAME if is_dataframe(data) else ARRAYS


def described(source: dict | None) -> str:
    """What data given in Python was, for messages: ``a DataFrame`` or ``arrays``."""
    what = (source or {}).get("what", "DataFrame")
    return "a DataFrame" if what == "DataFrame" else str(what)


def changed_note(recorded: dict | None, source: dict | None) -> str | None:
    """A note where data given in Python (its ``source``) holds other content than the data given in
    Python that a run recorded (``recorded``): their SHA-256 differ, as :func:`~.spec.source_note`
    says of a data file that changed. None where they agree, or where the run's data was not given
    in Python."""
    if not isinstance(recorded, dict) or recorded.get("kind") != "python" or not isinstance(source, dict):
        return None
    if recorded.get("sha256") == source.get("sha256"):
        return None
    return (f"the data given in Python ({described(source)}) changed since the run was trained on it "
            "(its content differs from what the run recorded)")


def is_dataframe(obj) -> bool:
    """Whether ``obj`` is a pandas DataFrame (without importing pandas)."""
    return type(obj).__module__.startswith("pandas") and hasattr(obj, "columns") and hasattr(obj, "iloc")


def _sha256(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes() if a.dtype.kind != "O" else "\x1f".join(map(str, a.ravel().tolist())).encode())
    return h.hexdigest()


def _series(df, name):
    """The column ``name`` of a DataFrame as float64 (NaN where missing) when it holds numbers
    (or booleans), else as an object array of str (None where missing)."""
    col = df[name]
    kind = getattr(col.dtype, "kind", "O")
    if kind in "biuf":
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    values = col.to_numpy(dtype=object)
    missing = col.isna().to_numpy()
    return np.array([None if miss else str(v).strip() for v, miss in zip(values, missing, strict=True)], dtype=object)


def frame_of_dataframe(df, names, label: str = "the DataFrame") -> Frame:
    """The columns ``names`` of ``df`` as a :class:`Frame` named by them (rows counted from 1)."""
    return Frame(list(names), [_series(df, n) for n in names], label, named=True)


def _column_names(df) -> list:
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"the DataFrame has two columns named {shown(dup)}; give every column its own name")
    return names


def _dataframe(df, target, task, loss, spec) -> Raw:
    names = _column_names(df)
    if len(df) == 0:
        raise DataError("the DataFrame is empty: it has no rows")
    df = df.set_axis(names, axis=1)
    width = len(names)
    if spec is None:
        tcols = target_indices("the DataFrame", names, width, target)
        fcols = [c for c in range(width) if c not in tcols]
    else:
        fcols, tcols = match_columns("the DataFrame", names, width, spec, target, "evaluate")
    frame = frame_of_dataframe(df, [names[c] for c in fcols])
    tnames = [names[c] for c in tcols]
    if task == REGRESSION:
        y = check_targets(np.stack([_series(df, t) for t in tnames], axis=1) if tnames else np.empty((len(df), 0)),
                          "the DataFrame", len(df), loss)
    else:
        if len(tnames) > 1:
            raise DataError(f"target names several columns ({', '.join(tnames)}), but {loss} is a classification "
                            "loss, which takes one label column")
        y = df[tnames[0]].to_numpy()
        if y.dtype.kind == "O":
            y = np.array([str(v) for v in y])
    source = {"kind": "python", "what": "DataFrame", "sha256": _sha256(*(c for c in frame.columns), np.asarray(y))}
    return Raw(DATAFRAME, "the DataFrame", {"train": frame}, {"train": y}, tnames, names, True, source)


def _arrays(data, task, loss, spec) -> Raw:
    if isinstance(data, dict):
        given = {"train": (data.get("X"), data.get("y"))}
        given.update({s: (data[f"X_{s}"], data[f"y_{s}"]) for s in ("val", "test") if f"X_{s}" in data})
    else:
        X, y = data
        given = {"train": (X, y)}
    if given["train"][0] is None or given["train"][1] is None:
        raise DataError("data given in Python needs X and y: (X, y), or a dict with 'X' and 'y'")
    frames, targets = {}, {}
    for s, (X, y) in given.items():
        what = "the arrays" if s == "train" else f"the arrays ({s} split)"
        X = features(X, what)
        if spec is not None and X.ndim == 2 and X.shape[1] != len(spec.columns):
            raise DataError(f"{what} have {X.shape[1]} feature columns, but the run was trained on "
                            f"{len(spec.columns)} ({', '.join(spec.feature_columns)})")
        targets[s] = check_targets(y, what, len(X), loss) if task == REGRESSION else np.asarray(y)
        names = spec.feature_columns if spec is not None and len(spec.columns) == X.shape[1] else None
        frames[s] = Frame.from_matrix(X, what, names)
    k = targets["train"].shape[1] if task == REGRESSION else 1
    tnames = ["y"] if k == 1 else [f"y{j}" for j in range(k)]
    source = {"kind": "python", "what": "arrays",
              "sha256": _sha256(*(a for s in given for a in (frames[s].matrix, targets[s])))}
    origin = {s: (f"the arrays (X_{s})", None) for s in given if s != "train"}
    return Raw(ARRAYS, "the arrays", frames, targets, tnames, frames["train"].names + tnames, False, source,
               origin=origin)


def from_python(data, target, task: str, loss: str, spec: DataSpec | None = None) -> Raw:
    """Data given in Python (see the module's docstring) as read."""
    if is_dataframe(data):
        return _dataframe(data, target, task, loss, spec)
    if isinstance(data, dict) or (isinstance(data, (tuple, list)) and len(data) == 2):
        if target is not None:
            raise DataError(f"--target {target!r} chooses a column of a DataFrame; arrays have their targets in y")
        return _arrays(data, task, loss, spec)
    raise DataError(f"data must be (X, y) arrays, a dict of them, or a pandas DataFrame, not {type(data).__name__}")
