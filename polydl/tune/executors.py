"""Executors: where trials train, and how what happens to them comes back to the owner.

The owner of a study hands an executor :class:`TrialTask` s and polls :class:`TrialEvent` s;
only the owner talks to the study. Both are plain JSON-able records, so an executor can carry
them through pipes (``local``) or over the network. For each task an executor emits any number
of ``epoch`` events (one per-epoch record of ``metrics.jsonl``, as soon as it is written), then
exactly one of

- ``done``: the run finished; ``record`` is its ``summary.json``;
- ``failed``: ``message`` is the one-line reason (a NaN loss, a bad configuration, a worker
  that died);
- ``stopped``: the owner asked :meth:`Executor.stop` (a pruned trial); ``epoch`` is the last
  finished epoch;
- ``interrupted``: the executor was closed with ``interrupt=True``; the checkpoint is saved and
  the trial continues when the study runs again.

``note`` events carry a run's notes (a missing matplotlib). Where a trial trains,
:func:`run_trial` does the work: it trains ``task.config`` in ``task.run_dir`` (or continues
the checkpoint there with ``training.resume`` when ``task.resume``), calls ``emit`` with each
event and polls ``stop_requested`` at every mini-batch.

A task with ``decide`` (the owner prunes) waits after each epoch but the last until the owner
has answered that epoch's event: :meth:`Executor.proceed` (go on) or :meth:`Executor.stop`.
So a trial is pruned exactly after the epoch whose value the pruner judged, however fast it
trains and however slowly events travel, and a seeded study with one worker prunes the same
trials every time; the price is one round trip to the owner per epoch. An executor that runs trials on other
machines (``ray``, :mod:`polydl.tune.ray_executor`) runs :func:`run_trial` in a remote task
whose ``emit`` sends events back, and sets a flag the task polls for :meth:`Executor.stop`. A
continued trial resumes on the device its task gives (``device`` of ``task.config``).

``local`` runs a pool of worker processes (``python -m polydl.tune.worker``) on this machine,
each with ``cpu_count // workers`` BLAS threads (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``, set before NumPy loads), talking JSON lines over stdin/stdout. A worker
holds a shared flock on the owner's lock file and dies with the owner (``PR_SET_PDEATHSIG`` on
Linux, and end of input everywhere), so a free owner lock means that nothing trains that
owner's trials any more.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import fsafe

__all__ = ["TrialTask", "TrialEvent", "Executor", "LocalExecutor", "EXECUTORS", "run_trial", "TrialStopped",
           "default_workers", "blas_threads", "available_cpus", "available_memory", "WORKER_MEMORY",
           "BLAS_VARIABLES", "make_executor"]

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: the memory a default worker is given room for (a small model, its data and NumPy)
WORKER_MEMORY = 1 << 30
OWNER_PID = "POLYDL_TUNE_OWNER_PID"
OWNER_LOCK = "POLYDL_TUNE_OWNER_LOCK"
ENDS = ("done", "failed", "stopped", "interrupted")


@dataclass
class TrialTask:
    """One trial to train: the complete configuration and the run directory; ``decide``: wait for
    the owner's answer after each epoch (see the module docstring)."""

    number: int
    config: dict
    run_dir: str
    resume: bool = False
    decide: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrialTask":
        return cls(int(d["number"]), dict(d["config"]), str(d["run_dir"]), bool(d.get("resume", False)),
                   bool(d.get("decide", False)))


@dataclass
class TrialEvent:
    """What happened to trial ``number``: ``kind`` is epoch, done, failed, stopped, interrupted or note."""

    number: int
    kind: str
    record: dict | None = None
    message: str | None = None
    epoch: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.kind in ENDS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrialEvent":
        return cls(int(d["number"]), str(d["kind"]), d.get("record"), d.get("message"), d.get("epoch"),
                   dict(d.get("extra") or {}))


# ---------------------------------------------------------------------------- where trials train
class TrialStopped(Exception):
    """Raised inside a run when the owner asked to stop the trial."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def run_trial(task: TrialTask, emit, stop_requested=lambda: False, handle_signals: bool = True,
              wait_decision=None) -> TrialEvent:
    """Train ``task`` and ``emit`` its events; returns (and emits) the final one. For a task with
    ``decide``, ``wait_decision(epoch)`` returns once the owner has answered that epoch's event
    (``stop_requested`` tells which answer)."""
    from .. import training
    from ..training import checkpoint as ckpt

    class Reporter(training.Reporter):
        epoch = 0

        def step(self, loss=None):
            if stop_requested():
                raise TrialStopped()

        def epoch_end(self, record, epochs):
            self.epoch = int(record["epoch"])
            emit(TrialEvent(task.number, "epoch", record=dict(record), epoch=self.epoch))
            if task.decide and wait_decision is not None and self.epoch < epochs:
                wait_decision(self.epoch)
            if stop_requested() and self.epoch < epochs:
                raise TrialStopped()

        def note(self, message):
            emit(TrialEvent(task.number, "note", message=message))

    reporter = Reporter()
    run_dir = Path(task.run_dir)
    try:
        if task.resume and (run_dir / ckpt.CHECKPOINT).is_file():
            summary = _finished_summary(run_dir, task.config)
            if summary is not None:
                final = TrialEvent(task.number, "done", record=summary, epoch=summary.get("epochs"))
                emit(final)
                return final
            changes = {"device": task.config["device"]} if "device" in task.config else None
            result = training.resume(run_dir, changes, reporter=reporter, handle_signals=handle_signals)
        else:
            config = training.from_dict(task.config)
            result = training.run(config, run_dir, overwrite=run_dir.exists(), reporter=reporter,
                                  handle_signals=handle_signals)
        final = TrialEvent(task.number, "done", record=dict(result.summary), epoch=result.epochs)
    except TrialStopped:
        final = TrialEvent(task.number, "stopped", epoch=reporter.epoch)
    except training.TrainingInterrupted as exc:
        final = TrialEvent(task.number, "interrupted", message=_one_line(exc), epoch=exc.epoch)
    except (training.TrainingDiverged, ValueError) as exc:
        final = TrialEvent(task.number, "failed", message=_one_line(exc), epoch=reporter.epoch)
    except Exception as exc:  # a plugin's bug must not end the search
        final = TrialEvent(task.number, "failed", message=f"{type(exc).__name__}: {_one_line(exc)}",
                           epoch=reporter.epoch)
    emit(final)
    return final


def _finished_summary(run_dir: Path, config: dict) -> dict | None:
    """The summary of a run that finished all its epochs (killed before its owner heard)."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(fsafe.read_regular(path, 1 << 24).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(summary, dict) and summary.get("epochs") == config.get("epochs"):
        return summary
    return None


# ---------------------------------------------------------------------------- sizes
def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available (Linux ``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_workers(device: str = "cpu") -> int:
    """What the machine can hold: one worker per CPU, at most one per :data:`WORKER_MEMORY` of
    available memory; one on a GPU (its processes would share it)."""
    if str(device).startswith("cuda"):
        return 1
    n = available_cpus()
    mem = available_memory()
    if mem is not None:
        n = min(n, max(1, mem // WORKER_MEMORY))
    return max(1, n)


def blas_threads(workers: int) -> int:
    """BLAS threads per worker: ``cpu_count // workers``, at least 1."""
    return max(1, available_cpus() // max(1, int(workers)))


# ---------------------------------------------------------------------------- executors
class Executor:
    """Runs trials (see the module docstring); ``slots`` trials at once."""

    name = ""
    slots = 1
    #: the owner's lock file, which workers that see it hold too (set before :meth:`start`)
    owner_lock: str | None = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(interrupt=exc_type is not None)

    def prepare(self, out) -> list[str]:
        """Check, before the study directory ``out`` is written, that trials can run here
        (connect to a cluster, check its resources; ``ValueError`` otherwise). Returns notes
        for the user."""
        return []

    def start(self) -> None:
        """Get ready (start workers)."""

    def free(self) -> int:
        """How many more trials it can take now."""
        raise NotImplementedError

    def submit(self, task: TrialTask) -> None:
        raise NotImplementedError

    def stop(self, number: int) -> None:
        """Ask trial ``number`` to stop; it ends with a ``stopped`` event (or an earlier end)."""
        raise NotImplementedError

    def proceed(self, number: int, epoch: int) -> None:
        """The owner's answer to ``epoch`` of trial ``number`` (a task with ``decide``): go on."""
        raise NotImplementedError

    def poll(self, timeout: float) -> list[TrialEvent]:
        """The events since the last poll, waiting up to ``timeout`` seconds for the first."""
        raise NotImplementedError

    def close(self, interrupt: bool = False) -> list[TrialEvent]:
        """Stop; with ``interrupt``, running trials save their checkpoints and end ``interrupted``.
        Returns the events that arrived while closing."""
        raise NotImplementedError


class _Worker:
    def __init__(self, proc, index):
        self.proc = proc
        self.index = index
        self.number: int | None = None   # the trial it trains
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
        self.workers = int(workers) if workers is not None else default_workers(device)
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, not {self.workers}")
        self.slots = self.workers
        self.threads = blas_threads(self.workers)
        self.owner_lock = str(owner_lock) if owner_lock is not None else None
        self.grace = grace
        self._events: queue.Queue = queue.Queue()
        self._pool: list[_Worker] = []
        self._started = False

    def environment(self) -> dict:
        """The environment of a worker: BLAS threads, the owner, where polydl is."""
        import polydl

        env = dict(os.environ)
        for var in BLAS_VARIABLES:
            env[var] = str(self.threads)
        env[OWNER_PID] = str(os.getpid())
        if self.owner_lock:
            env[OWNER_LOCK] = self.owner_lock
        root = str(Path(polydl.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        return env

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
        return sum(1 for w in self._pool if w.number is None)

    def submit(self, task: TrialTask) -> None:
        self.start()
        for i, w in enumerate(self._pool):
            if w.number is None:
                if not w.alive:
                    w = self._pool[i] = self._spawn(w.index)
                w.number = task.number
                if not w.send({"op": "run", "task": task.to_dict()}):
                    w.alive = False
                return
        raise RuntimeError("no free worker")  # the owner submits only when free() > 0

    def _training(self, number: int):
        """The workers that train trial ``number``."""
        return [w for w in self._pool if w.number == number]

    def stop(self, number: int) -> None:
        for w in self._training(number):
            w.send({"op": "stop", "number": number})

    def proceed(self, number: int, epoch: int) -> None:
        for w in self._training(number):
            w.send({"op": "proceed", "number": number, "epoch": int(epoch)})

    def poll(self, timeout: float) -> list[TrialEvent]:
        out = []
        try:
            item = self._events.get(timeout=max(0.0, timeout)) if timeout > 0 else self._events.get_nowait()
        except queue.Empty:
            return out
        while True:
            ev = self._handle(*item)
            if ev is not None:
                out.append(ev)
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return out

    def _handle(self, worker: _Worker, item) -> TrialEvent | None:
        if isinstance(item, TrialEvent):
            if item.final and worker.number == item.number:
                worker.number = None
            return item
        # the worker process ended
        worker.alive = False
        if worker.number is not None:
            number, worker.number = worker.number, None
            return TrialEvent(number, "failed", message=f"the worker process (pid {worker.proc.pid}) ended with "
                                                        f"exit code {item} during the trial")
        return None

    def close(self, interrupt: bool = False) -> list[TrialEvent]:
        out = []
        if not self._started:
            return out
        if interrupt:
            for w in self._pool:
                if w.number is not None and w.alive:
                    try:
                        os.kill(w.proc.pid, signal.SIGINT)
                    except OSError:
                        pass
            deadline = time.monotonic() + self.grace
            while any(w.number is not None and w.alive for w in self._pool) and time.monotonic() < deadline:
                out.extend(self.poll(0.1))
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
        out.extend(self.poll(0.0) if not self._events.empty() else [])
        self._started = False
        return out


def _population_executor(**options) -> Executor:
    from .population_executor import PopulationExecutor

    return PopulationExecutor(**options)


def _ray_executor(**options) -> Executor:
    from .ray_executor import RayExecutor

    return RayExecutor(**options)


#: the executors by name (``--executor``): a class, or a function that makes one
EXECUTORS = {"local": LocalExecutor, "population": _population_executor, "ray": _ray_executor}


def make_executor(name: str, **options) -> Executor:
    try:
        cls = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r} (valid: {', '.join(EXECUTORS)})") from None
    if isinstance(cls, str):
        import importlib

        module, _, attr = cls.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    return cls(**options)
