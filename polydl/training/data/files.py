"""Reading the user's data files safely: a regular file only (a FIFO, a device or a directory is
refused without blocking), what it really holds sniffed from its first bytes (an ``.npy`` named
``.npz``, a gzip or an Excel workbook named ``.csv``), a ``.npz`` whose headers claim more memory
than the machine has refused before anything is allocated, never a pickle; and the fingerprint of
a file (absolute path, size, modification time, SHA-256) by which a run knows its data."""
from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import stat
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ... import fsafe, memory
from .checks import DataError

__all__ = ["FILE_SUFFIXES", "NPZ_FIX", "FEATURES_NPZ_FIX", "is_data_file", "exists", "find", "read_npz",
           "read_csv_rows", "unknown_suffix", "fingerprint", "same_content"]

FILE_SUFFIXES = (".npz", ".csv")


def is_data_file(name: str) -> bool:
    """Whether ``name`` reads as a file (a known suffix, or a path) rather than a dataset's name."""
    return str(name).lower().endswith(FILE_SUFFIXES) or "/" in str(name) or "\\" in str(name)


def exists(name) -> bool:
    """Whether ``name`` names something on disk; True also where looking it up fails otherwise
    (a name too long, a loop of links): reading it then says why."""
    try:
        os.stat(name)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):
        return True
    return True


def find(path: Path, noun: str = "data file") -> None:
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
    file, opened without blocking (a FIFO put there since :func:`find` cannot hang it)."""
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


def read_npz(path: Path, fix: str = NPZ_FIX) -> dict:
    with _reading(path, ".npz", (ValueError, zipfile.BadZipFile, EOFError, KeyError), "; " + fix.format(npz="path")):
        with _open(path) as fh:
            kind = _sniff(fh)
            if kind != "npz" and kind != "zip":
                raise _wrong_format(path, kind, ".npz", fix)
            _check_claimed_size(path, fh)
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as z:  # never unpickle: a pickle runs code
                return {k: np.asarray(z[k]) for k in z.files}


def read_csv_rows(path: Path) -> list[list[str]]:
    with _reading(path, ".csv", (csv.Error,), "; save it as UTF-8 text with one sample per line"):
        with _open(path) as fh:
            kind = _sniff(fh)
            if kind != "text":
                raise _wrong_format(path, kind, ".csv", NPZ_FIX)
            with io.TextIOWrapper(fh, encoding="utf-8-sig", newline="") as text:  # -sig: without a byte-order mark
                return [r for r in csv.reader(text) if r and any(c.strip() for c in r)]


def unknown_suffix(path: Path, npz_fix: str, tail: str = "") -> DataError:
    """The error for a file that is neither .npz nor .csv by name: what it really holds, if that helps."""
    try:
        with _open(path) as fh:
            kind = _sniff(fh)
    except (OSError, DataError):
        kind = None
    if kind in ("npz", "npy"):
        return _wrong_format(path, kind, ".npz", npz_fix)
    return DataError(f"cannot read data file {path}: use a .npz or .csv file{tail}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with _open(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(path) -> dict:
    """``{"kind": "file", "path": absolute, "bytes", "mtime_ns", "sha256"}`` of the data file
    ``path``: where it is and what it holds, recorded in a run's checkpoint."""
    path = Path(path).absolute()
    st = os.stat(path)
    return {"kind": "file", "path": str(path), "bytes": int(st.st_size), "mtime_ns": int(st.st_mtime_ns),
            "sha256": _sha256(path)}


def same_content(recorded: dict, path=None) -> bool | None:
    """Whether the file at ``path`` (default: the recorded path) holds what ``recorded`` (a
    :func:`fingerprint`) says; None where it cannot be read. The size and modification time
    decide where they are unchanged; otherwise the SHA-256 does."""
    path = Path(path if path is not None else recorded.get("path", ""))
    try:
        st = os.stat(path)
        if st.st_size == recorded.get("bytes") and st.st_mtime_ns == recorded.get("mtime_ns"):
            return True
        return st.st_size == recorded.get("bytes") and _sha256(path) == recorded.get("sha256")
    except (OSError, ValueError, DataError):
        return None
