"""The ``ray`` executor (``polydl[ray]``): trials as Ray tasks on a cluster, or on a local Ray
instance of this machine. By concept:

- :mod:`~polydl.tune.executors.ray.executor`: :class:`RayExecutor`, the owner's side;
- :mod:`~polydl.tune.executors.ray.worker`: the bodies of the Ray tasks;
- :mod:`~polydl.tune.executors.ray.hub`: :class:`TrialHub`, the actor that carries events and flags;
- :mod:`~polydl.tune.executors.ray.shipping`: run directories shipped back from other machines;
- :mod:`~polydl.tune.executors.ray.dirs`: where a task trains, scratch directories, directory modes;
- :mod:`~polydl.tune.executors.ray.cluster`: connecting (local instance, address, auth token);
- :mod:`~polydl.tune.executors.ray.errors`: :class:`RayExecutorError`, the resource checks.

Ray itself is imported only by a running executor (and by the tasks on the workers).
"""
from .cluster import OBJECT_STORE_MEMORY
from .dirs import scratch_root
from .errors import RAY_MISSING, RayExecutorError, check_cpus, check_gpus, require_ray
from .executor import RayExecutor
from .hub import TrialHub
from .shipping import SHIP_VARIABLE, install_run, run_files
from .worker import train_group_on_worker, train_on_worker

__all__ = ["RayExecutor", "RayExecutorError", "TrialHub", "RAY_MISSING", "SHIP_VARIABLE", "OBJECT_STORE_MEMORY",
           "check_cpus", "check_gpus", "require_ray", "train_on_worker", "train_group_on_worker", "run_files",
           "install_run", "scratch_root"]
