"""What every executor shares: the records a study's owner and an executor exchange
(:class:`TrialTask`, :class:`TrialEvent`), the :class:`Executor` interface, :func:`run_trial`
(training one trial where it trains), the one-line form of an error, the environment of a
worker process, and the checks of the options a search gives its executor.

The owner of a study hands an executor :class:`TrialTask` s and polls :class:`TrialEvent` s;
only the owner talks to the study. Both are plain JSON-able records, so an executor can carry
them through pipes (``local``) or over the network (``ray``). For each task an executor emits any
number of ``epoch`` events (one per-epoch record of ``metrics.jsonl``, as soon as it is written),
then exactly one of

- ``done``: the run finished; ``record`` is its ``summary.json``;
- ``failed``: ``message`` is the one-line reason (a NaN loss, a bad configuration, a worker
  that died);
- ``stopped``: the owner asked :meth:`Executor.stop` (a pruned trial); ``epoch`` is the last
  finished epoch;
- ``interrupted``: the executor was closed with ``interrupt=True``; the checkpoint is saved and
  the trial continues when the study runs again.

``note`` events carry a run's notes (a missing matplotlib).

A task with ``decide`` (the owner prunes) waits after each epoch but the last until the owner
has answered that epoch's event: :meth:`Executor.proceed` (go on) or :meth:`Executor.stop`.
So a trial is pruned exactly after the epoch whose value the pruner judged, however fast it
trains and however slowly events travel, and a seeded study with one worker prunes the same
trials every time; the price is one round trip to the owner per epoch. A continued trial
resumes on the device its task gives (``device`` of ``task.config``).

Options: each executor class declares the options of a search it takes (:attr:`Executor.capabilities`,
e.g. ``{"workers", "population_size"}``) and checks each value with :meth:`Executor.check_option`;
:func:`~polydl.tune.executors.registry.check_options` applies both, the one place a search's
options are validated.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ... import fsafe

__all__ = ["TrialTask", "TrialEvent", "TrialStopped", "Executor", "run_trial", "one_line", "worker_environment",
           "blas_environment", "check_workers", "check_population_size", "BLAS_VARIABLES", "OWNER_PID", "OWNER_LOCK",
           "ENDS"]

#: the thread counts of the BLAS libraries NumPy may use, set before NumPy loads
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: a worker process's owner (it dies with it) and the owner's lock file (it holds it shared)
OWNER_PID = "POLYDL_TUNE_OWNER_PID"
OWNER_LOCK = "POLYDL_TUNE_OWNER_LOCK"
#: the kinds of a trial's final event
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
    def from_dict(cls, d: dict) -> TrialTask:
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
    def from_dict(cls, d: dict) -> TrialEvent:
        return cls(int(d["number"]), str(d["kind"]), d.get("record"), d.get("message"), d.get("epoch"),
                   dict(d.get("extra") or {}))


class TrialStopped(Exception):
    """Raised inside a run when the owner asked to stop the trial."""


# ---------------------------------------------------------------------------- errors in one line
def one_line(exc: BaseException, first: bool = False, named: bool = False, limit: int | None = None) -> str:
    """``exc`` as one line: its message with every run of whitespace (newlines too) made one space,
    or with ``first`` only its first non-empty line (a Ray error's traceback follows it);
    ``named``: led by ``TypeName:``; cut to ``limit`` characters (ending in ``…``). The type's name
    alone where the message is empty."""
    text = str(exc)
    if first:
        text = next((line for line in text.splitlines() if line.strip()), "")
    text = " ".join(text.split())
    name = type(exc).__name__
    if not text:
        text = name
    elif named:
        text = f"{name}: {text}"
    return text if limit is None or len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------------------- where trials train
def run_trial(task: TrialTask, emit, stop_requested=lambda: False, handle_signals: bool = True,
              wait_decision=None) -> TrialEvent:
    """Train ``task`` and ``emit`` its events; returns (and emits) the final one.

    It trains ``task.config`` in ``task.run_dir`` (or continues the checkpoint there with
    ``training.resume`` when ``task.resume``), calls ``emit`` with each event and polls
    ``stop_requested`` at every mini-batch. For a task with ``decide``, ``wait_decision(epoch)``
    returns once the owner has answered that epoch's event (``stop_requested`` tells which answer)."""
    from ... import training

    reporter = _reporter(task, emit, stop_requested, wait_decision)
    try:
        final = _train(task, reporter, handle_signals)
    except TrialStopped:
        final = TrialEvent(task.number, "stopped", epoch=reporter.epoch)
    except training.TrainingInterrupted as exc:
        final = TrialEvent(task.number, "interrupted", message=one_line(exc), epoch=exc.epoch)
    except (training.TrainingDiverged, ValueError) as exc:
        final = TrialEvent(task.number, "failed", message=one_line(exc), epoch=reporter.epoch)
    except Exception as exc:  # a plugin's bug must not end the search
        final = TrialEvent(task.number, "failed", message=f"{type(exc).__name__}: {one_line(exc)}",
                           epoch=reporter.epoch)
    emit(final)
    return final


def _reporter(task: TrialTask, emit, stop_requested, wait_decision):
    """The training reporter of ``task``: its epochs and notes as events, the owner's stop and answers."""
    from ... import training

    class Reporter(training.Reporter):
        epoch = 0
        may_stop = task.decide  # pruned after an epoch: its checkpoint is written first

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

    return Reporter()


def _train(task: TrialTask, reporter, handle_signals: bool) -> TrialEvent:
    """Train (or continue) ``task``: its ``done`` event."""
    from ... import training
    from ...training import checkpoint as ckpt

    run_dir = Path(task.run_dir)
    if task.resume and (run_dir / ckpt.CHECKPOINT).is_file():
        summary = _finished_summary(run_dir, task.config)
        if summary is not None:
            return TrialEvent(task.number, "done", record=summary, epoch=summary.get("epochs"))
        changes = {"device": task.config["device"]} if "device" in task.config else None
        result = training.resume(run_dir, changes, reporter=reporter, handle_signals=handle_signals)
    else:
        config = training.from_dict(task.config)
        result = training.run(config, run_dir, overwrite=run_dir.exists(), reporter=reporter,
                              handle_signals=handle_signals)
    return TrialEvent(task.number, "done", record=dict(result.summary), epoch=result.epochs)


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


# ---------------------------------------------------------------------------- worker processes
def blas_environment(threads: int) -> dict[str, str]:
    """The variables that give a process ``threads`` BLAS threads (:data:`BLAS_VARIABLES`)."""
    return {var: str(int(threads)) for var in BLAS_VARIABLES}


def worker_environment(threads: int | None = None, owner_pid: int | None = None,
                       owner_lock: str | None = None) -> dict[str, str]:
    """The environment of a process started for the owner (a worker, a probe): this process's,
    with this polydl first on ``PYTHONPATH``, ``threads`` BLAS threads, and the owner's pid and
    lock file (:data:`OWNER_PID`, :data:`OWNER_LOCK`) where given."""
    import polydl

    env = dict(os.environ)
    if threads is not None:
        env.update(blas_environment(threads))
    if owner_pid is not None:
        env[OWNER_PID] = str(owner_pid)
    if owner_lock:
        env[OWNER_LOCK] = str(owner_lock)
    root = str(Path(polydl.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


# ---------------------------------------------------------------------------- options
def check_workers(value, error: type[ValueError] = ValueError):
    """``--workers``: None (the executor's default) or a whole number >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise error(f"--workers must be >= 1, not {value!r}")
    return value


def check_population_size(value, error: type[ValueError] = ValueError):
    """``--population-size``: None (the executor's default) or a whole number >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise error(f"--population-size must be a whole number >= 1, not {value!r}")
    return value


class Executor:
    """Runs trials (see the module docstring); ``slots`` trials at once.

    A subclass declares :attr:`name`, the search options it takes (:attr:`capabilities`), how
    each is checked (:attr:`checks`, raising :attr:`error`) and, where it has one, its default
    number of workers (:meth:`default_workers`)."""

    name = ""
    slots = 1
    #: the options of a search this executor takes (keywords of its constructor)
    capabilities: frozenset[str] = frozenset({"workers"})
    #: option -> ``check(value, error)``, which returns the value or raises ``error``
    checks = {"workers": check_workers, "population_size": check_population_size}
    #: the error the checks raise
    error: type[ValueError] = ValueError
    #: the owner's lock file, which workers that see it hold too (set before :meth:`start`)
    owner_lock: str | None = None

    @classmethod
    def check_option(cls, option: str, value):
        """``value`` of ``option`` checked (:attr:`error` where it is out of range)."""
        check = cls.checks.get(option)
        return value if check is None else check(value, cls.error)

    @classmethod
    def default_workers(cls, device: str = "cpu") -> int | None:
        """The ``workers`` of a search that gives none: None, what :meth:`prepare` finds."""
        return None

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
