"""The Ray executor's connection: a local instance it starts, a cluster it joins by address, or
the instance this process is already connected to; addresses and Ray's auth tokens.

Without ``address`` a local instance is started: every CPU of the machine, Ray's own GPU
detection, no dashboard, an object store of ``object_store_memory`` bytes and Ray's files in
``OUT/ray`` (reached through a short link in ``$TMPDIR`` where that path is too long for Ray's
sockets). With ``address`` the cluster must answer within ``connect_timeout`` seconds (checked
in a child process, ``python -m polydl.tune.executors.ray.probe``, since a Ray connection that
hangs cannot be abandoned); a token in ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
``~/.ray/auth_token`` is offered to it.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ....training.rundir import missing_dirs
from ..base import BLAS_VARIABLES, blas_environment, one_line, worker_environment
from ..resources import available_cpus
from .dirs import RAY_DIR, check_ray_dir, close_to_others
from .errors import RayExecutorError, require_ray

__all__ = ["Connection", "host_port", "check_address", "offer_token", "OBJECT_STORE_MEMORY"]

#: the object store of a local instance: room for the shipped run directories of many trials
OBJECT_STORE_MEMORY = 256 << 20
#: the longest Ray temp directory whose socket paths (``…/session_…/sockets/plasma_store``)
#: stay within the 107 bytes of an AF_UNIX path
SHORT_ENOUGH = 40
ADVICE = "start one with ray start --head, or give the address it printed"


def host_port(address: str):
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


def check_address(value, error: type[ValueError] = RayExecutorError):
    """``--address``: None (a local instance) or an address :func:`host_port` reads, as a string."""
    if value is None:
        return None
    try:
        host_port(str(value))
    except RayExecutorError as exc:
        raise error(str(exc)) from None
    return str(value)


def token_available() -> bool:
    """Whether this machine has a Ray auth token to offer."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return Path(path).is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


def offer_token() -> None:
    """Send this machine's Ray token to a cluster that may require one (unless RAY_AUTH_MODE says otherwise)."""
    if "RAY_AUTH_MODE" in os.environ or not token_available():
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray" in sys.modules:  # Ray read its configuration when it was imported: it reads it again
        try:
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):
            pass


def _hint(stderr: str) -> str:
    if "InvalidAuthToken" in (stderr or "") or "Unauthenticated" in (stderr or ""):
        return (" (it refuses this machine's Ray token: copy ~/.ray/auth_token from the head node, or set "
                "RAY_AUTH_TOKEN)")
    return ""


def probe(address: str, timeout: float) -> None:
    """Raise unless a Ray cluster answers at ``address`` within ``timeout`` seconds."""
    hp = host_port(address)
    if hp is not None:
        try:
            socket.create_connection(hp, timeout=min(5.0, timeout)).close()
        except TimeoutError:
            raise RayExecutorError(f"--address {address} does not answer within {min(5.0, timeout):g} s; "
                                   f"{ADVICE}") from None
        except OSError as exc:
            raise RayExecutorError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                                   f"{ADVICE}") from None
    cmd = [sys.executable, "-m", "polydl.tune.executors.ray.probe", address]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=worker_environment())
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise RayExecutorError(f"--address {address} does not answer as a Ray cluster within {timeout:g} s"
                               f"{_hint(err)}; {ADVICE}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit code {done.returncode}"
        raise RayExecutorError(f"--address {address}: cannot join the Ray cluster ({reason}){_hint(done.stderr)}")


class Connection:
    """This process's connection to Ray for the study directory ``out`` (see the module
    docstring): :meth:`open`, :meth:`nodes`, :meth:`close`. ``threads``: the BLAS threads of a
    local instance's workers."""

    def __init__(self, address: str | None, connect_timeout: float, object_store_memory: int, threads: int):
        self.address = address
        self.connect_timeout = float(connect_timeout)
        self.object_store_memory = int(object_store_memory)
        self.threads = threads
        self.ray = None
        self.out: Path | None = None
        self.startup_seconds: float | None = None
        self._own = False          # this process called ray.init here (and shuts it down)
        self._local = False        # it started a local instance
        self._created: list[Path] = []
        self._link: Path | None = None

    def open(self, out: Path) -> str:
        """Connect (:class:`RayExecutorError` where it cannot); where, in words."""
        self.out = Path(out)
        if self.address is not None:
            offer_token()
        ray = require_ray()
        t0 = time.monotonic()
        if ray.is_initialized():
            where = "the Ray instance this process is connected to"
        elif self.address is None:
            self._start_local(ray)
            where = f"a local Ray instance (logs in {self.out / RAY_DIR})"
        else:
            probe(self.address, self.connect_timeout)
            self._connect(ray)
            where = f"the Ray cluster at {self.address}"
        self.ray = ray
        self.startup_seconds = time.monotonic() - t0
        return where

    def nodes(self) -> list[dict]:
        """The resources of each live node."""
        return [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]

    def keep(self) -> None:
        """``OUT/ray`` is the study's from now on: :meth:`close` never removes it."""
        self._created = []

    def _start_local(self, ray) -> None:
        base = self.out / RAY_DIR
        missing = missing_dirs(base)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RayExecutorError(f"cannot create {base} for Ray's files ({exc.strerror or exc}); choose another "
                                   "--out") from None
        check_ray_dir(self.out)
        self._created = missing[:1]  # the outermost directory made here
        temp = base
        self._own = self._local = True
        try:
            if len(str(temp)) > SHORT_ENOUGH:  # Ray is given a short name for OUT/ray
                self._link = Path(tempfile.mkdtemp(prefix="polydl-ray-"))
                temp = self._link / "r"
                os.symlink(base, temp)
            saved = {v: os.environ.get(v) for v in BLAS_VARIABLES}
            os.environ.update(blas_environment(self.threads))  # the workers inherit them
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
            self.close(remove_created=True)
            raise RayExecutorError(f"cannot start a local Ray instance: {_error(exc)}") from None

    def _connect(self, ray) -> None:
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as exc:
            raise RayExecutorError(f"--address {self.address}: cannot join the Ray cluster ({_error(exc)})") from None
        self._own = True

    def close(self, remove_created: bool = False) -> None:
        """Shut down what :meth:`open` started or joined (a local instance's directories get the
        umask's mode back); ``remove_created``: remove the directories it made too."""
        if self._own:
            try:
                import ray

                ray.shutdown()
            except Exception:
                pass
            if self._local and self.out is not None:
                close_to_others(self.out / RAY_DIR)
        self._own = self._local = False
        if self._link is not None:
            shutil.rmtree(self._link, ignore_errors=True)
            self._link = None
        self.ray = None
        if remove_created:
            for d in reversed(self._created):
                shutil.rmtree(d, ignore_errors=True)
            self._created = []


def _error(exc: BaseException) -> str:
    """A Ray error in one line: its type and the first line of its message."""
    return one_line(exc, first=True, named=True, limit=200)
