"""The worker side of the Ray executor: the bodies of the Ray tasks.

:func:`train_on_worker` trains one trial with :func:`~polydl.tune.executors.base.run_trial`,
:func:`train_group_on_worker` a population group with
:func:`~polydl.tune.executors.population.run_group`. Each trial (:class:`_OnWorker`) trains
with ``device = "cuda"`` where Ray gave the task a GPU (Ray sets ``CUDA_VISIBLE_DEVICES`` to it)
and on the CPU otherwise; in ``OUT/trials/NNNN`` where the task sees ``OUT`` (holding the
owner's lock like a local worker), else in a scratch directory whose files it returns
(:mod:`~polydl.tune.executors.ray.dirs`). Its events go to the hub as they happen, a watcher
thread waits there for the owner's stop or interrupt, and its final event is the task's return
value (so a task that dies is seen as the Ray error of its result).
"""
from __future__ import annotations

import os
import shutil
import socket
import threading

from .... import fsafe
from ....training import checkpoint as ckpt
from ..base import TrialEvent, TrialTask, run_trial
from .dirs import scratch_root, sees
from .hub import CONTROL_WAIT
from .shipping import own_config_toml, run_files

__all__ = ["train_on_worker", "train_group_on_worker"]


def _hold_shared(path):
    """A shared flock on the owner's lock file, or None where it cannot be taken."""
    try:
        import fcntl

        fd = fsafe.open_regular(path, os.O_RDONLY)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    return fd


class _OnWorker:
    """One trial inside a Ray task: where it trains (``OUT/trials/NNNN`` where the task sees
    ``OUT``, else a scratch directory of the worker's machine), the owner's flags for it from the
    hub (a watcher thread), its events to the hub, and its result."""

    def __init__(self, task: dict, hub, options: dict, files: dict | None, gpus, shared: bool, where: dict):
        t = TrialTask.from_dict(task)
        self.hub, self.where, self.owner_dir = hub, where, t.run_dir
        t.config = {**t.config, "device": "cuda" if gpus else "cpu"}
        self.scratch = None
        if not shared:
            scratch = self.scratch = scratch_root() / f"{options['scratch']}-{t.number:04d}"
            if files and not (scratch / ckpt.CHECKPOINT).is_file():
                shutil.rmtree(scratch, ignore_errors=True)
                scratch.mkdir()
                for name, data in files.items():
                    ckpt.atomic_write(scratch / name, data)
            t.resume = t.resume or (scratch / ckpt.CHECKPOINT).is_file()
            t.run_dir = str(scratch)
            t.config["out"] = str(scratch)
        self.task = t
        self.flags = {"stop": False, "interrupt": False, "lost": False}
        self.done = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name=f"polydl-trial-{t.number}-control").start()

    def _watch(self) -> None:
        import ray

        while not self.done.is_set():
            try:
                state = ray.get(self.hub.control.remote(self.task.number, CONTROL_WAIT), timeout=CONTROL_WAIT + 60)
            except Exception:  # the hub is gone with its owner: stop; whoever adopts the trial continues it
                self.flags["lost"] = True
                return
            if state == "interrupt":
                self.flags["interrupt"] = True
            elif state == "stop":
                self.flags["stop"] = True
            if state is not None:
                return

    def stopping(self) -> bool:
        return self.flags["stop"] or self.flags["interrupt"] or self.flags["lost"]

    def emit(self, ev: TrialEvent) -> None:
        import ray

        if ev.final or self.flags["lost"]:
            return
        ev.extra.update(self.where)
        try:
            ray.get(self.hub.put.remote(ev.to_dict()), timeout=60)
        except Exception:
            self.flags["lost"] = True

    def wait_decision(self, epoch: int) -> None:
        import ray

        while not self.stopping():
            try:
                state = ray.get(self.hub.decision.remote(self.task.number, epoch, CONTROL_WAIT),
                                timeout=CONTROL_WAIT + 60)
            except Exception:
                self.flags["lost"] = True
                return
            if state == "go":
                return
            if state is not None:
                self.flags["interrupt" if state == "interrupt" else "stop"] = True

    def result(self, final: TrialEvent) -> dict:
        """``{"event": the final event, "files": the run directory's files or None, "where"}``."""
        self.done.set()  # the watcher ends with its wait, the task does not wait for it
        if final.kind == "stopped" and self.flags["interrupt"] and not self.flags["stop"]:
            final = TrialEvent(final.number, "interrupted", epoch=final.epoch,
                               message=f"interrupted after epoch {final.epoch}; the checkpoint is saved in "
                                       f"{self.owner_dir}")
        shipped = None
        scratch = self.scratch
        if scratch is not None:
            if final.message:
                final.message = final.message.replace(str(scratch), self.owner_dir)
            if scratch.is_dir():
                own_config_toml(scratch, self.owner_dir)
                shipped = run_files(scratch)
                shutil.rmtree(scratch, ignore_errors=True)
        final.extra.update(self.where)
        return {"event": final.to_dict(), "files": shipped, "where": self.where}


def _on_worker(tasks: list[dict], hub, options: dict, files: dict):
    """The trials of a task on this worker, and the owner's lock held where it sees ``OUT``."""
    import ray

    gpus = ray.get_gpu_ids()
    shared = not options.get("ship") and sees(options.get("token_path"), options.get("token"))
    where = {"host": socket.gethostname(), "pid": os.getpid(), "shared": shared, "gpus": [str(g) for g in gpus]}
    lock = _hold_shared(options["owner_lock"]) if shared and options.get("owner_lock") else None
    members = [_OnWorker(t, hub, options, (files or {}).get(int(t["number"])), gpus, shared, where) for t in tasks]
    return members, lock


def train_on_worker(task: dict, hub, options: dict, files: dict | None = None) -> dict:
    """The body of a trial's Ray task: train ``task`` with :func:`run_trial`, events to ``hub``.

    ``options``: ``token_path`` and ``token`` (the owner's token file), ``owner_lock``,
    ``ship`` (True: always ship the run directory back), ``scratch`` (the prefix of the scratch
    directories' names). ``files``: the owner's copy of the run directory, for a continued trial.
    Returns ``{"event": the final event, "files": the run directory's files or None, "where"}``."""
    (member,), lock = _on_worker([task], hub, options, {int(task["number"]): files})
    try:
        final = run_trial(member.task, member.emit, member.stopping, handle_signals=False,
                          wait_decision=member.wait_decision)
    finally:
        if lock is not None:
            os.close(lock)
    return member.result(final)


def train_group_on_worker(tasks: list[dict], hub, options: dict, files: dict | None = None) -> list[dict]:
    """The body of a population group's Ray task: train ``tasks`` as one population with
    :func:`~polydl.tune.executors.population.run_group` (each member as :func:`train_on_worker`
    trains one trial). ``files``: trial number → the owner's copy of its run directory. Returns
    each member's result, in the order of ``tasks``."""
    from ..population import run_group

    members, lock = _on_worker(tasks, hub, options, files or {})
    by_number = {m.task.number: m for m in members}
    finals: dict[int, TrialEvent] = {}

    def emit(ev: TrialEvent) -> None:
        if ev.final:
            finals[ev.number] = ev
        by_number[ev.number].emit(ev)

    try:
        run_group([m.task for m in members], emit, lambda n: by_number[n].stopping(), handle_signals=False,
                  wait_decision=lambda n, epoch: by_number[n].wait_decision(epoch))
    finally:
        if lock is not None:
            os.close(lock)
    return [m.result(finals.get(m.task.number) or TrialEvent(m.task.number, "failed", message="it did not finish"))
            for m in members]
