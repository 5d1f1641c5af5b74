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
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .. import fsafe

__all__ = ["StorageRef", "resolve", "FileLock", "retrying", "sqlite_connect", "locked", "StorageError",
           "SQLITE_TIMEOUT", "JOURNAL_SUFFIXES", "DEFAULT_FILE", "LOCK_SUFFIX", "check_sqlite_study", "first_line",
           "of_study_dir"]

SQLITE_TIMEOUT = 60.0
JOURNAL_SUFFIXES = (".log", ".jsonl")
DEFAULT_FILE = "study.db"
LOCK_SUFFIX = ".polydl.lock"
#: tables every Optuna RDB storage has
OPTUNA_TABLES = frozenset({"studies", "trials"})
#: every table of Optuna's RDB storage
OPTUNA_ALL_TABLES = OPTUNA_TABLES | {"study_directions", "study_user_attributes", "study_system_attributes",
                                     "trial_params", "trial_values", "trial_intermediate_values",
                                     "trial_user_attributes", "trial_system_attributes", "trial_heartbeats",
                                     "version_info", "alembic_version"}


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

    def open(self, readonly: bool = False):
        """The Optuna storage; an unusable one is a one-line :class:`StorageError`. ``readonly``
        (``tune report``, ``tune best``, ``watch``): a file must already hold a study, an SQLite
        file is opened read-only and no lock file is made: nothing is written."""
        import optuna

        try:
            if self.kind == "journal":
                from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

                _parent_exists(self.path)
                if readonly or os.path.lexists(self.path):
                    _regular(self.path)
                backend = JournalFileBackend(str(self.path), lock_obj=JournalFileOpenLock(str(self.path)))
                try:
                    return optuna.storages.JournalStorage(backend)
                except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                    if not readonly:
                        raise
                    raise StorageError(f"{self.path} holds no study (it is not an Optuna journal: "
                                       f"{first_line(exc)})") from None
            if self.kind == "sqlite":
                _parent_exists(self.path)
                if self.path.is_dir():
                    raise StorageError(f"the storage {self.path} is a directory; give a file such as "
                                       f"{self.path / DEFAULT_FILE}")
                if readonly:
                    check_sqlite_study(self.path)
                    # a directory one may only read, without a -wal file: the file is all there is
                    fixed = not os.path.lexists(f"{self.path}-wal") and not os.access(self.path.parent, os.W_OK)
                    kwargs = {"creator": functools.partial(sqlite_connect, str(self.path), readonly=True,
                                                           immutable=fixed)}
                    return retrying(optuna.storages.RDBStorage, self.url, engine_kwargs=kwargs,
                                    skip_table_creation=True)
                if os.path.lexists(self.path):
                    _check_not_foreign(self.path)  # a database of other tables is never changed
                kwargs = {"creator": functools.partial(sqlite_connect, str(self.path))}
                with _creating(self.lock_path(None)):  # a new file's schema: one process at a time
                    return retrying(optuna.storages.RDBStorage, self.url, engine_kwargs=kwargs)
            kwargs = {"pool_pre_ping": True}
            return retrying(optuna.storages.RDBStorage, self.url, engine_kwargs=kwargs)
        except StorageError:
            raise
        except Exception as exc:  # SQLAlchemy, drivers, file systems: each has its own errors
            raise StorageError(f"cannot open the storage {self.url}: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """The first line of an error, its words on one line; the innermost cause of an Optuna or
    SQLAlchemy error that wraps another (``database or disk is full``, ``[Errno 27] File too large``)."""
    inner, seen = exc, 0
    while seen < 5 and (inner.__cause__ or inner.__context__) is not None and type(inner).__module__.startswith(
            ("optuna", "sqlalchemy")):
        inner, seen = inner.__cause__ or inner.__context__, seen + 1
    text = " ".join(str(inner).split("\n")[0].split())
    if isinstance(inner, OSError) and inner.strerror:
        text = inner.strerror
    return text or type(inner).__name__


def _regular(path: Path) -> None:
    """Refuse a storage file that is a link, a FIFO or a device (it is never followed nor opened)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise StorageError(f"the storage {path} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        raise StorageError(f"the storage {path} is {fsafe.kind_of(st.st_mode)}, not a regular file")


def check_sqlite_study(path: Path) -> None:
    """Raise :class:`StorageError` unless the SQLite file ``path`` holds Optuna's tables, looked
    up on a read-only connection (a user's own database is never changed)."""
    if not OPTUNA_TABLES <= _tables(path):
        raise StorageError(f"{path} holds no study (it is an SQLite file without Optuna's tables); give a study "
                           "directory or the storage that polydl tune wrote")


def _check_not_foreign(path: Path) -> None:
    """Before a search opens (and may create tables in) an existing SQLite file: refuse one that
    holds tables of its own but not Optuna's, a database that is not a study's."""
    _regular(path)
    try:
        tables = _tables(path)
    except StorageError:  # not a database (or one being made at this moment): Optuna says so, writing nothing
        return
    if tables and not tables & OPTUNA_ALL_TABLES:  # (an owner making the file has made some of Optuna's)
        raise StorageError(f"the storage {path} is an SQLite file with tables of its own ({', '.join(sorted(tables)[:3])}"
                           f"{', …' if len(tables) > 3 else ''}), not a study; give a new file for --storage")


def _tables(path: Path) -> set:
    """The tables of the SQLite file ``path``, read without changing it."""
    import sqlite3

    _regular(path)
    try:  # without a -wal file the file is all there is: read it as immutable, which makes no -wal nor -shm
        conn = sqlite_connect(str(path), readonly=True, immutable=not os.path.lexists(f"{path}-wal"))
        try:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a study storage: {first_line(exc)}") from None


def sqlite_connect(path: str, readonly: bool = False, immutable: bool = False):
    """A connection to the SQLite file ``path``: a busy timeout of :data:`SQLITE_TIMEOUT`, WAL
    mode (readers such as a dashboard never block the owner) and ``synchronous = NORMAL`` (a
    commit is not fsynced on its own; a killed process loses nothing, a power cut at most the
    last commits, and neither corrupts the file). ``readonly``: SQLite's ``mode=ro``, and the
    file's journal mode as it is; ``immutable``: also no locks and no ``-wal`` or ``-shm`` file."""
    import sqlite3
    from urllib.parse import quote

    if readonly:
        uri = f"file:{quote(os.path.abspath(path))}?mode=ro" + ("&immutable=1" if immutable else "")
        return sqlite3.connect(uri, uri=True, timeout=SQLITE_TIMEOUT, check_same_thread=False)
    conn = sqlite3.connect(path, timeout=SQLITE_TIMEOUT, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@contextlib.contextmanager
def _creating(lock: Path):
    """The owners' lock around opening an SQLite storage: Optuna creates the tables of a new file
    when it opens it, and two processes doing so at once fail ("table studies already exists").
    Where the lock file cannot be made (a directory one may only read), the file is opened
    without it; a lock that is a link or a FIFO is refused."""
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


def of_study_dir(url: str, out) -> StorageRef:
    """The storage that ``OUT/study.json`` names (``url``). A storage file that lay inside a study
    directory that has since been moved or copied is the file of that name inside it now
    (``OUT/study.db``), never the path it had before."""
    ref = resolve(url)
    if ref.path is None:
        return ref
    here = Path(os.path.abspath(out)) / ref.path.name
    if ref.path != here and here.is_file() and not here.is_symlink():
        return _journal(here) if ref.kind == "journal" else _sqlite(here)
    return ref


def _sqlite(path: Path) -> StorageRef:
    path = Path(os.path.abspath(path))
    return StorageRef(f"sqlite:///{path}", "sqlite", path)


def _journal(path: Path) -> StorageRef:
    path = Path(os.path.abspath(path))
    return StorageRef(f"journal:{path}", "journal", path)


class FileLock:
    """An exclusive ``fcntl.flock`` on ``path`` (created if missing), as a context manager; a
    link, a FIFO or a device there is a :class:`StorageError`, never followed nor opened."""

    def __init__(self, path):
        self.path = Path(path)
        self._fd = None

    def __enter__(self):
        try:
            self._fd = fsafe.open_regular(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except fsafe.NotRegularFile as exc:
            raise StorageError(exc.strerror) from None
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
