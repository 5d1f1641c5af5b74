"""Atomic files of a run directory: the checkpoint, ``metrics.jsonl`` and small text files.

A checkpoint is one ``.npz`` archive (no pickles): the arrays of the model, the optimizer, the
standardisation statistics and a partly finished epoch, plus a JSON document with everything
else (configuration, epoch, step, schedule position, every RNG state, metrics history).
Each file is written to a temporary file in the same directory, flushed, fsynced and moved over
the old one with ``os.replace``, so a crash at any moment leaves either the old or the new file,
and a link or a FIFO in place of the file is replaced, never written through. Several files are
written together (:func:`write_temporary`, :func:`sync`, then :func:`place`): every one written
without an fsync, then all fsynced at once from a few threads (so that the file system commits
them together rather than one journal commit each), then moved in place, then each directory
fsynced once. A run's files are read (and ``metrics.jsonl`` appended to) with
:func:`polydl.fsafe.open_regular`: a link, a FIFO or another non-regular file there is refused,
never followed and never waited on.
"""
from __future__ import annotations

import errno
import io
import json
import os
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import fsafe

__all__ = ["CHECKPOINT", "BEST", "METRICS", "CONFIG", "SUMMARY", "CURVES", "CheckpointError", "atomic_write",
           "save_checkpoint", "load_checkpoint", "write_metrics", "append_metrics", "read_metrics",
           "check_record", "parse_metrics", "open_own", "remove_temporaries", "RUN_FILES", "WHICH", "chosen",
           "STAGED_PREFIX", "checkpoint_bytes", "write_temporary", "sync", "place", "metrics_line"]

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
CONFIG = "config.toml"
SUMMARY = "summary.json"
CURVES = "curves.png"
#: the checkpoint of the best epoch of the monitored metric (``restore_best``)
BEST = "best.npz"
RUN_FILES = (CHECKPOINT, METRICS, CONFIG, SUMMARY, CURVES, BEST)
#: the checkpoints of a run that evaluate and predict may use: the best epoch's, the last one
WHICH = ("best", "last")
FORMAT = "polydl-checkpoint"
VERSION = 1
_TMP_PREFIX = ".polydl-tmp-"
#: the prefix of a file staged beside the one it will replace (several written in two phases)
STAGED_PREFIX = ".polydl-pending-"
#: threads that fsync several files at once
SYNC_THREADS = 8


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


def _temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path`` with the mode of :func:`file_mode`: (its open
    descriptor, its name). A long name is cut so that the temporary file's name stays within the
    system's limit (:func:`remove_temporaries` finds it by its prefix)."""
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX + path.name[:64] + ".", dir=path.parent)
    if hasattr(os, "fchmod"):
        try:
            os.fchmod(fd, file_mode())
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
    return fd, tmp


def atomic_write(path, data: bytes | str | None = None, writer=None) -> None:
    """Write ``path`` atomically: temp file in the same directory, flush, fsync, ``os.replace``.
    The file gets the mode a plain ``open()`` would give it (:func:`file_mode`), not the 0600 of
    a temporary file. A link (or a FIFO) at ``path`` is replaced by the file, never written
    through; a directory there is an ``OSError``.

    Give ``data`` (bytes or text) or ``writer(fileobj)``."""
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
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


def write_temporary(path, data: bytes | str) -> tuple[int, str]:
    """``data`` written to a new temporary file beside ``path`` (the mode of :func:`file_mode`),
    without an fsync: (its descriptor, still open, and its name), for :func:`sync` and then
    ``os.replace``. On an error the temporary file is removed."""
    fd, tmp = _temporary(Path(path))
    try:
        view = memoryview(data.encode("utf-8") if isinstance(data, str) else data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return fd, tmp


def place(staged, path) -> None:
    """Move a file written by :func:`write_temporary` (or staged beside ``path``) over ``path``."""
    os.replace(staged, path)


def _fsync_fd(item) -> None:
    fd, name = item
    try:
        os.fsync(fd)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, name) from None


_POOL: list = [None, None]  # the sync threads, and the process that started them


def threads() -> ThreadPoolExecutor:
    """The :data:`SYNC_THREADS` threads that sync files together, started once per process (a
    forked child starts its own)."""
    pool, pid = _POOL
    if pool is None or pid != os.getpid():
        pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="polydl-sync")
        _POOL[:] = [pool, os.getpid()]
    return pool


def sync(files=(), directories=()) -> None:
    """fsync of ``files`` ((descriptor, name) pairs, closed afterwards) and of ``directories``, all
    at once from up to :data:`SYNC_THREADS` threads, so that the file system commits them together.
    A file that cannot be synced raises its ``OSError`` (naming it) once all are done; a
    directory's error is ignored (some systems cannot fsync one)."""
    files, directories = list(files), list(dict.fromkeys(directories))
    try:
        if len(files) + len(directories) <= 1:
            for item in files:
                _fsync_fd(item)
            for d in directories:
                _fsync_dir(d)
            return
        pool = threads()
        done = [pool.submit(_fsync_fd, item) for item in files] + [pool.submit(_fsync_dir, d) for d in directories]
        for future in done:
            future.exception()  # every one finished before the first error is raised
        for future in done:
            future.result()
    finally:
        for fd, _ in files:
            try:
                os.close(fd)
            except OSError:
                pass


def remove_temporaries(run_dir) -> None:
    """Remove temporary and staged files a killed process left behind (files or links in
    ``run_dir`` only, never a link's target)."""
    try:
        found = list(Path(run_dir).glob(_TMP_PREFIX + "*")) + list(Path(run_dir).glob(STAGED_PREFIX + "*"))
    except OSError:
        return
    for p in found:
        try:
            fsafe.unlink_inside(p, run_dir)
        except OSError:
            pass


def open_own(path, flags: int) -> int:
    """A run's own file opened in place (to append to it, or to lock it): a regular file
    (:func:`polydl.fsafe.open_regular`: no link, no FIFO) with no other hard link, so that
    nothing outside the run is written through it. Raises ``fsafe.NotRegularFile`` otherwise."""
    fd = fsafe.open_regular(path, flags)
    try:
        links = os.fstat(fd).st_nlink
        if links > 1:
            raise fsafe.NotRegularFile(errno.EMLINK, f"{path} has {links} hard links (it is also another file); "
                                       "remove it", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


# ---------------------------------------------------------------------------- checkpoint
def chosen(run_dir, which: str | None = None) -> str:
    """The file of a run's checkpoint ``which`` (:data:`WHICH`): ``best.npz`` for "best", and by
    default (None) where the run keeps one; else ``checkpoint.npz``. Asking for the best of a run
    that has none is a :class:`CheckpointError`."""
    if which not in (None, *WHICH):
        raise CheckpointError(f"the checkpoint must be best or last, not {which!r}")
    best = Path(run_dir) / BEST
    kept = best.exists() or best.is_symlink()  # a link there is refused when it is read, never passed over
    if which == "best" and not kept and (Path(run_dir) / CHECKPOINT).exists():
        raise CheckpointError(f"the run in {run_dir} has no {BEST} (it was trained without --restore-best); use "
                              "--checkpoint last")
    return BEST if which == "best" or (which is None and kept) else CHECKPOINT


def checkpoint_bytes(meta: dict, arrays: dict) -> bytes:
    """The ``.npz`` of a checkpoint: ``meta`` (a JSON-able dict) and ``arrays`` (name -> NumPy array)."""
    doc = json.dumps({"format": FORMAT, "version": VERSION, **meta}, allow_nan=True).encode("utf-8")
    payload = {f"a/{k}": np.asarray(v) for k, v in arrays.items()}
    payload["meta"] = np.frombuffer(doc, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **payload)
    return buf.getvalue()


def save_checkpoint(path, meta: dict, arrays: dict) -> None:
    """``meta``: JSON-able dict; ``arrays``: name -> NumPy array."""
    atomic_write(path, checkpoint_bytes(meta, arrays))


def load_checkpoint(path) -> tuple[dict, dict]:
    """(meta, arrays) of a checkpoint; a missing or damaged one is a :class:`CheckpointError`."""
    path = Path(path)
    try:
        fd = fsafe.open_regular(path)  # never through a link, never waiting on a FIFO
        with os.fdopen(fd, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            files = list(z.files)
            if "meta" not in files:
                raise ValueError("no metadata")
            meta = json.loads(bytes(z["meta"]).decode("utf-8"))
            arrays = {k[2:]: np.array(z[k]) for k in files if k.startswith("a/")}
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent} is not a polydl run directory: it has no {path.name}") from None
    except fsafe.NotRegularFile as exc:
        raise CheckpointError(f"cannot read the checkpoint: {exc.strerror}") from None
    except PermissionError as exc:
        raise CheckpointError(f"cannot read the checkpoint {path}: {exc.strerror or 'permission denied'}; "
                              "check its permissions (and the directory's), e.g. chmod u+r") from None
    except OSError as exc:
        if exc.errno in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP):  # a path that names no file
            raise CheckpointError(f"cannot read the checkpoint {path}: {exc.strerror}") from None
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
def metrics_line(record: dict) -> str:
    """``record`` as a line of ``metrics.jsonl``."""
    return json.dumps(record, allow_nan=True) + "\n"



def write_metrics(path, records) -> None:
    """Rewrite ``metrics.jsonl`` atomically with exactly ``records``."""
    atomic_write(path, "".join(metrics_line(r) for r in records))


def append_metrics(path, record: dict) -> None:
    """Add ``record`` to ``metrics.jsonl`` (:func:`open_own`: never through a link or a FIFO)."""
    fd = open_own(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(metrics_line(record))   # no fsync: a resume rewrites it from the (fsynced) checkpoint


#: fields of a metrics record: whole numbers, and numbers (or null)
_WHOLE = ("epoch", "step")
_NUMBERS = ("lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1", "val_auc", "seconds")


def _what(value) -> str:
    text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    return text if len(text) <= 40 else text[:37] + "..."


def check_record(record, path, line: int) -> dict:
    """``record``, line ``line`` of the ``metrics.jsonl`` at ``path``, if its fields hold what
    polydl writes there; else a :class:`CheckpointError` saying the file is damaged, naming the
    line and the field."""
    def damaged(why):
        return CheckpointError(f"{path} is damaged: line {line} {why}; restore the file, or remove that line")

    if not isinstance(record, dict):
        raise damaged(f"is {_what(record)}, not a JSON object")
    if "epoch" not in record:
        raise damaged("has no \"epoch\"")
    for key in _WHOLE:
        v = record.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise damaged(f"has \"{key}\": {_what(v)}, not a whole number")
    for key in _NUMBERS:
        v = record.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise damaged(f"has \"{key}\": {_what(v)}, not a number")
    if not isinstance(record.get("lr_changed", False), bool):
        raise damaged(f"has \"lr_changed\": {_what(record['lr_changed'])}, not true or false")
    if not isinstance(record.get("event", ""), str):
        raise damaged(f"has \"event\": {_what(record['event'])}, not a text")
    return record


def parse_metrics(data: bytes, path, complete_only: bool = False) -> list[dict]:
    """The records of the bytes of a ``metrics.jsonl`` up to a torn line (one that does not parse:
    what follows it is not the run's history); ``complete_only`` leaves out a last line without
    its newline (one being written). A record that parses but holds the wrong things is a
    :class:`CheckpointError` (see :func:`check_record`)."""
    lines = data.split(b"\n")
    if complete_only:
        lines = lines[:-1]
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            break  # a torn line
        out.append(check_record(record, path, number))
    return out


def read_metrics(path) -> list[dict]:
    """The records of ``metrics.jsonl`` (nothing if there is none), read with
    :func:`polydl.fsafe.read_regular`; a file that cannot be read, or a damaged record, is a
    :class:`CheckpointError`."""
    path = Path(path)
    try:
        data = fsafe.read_regular(path)
    except FileNotFoundError:
        return []
    except fsafe.NotRegularFile as exc:
        raise CheckpointError(f"cannot read the metrics: {exc.strerror}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_metrics(data, path)
