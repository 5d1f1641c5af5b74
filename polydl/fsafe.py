"""Opening polydl's own files safely: never through a symbolic link, never blocking on a FIFO,
only regular files, and only inside the directory that owns them.

A run directory or a study directory may have been tampered with (a ``.polydl-lock`` that links
to a user's file, a FIFO in place of ``metrics.jsonl``, a database that names a path outside the
study). Every file polydl opens for writing, truncates or deletes goes through :func:`open_regular`
or :func:`unlink_inside`, so nothing outside ``OUT`` or a run directory is ever touched.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["NotRegularFile", "open_regular", "read_regular", "is_inside", "check_inside", "unlink_inside",
           "kind_of", "kind_of_path"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class NotRegularFile(OSError):
    """A path polydl would open is a link, a FIFO, a directory or a device: refused."""


def kind_of(mode: int) -> str:
    """What a ``st_mode`` is, in words: 'a symbolic link', 'a named pipe (FIFO)', …"""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def kind_of_path(path) -> str:
    """What ``path`` is (its link followed), in the words of :func:`kind_of`."""
    try:
        return kind_of(os.stat(path).st_mode)
    except (OSError, ValueError):
        return "not a regular file"


def _refuse(path, mode: int) -> NotRegularFile:
    return NotRegularFile(errno.EINVAL, f"{path} is {kind_of(mode)}, not a regular file; remove it", str(path))


def open_regular(path, flags: int = os.O_RDONLY, mode: int = 0o666, *, follow: bool = False) -> int:
    """``os.open`` for a regular file only: ``O_NOFOLLOW`` (a link is refused, not followed, even a
    dangling one with ``O_CREAT``), ``O_NONBLOCK`` (a FIFO cannot hang the call) and a check of
    what was opened. Raises :class:`NotRegularFile` (an ``OSError``) for anything else.

    ``follow=True`` (for reading a user's own input, such as a data file named on the command
    line) follows links: the file they lead to must be a regular file."""
    path = Path(path)
    try:
        fd = os.open(path, flags | (0 if follow else _NOFOLLOW) | _NONBLOCK | _CLOEXEC, mode)
    except OSError as exc:
        if not follow and exc.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW on a link
            raise NotRegularFile(errno.ELOOP, f"{path} is a symbolic link, not a regular file; remove it",
                                 str(path)) from None
        if exc.errno == errno.ENXIO:  # O_WRONLY|O_NONBLOCK on a FIFO without a reader
            raise _refuse(path, stat.S_IFIFO) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, st.st_mode)
        if _NONBLOCK:  # a regular file: blocking mode back, as an ordinary open() would have it
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path, limit: int | None = None, *, follow: bool = False) -> bytes:
    """The bytes of a regular file (at most ``limit``), opened with :func:`open_regular`."""
    fd = open_regular(path, os.O_RDONLY, follow=follow)
    with os.fdopen(fd, "rb") as fh:
        return fh.read() if limit is None else fh.read(limit)


def is_inside(path, root) -> bool:
    """Whether ``path``, its links resolved, lies strictly inside the directory ``root``."""
    try:
        p = Path(os.path.realpath(path))
        r = Path(os.path.realpath(root))
    except (OSError, ValueError):
        return False
    return p != r and r in p.parents


def check_inside(path, root) -> Path:
    """``path`` if it lies inside ``root`` (see :func:`is_inside`), else ``ValueError``."""
    if not is_inside(path, root):
        raise ValueError(f"{path} does not lie inside {root}")
    return Path(path)


def unlink_inside(path, root) -> bool:
    """Delete ``path`` only if it is a regular file or a link (the link itself, never its target)
    lying inside ``root``; True if something was deleted. Anything else is left alone."""
    path = Path(path)
    try:
        parent = Path(os.path.realpath(path.parent))
    except (OSError, ValueError):
        return False
    real_root = Path(os.path.realpath(root))
    if parent != real_root and real_root not in parent.parents:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
