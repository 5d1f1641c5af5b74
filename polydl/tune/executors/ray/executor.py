"""The ``ray`` executor (``polydl[ray]``): trials as Ray tasks on a cluster, or on a local Ray
instance of this machine.

The owner keeps the study and submits each trial as a Ray task that asks for ``cpus_per_trial``
CPUs and ``gpus_per_trial`` GPUs (``0.25``: four trials share a card); with ``population_size``
the trials train as population groups (:mod:`~polydl.tune.executors.grouping`) of up to that
many, each group one task. The task (:mod:`~polydl.tune.executors.ray.worker`) trains on the GPU
Ray gave it or on the CPU, with ``max(1, ⌊cpus_per_trial⌋)`` BLAS threads (Ray's
``OMP_NUM_THREADS`` for a task's CPUs; a local instance's workers also get
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS``). Events come back through the hub
(:mod:`~polydl.tune.executors.ray.hub`); a task's final event is its return value, with the
shipped run directory where the task did not see ``OUT``
(:mod:`~polydl.tune.executors.ray.shipping`).

A task whose worker dies (``WorkerCrashedError``, ``NodeDiedError``, a killed process) is run
again up to ``retries`` times, from its checkpoint where the new worker can reach it; after
that the trial fails with the reason. Connecting: :mod:`~polydl.tune.executors.ray.cluster`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import secrets
import time
from pathlib import Path

from ....training import checkpoint as ckpt
from ..base import Executor, TrialEvent, TrialTask, check_population_size, check_workers, one_line
from ..grouping import Waiting
from .cluster import OBJECT_STORE_MEMORY, Connection, check_address
from .dirs import RAY_DIR, check_ray_dir
from .errors import RayExecutorError, check_cpus, check_gpus, number
from .hub import TrialHub
from .shipping import SHIP_VARIABLE, install_run, run_files
from .worker import train_group_on_worker, train_on_worker

__all__ = ["RayExecutor"]

#: Ray errors that another attempt cannot fix
FINAL_ERRORS = ("RuntimeEnvSetupError", "TaskUnschedulableError", "TaskCancelledError")


def _error(exc: BaseException) -> str:
    return one_line(exc, first=True, named=True, limit=200)


class _Job:
    """One Ray task: a trial, or a population group of trials."""

    def __init__(self, tasks: list[TrialTask]):
        self.tasks = tasks
        self.ref = None
        self.attempts = 0


class RayExecutor(Executor):
    """Trials as Ray tasks (see the module docstring)."""

    name = "ray"
    capabilities = frozenset({"workers", "population_size", "address", "cpus_per_trial", "gpus_per_trial"})
    checks = {"workers": check_workers, "population_size": check_population_size, "address": check_address,
              "cpus_per_trial": check_cpus, "gpus_per_trial": check_gpus}
    error = RayExecutorError

    def __init__(self, workers: int | None = None, owner_lock=None, device: str = "cpu", address: str | None = None,
                 cpus_per_trial: float = 1, gpus_per_trial: float | None = None, ship: bool | None = None,
                 retries: int = 2, connect_timeout: float = 10.0, grace: float = 15.0,
                 object_store_memory: int = OBJECT_STORE_MEMORY, population_size: int | None = None):
        self.workers = self.check_option("workers", workers)
        self.owner_lock = str(owner_lock) if owner_lock is not None else None
        self.address = self.check_option("address", address)
        self.cpus = self.check_option("cpus_per_trial", cpus_per_trial)
        if gpus_per_trial is None:
            self.gpus = 1.0 if str(device).startswith("cuda") else 0.0
        else:
            self.gpus = self.check_option("gpus_per_trial", gpus_per_trial)
        self.threads = max(1, int(self.cpus))
        if ship is None:
            ship = os.environ.get(SHIP_VARIABLE, "") not in ("", "0")
        self.ship = bool(ship)
        self.retries = int(retries)
        self.grace = float(grace)
        self.token = secrets.token_hex(6)
        self.size = self.check_option("population_size", population_size)   # None: a task per trial
        self.tasks_at_once = workers or 1
        self.slots = self.tasks_at_once * (self.size or 1)
        self.resources: dict = {}
        self.out: Path | None = None
        self._cluster = Connection(self.address, connect_timeout, object_store_memory, self.threads)
        self._ray = None
        self._hub = None
        self._secret = secrets.token_hex(16)
        self._token_file: Path | None = None
        self._running: dict[int, _Job] = {}   # trial number -> the task that trains it
        self._waiting = Waiting(self.size)     # trials not yet in a task
        self._closing = False

    @property
    def connect_timeout(self) -> float:
        return self._cluster.connect_timeout

    @property
    def object_store_memory(self) -> int:
        return self._cluster.object_store_memory

    @property
    def startup_seconds(self) -> float | None:
        return self._cluster.startup_seconds

    @property
    def each(self) -> str:
        """What each trial (each population group) is given, in words."""
        gpus = f" and {number(self.gpus)} GPU{'s' if self.gpus > 1 else ''}" if self.gpus else ""
        return f"{number(self.cpus)} CPU{'s' if self.cpus != 1 else ''}{gpus}"

    # --------------------------------------------------------------- connecting
    def prepare(self, out) -> list[str]:
        self.out = Path(os.path.abspath(out))
        if self._ray is not None:
            return []
        where = self._cluster.open(self.out)
        self._ray = self._cluster.ray
        try:
            nodes = self._size(self._cluster.nodes())
        except BaseException:
            self._disconnect(remove_created=True)  # a study that cannot run leaves nothing behind
            raise
        self._cluster.keep()
        r = self.resources
        return [f"Ray: {where}, {nodes} node{'s' if nodes != 1 else ''} with {number(r.get('CPU', 0))} CPUs and "
                f"{number(r.get('GPU', 0))} GPUs, ready in {self.startup_seconds:.1f} s; " + (
                    f"{self.slots} trials at once, {self.each} each" if self.size is None else
                    f"{self.tasks_at_once} population{'s' if self.tasks_at_once != 1 else ''} of up to {self.size} "
                    f"trials at once, {self.each} each")]

    def _size(self, nodes: list[dict]) -> int:
        """Read the cluster's nodes; set :attr:`slots`; raise where no node can hold a trial."""
        total = {"CPU": sum(r.get("CPU", 0) for r in nodes), "GPU": sum(r.get("GPU", 0) for r in nodes)}
        self.resources = total
        if self.gpus and not total["GPU"]:
            raise RayExecutorError(f"--gpus-per-trial {number(self.gpus)}: the Ray cluster has no GPUs; leave out "
                                   "--gpus-per-trial (and --device cuda) to train on its CPUs")
        fits = []
        for r in nodes:
            n = math.floor(r.get("CPU", 0) / self.cpus + 1e-9)
            if self.gpus:
                n = min(n, math.floor(r.get("GPU", 0) / self.gpus + 1e-9))
            fits.append(n)
        capacity = sum(fits)
        if capacity == 0:
            largest = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
            ask = f"{number(self.cpus)} CPUs" + (f" and {number(self.gpus)} GPUs" if self.gpus else "")
            raise RayExecutorError(f"no node of the Ray cluster has {ask} for one trial (the largest has "
                                   f"{number(largest.get('CPU', 0))} CPUs and {number(largest.get('GPU', 0))} "
                                   "GPUs); ask for less with --cpus-per-trial or --gpus-per-trial")
        self.tasks_at_once = self.workers or capacity
        self.slots = self.tasks_at_once * (self.size or 1)
        return len(nodes)

    def _disconnect(self, remove_created: bool = False) -> None:
        self._cluster.close(remove_created)
        self._ray = None

    # --------------------------------------------------------------- running
    def start(self) -> None:
        if self._hub is not None:
            return
        if self._ray is None:
            self.prepare(self.out or ".")
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self._hub = ray.remote(TrialHub).options(num_cpus=0, scheduling_strategy=here).remote()
        folder = self.out / RAY_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True)
            check_ray_dir(self.out)
            ckpt.atomic_write(folder / f"visible-{self.token}", self._secret)
        except OSError as exc:
            raise RayExecutorError(f"cannot write {folder / f'visible-{self.token}'} ({exc.strerror or exc}); check "
                                   "the permissions and free space of the study directory") from None
        self._token_file = folder / f"visible-{self.token}"
        self._remote = ray.remote(train_on_worker)
        self._remote_group = ray.remote(train_group_on_worker)

    def free(self) -> int:
        return max(0, self.slots - len(self._running) - len(self._waiting))

    def submit(self, task: TrialTask) -> None:
        self.start()
        self._waiting.add(task)
        if self.size is None:  # a trial alone goes at once; groups form at the next poll, of all submitted
            self._launch_waiting()

    def _launch_waiting(self) -> None:
        """Tasks for the waiting trials: a trial alone at once (Ray queues it), population groups
        as many as may run at once (so that each fills)."""
        while self._waiting and (self.size is None or
                                 len(set(map(id, self._running.values()))) < self.tasks_at_once):
            job = _Job(self._waiting.take())
            for t in job.tasks:
                self._running[t.number] = job
            self._launch(job)

    def _launch(self, job: _Job) -> None:
        ray = self._ray
        job.attempts += 1
        files = {}
        for task in job.tasks:
            run_dir = Path(task.run_dir)
            if task.resume and (run_dir / ckpt.CHECKPOINT).is_file():
                try:
                    files[task.number] = run_files(run_dir)
                except OSError:
                    pass
        options = {"token_path": str(self._token_file), "token": self._secret, "owner_lock": self.owner_lock,
                   "ship": self.ship, "scratch": self.token}
        first = job.tasks[0].number
        if self.size is None:
            task = job.tasks[0]
            job.ref = self._remote.options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0,
                                           name=f"polydl-trial-{first}").remote(
                task.to_dict(), self._hub, options, ray.put(files[first]) if first in files else None)
        else:
            job.ref = self._remote_group.options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0,
                                                 name=f"polydl-population-{first}").remote(
                [t.to_dict() for t in job.tasks], self._hub, options, ray.put(files) if files else None)

    def stop(self, number: int) -> None:
        if number in self._running and self._hub is not None:
            self._hub.stop.remote(number)

    def proceed(self, number: int, epoch: int) -> None:
        if number in self._running and self._hub is not None:
            self._hub.proceed.remote(number, int(epoch))

    def poll(self, timeout: float) -> list[TrialEvent]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if not self._closing:
                self._launch_waiting()
            out = self._waiting.notes() + self._collect()
            left = deadline - time.monotonic()
            if out or left <= 0:
                return out
            time.sleep(min(0.05, left))

    def _collect(self) -> list[TrialEvent]:
        if self._hub is None:
            return []
        ray = self._ray
        refs = {job.ref: job for job in self._running.values() if job.ref is not None}
        ready = ray.wait(list(refs), num_returns=len(refs), timeout=0)[0] if refs else []
        try:
            drained = ray.get(self._hub.drain.remote(), timeout=60)  # after wait: a finished task's events are in
        except Exception as exc:
            raise RayExecutorError(f"the Ray actor that carries the trials' events is gone ({_error(exc)})") \
                from None
        out = [TrialEvent.from_dict(d) for d in drained]
        out = [ev for ev in out if ev.number in self._running]
        for ref in ready:
            out.extend(self._ended(refs[ref]))
        return out

    def _ended(self, job: _Job) -> list[TrialEvent]:
        ray = self._ray
        try:
            result = ray.get(job.ref)
        except ray.exceptions.RayError as exc:
            return self._died(job, exc)
        out = []
        for task, res in zip(job.tasks, result if isinstance(result, list) else [result], strict=False):
            self._forget(task.number)
            ev = TrialEvent.from_dict(res["event"])
            if res.get("files") is not None:
                try:
                    install_run(task.run_dir, res["files"])
                except (OSError, RayExecutorError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    ev = TrialEvent(task.number, "failed", message=f"the run directory that came back cannot be "
                                                                   f"written into {task.run_dir} ({reason})")
            out.append(ev)
        return out

    def _died(self, job: _Job, exc: BaseException) -> list[TrialEvent]:
        """The task of ``job`` died with ``exc``: run it again (notes), or its trials fail."""
        if type(exc).__name__ not in FINAL_ERRORS and job.attempts <= self.retries and not self._closing:
            job.tasks = [dataclasses.replace(t, resume=True) for t in job.tasks]
            self._launch(job)
            return [TrialEvent(t.number, "note", message=f"trial {t.number}: its Ray worker died "
                               f"({_error(exc)}); running it again, from its checkpoint where the new worker "
                               f"can reach it (attempt {job.attempts} of {self.retries + 1})") for t in job.tasks]
        died = f" {job.attempts} times" if job.attempts > 1 else ""
        for t in job.tasks:
            self._forget(t.number)
        return [TrialEvent(t.number, "failed", message=f"its Ray worker died{died} ({_error(exc)})")
                for t in job.tasks]

    def _forget(self, number: int) -> None:
        self._running.pop(number, None)
        if self._hub is not None:
            self._hub.forget.remote(number)

    def close(self, interrupt: bool = False) -> list[TrialEvent]:
        out = []
        if self._ray is None:
            return out
        self._closing = True
        try:
            if interrupt and self._running and self._hub is not None:
                self._hub.interrupt.remote()
                deadline = time.monotonic() + self.grace
                while self._running and time.monotonic() < deadline:
                    out.extend(self.poll(0.2))
            self._cancel_all()
            out.extend(self._waiting.close())
            self._end_hub()
        finally:
            self._disconnect()
            self._closing = False
        return out

    def _cancel_all(self) -> None:
        """Cancel the tasks still running."""
        for job in {id(j): j for j in self._running.values()}.values():
            try:
                self._ray.cancel(job.ref, force=True)
            except Exception:
                pass
        self._running.clear()

    def _end_hub(self) -> None:
        """Kill the hub; remove the token file."""
        if self._hub is not None:
            try:
                self._ray.kill(self._hub)
            except Exception:
                pass
            self._hub = None
        if self._token_file is not None:
            try:
                self._token_file.unlink()
            except OSError:
                pass
            self._token_file = None
