"""The ``ray`` executor (``polydl[ray]``): trials as Ray tasks on a cluster, or on a local Ray
instance of this machine.

The owner keeps the study and submits each trial as a Ray task that asks for ``cpus_per_trial``
CPUs and ``gpus_per_trial`` GPUs (``0.25``: four trials share a card). The task runs
:func:`~polydl.tune.executors.run_trial` on the worker; it trains with ``device = "cuda"``
where Ray gave it a GPU (Ray sets ``CUDA_VISIBLE_DEVICES`` to it) and on the CPU otherwise,
with ``max(1, ⌊cpus_per_trial⌋)`` BLAS threads (Ray's ``OMP_NUM_THREADS`` for a task's CPUs;
a local instance's workers also get ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS``).

Events travel through one small Ray actor, the *hub*, placed on the owner's node: a task puts
each epoch's record there as soon as the epoch ends, and the owner drains the hub in one call
per poll, for all its trials at once. The hub also holds the stop flags (:meth:`stop`, a pruned
trial), the owner's answers to the epochs of tasks with ``decide`` (:meth:`proceed`) and the
interrupt flag (Ctrl-C of the owner); a thread of each task waits for them in a long call to
the hub, which returns the moment one is set, so the trial stops at its next mini-batch (and a
task waiting for an answer waits in such a call as well). One actor rather than a queue per trial: the owner asks one actor, not N, and stop
flags need a way back anyway. A task's final event is its return value, so a task that dies is
seen as the Ray error of its result.

Run directories: the owner writes a token file ``OUT/ray/visible-TOKEN``. A task that reads it
sees ``OUT`` (the same machine, or a shared file system) and trains in ``OUT/trials/NNNN``
directly, holding the owner's lock like a local worker. A task that cannot read it trains in a
scratch directory of its machine (``$TMPDIR/polydl-ray-UID/TOKEN-NNNN``, the user's own) and returns the files of
the run directory (marker, configuration, metrics, summary, checkpoint, curves) with its result;
the owner writes them into ``OUT/trials/NNNN`` in a new directory moved into place, so
``polydl evaluate`` and ``polydl tune report`` read them there. A continued trial carries the
owner's copy of its run directory to such a task.

A task whose worker dies (``WorkerCrashedError``, ``NodeDiedError``, a killed process) is run
again up to ``retries`` times, from its checkpoint where the new worker can reach it; after
that the trial fails with the reason. Without ``address`` a local instance is started: every
CPU of the machine, Ray's own GPU detection, no dashboard, an object store of
``object_store_memory`` bytes and Ray's files in ``OUT/ray`` (reached through a short link in
``$TMPDIR`` where that path is too long for Ray's sockets). With ``address`` the cluster
must answer within ``connect_timeout`` seconds (checked in a child process, since a Ray
connection that hangs cannot be abandoned); a token in ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token`` is offered to it.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .. import fsafe
from ..training import checkpoint as ckpt
from ..training.rundir import LOCK, MARKER, is_run_dir, missing_dirs
from .executors import BLAS_VARIABLES, Executor, TrialEvent, TrialTask, available_cpus, run_trial
from .layout import RAY as RAY_DIR

__all__ = ["RayExecutor", "RayExecutorError", "TrialHub", "RAY_MISSING", "SHIP_VARIABLE", "OBJECT_STORE_MEMORY",
           "check_cpus", "check_gpus", "require_ray", "train_on_worker", "train_group_on_worker", "run_files",
           "install_run", "scratch_root"]

RAY_MISSING = "--executor ray needs Ray: pip install 'polydl[ray]'"
#: ``POLYDL_RAY_SHIP=1``: ship every run directory back, even where the workers see OUT
SHIP_VARIABLE = "POLYDL_RAY_SHIP"
#: the object store of a local instance: room for the shipped run directories of many trials
OBJECT_STORE_MEMORY = 256 << 20
#: how long a trial's watcher waits in one call for a stop or an interrupt
CONTROL_WAIT = 2.0
#: the longest Ray temp directory whose socket paths (``…/session_…/sockets/plasma_store``)
#: stay within the 107 bytes of an AF_UNIX path
_SHORT_ENOUGH = 40
#: Ray errors that another attempt cannot fix
_FINAL_ERRORS = ("RuntimeEnvSetupError", "TaskUnschedulableError", "TaskCancelledError")


class RayExecutorError(ValueError):
    """A Ray executor that cannot run: Ray missing, resources out of range, a cluster that does
    not answer or lacks what the trials ask for."""


def require_ray():
    try:
        import ray
    except ImportError:
        raise RayExecutorError(RAY_MISSING) from None
    return ray


def check_cpus(value) -> float:
    """``--cpus-per-trial``: a number > 0 (Ray counts CPUs to 1e-4)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1e-4:
        raise RayExecutorError(f"--cpus-per-trial must be a number > 0 (the CPUs Ray gives each trial), not {value!r}")
    return float(value)


def check_gpus(value) -> float:
    """``--gpus-per-trial``: a fraction in (0, 1] (``0.25``: four trials share a GPU) or a whole
    number of GPUs above 1."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and (
        1e-4 <= value <= 1 or (value > 1 and float(value).is_integer()))
    if not ok:
        raise RayExecutorError(f"--gpus-per-trial must be a fraction in (0, 1] (0.25: four trials share a GPU) or a "
                               f"whole number of GPUs, not {value!r}")
    return float(value)


def _number(x: float) -> str:
    return f"{x:g}"


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------------------- the hub (a Ray actor)
class TrialHub:
    """The owner's mailbox on the cluster (an asyncio actor): trials :meth:`put` events, the
    owner :meth:`drain` s them and sets the flags that trials wait for with :meth:`control`."""

    def __init__(self):
        self.events: list[dict] = []
        self.stops: set[int] = set()
        self.past: dict[int, int] = {}   # trial -> the last epoch the owner said to go on past
        self.interrupted = False
        self._changed = None

    def _flag(self):
        import asyncio

        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _wake(self) -> None:
        import asyncio

        self._flag().set()  # wakes the trials waiting in control(); later ones wait on a new event
        self._changed = asyncio.Event()

    def _state(self, number: int) -> str | None:
        if self.interrupted:
            return "interrupt"
        return "stop" if int(number) in self.stops else None

    async def put(self, event: dict) -> bool:
        self.events.append(event)
        return True

    async def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out

    async def stop(self, number: int) -> None:
        self.stops.add(int(number))
        self._wake()

    async def proceed(self, number: int, epoch: int) -> None:
        self.past[int(number)] = max(int(epoch), self.past.get(int(number), 0))
        self._wake()

    async def forget(self, number: int) -> None:
        self.stops.discard(int(number))
        self.past.pop(int(number), None)

    async def interrupt(self) -> None:
        self.interrupted = True
        self._wake()

    async def decision(self, number: int, epoch: int, wait: float = 0.0) -> str | None:
        """``"interrupt"``, ``"stop"`` or ``"go"`` (past ``epoch``) for trial ``number``, as soon as
        the owner said one, or None after ``wait`` seconds."""
        import asyncio

        def said():
            return self._state(number) or ("go" if self.past.get(int(number), 0) >= int(epoch) else None)

        state = said()
        deadline = asyncio.get_running_loop().time() + wait
        while state is None:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self._flag().wait(), timeout=left)
            except asyncio.TimeoutError:
                pass
            state = said()
        return state

    async def control(self, number: int, wait: float = 0.0) -> str | None:
        """``"interrupt"``, ``"stop"`` or None for trial ``number``, as soon as it is set or
        after ``wait`` seconds."""
        import asyncio

        state = self._state(number)
        if state is None and wait > 0:
            try:
                await asyncio.wait_for(self._flag().wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
            state = self._state(number)
        return state


# ---------------------------------------------------------------------------- on the worker
def run_files(run_dir) -> dict[str, bytes]:
    """The files of a run directory (marker, configuration, metrics, checkpoint, summary,
    curves), without its lock and temporaries; regular files only (no link is followed)."""
    out = {}
    for p in sorted(Path(run_dir).iterdir()):
        if p.name != LOCK and not p.name.startswith(".polydl-tmp-") and _plain_name(p.name):
            try:
                out[p.name] = fsafe.read_regular(p)
            except fsafe.NotRegularFile:
                pass
    return out


def _plain_name(name) -> bool:
    """A file name of a run directory: no directory part, not ``.`` nor ``..``."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name


def _sees(path, secret) -> bool:
    try:
        return fsafe.read_regular(path, 4096).decode("ascii") == secret
    except (OSError, UnicodeDecodeError):
        return False


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


def _own_config_toml(run_dir: Path, out: str) -> None:
    """Point ``config.toml``'s ``out`` at the owner's run directory."""
    from .. import training

    path = run_dir / ckpt.CONFIG
    try:
        config = training.from_dict(training.load_toml(path))
        ckpt.atomic_write(path, config.replace(out=out).to_toml())
    except (OSError, ValueError):
        pass


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
                _own_config_toml(scratch, self.owner_dir)
                shipped = run_files(scratch)
                shutil.rmtree(scratch, ignore_errors=True)
        final.extra.update(self.where)
        return {"event": final.to_dict(), "files": shipped, "where": self.where}


def _on_worker(tasks: list[dict], hub, options: dict, files: dict):
    import ray

    gpus = ray.get_gpu_ids()
    shared = not options.get("ship") and _sees(options.get("token_path"), options.get("token"))
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
    :func:`~polydl.tune.population_executor.run_group` (each member as :func:`train_on_worker`
    trains one trial). ``files``: trial number → the owner's copy of its run directory. Returns
    each member's result, in the order of ``tasks``."""
    from .population_executor import run_group

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


def scratch_root() -> Path:
    """``$TMPDIR/polydl-ray-UID``: this user's directory of scratch run directories, made with mode
    0700. One that is a link, or that another user owns or may write, is refused: nothing of
    another user's is ever deleted or written through it. Raises :class:`RayExecutorError`."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = Path(tempfile.gettempdir()) / f"polydl-ray-{uid}"
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RayExecutorError(f"cannot create the scratch directory {root} ({exc.strerror or exc})") from None
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or (hasattr(os, "getuid") and (st.st_uid != uid or st.st_mode & 0o022)):
        raise RayExecutorError(f"the scratch directory {root} is not this user's own directory ({fsafe.kind_of(st.st_mode)}"
                               f" or another user's, or writable by others); remove it")
    return root


def install_run(run_dir, files: dict[str, bytes]) -> None:
    """Write a shipped run directory into ``run_dir``: a new directory beside it, moved into
    place (an older run there, polydl's, is replaced). Raises ``OSError`` or :class:`RayExecutorError`."""
    target = Path(run_dir)
    bad = [name for name in files if not _plain_name(name)]
    if bad:
        raise RayExecutorError(f"the files shipped back for {target} include {bad[0]!r}, not a file name of a run "
                               "directory; nothing is written")
    if target.is_symlink():
        raise RayExecutorError(f"{target} is a link; the trial's run directory is not written there")
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not is_run_dir(target))):
        raise RayExecutorError(f"{target} holds files polydl did not write; the trial's run directory is not "
                               "written there")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".polydl-tmp-{target.name}.{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        for name in sorted(files, key=lambda n: n != MARKER):  # the marker first
            ckpt.atomic_write(tmp / name, files[name])
        if target.exists():
            old = target.parent / f".polydl-old-{target.name}.{secrets.token_hex(4)}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _check_ray_dir(out) -> None:
    """Refuse an ``OUT/ray`` that is a link (Ray's files and the token would land elsewhere)."""
    folder = Path(out) / RAY_DIR
    if folder.is_symlink() or not fsafe.is_inside(folder / "x", out):
        raise RayExecutorError(f"{folder} is a link, not a directory of the study {out}; remove it")


def _close_to_others(folder: Path) -> None:
    """Give the directories Ray made writable by every user (its temp directory's way) the mode
    of the umask again."""
    mode = _dir_mode()
    if Path(folder).is_symlink():
        return
    for root, dirs, _ in os.walk(folder):
        for d in [root, *(os.path.join(root, d) for d in dirs)]:
            try:
                st = os.lstat(d)  # a link is left alone: what it leads to is not the study's
                if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o777 != mode:
                    os.chmod(d, mode)
            except OSError:
                pass


def _dir_mode() -> int:
    """The mode ``mkdir`` gives a directory under the umask (0o755 under 022)."""
    umask = 0o666 & ~ckpt.file_mode()
    return 0o777 & ~(umask | (umask & 0o444) >> 2)


def _host_port(address: str):
    """(host, port) of a ``HOST:PORT`` or ``ray://HOST:PORT`` address; None for ``auto``."""
    text = address.split("://", 1)[-1].strip()
    if text in ("", "auto", "local"):
        return None
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 6379
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise RayExecutorError(f"--address must be HOST:PORT (the address ray start --head printed), not "
                               f"{address!r}") from None


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return Path(path).is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


def _offer_token() -> None:
    """Send this machine's Ray token to a cluster that may require one (unless RAY_AUTH_MODE says otherwise)."""
    if "RAY_AUTH_MODE" in os.environ or not _token_available():
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray" in sys.modules:  # Ray read its configuration when it was imported: it reads it again
        try:
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):
            pass


class _Job:
    """One Ray task: a trial, or a population group of trials."""

    def __init__(self, tasks: list[TrialTask]):
        self.tasks = tasks
        self.ref = None
        self.attempts = 0


class RayExecutor(Executor):
    """Trials as Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(self, workers: int | None = None, owner_lock=None, device: str = "cpu", address: str | None = None,
                 cpus_per_trial: float = 1, gpus_per_trial: float | None = None, ship: bool | None = None,
                 retries: int = 2, connect_timeout: float = 10.0, grace: float = 15.0,
                 object_store_memory: int = OBJECT_STORE_MEMORY, population_size: int | None = None):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise RayExecutorError(f"--workers must be >= 1, not {workers!r}")
        self.workers = workers
        self.owner_lock = str(owner_lock) if owner_lock is not None else None
        self.address = str(address) if address is not None else None
        if self.address is not None:
            _host_port(self.address)
        self.cpus = check_cpus(cpus_per_trial)
        if gpus_per_trial is None:
            self.gpus = 1.0 if str(device).startswith("cuda") else 0.0
        else:
            self.gpus = check_gpus(gpus_per_trial)
        self.threads = max(1, int(self.cpus))
        if ship is None:
            ship = os.environ.get(SHIP_VARIABLE, "") not in ("", "0")
        self.ship = bool(ship)
        self.retries = int(retries)
        self.connect_timeout = float(connect_timeout)
        self.grace = float(grace)
        self.object_store_memory = int(object_store_memory)
        self.token = secrets.token_hex(6)
        if population_size is not None and (isinstance(population_size, bool) or not isinstance(population_size, int)
                                            or population_size < 1):
            raise RayExecutorError(f"--population-size must be a whole number >= 1, not {population_size!r}")
        self.size = population_size   # None: a task per trial; else groups of up to this many as one population
        self.tasks_at_once = workers or 1
        self.slots = self.tasks_at_once * (self.size or 1)
        self.startup_seconds = None
        self.resources: dict = {}
        self.out: Path | None = None
        self._ray = None
        self._own = False          # this executor called ray.init (and shuts it down)
        self._local = False        # it started a local instance
        self._created: list[Path] = []
        self._link: Path | None = None
        self._hub = None
        self._secret = secrets.token_hex(16)
        self._token_file: Path | None = None
        self._running: dict[int, _Job] = {}   # trial number -> the task that trains it
        self._pending: list[TrialTask] = []    # population groups: trials waiting for a group
        self._notes: list[TrialEvent] = []
        self._told = False
        self._closing = False

    @property
    def each(self) -> str:
        """What each trial (each population group) is given, in words."""
        gpus = f" and {_number(self.gpus)} GPU{'s' if self.gpus > 1 else ''}" if self.gpus else ""
        return f"{_number(self.cpus)} CPU{'s' if self.cpus != 1 else ''}{gpus}"

    # --------------------------------------------------------------- connecting
    def prepare(self, out) -> list[str]:
        self.out = Path(os.path.abspath(out))
        if self._ray is not None:
            return []
        if self.address is not None:
            _offer_token()
        ray = require_ray()
        t0 = time.monotonic()
        if ray.is_initialized():
            where = "the Ray instance this process is connected to"
        elif self.address is None:
            self._start_local(ray)
            where = f"a local Ray instance (logs in {self.out / RAY_DIR})"
        else:
            self._probe()
            self._connect(ray)
            where = f"the Ray cluster at {self.address}"
        self._ray = ray
        self.startup_seconds = time.monotonic() - t0
        try:
            nodes = self._size(ray)
        except BaseException:
            self._disconnect()
            self._remove_created()  # a study that cannot run leaves nothing behind
            raise
        self._created = []  # OUT/ray is the study's from now on
        r = self.resources
        return [f"Ray: {where}, {nodes} node{'s' if nodes != 1 else ''} with {_number(r.get('CPU', 0))} CPUs and "
                f"{_number(r.get('GPU', 0))} GPUs, ready in {self.startup_seconds:.1f} s; " + (
                    f"{self.slots} trials at once, {self.each} each" if self.size is None else
                    f"{self.tasks_at_once} population{'s' if self.tasks_at_once != 1 else ''} of up to {self.size} "
                    f"trials at once, {self.each} each")]

    def _start_local(self, ray) -> None:
        base = self.out / RAY_DIR
        missing = missing_dirs(base)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RayExecutorError(f"cannot create {base} for Ray's files ({exc.strerror or exc}); choose another "
                                   "--out") from None
        _check_ray_dir(self.out)
        self._created = missing[:1]  # the outermost directory made here
        temp = base
        self._own = self._local = True
        try:
            if len(str(temp)) > _SHORT_ENOUGH:  # Ray is given a short name for OUT/ray
                self._link = Path(tempfile.mkdtemp(prefix="polydl-ray-"))
                temp = self._link / "r"
                os.symlink(base, temp)
            saved = {v: os.environ.get(v) for v in BLAS_VARIABLES}
            os.environ.update({v: str(self.threads) for v in BLAS_VARIABLES})  # the workers inherit them
            try:
                ray.init(address="local", num_cpus=available_cpus(), include_dashboard=False,
                         object_store_memory=self.object_store_memory, _temp_dir=str(temp), log_to_driver=False,
                         logging_level=logging.ERROR)
            finally:
                for v, value in saved.items():
                    if value is None:
                        os.environ.pop(v, None)
                    else:
                        os.environ[v] = value
        except Exception as exc:
            self._disconnect()
            self._remove_created()
            raise RayExecutorError(f"cannot start a local Ray instance: {_first_line(exc)}") from None

    def _probe(self) -> None:
        """Raise unless a Ray cluster answers at ``address`` within ``connect_timeout`` seconds."""
        hp = _host_port(self.address)
        advice = "start one with ray start --head, or give the address it printed"
        if hp is not None:
            try:
                socket.create_connection(hp, timeout=min(5.0, self.connect_timeout)).close()
            except TimeoutError:
                raise RayExecutorError(f"--address {self.address} does not answer within "
                                       f"{min(5.0, self.connect_timeout):g} s; {advice}") from None
            except OSError as exc:
                raise RayExecutorError(f"--address {self.address}: no Ray cluster answers there "
                                       f"({exc.strerror or exc}); {advice}") from None
        cmd = [sys.executable, "-m", "polydl.tune.ray_executor", "probe", self.address]
        import polydl

        env = dict(os.environ)
        root = str(Path(polydl.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        try:
            probe = subprocess.run(cmd, capture_output=True, text=True, timeout=self.connect_timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise RayExecutorError(f"--address {self.address} does not answer as a Ray cluster within "
                                   f"{self.connect_timeout:g} s{_hint(err)}; {advice}") from None
        if probe.returncode != 0:
            lines = [line for line in probe.stderr.splitlines() if line.strip()]
            reason = lines[-1].strip() if lines else f"exit code {probe.returncode}"
            raise RayExecutorError(f"--address {self.address}: cannot join the Ray cluster ({reason}){_hint(probe.stderr)}")

    def _connect(self, ray) -> None:
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as exc:
            raise RayExecutorError(f"--address {self.address}: cannot join the Ray cluster ({_first_line(exc)})") from None
        self._own = True

    def _size(self, ray) -> int:
        """Read the cluster's nodes; set :attr:`slots`; raise where no node can hold a trial."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        total = {"CPU": sum(r.get("CPU", 0) for r in nodes), "GPU": sum(r.get("GPU", 0) for r in nodes)}
        self.resources = total
        if self.gpus and not total["GPU"]:
            raise RayExecutorError(f"--gpus-per-trial {_number(self.gpus)}: the Ray cluster has no GPUs; leave out "
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
            ask = f"{_number(self.cpus)} CPUs" + (f" and {_number(self.gpus)} GPUs" if self.gpus else "")
            raise RayExecutorError(f"no node of the Ray cluster has {ask} for one trial (the largest has "
                                   f"{_number(largest.get('CPU', 0))} CPUs and {_number(largest.get('GPU', 0))} "
                                   "GPUs); ask for less with --cpus-per-trial or --gpus-per-trial")
        self.tasks_at_once = self.workers or capacity
        self.slots = self.tasks_at_once * (self.size or 1)
        return len(nodes)

    def _disconnect(self) -> None:
        if self._own:
            try:
                import ray

                ray.shutdown()
            except Exception:
                pass
            if self._local and self.out is not None:
                _close_to_others(self.out / RAY_DIR)
        self._own = self._local = False
        if self._link is not None:
            shutil.rmtree(self._link, ignore_errors=True)
            self._link = None
        self._ray = None

    def _remove_created(self) -> None:
        for d in reversed(self._created):
            shutil.rmtree(d, ignore_errors=True)
        self._created = []

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
            _check_ray_dir(self.out)
            ckpt.atomic_write(folder / f"visible-{self.token}", self._secret)
        except OSError as exc:
            raise RayExecutorError(f"cannot write {folder / f'visible-{self.token}'} ({exc.strerror or exc}); check "
                                   "the permissions and free space of the study directory") from None
        self._token_file = folder / f"visible-{self.token}"
        self._remote = ray.remote(train_on_worker)
        self._remote_group = ray.remote(train_group_on_worker)

    def free(self) -> int:
        return max(0, self.slots - len(self._running) - len(self._pending))

    def submit(self, task: TrialTask) -> None:
        self.start()
        if self.size is None:
            job = _Job([task])
            self._running[task.number] = job
            self._launch(job)
        else:
            self._pending.append(task)

    def _launch_groups(self) -> None:
        """Population groups for the waiting trials, as many as may run at once."""
        from .population_executor import next_group

        while self._pending and len(set(map(id, self._running.values()))) < self.tasks_at_once:
            group, alone = next_group(self._pending, self.size)
            if alone and not self._told:
                self._told = True
                self._notes.append(TrialEvent(group[0].number, "note", message=alone))
            for t in group:
                self._pending.remove(t)
            job = _Job(group)
            for t in group:
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
            if self.size is not None and not self._closing:
                self._launch_groups()
            out, self._notes = self._notes + self._collect(), []
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
            raise RayExecutorError(f"the Ray actor that carries the trials' events is gone ({_first_line(exc)})") \
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
            if type(exc).__name__ not in _FINAL_ERRORS and job.attempts <= self.retries and not self._closing:
                job.tasks = [dataclasses.replace(t, resume=True) for t in job.tasks]
                self._launch(job)
                return [TrialEvent(t.number, "note", message=f"trial {t.number}: its Ray worker died "
                                   f"({_first_line(exc)}); running it again, from its checkpoint where the new worker "
                                   f"can reach it (attempt {job.attempts} of {self.retries + 1})") for t in job.tasks]
            died = f" {job.attempts} times" if job.attempts > 1 else ""
            for t in job.tasks:
                self._forget(t.number)
            return [TrialEvent(t.number, "failed", message=f"its Ray worker died{died} ({_first_line(exc)})")
                    for t in job.tasks]
        out = []
        for task, res in zip(job.tasks, result if isinstance(result, list) else [result]):
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

    def _forget(self, number: int) -> None:
        self._running.pop(number, None)
        if self._hub is not None:
            self._hub.forget.remote(number)

    def close(self, interrupt: bool = False) -> list[TrialEvent]:
        out = []
        if self._ray is None:
            return out
        ray = self._ray
        self._closing = True
        try:
            if interrupt and self._running and self._hub is not None:
                self._hub.interrupt.remote()
                deadline = time.monotonic() + self.grace
                while self._running and time.monotonic() < deadline:
                    out.extend(self.poll(0.2))
            for job in {id(j): j for j in self._running.values()}.values():
                try:
                    ray.cancel(job.ref, force=True)
                except Exception:
                    pass
            self._running.clear()
            out.extend(TrialEvent(t.number, "interrupted", message="not started", epoch=0) for t in self._pending)
            self._pending.clear()
            if self._hub is not None:
                try:
                    ray.kill(self._hub)
                except Exception:
                    pass
                self._hub = None
            if self._token_file is not None:
                try:
                    self._token_file.unlink()
                except OSError:
                    pass
                self._token_file = None
        finally:
            self._disconnect()
            self._closing = False
        return out


def _hint(stderr: str) -> str:
    if "InvalidAuthToken" in (stderr or "") or "Unauthenticated" in (stderr or ""):
        return (" (it refuses this machine's Ray token: copy ~/.ray/auth_token from the head node, or set "
                "RAY_AUTH_TOKEN)")
    return ""


def _probe_main(address: str) -> int:
    """``python -m polydl.tune.ray_executor probe ADDRESS``: join the cluster, print its resources."""
    import ray

    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    print(json.dumps(ray.cluster_resources()), flush=True)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "probe":
        sys.exit(_probe_main(sys.argv[2]))
    sys.exit("usage: python -m polydl.tune.ray_executor probe ADDRESS")
