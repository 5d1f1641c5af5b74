"""The executors by name (``polydl tune --executor NAME``), and the one place the options of a
search are checked against the executor that runs it.

:data:`EXECUTORS` maps a name to its class, imported when first asked for (so that naming the
executors, as ``--help`` does, imports none of them). :func:`check_options` refuses an option
of a search that the executor does not declare (:attr:`~polydl.tune.executors.base.Executor.capabilities`),
naming the executors that take it, and checks each value with the executor's own check.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

from .base import Executor

__all__ = ["EXECUTORS", "executor_class", "make_executor", "check_options"]

#: what an option sets, in the error that refuses it where it does not belong (else "belongs to")
PURPOSES = {"population_size": "sets how many trials train as one population"}


class _Registry(Mapping):
    """Name -> executor class; each class is imported on first use."""

    def __init__(self, where: dict[str, str]):
        self._where = dict(where)   # name -> "module:Class" (relative to this package)
        self._classes: dict[str, type[Executor]] = {}

    def __getitem__(self, name: str) -> type[Executor]:
        if name not in self._classes:
            module, _, attr = self._where[name].partition(":")
            self._classes[name] = getattr(importlib.import_module(module, __package__), attr)
        return self._classes[name]

    def __iter__(self):
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


#: the executors by name (``--executor``)
EXECUTORS: Mapping[str, type[Executor]] = _Registry({
    "local": ".local:LocalExecutor", "population": ".population:PopulationExecutor",
    "ray": ".ray.executor:RayExecutor"})


def executor_class(name: str) -> type[Executor]:
    """The executor called ``name``; ``ValueError`` for another name."""
    if not isinstance(name, str) or name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}: --executor must be one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name]


def check_options(name: str, options: dict) -> dict:
    """``options`` of a search (``workers``, ``population_size``, ...) checked for the executor
    ``name``: ``ValueError`` for an unknown executor, an option that another executor declares
    and this one does not, or a value out of range. Returns them checked. A keyword no executor
    declares (``ship`` of the ``ray`` executor's constructor) is left to the constructor."""
    cls = executor_class(name)
    for option in [o for o in options if o not in cls.capabilities]:
        takers = [n for n in EXECUTORS if option in EXECUTORS[n].capabilities]
        if takers:
            raise ValueError(_misplaced(option, takers))
    return {option: cls.check_option(option, value) for option, value in options.items()}


def _misplaced(option: str, takers: list[str]) -> str:
    flag = "--" + option.replace("_", "-")
    if option in PURPOSES:
        return f"{flag} {PURPOSES[option]}: it needs --executor {' or '.join(takers)}"
    return f"{flag} belongs to --executor {' or '.join(takers)}; add --executor {takers[0]} or leave it out"


def make_executor(name: str, **options) -> Executor:
    """The executor ``name`` made with ``options`` (each checked by its constructor); nothing starts."""
    return executor_class(name)(**options)
