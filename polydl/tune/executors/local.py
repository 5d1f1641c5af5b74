"""The ``local`` executor: a pool of worker processes on this machine.

Each worker (``python -m polydl.tune.worker``) has ``cpu_count // workers`` BLAS threads
(``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, set before NumPy loads) and
talks JSON lines over stdin/stdout: it trains one job at a time, a trial (``run``) or a
population group (``run_group``), and streams its events back. A worker holds a shared flock on
the owner's lock file and dies with the owner (``PR_SET_PDEATHSIG`` on Linux, and end of input
everywhere), so a free owner lock means that nothing trains that owner's trials any more.

Submitted trials wait in a :class:`~polydl.tune.executors.grouping.Waiting` until a worker is
free: a trial alone goes at once, groups form at the next :meth:`~LocalExecutor.poll`, of all the
trials submitted by then. Protected hook for subclasses: :meth:`LocalExecutor._new_waiting` says how waiting trials
become jobs (here one trial each, in order; the ``population`` executor groups them); ``slots``
is ``workers`` times the largest job.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from . import resources
from .base import Executor, TrialEvent, TrialTask, worker_environment
from .grouping import Waiting

__all__ = ["LocalExecutor"]


class _Worker:
    """One worker process, the trials it trains now, and the pipe to it."""

    def __init__(self, proc, index):
        self.proc = proc
        self.index = index
        self.numbers: set[int] = set()   # the trials it trains
        self.info: dict = {}
        self.alive = True
        self.ready = threading.Event()
        self.lock = threading.Lock()

    def send(self, msg: dict) -> bool:
        with self.lock:
            try:
                self.proc.stdin.write(json.dumps(msg) + "\n")
                self.proc.stdin.flush()
                return True
            except (BrokenPipeError, OSError, ValueError):
                return False


class LocalExecutor(Executor):
    """Worker processes on this machine (see the module docstring)."""

    name = "local"

    def __init__(self, workers: int | None = None, owner_lock=None, device: str = "cpu", grace: float = 15.0):
        workers = self.check_option("workers", workers)
        self.workers = workers if workers is not None else resources.default_workers(device)
        self.threads = resources.blas_threads(self.workers)
        self.owner_lock = str(owner_lock) if owner_lock is not None else None
        self.grace = grace
        self._waiting = self._new_waiting()
        self.slots = self.workers * (self._waiting.size or 1)
        self._events: queue.Queue = queue.Queue()
        self._pool: list[_Worker] = []
        self._started = False

    @classmethod
    def default_workers(cls, device: str = "cpu") -> int:
        """What this machine holds (:func:`~polydl.tune.executors.resources.default_workers`)."""
        return resources.default_workers(device)

    def _new_waiting(self) -> Waiting:
        """Protected hook: how submitted trials wait for a worker and become its jobs (here one
        trial at a time, in the order they came)."""
        return Waiting()

    def environment(self) -> dict:
        """The environment of a worker: BLAS threads, the owner, where polydl is."""
        return worker_environment(self.threads, os.getpid(), self.owner_lock)

    def _spawn(self, index: int) -> _Worker:
        proc = subprocess.Popen([sys.executable, "-m", "polydl.tune.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=self.environment(), text=True, encoding="utf-8",
                                bufsize=1, start_new_session=True)
        worker = _Worker(proc, index)
        threading.Thread(target=self._read, args=(worker,), daemon=True, name=f"polydl-worker-{index}").start()
        return worker

    def _read(self, worker: _Worker) -> None:
        for line in worker.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("kind") == "ready":
                worker.info = msg
                worker.ready.set()
                continue
            self._events.put((worker, TrialEvent.from_dict(msg)))
        code = worker.proc.wait()
        self._events.put((worker, code))

    def start(self) -> None:
        if not self._started:
            self._pool = [self._spawn(i) for i in range(self.workers)]
            self._started = True

    def worker_info(self, timeout: float = 60.0) -> list[dict]:
        """What each worker reported when it started (pid, BLAS threads)."""
        for w in self._pool:
            w.ready.wait(timeout)
        return [w.info for w in self._pool]

    def free(self) -> int:
        return self.slots - len(self._waiting) - sum(len(w.numbers) for w in self._pool)

    def submit(self, task: TrialTask) -> None:
        self.start()
        self._waiting.add(task)
        if self._waiting.size is None:  # a trial alone goes at once; groups form at the next poll, of all submitted
            self._launch()

    def _launch(self) -> None:
        """Give waiting trials to the free workers (a worker that died is started again)."""
        while self._waiting:
            i = next((i for i, w in enumerate(self._pool) if not w.numbers), None)
            if i is None:
                return
            tasks = self._waiting.take()
            w = self._pool[i]
            if not w.alive:
                w = self._pool[i] = self._spawn(w.index)
            w.numbers = {t.number for t in tasks}
            msg = {"op": "run", "task": tasks[0].to_dict()} if len(tasks) == 1 else \
                {"op": "run_group", "tasks": [t.to_dict() for t in tasks]}
            if not w.send(msg):
                w.alive = False

    def _training(self, number: int) -> list[_Worker]:
        """The workers that train trial ``number``."""
        return [w for w in self._pool if number in w.numbers]

    def stop(self, number: int) -> None:
        for w in self._training(number):
            w.send({"op": "stop", "number": number})

    def proceed(self, number: int, epoch: int) -> None:
        for w in self._training(number):
            w.send({"op": "proceed", "number": number, "epoch": int(epoch)})

    def poll(self, timeout: float) -> list[TrialEvent]:
        self._launch()
        out = self._waiting.notes()
        return out + self._drain(0.0 if out else timeout)

    def _drain(self, timeout: float) -> list[TrialEvent]:
        """The workers' events, waiting up to ``timeout`` seconds for the first."""
        out: list[TrialEvent] = []
        try:
            item = self._events.get(timeout=max(0.0, timeout)) if timeout > 0 else self._events.get_nowait()
        except queue.Empty:
            return out
        while True:
            out.extend(self._handle(*item))
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return out

    def _handle(self, worker: _Worker, item) -> list[TrialEvent]:
        """An event of ``worker``, or its exit code (its trials fail)."""
        if isinstance(item, TrialEvent):
            if item.final:
                worker.numbers.discard(item.number)
            return [item]
        worker.alive = False
        numbers, worker.numbers = sorted(worker.numbers), set()
        message = f"the worker process (pid {worker.proc.pid}) ended with exit code {item} during the trial"
        return [TrialEvent(n, "failed", message=message) for n in numbers]

    def close(self, interrupt: bool = False) -> list[TrialEvent]:
        out = self._waiting.close()
        if not self._started:
            return out
        if interrupt:
            out.extend(self._interrupt())
        self._end_workers()
        out.extend(self._drain(0.0) if not self._events.empty() else [])
        self._started = False
        return out

    def _interrupt(self) -> list[TrialEvent]:
        """SIGINT to the workers that train: their trials save their checkpoints and end
        ``interrupted`` (within :attr:`grace` seconds). The events meanwhile."""
        out = []
        for w in self._pool:
            if w.numbers and w.alive:
                try:
                    os.kill(w.proc.pid, signal.SIGINT)
                except OSError:
                    pass
        deadline = time.monotonic() + self.grace
        while any(w.numbers and w.alive for w in self._pool) and time.monotonic() < deadline:
            out.extend(self.poll(0.1))
        return out

    def _end_workers(self) -> None:
        """Tell every worker to exit; kill those that have not within 10 s."""
        for w in self._pool:
            w.send({"op": "exit"})
            try:
                w.proc.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + 10.0
        for w in self._pool:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
