"""Run directories: choosing a new one, checking that one can become a run, owning it.

A run directory is polydl's when it holds the marker file ``.polydl-run``, written first when
the run starts; polydl replaces files only in such a directory, and there only the files a run
writes (``checkpoint.RUN_FILES``). While a process trains in it, it holds an OS lock on
``.polydl-lock`` (which the kernel releases when the process ends, even after ``kill -9``), so a
second process is told which process uses the run instead of interleaving with it.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from . import checkpoint as ckpt
from .errors import RunDirError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["MARKER", "LOCK", "RunDir", "default_out_dir", "check_out_dir", "is_run_dir", "missing_dirs"]

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


def is_run_dir(path) -> bool:
    """Whether ``path`` is a directory polydl marked as its own run."""
    return (Path(path) / MARKER).is_file()


def check_out_dir(path, overwrite: bool) -> None:
    """Raise unless ``path`` can become a run directory; writes nothing."""
    path = Path(path)
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
    while not p.exists():
        missing.insert(0, p)
        p = p.parent
    return missing


class RunDir:
    """A run directory this process owns for the life of a run: its lock is held from
    :meth:`create` or :meth:`open` until :meth:`release` (or the end of the process)."""

    def __init__(self, path: Path, created: list):
        self.path = Path(path)
        self.created = created  # directories this process made for the run, outermost first
        self._fd = None
        self._wrote = []        # files of its own this object wrote (the marker, a new lock file)

    # ------------------------------------------------------------------ owning
    @classmethod
    def create(cls, path, overwrite: bool = False, exclusive: bool = False) -> "RunDir":
        """A directory for a new run: made (with its parents), or an empty one, or with
        ``overwrite`` a polydl run whose files are replaced; the marker is written first."""
        path = Path(path)
        check_out_dir(path, overwrite)
        created = missing_dirs(path)
        try:
            path.mkdir(parents=True, exist_ok=not exclusive)
        except FileExistsError:
            raise RunDirError(f"the output directory {path} already exists") from None
        except OSError as exc:
            raise RunDirError(f"cannot create the output directory {path} ({exc.strerror or exc}); "
                              "choose another with --out DIR") from None
        run = cls(path, [p for p in created if p.is_dir()])
        try:
            run.lock()
        except BaseException:
            if run.created:  # made a moment ago for nothing: only the lock file is in it
                shutil.rmtree(run.created[0], ignore_errors=True)
            raise
        try:
            check_out_dir(path, overwrite)  # again, now that nobody else can be starting a run here
            if not is_run_dir(path):
                ckpt.atomic_write(path / MARKER, json.dumps({"format": "polydl-run", "version": 1}) + "\n")
                run._wrote.append(MARKER)
            if overwrite:
                for name in ckpt.RUN_FILES:
                    try:
                        (path / name).unlink()
                    except FileNotFoundError:
                        pass
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
        existed = (self.path / LOCK).exists()
        try:
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunDirError(f"cannot lock the run directory {self.path} ({exc.strerror or exc}); check its "
                              "permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise RunDirError(f"the run in {self.path} is in use by process {pid}; wait until it ends, or stop it "
                              "first (its lock is released when it exits)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
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
                shutil.rmtree(self.created[0], ignore_errors=True)
            else:
                for name in (*ckpt.RUN_FILES, *self._wrote):
                    try:
                        (self.path / name).unlink()
                    except OSError:
                        pass
                ckpt.remove_temporaries(self.path)
        finally:
            self.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

