"""Stopping a run cleanly: the first Ctrl-C (SIGINT) or SIGTERM — what a job scheduler,
``timeout``, Docker and systemd send — asks the trainer to save at the next mini-batch and stop."""
from __future__ import annotations

import signal
import threading

__all__ = ["StopFlag", "NoSignals", "STOP_SIGNALS", "stop_requested"]

#: the signals that stop a run cleanly
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_active: list = []  # the installed StopFlags


def stop_requested() -> bool:
    """Whether a signal has asked the run that installed a :class:`StopFlag` to stop (for code
    that waits inside a run, so that it stops waiting)."""
    return any(flag.set for flag in _active)


class StopFlag:
    """While active, the first SIGINT or SIGTERM sets ``set`` and ``signum`` (the trainer saves at
    the next step boundary and stops); a second one interrupts at once. Installed only from the
    main thread."""

    def __init__(self):
        self.set = False
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handler)
            _active.append(self)
        return self

    def _handler(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        if self._old:
            _active.remove(self)
        self._old.clear()


class NoSignals:
    """A flag that is never set: for runs that leave signals to their caller."""

    set = False
    signum = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass
