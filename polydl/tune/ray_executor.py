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
scratch directory of its machine (``$TMPDIR/polydl-ray/TOKEN-NNNN``) and returns the files of
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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..training import checkpoint as ckpt
from ..training.rundir import LOCK, MARKER, is_run_dir
from .executors import BLAS_VARIABLES, Executor, TrialEvent, TrialTask, available_cpus, run_trial
from .layout import RAY as RAY_DIR

__all__ = ["RayExecutor", "RayExecutorError", "TrialHub", "RAY_MISSING", "SHIP_VARIABLE", "OBJECT_STORE_MEMORY",
           "check_cpus", "check_gpus", "require_ray", "train_on_worker", "run_files", "install_run"]

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
    curves), without its lock and temporaries."""
    out = {}
    for p in sorted(Path(run_dir).iterdir()):
        if p.is_file() and p.name != LOCK and not p.name.startswith(".polydl-tmp-"):
            out[p.name] = p.read_bytes()
    return out


def _sees(path, secret) -> bool:
    try:
        return Path(path).read_text(encoding="ascii") == secret
    except (OSError, UnicodeDecodeError):
        return False


def _hold_shared(path):
    """A shared flock on the owner's lock file, or None where it cannot be taken."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDWR)
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


def train_on_worker(task: dict, hub, options: dict, files: dict | None = None) -> dict:
    """The body of a trial's Ray task: train ``task`` with :func:`run_trial`, events to ``hub``.

    ``options``: ``token_path`` and ``token`` (the owner's token file), ``owner_lock``,
    ``ship`` (True: always ship the run directory back), ``scratch`` (the name of the scratch
    directory). ``files``: the owner's copy of the run directory, for a continued trial.
    Returns ``{"event": the final event, "files": the run directory's files or None, "where"}``."""
    import ray

    t = TrialTask.from_dict(task)
    owner_dir = t.run_dir
    gpus = ray.get_gpu_ids()
    t.config = {**t.config, "device": "cuda" if gpus else "cpu"}
    shared = not options.get("ship") and _sees(options.get("token_path"), options.get("token"))
    where = {"host": socket.gethostname(), "pid": os.getpid(), "shared": shared, "gpus": [str(g) for g in gpus]}
    scratch = None
    if not shared:
        scratch = Path(tempfile.gettempdir()) / "polydl-ray" / options["scratch"]
        scratch.parent.mkdir(parents=True, exist_ok=True)
        if files and not (scratch / ckpt.CHECKPOINT).is_file():
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            for name, data in files.items():
                ckpt.atomic_write(scratch / name, data)
        t.resume = t.resume or (scratch / ckpt.CHECKPOINT).is_file()
        t.run_dir = str(scratch)
        t.config["out"] = str(scratch)
    lock = _hold_shared(options["owner_lock"]) if shared and options.get("owner_lock") else None
    flags = {"stop": False, "interrupt": False, "lost": False}
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                state = ray.get(hub.control.remote(t.number, CONTROL_WAIT), timeout=CONTROL_WAIT + 60)
            except Exception:  # the hub is gone with its owner: stop; whoever adopts the trial continues it
                flags["lost"] = True
                return
            if state == "interrupt":
                flags["interrupt"] = True
            elif state == "stop":
                flags["stop"] = True
            if state is not None:
                return

    def emit(ev: TrialEvent) -> None:
        if ev.final or flags["lost"]:
            return
        ev.extra.update(where)
        try:
            ray.get(hub.put.remote(ev.to_dict()), timeout=60)
        except Exception:
            flags["lost"] = True

    def wait_decision(epoch: int) -> None:
        while not (flags["stop"] or flags["interrupt"] or flags["lost"]):
            try:
                state = ray.get(hub.decision.remote(t.number, epoch, CONTROL_WAIT), timeout=CONTROL_WAIT + 60)
            except Exception:
                flags["lost"] = True
                return
            if state == "go":
                return
            if state is not None:
                flags["interrupt" if state == "interrupt" else "stop"] = True

    watcher = threading.Thread(target=watch, daemon=True, name=f"polydl-trial-{t.number}-control")
    watcher.start()
    try:
        final = run_trial(t, emit, lambda: flags["stop"] or flags["interrupt"] or flags["lost"], handle_signals=False,
                          wait_decision=wait_decision)
    finally:
        done.set()  # the watcher ends with its wait, the task does not wait for it
        if lock is not None:
            os.close(lock)
    if final.kind == "stopped" and flags["interrupt"] and not flags["stop"]:
        final = TrialEvent(t.number, "interrupted", epoch=final.epoch,
                           message=f"interrupted after epoch {final.epoch}; the checkpoint is saved in {owner_dir}")
    shipped = None
    if scratch is not None:
        if final.message:
            final.message = final.message.replace(str(scratch), owner_dir)
        if scratch.is_dir():
            _own_config_toml(scratch, owner_dir)
            shipped = run_files(scratch)
            shutil.rmtree(scratch, ignore_errors=True)
    final.extra.update(where)
    return {"event": final.to_dict(), "files": shipped, "where": where}


# ---------------------------------------------------------------------------- on the owner
def install_run(run_dir, files: dict[str, bytes]) -> None:
    """Write a shipped run directory into ``run_dir``: a new directory beside it, moved into
    place (an older run there, polydl's, is replaced). Raises ``OSError`` or :class:`RayExecutorError`."""
    target = Path(run_dir)
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


def _close_to_others(folder: Path) -> None:
    """Give the directories Ray made writable by every user (its temp directory's way) the mode
    of the umask again."""
    mode = _dir_mode()
    for root, dirs, _ in os.walk(folder):
        for d in [root, *(os.path.join(root, d) for d in dirs)]:
            try:
                if os.stat(d).st_mode & 0o777 != mode:
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


class _Trial:
    def __init__(self, task: TrialTask):
        self.task = task
        self.ref = None
        self.attempts = 0


class RayExecutor(Executor):
    """Trials as Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(self, workers: int | None = None, owner_lock=None, device: str = "cpu", address: str | None = None,
                 cpus_per_trial: float = 1, gpus_per_trial: float | None = None, ship: bool | None = None,
                 retries: int = 2, connect_timeout: float = 10.0, grace: float = 15.0,
                 object_store_memory: int = OBJECT_STORE_MEMORY):
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
        self.slots = workers or 1
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
        self._running: dict[int, _Trial] = {}
        self._closing = False

    @property
    def each(self) -> str:
        """What each trial is given, in words."""
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
                f"{_number(r.get('GPU', 0))} GPUs, ready in {self.startup_seconds:.1f} s; {self.slots} trials at once, "
                f"{self.each} each"]

    def _start_local(self, ray) -> None:
        base = self.out / RAY_DIR
        missing = []
        p = base
        while not p.exists():
            missing.insert(0, p)
            p = p.parent
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RayExecutorError(f"cannot create {base} for Ray's files ({exc.strerror or exc}); choose another "
                                   "--out") from None
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
        self.slots = self.workers or capacity
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
            ckpt.atomic_write(folder / f"visible-{self.token}", self._secret)
        except OSError as exc:
            raise RayExecutorError(f"cannot write {folder / f'visible-{self.token}'} ({exc.strerror or exc}); check "
                                   "the permissions and free space of the study directory") from None
        self._token_file = folder / f"visible-{self.token}"
        self._remote = ray.remote(train_on_worker)

    def free(self) -> int:
        return max(0, self.slots - len(self._running))

    def submit(self, task: TrialTask) -> None:
        self.start()
        trial = _Trial(task)
        self._running[task.number] = trial
        self._launch(trial)

    def _launch(self, trial: _Trial) -> None:
        ray = self._ray
        task = trial.task
        trial.attempts += 1
        files = None
        run_dir = Path(task.run_dir)
        if task.resume and (run_dir / ckpt.CHECKPOINT).is_file():
            try:
                files = ray.put(run_files(run_dir))
            except OSError:
                files = None
        options = {"token_path": str(self._token_file), "token": self._secret, "owner_lock": self.owner_lock,
                   "ship": self.ship, "scratch": f"{self.token}-{task.number:04d}"}
        trial.ref = self._remote.options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0,
                                         name=f"polydl-trial-{task.number}").remote(task.to_dict(), self._hub,
                                                                                    options, files)

    def stop(self, number: int) -> None:
        if number in self._running and self._hub is not None:
            self._hub.stop.remote(number)

    def proceed(self, number: int, epoch: int) -> None:
        if number in self._running and self._hub is not None:
            self._hub.proceed.remote(number, int(epoch))

    def poll(self, timeout: float) -> list[TrialEvent]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            out = self._collect()
            left = deadline - time.monotonic()
            if out or left <= 0:
                return out
            time.sleep(min(0.05, left))

    def _collect(self) -> list[TrialEvent]:
        if self._hub is None:
            return []
        ray = self._ray
        refs = {t.ref: t for t in self._running.values() if t.ref is not None}
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

    def _ended(self, trial: _Trial) -> list[TrialEvent]:
        ray = self._ray
        number = trial.task.number
        try:
            result = ray.get(trial.ref)
        except ray.exceptions.RayError as exc:
            if type(exc).__name__ not in _FINAL_ERRORS and trial.attempts <= self.retries and not self._closing:
                trial.task = dataclasses.replace(trial.task, resume=True)
                self._launch(trial)
                return [TrialEvent(number, "note", message=f"trial {number}: its Ray worker died ({_first_line(exc)}); "
                                   f"running it again, from its checkpoint where the new worker can reach it "
                                   f"(attempt {trial.attempts} of {self.retries + 1})")]
            self._forget(number)
            died = f" {trial.attempts} times" if trial.attempts > 1 else ""
            return [TrialEvent(number, "failed", message=f"its Ray worker died{died} ({_first_line(exc)})")]
        self._forget(number)
        ev = TrialEvent.from_dict(result["event"])
        if result.get("files") is not None:
            try:
                install_run(trial.task.run_dir, result["files"])
            except (OSError, RayExecutorError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                return [TrialEvent(number, "failed", message=f"the run directory that came back cannot be written "
                                                             f"into {trial.task.run_dir} ({reason})")]
        return [ev]

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
            for trial in self._running.values():
                try:
                    ray.cancel(trial.ref, force=True)
                except Exception:
                    pass
            self._running.clear()
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
