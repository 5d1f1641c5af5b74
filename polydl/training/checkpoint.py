"""Atomic files of a run directory: the checkpoint, ``metrics.jsonl`` and small text files.

A checkpoint is one ``.npz`` archive (no pickles): the arrays of the model, the optimizer, the
standardisation statistics and a partly finished epoch, plus a JSON document with everything
else (configuration, epoch, step, schedule position, every RNG state, metrics history).
Each file is written to a temporary file in the same directory, flushed, fsynced and moved over
the old one with ``os.replace``, so a crash at any moment leaves either the old or the new file.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["CHECKPOINT", "METRICS", "CONFIG", "SUMMARY", "CURVES", "CheckpointError", "atomic_write",
           "save_checkpoint", "load_checkpoint", "write_metrics", "append_metrics", "read_metrics",
           "remove_temporaries", "RUN_FILES"]

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
CONFIG = "config.toml"
SUMMARY = "summary.json"
CURVES = "curves.png"
RUN_FILES = (CHECKPOINT, METRICS, CONFIG, SUMMARY, CURVES)
FORMAT = "polydl-checkpoint"
VERSION = 1
_TMP_PREFIX = ".polydl-tmp-"


class CheckpointError(ValueError):
    """A directory that is not a run, or a checkpoint that cannot be read."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _proc_umask() -> int | None:
    """The ``Umask:`` line of ``/proc/self/status`` (Linux 4.7+), or None where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _import_umask() -> int:
    """The umask as the module is imported: set and restored at once with ``os.umask``, which is
    process-wide, so it is done only here."""
    umask = _proc_umask()
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return umask


_UMASK = _import_umask()


def file_mode() -> int:
    """The mode of the files polydl writes: 0o666 less the umask (0o644 under the usual 022), as
    ``open()`` would create them. The umask is read again on Linux, else it is the one at import."""
    umask = _proc_umask()
    return 0o666 & ~(umask if umask is not None else _UMASK)


def atomic_write(path, data: bytes | str | None = None, writer=None) -> None:
    """Write ``path`` atomically: temp file in the same directory, flush, fsync, ``os.replace``.
    The file gets the mode a plain ``open()`` would give it (:func:`file_mode`), not the 0600 of
    a temporary file.

    Give ``data`` (bytes or text) or ``writer(fileobj)``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            if writer is not None:
                writer(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def remove_temporaries(run_dir) -> None:
    """Remove temporary files a killed process left behind."""
    for p in Path(run_dir).glob(_TMP_PREFIX + "*"):
        try:
            p.unlink()
        except OSError:
            pass


# ---------------------------------------------------------------------------- checkpoint
def save_checkpoint(path, meta: dict, arrays: dict) -> None:
    """``meta``: JSON-able dict; ``arrays``: name -> NumPy array."""
    doc = json.dumps({"format": FORMAT, "version": VERSION, **meta}, allow_nan=True).encode("utf-8")
    payload = {f"a/{k}": np.asarray(v) for k, v in arrays.items()}
    payload["meta"] = np.frombuffer(doc, dtype=np.uint8)

    def writer(fh):
        buf = io.BytesIO()
        np.savez(buf, **payload)
        fh.write(buf.getvalue())

    atomic_write(path, writer=writer)


def load_checkpoint(path) -> tuple[dict, dict]:
    """(meta, arrays) of a checkpoint; a missing or damaged one is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.parent} is not a polydl run directory: it has no {path.name}")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = list(z.files)
            if "meta" not in files:
                raise ValueError("no metadata")
            meta = json.loads(bytes(z["meta"]).decode("utf-8"))
            arrays = {k[2:]: np.array(z[k]) for k in files if k.startswith("a/")}
    except CheckpointError:
        raise
    except PermissionError as exc:
        raise CheckpointError(f"cannot read the checkpoint {path}: {exc.strerror or 'permission denied'}; "
                              "check its permissions (and the directory's), e.g. chmod u+r") from None
    except OSError as exc:
        if exc.errno is not None:  # the system could not read it (EIO, ...): the file may be intact
            raise CheckpointError(f"cannot read the checkpoint {path}: {exc.strerror or exc}; check the disk "
                                  "and try again") from None
        raise CheckpointError(f"the checkpoint {path} is damaged and cannot be read ({exc}); "
                              "start a new run, or restore the file from a backup") from None
    except (ValueError, EOFError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise CheckpointError(f"the checkpoint {path} is damaged and cannot be read ({exc}); "
                              "start a new run, or restore the file from a backup") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a polydl checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {meta.get('version')}, this polydl reads {VERSION}")
    for key in ("config", "epoch", "step", "rng", "history"):
        if key not in meta:
            raise CheckpointError(f"the checkpoint {path} is damaged: it has no '{key}'")
    return meta, arrays


# ---------------------------------------------------------------------------- metrics
def _line(record: dict) -> str:
    return json.dumps(record, allow_nan=True) + "\n"


def write_metrics(path, records) -> None:
    """Rewrite ``metrics.jsonl`` atomically with exactly ``records``."""
    atomic_write(path, "".join(_line(r) for r in records))


def append_metrics(path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(_line(record))   # no fsync: a resume rewrites it from the (fsynced) checkpoint


def read_metrics(path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line
    return out
