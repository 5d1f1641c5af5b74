"""Owners of trials: which process runs a trial, and whether it still does.

Each owner process holds a shared ``fcntl.flock`` on ``OUT/owners/PID-TOKEN.lock`` for its
whole life, and so does each of its workers (and each Ray task that sees ``OUT``); its trials carry the user attr ``owner`` =
``{"host", "pid", "token", "lock"}``. The lock is free exactly when the owner and all its
workers have exited (a crash, ``kill -9``, a reboot), so a ``RUNNING`` trial of this machine
whose owner lock is free (or gone) has lost its owner and may be adopted.
"""
from __future__ import annotations

import fcntl
import os
import secrets
import socket
from pathlib import Path

from . import layout

__all__ = ["Owner", "owner_alive"]


class Owner:
    """This process as an owner: a shared flock on ``OUT/owners/PID-TOKEN.lock``."""

    def __init__(self, out: Path):
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.token = secrets.token_hex(4)
        owners = out / layout.OWNERS
        owners.mkdir(parents=True, exist_ok=True)
        self.lock = (owners / f"{self.pid}-{self.token}.lock").resolve()
        self._fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def attr(self) -> dict:
        return {"host": self.host, "pid": self.pid, "token": self.token, "lock": str(self.lock)}

    def release(self) -> None:
        if self._fd is not None:
            try:
                self.lock.unlink()
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None


def owner_alive(attr, host: str | None = None) -> bool | None:
    """Whether the owner an ``owner`` attr names still holds its lock: True, False (its lock is
    free or gone: nothing trains its trials), or None for an owner on another machine."""
    if not isinstance(attr, dict) or "lock" not in attr:
        return False
    if attr.get("host") != (host or socket.gethostname()):
        return None
    try:
        fd = os.open(attr["lock"], os.O_RDWR)
    except FileNotFoundError:
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
