"""Stopping a run cleanly: the first Ctrl-C asks the trainer to save at the next mini-batch."""
from __future__ import annotations

import signal
import threading

__all__ = ["StopFlag", "NoSignals"]


class StopFlag:
    """While active, the first SIGINT sets ``set`` (the trainer saves at the next step boundary and
    stops); a second one interrupts at once. Installed only from the main thread."""

    def __init__(self):
        self.set = False
        self._old = None
        self._installed = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def _handler(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGINT, self._old)


class NoSignals:
    """A flag that is never set: for runs that leave signals to their caller."""

    set = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass
