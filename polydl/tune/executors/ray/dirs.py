"""Where a Ray task trains, and the modes of the directories Ray makes.

The owner writes a token file ``OUT/ray/visible-TOKEN``: a task that reads it (:func:`sees`)
sees ``OUT`` (the same machine, or a shared file system) and trains in ``OUT/trials/NNNN``
directly. A task that cannot read it trains in a scratch directory of its machine
(:func:`scratch_root`: ``$TMPDIR/polydl-ray-UID``, the user's own) and ships the run directory
back (:mod:`~polydl.tune.executors.ray.shipping`). A local Ray instance keeps its files in
``OUT/ray`` (:func:`check_ray_dir`), whose directories get the umask's mode back when it stops
(:func:`close_to_others`).
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .... import fsafe
from ....training import checkpoint as ckpt
from ...layout import RAY as RAY_DIR
from .errors import RayExecutorError

__all__ = ["RAY_DIR", "sees", "scratch_root", "check_ray_dir", "close_to_others", "dir_mode"]


def sees(path, secret) -> bool:
    """Whether the token file ``path`` of the owner holds ``secret`` (this machine sees ``OUT``)."""
    try:
        return fsafe.read_regular(path, 4096).decode("ascii") == secret
    except (OSError, UnicodeDecodeError):
        return False


def scratch_root() -> Path:
    """``$TMPDIR/polydl-ray-UID``: this user's directory of scratch run directories, made with mode
    0700. One that is a link, or that another user owns or may write, is refused: nothing of
    another user's is ever deleted or written through it. Raises :class:`RayExecutorError`."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = Path(tempfile.gettempdir()) / f"polydl-ray-{uid}"
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RayExecutorError(f"cannot create the scratch directory {root} ({exc.strerror or exc})") from None
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or (hasattr(os, "getuid") and (st.st_uid != uid or st.st_mode & 0o022)):
        raise RayExecutorError(f"the scratch directory {root} is not this user's own directory ({fsafe.kind_of(st.st_mode)}"
                               f" or another user's, or writable by others); remove it")
    return root


def check_ray_dir(out) -> None:
    """Refuse an ``OUT/ray`` that is a link (Ray's files and the token would land elsewhere)."""
    folder = Path(out) / RAY_DIR
    if folder.is_symlink() or not fsafe.is_inside(folder / "x", out):
        raise RayExecutorError(f"{folder} is a link, not a directory of the study {out}; remove it")


def close_to_others(folder: Path) -> None:
    """Give the directories Ray made writable by every user (its temp directory's way) the mode
    of the umask again."""
    mode = dir_mode()
    if Path(folder).is_symlink():
        return
    for root, dirs, _ in os.walk(folder):
        for d in [root, *(os.path.join(root, d) for d in dirs)]:
            try:
                st = os.lstat(d)  # a link is left alone: what it leads to is not the study's
                if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o777 != mode:
                    os.chmod(d, mode)
            except OSError:
                pass


def dir_mode() -> int:
    """The mode ``mkdir`` gives a directory under the umask (0o755 under 022)."""
    umask = 0o666 & ~ckpt.file_mode()
    return 0o777 & ~(umask | (umask & 0o444) >> 2)
