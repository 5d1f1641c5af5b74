"""Owners of trials: which process runs a trial, and whether it still does.

Each owner process holds a shared ``fcntl.flock`` on ``OUT/owners/PID-TOKEN.lock`` for its
whole life, and so does each of its workers (and each Ray task that sees ``OUT``); its trials carry the user attr ``owner`` =
``{"host", "pid", "token", "lock"}``. The lock is free exactly when the owner and all its
workers have exited (a crash, ``kill -9``, a reboot), so a ``RUNNING`` trial of this machine
whose owner lock is free (or gone) has lost its owner and may be adopted.

A storage may come from someone else: the path of an owner's lock is derived from ``OUT`` and
the attr's ``pid`` and ``token`` (checked as plain tokens); a lock file is opened read-only, as a
regular file only, never through a link nor blocking on a FIFO (:mod:`polydl.fsafe`), and only
a lock inside ``OUT`` is ever deleted. The attr's ``lock`` is read back only for an owner of the
same storage with another study directory (see :func:`owner_alive`).
"""
from __future__ import annotations

import fcntl
import os
import re
import secrets
import socket
from pathlib import Path

from .. import fsafe
from . import layout

__all__ = ["Owner", "owner_alive", "lock_path", "lock_alive", "OwnerError"]

_TOKEN = re.compile(r"[0-9A-Za-z]{1,64}")


class OwnerError(ValueError):
    """An owner lock that cannot be taken: ``OUT/owners`` or the lock file is not polydl's."""


def lock_path(out, attr) -> Path | None:
    """``OUT/owners/PID-TOKEN.lock`` of the owner that ``attr`` names; None where its ``pid`` is
    not a positive whole number or its ``token`` not a plain token of letters and digits."""
    if not isinstance(attr, dict):
        return None
    pid, token = attr.get("pid"), attr.get("token")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    return Path(out) / layout.OWNERS / f"{pid}-{token}.lock"


class Owner:
    """This process as an owner: a shared flock on ``OUT/owners/PID-TOKEN.lock``. Raises
    :class:`OwnerError` where ``OUT/owners`` leads outside ``OUT`` or the lock is not a regular file,
    ``OSError`` where it cannot be written."""

    def __init__(self, out: Path):
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.token = secrets.token_hex(4)
        self.out = Path(out)
        owners = self.out / layout.OWNERS
        owners.mkdir(parents=True, exist_ok=True)
        lock = owners / f"{self.pid}-{self.token}.lock"
        if owners.is_symlink() or not fsafe.is_inside(lock, self.out):
            raise OwnerError(f"{owners} is a link that leads outside the study directory {self.out}; remove it")
        self.lock = lock.resolve()
        try:
            self._fd = fsafe.open_regular(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
        except fsafe.NotRegularFile as exc:
            raise OwnerError(exc.strerror) from None
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def attr(self) -> dict:
        return {"host": self.host, "pid": self.pid, "token": self.token, "lock": str(self.lock)}

    def release(self) -> None:
        if self._fd is not None:
            fsafe.unlink_inside(self.lock, self.out)
            os.close(self._fd)
            self._fd = None


def lock_alive(path) -> bool | None:
    """Whether an owner lock file is held: True, False (free, gone, or not a regular file, which
    no owner makes), or None where it cannot be told (no permission)."""
    try:
        fd = fsafe.open_regular(path, os.O_RDONLY)  # flock needs no write access: nothing is opened for writing
    except (FileNotFoundError, fsafe.NotRegularFile):
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def owner_alive(attr, out, host: str | None = None, storage: str | None = None) -> bool | None:
    """Whether the owner an ``owner`` attr names still holds its lock: True, False (its lock is
    free or gone: nothing trains its trials), or None for an owner on another machine (or a lock
    that cannot be told).

    The lock is ``OUT/owners/PID-TOKEN.lock`` of the study directory ``out``. An owner of the same
    storage (URL ``storage``) with a study directory of its own has its lock there: the attr's
    ``lock`` is looked at only when it is ``OTHER/owners/PID-TOKEN.lock`` of a study directory
    ``OTHER`` whose ``study.json`` names this storage, and then only read (a flock test)."""
    if not isinstance(attr, dict):
        return False
    if attr.get("host") != (host or socket.gethostname()):
        return None
    path = lock_path(out, attr)
    if path is None:
        return False  # not an owner polydl recorded: nothing holds it
    if not fsafe.is_inside(path.parent, out):  # OUT/owners leads elsewhere: not this study's to tell
        return None
    if not os.path.lexists(path) and storage is not None:
        other = _lock_of_another_study(attr, path.name, storage)
        if other is not None:
            return lock_alive(other)
    return lock_alive(path)


def _lock_of_another_study(attr: dict, name: str, storage: str) -> Path | None:
    """``attr["lock"]`` if it is ``OTHER/owners/NAME`` of a study directory that shares ``storage``."""
    from . import storage as _storage

    text = attr.get("lock")
    if not isinstance(text, str) or "\0" in text or not os.path.isabs(text):
        return None
    lock = Path(os.path.normpath(text))
    if lock.name != name or lock.parent.name != layout.OWNERS:
        return None
    other = lock.parent.parent
    try:
        doc = layout.read_study_json(other)
        return lock if _storage.of_study_dir(doc["storage"], other).url == storage else None
    except (ValueError, OSError, TypeError):
        return None
