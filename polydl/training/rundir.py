"""Run directories: choosing a new one, checking that one can become a run, owning it.

A run directory is polydl's when it holds the marker file ``.polydl-run``, written first when
the run starts; polydl replaces files only in such a directory, and there only the files a run
writes (``checkpoint.RUN_FILES``). While a process trains in it, it holds an OS lock on
``.polydl-lock`` (which the kernel releases when the process ends, even after ``kill -9``), so a
second process is told which process uses the run instead of interleaving with it.

Nothing outside the run directory is opened for writing, truncated or deleted: the lock is
opened with :func:`polydl.training.checkpoint.open_own` (never through a link, never waiting on a
FIFO), the run's files are written by atomic replace (a link in their place is replaced, not
written through), ``--overwrite`` deletes with :func:`polydl.fsafe.unlink_inside`, and a run that
cannot start removes only the directories this process made for it.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

from .. import fsafe
from . import checkpoint as ckpt
from .errors import RunDirError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["MARKER", "LOCK", "RunDir", "default_out_dir", "check_out_dir", "is_run_dir", "missing_dirs", "shown"]

MARKER = ".polydl-run"
LOCK = ".polydl-lock"


def default_out_dir(root="runs") -> Path:
    """A new directory ``runs/<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3``... if that exists)."""
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1, 10000):
        path = root / (stamp if i == 1 else f"{stamp}-{i}")
        if not path.exists():
            return path
    raise RunDirError(f"cannot find a free directory name under {root}")  # pragma: no cover


def shown(path, limit: int = 100) -> str:
    """``path`` as a message names it: whole, or its start and end where it is longer than
    ``limit`` characters (so that a 5,000-character path still makes a readable line)."""
    text = str(path)
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}...{text[-(limit // 4):]} ({len(text):,} characters)"


def is_run_dir(path) -> bool:
    """Whether ``path`` is a directory polydl marked as its own run (its marker is a regular
    file, not a link to one)."""
    try:
        return stat.S_ISREG(os.lstat(Path(path) / MARKER).st_mode)
    except (OSError, ValueError):
        return False


def check_out_dir(path, overwrite: bool) -> None:
    """Raise unless ``path`` can become a run directory; writes nothing. A path the system
    refuses (too long, through a file, a loop of links) is a :class:`RunDirError`."""
    path = Path(path)
    try:
        _check_out_dir(path, overwrite)
    except OSError as exc:
        raise RunDirError(f"cannot use {shown(path)} as the output directory: {exc.strerror or exc}; choose "
                          "another with --out DIR") from None


def _not_replaceable(path: Path) -> str | None:
    """What stands in place of one of the run's files that ``--overwrite`` would not remove (a
    directory, a FIFO, a device), or None: a file, a link (removed itself) or nothing."""
    for name in ckpt.RUN_FILES:
        try:
            mode = os.lstat(path / name).st_mode
        except FileNotFoundError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            return f"{path / name} is {fsafe.kind_of(mode)}, not a file polydl wrote"
    return None


def _check_out_dir(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise RunDirError(f"the output path {path} is a file, not a directory; choose another with --out DIR")
    if path.is_dir() and any(p.name != LOCK for p in path.iterdir()):
        if not is_run_dir(path):
            raise RunDirError(f"the output directory {path} already exists and holds files polydl did not write (it "
                              f"has no {MARKER}), so polydl will not replace them; choose another with --out DIR")
        if not overwrite:
            hint = f", or --resume {path} to continue it" if (path / ckpt.CHECKPOINT).exists() else ""
            raise RunDirError(f"the output directory {path} already holds a polydl run; pass --overwrite to replace "
                              f"the run in it{hint}, or choose another with --out DIR")
        odd = _not_replaceable(path)
        if odd:
            raise RunDirError(f"cannot replace the run in {path}: {odd}; remove it, or choose another with --out DIR")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RunDirError(f"cannot create the output directory {path}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot create the output directory {path}: {parent} is not writable; "
                          "choose another with --out DIR")


def missing_dirs(path) -> list[Path]:
    """The directories that ``path.mkdir(parents=True)`` would make, outermost first (so that a
    caller can remove what it made and nothing else)."""
    missing = []
    p = Path(path)
    while not os.path.lexists(p):
        missing.insert(0, p)
        p = p.parent
    return missing


def _make_dirs(path: Path, exclusive: bool) -> list[Path]:
    """Make ``path`` and its missing parents one by one; the ones this call made, outermost first
    (a directory another process makes meanwhile is not among them). With ``exclusive`` a
    ``path`` that exists is a ``FileExistsError``."""
    made = []
    try:
        for d in missing_dirs(path):
            try:
                d.mkdir()
            except FileExistsError:
                if d == path and exclusive:
                    raise
                continue
            made.append(d)
        if exclusive and (not made or made[-1] != path):
            raise FileExistsError(path)
        if not path.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(path))
    except BaseException:
        for d in reversed(made):  # empty, made a moment ago
            try:
                d.rmdir()
            except OSError:
                pass
        raise
    return made


def _identity(path) -> tuple | None:
    """(device, inode) of the directory ``path`` itself (a link is not one), or None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


class RunDir:
    """A run directory this process owns for the life of a run: its lock is held from
    :meth:`create` or :meth:`open` until :meth:`release` (or the end of the process)."""

    def __init__(self, path: Path, created: list):
        self.path = Path(path)
        self.created = created  # directories this process made for the run, outermost first
        self._made = _identity(created[0]) if created else None  # the outermost one, as it was made
        self._fd = None
        self._wrote = []        # files of its own this object wrote (the marker, a new lock file)

    # ------------------------------------------------------------------ owning
    @classmethod
    def create(cls, path, overwrite: bool = False, exclusive: bool = False) -> "RunDir":
        """A directory for a new run: made (with its parents), or an empty one, or with
        ``overwrite`` a polydl run whose files are replaced; the marker is written first."""
        path = Path(path)
        check_out_dir(path, overwrite)
        try:
            created = _make_dirs(path, exclusive)
        except FileExistsError:
            raise RunDirError(f"the output directory {path} already exists") from None
        except OSError as exc:
            raise RunDirError(f"cannot create the output directory {shown(path)} ({exc.strerror or exc}); "
                              "choose another with --out DIR") from None
        run = cls(path, created)
        try:
            run.lock()
        except BaseException:
            run._remove_created()  # made a moment ago for nothing: only the lock file is in it
            raise
        try:
            check_out_dir(path, overwrite)  # again, now that nobody else can be starting a run here
            if not is_run_dir(path):
                ckpt.atomic_write(path / MARKER, json.dumps({"format": "polydl-run", "version": 1}) + "\n")
                run._wrote.append(MARKER)
            if overwrite:
                for name in ckpt.RUN_FILES:  # files, or links (never their targets), in the run only
                    fsafe.unlink_inside(path / name, path)
                ckpt.remove_temporaries(path)
        except OSError as exc:
            run.abandon()
            raise RunDirError(f"the output directory {path} cannot be written ({exc.strerror or exc}); "
                              "choose another with --out DIR") from None
        except BaseException:
            run.abandon()
            raise
        return run

    @classmethod
    def open(cls, path) -> "RunDir":
        """An existing run, to continue: locked, and marked if it was made before runs had markers."""
        run = cls(Path(path), [])
        run.lock()
        try:
            if not is_run_dir(run.path) and (run.path / ckpt.CHECKPOINT).is_file():
                ckpt.atomic_write(run.path / MARKER, json.dumps({"format": "polydl-run", "version": 1}) + "\n")
        except OSError as exc:
            run.release()
            raise RunDirError(f"cannot write in the run directory {run.path} ({exc.strerror or exc}); check its "
                              "permissions and free space") from None
        return run

    def lock(self) -> None:
        """Take the run's OS lock, or say which process holds it."""
        if fcntl is None or self._fd is not None:  # pragma: no cover - no flock on this system
            return
        existed = os.path.lexists(self.path / LOCK)
        try:
            fd = ckpt.open_own(self.path / LOCK, os.O_RDWR | os.O_CREAT)
        except fsafe.NotRegularFile as exc:
            raise RunDirError(f"cannot lock the run directory {self.path}: {exc.strerror}") from None
        except OSError as exc:
            raise RunDirError(f"cannot lock the run directory {self.path} ({exc.strerror or exc}); check its "
                              "permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise RunDirError(f"the run in {self.path} is in use by process {pid}; wait until it ends, or stop it "
                              "first (its lock is released when it exits)") from None
        except OSError as exc:
            os.close(fd)
            raise RunDirError(f"cannot lock the run directory {self.path} ({exc.strerror or exc})") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            os.close(fd)
            raise RunDirError(f"cannot write in the run directory {self.path} ({exc.strerror or exc}); check its "
                              "permissions and free space") from None
        self._fd = fd
        if not existed:
            self._wrote.append(LOCK)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)  # closing the descriptor releases the lock
            finally:
                self._fd = None

    def abandon(self) -> None:
        """Undo a run that could not start (only while its lock is held, so every run file in the
        directory is this run's): remove the directories made for it, or else the files it wrote."""
        try:
            if self.created:
                self._remove_created()
            else:
                for name in (*ckpt.RUN_FILES, *self._wrote):
                    try:
                        fsafe.unlink_inside(self.path / name, self.path)
                    except OSError:
                        pass
                ckpt.remove_temporaries(self.path)
        finally:
            self.release()

    def _remove_created(self) -> None:
        """Remove the outermost directory this process made, if it is still that directory (not a
        link or another directory put in its place); ``shutil.rmtree`` does not follow links in it."""
        if self.created and self._made is not None and _identity(self.created[0]) == self._made:
            shutil.rmtree(self.created[0], ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

