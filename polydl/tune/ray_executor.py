"""Moved: the ``ray`` executor is the package :mod:`polydl.tune.executors.ray` (its executor,
worker side, hub, shipping, directories and cluster connection in modules of their own). This
module re-exports its names for one release."""
from .executors.ray import (
    OBJECT_STORE_MEMORY,
    RAY_MISSING,
    SHIP_VARIABLE,
    RayExecutor,
    RayExecutorError,
    TrialHub,
    check_cpus,
    check_gpus,
    install_run,
    require_ray,
    run_files,
    scratch_root,
    train_group_on_worker,
    train_on_worker,
)

__all__ = ["RayExecutor", "RayExecutorError", "TrialHub", "RAY_MISSING", "SHIP_VARIABLE", "OBJECT_STORE_MEMORY",
           "check_cpus", "check_gpus", "require_ray", "train_on_worker", "train_group_on_worker", "run_files",
           "install_run", "scratch_root"]
