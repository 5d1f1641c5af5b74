"""Executors: where trials train, and how what happens to them comes back to the owner.

- :mod:`~polydl.tune.executors.base`: the task and event records, the :class:`Executor`
  interface, :func:`run_trial`, the one-line error, a worker's environment, the option checks;
- :mod:`~polydl.tune.executors.resources`: the CPUs and memory of this machine, default workers;
- :mod:`~polydl.tune.executors.grouping`: trials of one shape grouped into populations;
- :mod:`~polydl.tune.executors.local`: ``local``, worker processes on this machine;
- :mod:`~polydl.tune.executors.population`: ``population``, groups of trials as one population
  in each local worker;
- :mod:`~polydl.tune.executors.ray`: ``ray``, trials as Ray tasks (``polydl[ray]``);
- :mod:`~polydl.tune.executors.registry`: the executors by name, and the check of a search's
  options against them.

Importing this package imports neither Ray nor the ``population`` and ``ray`` executors.
"""
from .base import (
    BLAS_VARIABLES,
    ENDS,
    OWNER_LOCK,
    OWNER_PID,
    Executor,
    TrialEvent,
    TrialStopped,
    TrialTask,
    one_line,
    run_trial,
)
from .local import LocalExecutor
from .registry import EXECUTORS, check_options, executor_class, make_executor
from .resources import WORKER_MEMORY, available_cpus, available_memory, blas_threads, default_workers

__all__ = ["TrialTask", "TrialEvent", "Executor", "LocalExecutor", "EXECUTORS", "run_trial", "TrialStopped",
           "default_workers", "blas_threads", "available_cpus", "available_memory", "WORKER_MEMORY",
           "BLAS_VARIABLES", "make_executor", "check_options", "executor_class", "one_line", "OWNER_PID",
           "OWNER_LOCK", "ENDS"]
