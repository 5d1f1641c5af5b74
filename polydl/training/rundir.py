"""Run directories: choosing a new one, checking that one can become a run, preparing it.

Everything is checked before anything is written; ``prepare_out_dir`` creates the directory and
clears a run that ``overwrite`` replaces.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from . import checkpoint as ckpt
from .errors import RunDirError

__all__ = ["default_out_dir", "check_out_dir", "prepare_out_dir"]


def default_out_dir(root="runs") -> Path:
    """A new directory ``runs/<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3``... if that exists)."""
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1, 10000):
        path = root / (stamp if i == 1 else f"{stamp}-{i}")
        if not path.exists():
            return path
    raise RunDirError(f"cannot find a free directory name under {root}")  # pragma: no cover


def _writable_probe(path: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".polydl-tmp-probe.", dir=path)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise RunDirError(f"the output directory {path} cannot be written ({exc.strerror or exc}); "
                          "choose another with --out DIR") from None


def check_out_dir(path, overwrite: bool) -> None:
    """Raise unless ``path`` can become a run directory; writes nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"the output path {path} is a file, not a directory; choose another with --out DIR")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        hint = f", or --resume {path} to continue it" if (path / ckpt.CHECKPOINT).exists() else ""
        raise RunDirError(f"the output directory {path} already exists and is not empty; pass --overwrite "
                          f"to replace the run in it{hint}, or choose another with --out DIR")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RunDirError(f"cannot create the output directory {path}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot create the output directory {path}: {parent} is not writable; "
                          "choose another with --out DIR")


def prepare_out_dir(path, overwrite: bool, exclusive: bool = False) -> Path:
    path = Path(path)
    check_out_dir(path, overwrite)
    try:
        path.mkdir(parents=True, exist_ok=not exclusive)
    except FileExistsError:
        raise RunDirError(f"the output directory {path} already exists") from None
    except OSError as exc:
        raise RunDirError(f"cannot create the output directory {path} ({exc.strerror or exc}); "
                          "choose another with --out DIR") from None
    _writable_probe(path)
    if overwrite:
        for name in ckpt.RUN_FILES:
            try:
                (path / name).unlink()
            except FileNotFoundError:
                pass
        ckpt.remove_temporaries(path)
    return path
