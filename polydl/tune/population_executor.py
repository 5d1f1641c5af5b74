"""Moved: the ``population`` executor is :mod:`polydl.tune.executors.population`, the grouping of
trials :mod:`polydl.tune.executors.grouping`. This module re-exports them for one release."""
from .executors.grouping import next_group, shape_key
from .executors.population import PopulationExecutor, run_group

__all__ = ["PopulationExecutor", "run_group", "next_group", "shape_key"]
