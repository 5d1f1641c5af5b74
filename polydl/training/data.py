"""Training data: a registered dataset by name, or the user's ``.npz`` / ``.csv`` file.

Every check on the user's data happens here, before anything is written, and fails with a
:class:`DataError` (a ``ValueError``) that names the problem and the fix. Samples are counted
from 1 in messages, like the lines of a file. Standardisation statistics come from the training
split only and are applied to every split.

Labels are class indices 0, 1, 2, ..., or class names (a ``.csv`` column or a string array in a
``.npz``): names become indices in sorted order (``sorted(set(names))``: ``cat`` → 0, ``dog``
→ 1), kept as ``Data.class_names``.
"""
from __future__ import annotations

import csv
import inspect
import io
import math
import os
import stat
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import datasets, fsafe, memory
from ..checks import shown

__all__ = ["DataError", "Data", "LoadedDataset", "load_data", "load_dataset", "read_features", "check_features",
           "check_cast", "validate_split", "is_data_file"]

FILE_SUFFIXES = (".npz", ".csv")


class DataError(ValueError):
    """Data that cannot be trained on: missing, unreadable, mismatched, non-finite or empty."""


@dataclass
class Data(datasets.Dataset):
    """A :class:`polydl.datasets.Dataset` standardised with the training split's ``mean`` and ``std``.

    ``class_names``: the name of each class index where the labels were names (sorted order),
    None where they were numbers."""

    mean: np.ndarray = None
    std: np.ndarray = None
    class_names: list[str] | None = None

    def split(self, name: str):
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split '{name}' (valid: train, val, test)")
        return getattr(self, f"X_{name}"), getattr(self, f"y_{name}")


class LoadedDataset(NamedTuple):
    """What :func:`load_dataset` returns: every split checked, not standardised. ``origin``: for
    each split, what its samples are called in messages and their sample numbers there (0-based;
    None: their places in the split), e.g. ``("d.npz", rows of d.npz)`` for a split of a file."""

    name: str
    splits: dict            # split -> (X float64 (m, n), y int64 (m,))
    num_classes: int
    class_names: list[str] | None = None
    origin: dict | None = None

    def where(self, split: str):
        """(label, sample numbers or None) of ``split`` for messages."""
        if self.origin and split in self.origin:
            return self.origin[split]
        return f"{self.name} ({split} split)", None


def is_data_file(name: str) -> bool:
    return str(name).lower().endswith(FILE_SUFFIXES) or "/" in str(name) or "\\" in str(name)


# ---------------------------------------------------------------------------- reading files
def _exists(name) -> bool:
    """Whether ``name`` names something on disk; True also where looking it up fails otherwise
    (a name too long, a loop of links): reading it then says why."""
    try:
        os.stat(name)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):
        return True
    return True


def _find(path: Path, noun: str = "data file") -> None:
    """Check that the user's file ``path`` can be read before opening it: a missing file is a
    ``FileNotFoundError``; a name that cannot be looked up, or anything but a regular file (a
    directory, a named pipe that would block, a device that never ends), one :class:`DataError`."""
    try:
        st = os.stat(path)  # links followed: a link to the user's data is the data
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{noun} not found: {path}") from None
    except ValueError:
        raise DataError(f"{noun} {path!r} is not a valid file name") from None
    except OSError as exc:
        raise DataError(f"cannot read {noun} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{noun} {path} is {fsafe.kind_of(st.st_mode)}, not a regular file; "
                        "give a .npz or .csv file")


def _open(path: Path, noun: str = "data file"):
    """The user's file ``path`` opened for reading (binary): links followed, and only a regular
    file, opened without blocking (a FIFO put there since :func:`_find` cannot hang it)."""
    try:
        fd = fsafe.open_regular(path, os.O_RDONLY, follow=True)
    except fsafe.NotRegularFile:
        raise DataError(f"{noun} {path} is {fsafe.kind_of_path(path)}, not a regular file; "
                        "give a .npz or .csv file") from None
    return os.fdopen(fd, "rb")


@contextmanager
def _reading(path: Path, kind: str, invalid=(), fix: str = ""):
    """Turn the errors of reading the data file ``path`` into one :class:`DataError` each; a
    missing file stays ``FileNotFoundError`` (its callers name it). ``invalid``: the exception
    types that mean the content is not a valid ``kind`` file, ``fix``: how to write one."""
    try:
        yield
    except (FileNotFoundError, DataError):
        raise
    except PermissionError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}; check its permissions") from None
    except IsADirectoryError:
        raise DataError(f"data file {path} is a directory, not a {kind} file") from None
    except OSError as exc:
        if exc.errno is not None and exc.strerror:  # the system's error, not the content's
            raise DataError(f"cannot read data file {path}: {exc.strerror}") from None
        raise DataError(f"cannot read data file {path}: not a valid {kind} file ({exc}){fix}") from None
    except (UnicodeDecodeError, *invalid) as exc:
        raise DataError(f"cannot read data file {path}: not a valid {kind} file ({exc}){fix}") from None


# what a file really is, from its first bytes: (magic, kind)
_MAGIC = ((b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"\x93NUMPY", "npy"), (b"\x1f\x8b", "gzip"),
          (b"\x89HDF\r\n\x1a\n", "HDF5"), (b"PAR1", "Parquet"), (b"\x89PNG", "PNG"), (b"%PDF", "PDF"))
_DESCRIPTIONS = {"npz": "a .npz archive (numpy.savez)", "npy": "a single NumPy array (.npy, numpy.save)",
                 "zip": "a zip archive", "xlsx": "an Excel workbook", "gzip": "gzip-compressed",
                 "text": "a text file", "binary": "binary data", "empty": "empty (0 bytes)"}


def _sniff(fh) -> str:
    """``npz``, ``npy``, ``zip``, ``xlsx``, ``gzip``, ``HDF5``, ``Parquet``, ``PNG``, ``PDF``, ``text``,
    ``binary`` or ``empty``: what the open binary file ``fh`` holds, whatever its name says
    (``fh`` is left at its start)."""
    fh.seek(0)
    head = fh.read(4096)
    fh.seek(0)
    if not head:
        return "empty"
    kind = next((k for magic, k in _MAGIC if head.startswith(magic)), None)
    if kind == "zip":
        try:
            with zipfile.ZipFile(fh) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return "zip"
        finally:
            fh.seek(0)
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "xlsx" if any(n.startswith("xl/") for n in names) else "zip"
    if kind is not None:
        return kind
    return "binary" if b"\x00" in head else "text"


def _described(kind: str) -> str:
    return _DESCRIPTIONS.get(kind, f"a {kind} file")


#: how to write a .npz of training data, and of features to predict on ({npz}: the file name)
NPZ_FIX = "write it with numpy.savez({npz}, X=..., y=...)"
FEATURES_NPZ_FIX = "write it with numpy.savez({npz}, X=...)"


def _wrong_format(path: Path, kind: str, expected: str, fix: str) -> DataError:
    """The one line for a file whose content is ``kind`` where ``expected`` (``.npz``/``.csv``) was
    due; ``fix`` (a template with ``{npz}``) says how to write a .npz."""
    npz_name = path.with_suffix(".npz").name
    if kind == "npz":
        return DataError(f"data file {path} is a .npz archive (numpy.savez) under another name; "
                         f"rename it to {npz_name}")
    if kind == "npy":
        how = fix.format(npz=repr(npz_name))
    elif kind == "text" and expected == ".npz":
        how = f"if it holds comma-separated values, rename it to {path.with_suffix('.csv').name}"
    elif kind == "xlsx":
        how = "export it as CSV (UTF-8), one sample per line"
    elif expected == ".npz":
        how = fix.format(npz="path")
    else:
        how = "save the data as UTF-8 text with one sample per line"
    return DataError(f"data file {path} is {_described(kind)}, not a {expected} file; {how}")


def _npy_header(fh):
    """(shape, dtype) from the header of the .npy stream ``fh``, or None for an unknown version."""
    from numpy.lib import format as fmt

    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(fh)
    else:
        reader = getattr(fmt, "_read_array_header", None)
        if reader is None:
            return None
        shape, _, dtype = reader(fh, version)
    return shape, dtype


def _check_claimed_size(path: Path, fh) -> None:
    """Refuse a .npz (the open file ``fh``) whose array headers claim more memory than this
    machine has, before any array is allocated (a damaged header, or a compressed member that
    expands enormously)."""
    total, largest = 0, None
    fh.seek(0)
    with zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as member:
                header = _npy_header(member)
            if header is None:
                continue
            shape, dtype = header
            nbytes = math.prod(shape) * dtype.itemsize
            total += nbytes
            if largest is None or nbytes > largest[0]:
                largest = (nbytes, info.filename[:-4], shape, dtype)
    if largest is not None:
        _, name, shape, dtype = largest
        memory.check_bytes(f"data file {path} (its headers claim array {name!r} of shape {shape}, {dtype})", total,
                           "check how the file was written, or use a smaller one", error=DataError)


def _read_npz(path: Path, fix: str = NPZ_FIX) -> dict:
    with _reading(path, ".npz", (ValueError, zipfile.BadZipFile, EOFError, KeyError), "; " + fix.format(npz="path")):
        with _open(path) as fh:
            kind = _sniff(fh)
            if kind != "npz" and kind != "zip":
                raise _wrong_format(path, kind, ".npz", fix)
            _check_claimed_size(path, fh)
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as z:  # never unpickle: a pickle runs code
                return {k: np.asarray(z[k]) for k in z.files}


def _read_csv_rows(path: Path) -> list[list[str]]:
    with _reading(path, ".csv", (csv.Error,), "; save it as UTF-8 text with one sample per line"):
        with _open(path) as fh:
            kind = _sniff(fh)
            if kind != "text":
                raise _wrong_format(path, kind, ".csv", NPZ_FIX)
            with io.TextIOWrapper(fh, encoding="utf-8-sig", newline="") as text:  # -sig: without a byte-order mark
                return [r for r in csv.reader(text) if r and any(c.strip() for c in r)]


def _unknown_suffix(path: Path, npz_fix: str, tail: str = "") -> DataError:
    """The error for a file that is neither .npz nor .csv by name: what it really holds, if that helps."""
    try:
        with _open(path) as fh:
            kind = _sniff(fh)
    except (OSError, DataError):
        kind = None
    if kind in ("npz", "npy"):
        return _wrong_format(path, kind, ".npz", npz_fix)
    return DataError(f"cannot read data file {path}: use a .npz or .csv file{tail}")


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _is_header(rows) -> bool:
    """Whether the first row names the columns: it has an empty cell, or text in a column whose
    next row is a number (a column of class names is text in every row, so it does not count)."""
    first = [c.strip() for c in rows[0]]
    if any(not c for c in first):
        return True
    text = [j for j, c in enumerate(first) if not _is_number(c)]
    if len(rows) < 2:
        return bool(text)
    second = rows[1]
    return any(j < len(second) and _is_number(second[j].strip()) for j in text)


def _csv_table(path: Path):
    """(header or None, rows of strings) with every row of the same width."""
    rows = _read_csv_rows(path)
    if not rows:
        raise DataError(f"data file {path} is empty: it has no rows")
    header = None
    if _is_header(rows):
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
    column = f"the {header[t]} column" if header else f"column {t + 1}"
    empty = next((i for i, v in enumerate(labels) if not v), None)
    if empty is not None:
        raise DataError(f"{path} line {empty + first} has no label ({column} is empty); give every sample its class")
    return X, _text_labels(np.array(labels), str(path), lambda i: f"line {i + first}")


def _text_labels(values: np.ndarray, what: str, where=lambda i: f"sample {i + 1}") -> np.ndarray:
    """Labels given as text: all numbers become float64 (checked as class numbers later), all
    names stay strings (:func:`_class_indices` numbers them); a mix is an error naming one of
    each (``where(i)``: how to point at item i, e.g. ``line 5``)."""
    numeric = np.array([_is_number(v) for v in values.tolist()], dtype=bool)
    if numeric.all():
        return values.astype(np.float64)
    if numeric.any():
        i, j = int(np.flatnonzero(numeric)[0]), int(np.flatnonzero(~numeric)[0])
        raise DataError(f"labels in {what} mix numbers and names ({where(i)}: {shown(values[i])}, {where(j)}: "
                        f"{shown(values[j])}); use class numbers 0, 1, 2, ... or class names throughout")
    return values.astype(str)


def _class_indices(what: str, splits: dict, known=None):
    """(splits with integer labels, class names or None): string labels become the index of their
    name in ``sorted(set(training names))``, or in ``known`` (a trained run's names) where given;
    a validation or test split, or a file evaluated by a run, may only use those names."""
    kinds = {s: np.asarray(y).dtype.kind for s, (_, y) in splits.items()}
    if not any(k in "US" for k in kinds.values()):
        return splits, None

    def where(s):
        return what if s == "train" else f"{what} ({s} split)"

    texts = {s: _text_labels(datasets.check_labels(y, where(s), DataError, names=True), where(s))
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


def read_features(path, num_features: int | None = None) -> np.ndarray:
    """Features to predict on from ``.npz`` (array ``X``, or its only array) or ``.csv`` (one row
    per sample; a trailing label column is ignored when there is one column too many)."""
    path = Path(path)
    _find(path, "input file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = _read_npz(path, FEATURES_NPZ_FIX)
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
        raise _unknown_suffix(path, FEATURES_NPZ_FIX)
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


def _check_finite(X, what):
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        col = int(np.flatnonzero(bad[rows[0]])[0])
        kind = "NaN" if np.isnan(X[rows[0], col]) else "infinity"
        raise DataError(f"{what} has NaN or infinity in {len(rows)} sample(s) (first: {kind} in sample {rows[0] + 1}, "
                        f"feature {col + 1}); remove or impute those values")


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


def _from_file(path: Path, seed, val_split, test_split, target, known=None) -> LoadedDataset:
    suffix = path.suffix.lower()
    _find(path)
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
        raise _unknown_suffix(path, NPZ_FIX, f", or a dataset name ({', '.join(datasets.names())})")
    splits, class_names = _class_indices(str(path), splits, known)
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
    num_classes = len(class_names) if class_names else int(max(int(v[1].max()) for v in checked.values()
                                                                 if len(v[1])) + 1)
    samples = sum(len(v[1]) for v in checked.values())
    if num_classes > max(samples, 2) and not (known and class_names):  # a run's names may outnumber a file's samples
        raise DataError(f"{path}: the largest label is {num_classes - 1:,}, so the model would have {num_classes:,} "
                        f"classes (labels are class indices 0..C-1), more than the {samples:,} samples; "
                        "number the classes 0, 1, 2, ... (or give class names in a .csv)")
    # split off what the file does not provide, with the seeded permutation of the named datasets
    train_idx, val_idx, test_idx = datasets.split_indices(len(y), seed, 0 if "val" in checked else val_split,
                                                          0 if "test" in checked else test_split)
    out = {"train": (X[train_idx], y[train_idx])}
    out["val"] = checked.get("val", (X[val_idx], y[val_idx]))
    out["test"] = checked.get("test", (X[test_idx], y[test_idx]))
    origin = {"train": (str(path), train_idx)}
    for s, idx in (("val", val_idx), ("test", test_idx)):
        origin[s] = (f"{path} (X_{s})", None) if s in checked else (str(path), idx)
    return LoadedDataset(path.name, out, num_classes, class_names, origin)


def _from_registry(name, seed, val_split, test_split, params) -> LoadedDataset:
    loader = datasets.registry.lookup(name)
    extra = _accepted(loader, {"val_fraction": val_split, "test_fraction": test_split})
    ds = datasets.load(name, seed=seed, **{**extra, **params})
    out = {}
    for s in ("train", "val", "test"):
        out[s] = validate_split(getattr(ds, f"X_{s}"), getattr(ds, f"y_{s}"), f"dataset '{name}' ({s} split)",
                                ds.num_classes)
    return LoadedDataset(name, out, int(ds.num_classes))


def load_dataset(name: str, seed=0, val_split=0.1, test_split=0.2, target=None, params=None,
                 class_names=None) -> LoadedDataset:
    """``LoadedDataset(name, {split: (X float64, y int64)}, num_classes, class_names)``, checked,
    not standardised; ``class_names`` (sorted) where a file's labels are names, else None. Given
    ``class_names`` (a trained run's), a file's names are numbered by their place in it instead,
    and a name that is not there is an error."""
    params = dict(params or {})
    named = name in datasets.registry and not os.path.isfile(name)
    if target is not None and (named or Path(name).suffix.lower() != ".csv"):
        raise DataError(f"--target {target!r} chooses the label column of a .csv file; {name} is not one "
                        "(a .npz file has its labels in y, a named dataset its own)")
    if named:
        return _from_registry(name, seed, val_split, test_split, params)
    if is_data_file(name) or _exists(name):
        if params:
            raise DataError(f"dataset parameters ({', '.join(params)}) apply to named datasets, not to the file {name}")
        return _from_file(Path(name), seed, val_split, test_split, target, class_names)
    raise DataError(f"{datasets.registry.unknown_message(name)}, or a path to a .npz or .csv file")


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


def load_data(config) -> Data:
    """The data of a run, checked and standardised with training statistics."""
    loaded = load_dataset(config.dataset, config.data_seed, config.val_split, config.test_split, config.target,
                          config.dataset_params)
    name, splits, num_classes, class_names = loaded[:4]
    X_train, y_train = splits["train"]
    if len(y_train) == 0:
        raise DataError(f"the dataset {name} leaves no training samples after the validation and test splits")
    if config.batch_size > len(y_train):
        n = len(y_train)
        raise DataError(f"batch_size {config.batch_size} is larger than the training set ({n} sample{'s' * (n != 1)}); "
                        f"use --batch-size {len(y_train)} or less")
    found = np.unique(np.concatenate([y for _, y in splits.values()]))
    if num_classes < 2 or len(found) < 2:
        label = shown(class_names[found[0]]) if class_names else int(found[0])
        raise DataError(f"the dataset {name} has only one class (every label is {label}); "
                        "classification needs at least two")
    mean, std = standardization(X_train, config.standardize)
    scaled = {s: ((X - mean) / std, y) for s, (X, y) in splits.items()}
    dt = data_dtype(config)
    standardised = bool(np.any(mean != 0) or np.any(std != 1))
    fixes = "rescale that feature" + ("" if standardised else " (--standardize does)") + \
        (", or train with --dtype float64" if dt != np.float64 else "")
    for s, (X, _) in scaled.items():
        what, rows = loaded.where(s)
        check_cast(X, dt, what, raw=splits[s][0] if standardised else None, fixes=fixes, rows=rows, split=s)
    return Data(name, *scaled["train"], *scaled["val"], *scaled["test"], num_classes, mean, std, class_names)
