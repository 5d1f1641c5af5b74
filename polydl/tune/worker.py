"""A worker process of the ``local`` executor: ``python -m polydl.tune.worker``.

It reads JSON lines on stdin (``{"op": "run", "task": {...}}``, ``{"op": "run_group", "tasks":
[...]}`` (the population executor's), ``{"op": "stop", "number": N}``, ``{"op": "proceed",
"number": N, "epoch": E}`` (the answer a task with ``decide`` waits for), ``{"op": "exit"}``) and
writes JSON lines on stdout: ``{"kind": "ready", "pid", "threads"}``
once, then the :class:`~polydl.tune.executors.base.TrialEvent` s of each trial. Anything else the
process prints goes to stderr. It holds a shared flock on ``$POLYDL_TUNE_OWNER_LOCK`` and ends at
once when its owner dies (``PR_SET_PDEATHSIG`` on Linux; end of input everywhere).
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import queue
import signal
import sys
import threading

from .. import cpu_kernels, fsafe
from ..training.signals import stop_requested
from .executors.base import BLAS_VARIABLES, OWNER_LOCK, OWNER_PID, TrialTask, run_trial

_held = []  # the owner lock's file descriptor, for the life of the process


class Control:
    """What the owner said of each trial: stop it, or go on past an epoch."""

    def __init__(self):
        self._changed = threading.Condition()
        self.stops: set[int] = set()
        self.past: dict[int, int] = {}
        self.closed = False

    def stop(self, number: int) -> None:
        with self._changed:
            self.stops.add(number)
            self._changed.notify_all()

    def proceed(self, number: int, epoch: int) -> None:
        with self._changed:
            self.past[number] = max(epoch, self.past.get(number, 0))
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def stopped(self, number: int) -> bool:
        return number in self.stops

    def wait(self, number: int, epoch: int) -> None:
        """Until the owner answered ``epoch`` of trial ``number`` (or a signal asked to stop)."""
        with self._changed:
            while not (self.closed or number in self.stops or self.past.get(number, 0) >= epoch
                       or stop_requested()):
                self._changed.wait(0.1)

    def forget(self, numbers) -> None:
        with self._changed:
            for n in numbers:
                self.stops.discard(n)
                self.past.pop(n, None)


def _die_with_owner() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    owner = int(os.environ.get(OWNER_PID, "0") or 0)
    if owner and os.getppid() != owner:  # the owner died before the line above
        os._exit(3)


def _hold_owner_lock() -> None:
    path = os.environ.get(OWNER_LOCK)
    if path:
        fd = fsafe.open_regular(path, os.O_RDONLY)  # the owner's own lock: never a link, a FIFO, nor made here
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held.append(fd)


def _obey(msg: dict, tasks: queue.Queue, control: Control, exiting: threading.Event) -> None:
    """Carry out one message of the owner."""
    op = msg.get("op")
    if op == "run":
        tasks.put(TrialTask.from_dict(msg["task"]))
    elif op == "run_group":  # the population executor's: trials of one shape as one population
        tasks.put([TrialTask.from_dict(t) for t in msg["tasks"]])
    elif op == "stop":
        control.stop(int(msg["number"]))
    elif op == "proceed":
        control.proceed(int(msg["number"]), int(msg["epoch"]))
    elif op == "exit":
        exiting.set()
        control.close()
        tasks.put(None)


def _listen(tasks: queue.Queue, control: Control, exiting: threading.Event) -> None:
    """Read the owner's messages until the end of input (the owner died unless it said exit)."""
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        _obey(msg, tasks, control, exiting)
    if not exiting.is_set():
        os._exit(3)  # end of input without "exit": the owner died
    tasks.put(None)


def _train(job, send, control: Control) -> None:
    """Train ``job`` (a trial, or a list of them as one population), its events to ``send``."""
    if isinstance(job, list):
        from .executors.population import run_group

        run_group(job, lambda ev: send(ev.to_dict()), control.stopped, wait_decision=control.wait)
        control.forget(t.number for t in job)
        return
    number = job.number
    run_trial(job, lambda ev: send(ev.to_dict()), lambda: control.stopped(number),
              wait_decision=lambda epoch: control.wait(number, epoch))
    control.forget([number])


def main() -> int:
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    cpu_kernels.notes(None)  # trials compile kernels without the note, which each worker would repeat
    _die_with_owner()
    _hold_owner_lock()
    tasks: queue.Queue = queue.Queue()
    control = Control()
    send_lock = threading.Lock()
    exiting = threading.Event()

    def send(msg: dict) -> None:
        with send_lock:
            try:
                proto.write(json.dumps(msg) + "\n")
                proto.flush()
            except (BrokenPipeError, OSError):
                os._exit(3)  # the owner is gone

    threading.Thread(target=_listen, args=(tasks, control, exiting), daemon=True, name="polydl-worker-input").start()
    send({"kind": "ready", "pid": os.getpid(), "threads": {v: os.environ.get(v) for v in BLAS_VARIABLES}})
    try:
        while True:
            job = tasks.get()
            if job is None:
                return 0
            _train(job, send, control)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # every file of a trial is closed by now; skip the interpreter's slow teardown
