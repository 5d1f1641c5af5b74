"""Where a study lives: an Optuna storage named by a path or a URL, and the lock around asking.

``--storage`` takes

- a path to an SQLite file (any name but the two below; the default is ``OUT/study.db``), or an
  ``sqlite:///PATH`` URL: Optuna's ``RDBStorage`` on connections with a busy timeout of 60 s in
  WAL mode (:func:`sqlite_connect`), and polydl's writes retried while the database is locked;
- a path ending in ``.log`` or ``.jsonl``, or ``journal:PATH``: Optuna's ``JournalStorage`` on
  a ``JournalFileBackend`` (an append-only file; for file systems where SQLite's locks are
  unreliable, such as NFS);
- any other URL that SQLAlchemy opens (``postgresql://user@host/db``, ``mysql://...``): a
  database server that owners on several machines share.

Every owner takes an exclusive ``fcntl.flock`` around "count the trials, then ask the next
one" (around adopting an orphaned trial, and around opening an SQLite file, whose tables the
first to open it creates), on ``<storage file>.polydl.lock`` for a file
storage and on ``OUT/study.polydl.lock`` for a server (not ``<file>.lock``, which Optuna's journal
takes around each write). Owners on one machine therefore never ask the same trial
number twice nor more than ``--trials`` trials. Owners on different machines sharing a server
database are not under one lock: the database keeps trial numbers unique, and when two of
them ask the last trial at the same moment the study gets a trial beyond ``--trials``, which
the owner that asked it tells ``FAIL`` at once (user attr ``error``) without training it.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StorageRef", "resolve", "FileLock", "retrying", "sqlite_connect", "locked", "StorageError",
           "SQLITE_TIMEOUT", "JOURNAL_SUFFIXES", "DEFAULT_FILE", "LOCK_SUFFIX"]

SQLITE_TIMEOUT = 60.0
JOURNAL_SUFFIXES = (".log", ".jsonl")
DEFAULT_FILE = "study.db"
LOCK_SUFFIX = ".polydl.lock"


class StorageError(ValueError):
    """A storage that cannot be named or opened."""


@dataclass(frozen=True)
class StorageRef:
    """A resolved storage: ``url`` (what ``study.json`` records), ``kind`` (``sqlite``,
    ``journal`` or ``server``) and, for a file, its absolute ``path``."""

    url: str
    kind: str
    path: Path | None = None

    @property
    def local(self) -> bool:
        return self.path is not None

    def lock_path(self, out) -> Path:
        """The file that owners flock around count + ask."""
        if self.path is not None:
            return self.path.with_name(self.path.name + LOCK_SUFFIX)
        return Path(out) / ("study" + LOCK_SUFFIX)

    def open(self):
        """The Optuna storage; an unusable one is a one-line :class:`StorageError`."""
        import optuna

        try:
            if self.kind == "journal":
                from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

                _parent_exists(self.path)
                backend = JournalFileBackend(str(self.path), lock_obj=JournalFileOpenLock(str(self.path)))
                return optuna.storages.JournalStorage(backend)
            if self.kind == "sqlite":
                _parent_exists(self.path)
                if self.path.is_dir():
                    raise StorageError(f"the storage {self.path} is a directory; give a file such as "
                                       f"{self.path / DEFAULT_FILE}")
                kwargs = {"creator": functools.partial(sqlite_connect, str(self.path))}
                with _creating(self.lock_path(None)):  # a new file's schema: one process at a time
                    return retrying(optuna.storages.RDBStorage, self.url, engine_kwargs=kwargs)
            kwargs = {"pool_pre_ping": True}
            return retrying(optuna.storages.RDBStorage, self.url, engine_kwargs=kwargs)
        except StorageError:
            raise
        except Exception as exc:  # SQLAlchemy, drivers, file systems: each has its own errors
            reason = " ".join(str(exc).split("\n")[0].split()) or type(exc).__name__
            raise StorageError(f"cannot open the storage {self.url}: {reason}") from None


def sqlite_connect(path: str):
    """A connection to the SQLite file ``path``: a busy timeout of :data:`SQLITE_TIMEOUT`, WAL
    mode (readers such as a dashboard never block the owner) and ``synchronous = NORMAL`` (a
    commit is not fsynced on its own; a killed process loses nothing, a power cut at most the
    last commits, and neither corrupts the file)."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=SQLITE_TIMEOUT, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@contextlib.contextmanager
def _creating(lock: Path):
    """The owners' lock around opening an SQLite storage: Optuna creates the tables of a new file
    when it opens it, and two processes doing so at once fail ("table studies already exists").
    Where the lock file cannot be made (a directory one may only read), the file is opened
    without it: only a reader opens a storage there."""
    try:
        held = FileLock(lock).__enter__()
    except OSError:
        held = None
    try:
        yield
    finally:
        if held is not None:
            held.__exit__(None, None, None)


def _parent_exists(path: Path) -> None:
    if not path.parent.is_dir():
        raise StorageError(f"cannot open the storage {path}: the directory {path.parent} does not exist")


def resolve(spec: str | None, out=None) -> StorageRef:
    """The storage that ``--storage spec`` names (``None``: ``OUT/study.db``)."""
    if spec is None or spec == "":
        if out is None:
            raise StorageError("no storage given: pass --storage PATH|URL")
        return _sqlite(Path(out) / DEFAULT_FILE)
    spec = str(spec)
    if spec.startswith("journal:"):
        rest = spec[len("journal:"):]
        if rest.startswith("//"):
            rest = rest[2:]
        if not rest:
            raise StorageError("journal: needs a file, such as journal:study.log")
        return _journal(Path(rest))
    if spec.startswith("sqlite:"):
        if not spec.startswith("sqlite:///"):
            raise StorageError(f"an SQLite URL is sqlite:///PATH (three slashes, then the path), not {spec}")
        rest = spec[len("sqlite:///"):]
        if not rest or rest.startswith(":memory:"):
            raise StorageError(f"the storage {spec} is not a file; a study must outlive the process: give a path")
        return _sqlite(Path(rest))
    if "://" in spec:
        return StorageRef(spec, "server")
    path = Path(spec)
    if path.suffix.lower() in JOURNAL_SUFFIXES:
        return _journal(path)
    return _sqlite(path)


def _sqlite(path: Path) -> StorageRef:
    path = Path(os.path.abspath(path))
    return StorageRef(f"sqlite:///{path}", "sqlite", path)


def _journal(path: Path) -> StorageRef:
    path = Path(os.path.abspath(path))
    return StorageRef(f"journal:{path}", "journal", path)


class FileLock:
    """An exclusive ``fcntl.flock`` on ``path`` (created if missing), as a context manager."""

    def __init__(self, path):
        self.path = Path(path)
        self._fd = None

    def __enter__(self):
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


def _transient(exc: BaseException | None) -> bool:
    """An SQLite "database is locked" / "busy", raised as it is or wrapped by Optuna."""
    seen = 0
    while exc is not None and seen < 5:
        text = str(exc).lower()
        if type(exc).__name__ == "OperationalError" and ("locked" in text or "busy" in text):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def retrying(fn, *args, attempts: int = 40, **kwargs):
    """``fn(*args, **kwargs)``, retried with a randomised back-off (up to about a minute in all)
    while the database reports itself locked or busy."""
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if i == attempts - 1 or not _transient(exc):
                raise
            time.sleep(min(2.0, 0.05 * 2 ** min(i, 6)) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def locked(ref: StorageRef, out):
    """The owners' lock for ``ref``."""
    with FileLock(ref.lock_path(out)):
        yield
