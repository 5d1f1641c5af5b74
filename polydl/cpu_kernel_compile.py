"""What happens when a fused CPU kernel (``polydl.cpu_kernels``) has to be compiled rather than
loaded from Numba's cache: the one-line note, and compiling on two cores.

Numba announces each compile of a cache miss (its ``numba:compile`` event), never a load from the
cache: ``listen`` turns the first such compile of a polydl kernel in a process into ``NOTE`` on
standard error (or the function ``cpu_kernels.notes`` names). If that kernel is the first an op
calls (``AHEAD``: batch normalization's training forward pass, softmax cross-entropy's first
pass, ...), a helper process forked as it starts compiling compiles the kernels the op calls
next (the backward pass, the evaluation form, the second pass) into the cache, for the argument
types the op will pass, while this process compiles the first: the first run of a fresh install
compiles on two cores. Their first call here (``FirstCall``) waits for the helper, then loads
them from the cache. A helper writes nothing but the cache (and each kernel's name on a pipe once
it is there), and needs Linux (``fork``) and a writable cache; elsewhere each kernel compiles on
its first call.
"""
from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
import warnings

import numpy as np

from .cpu_kernel_sources import SOURCES


def _stderr_line(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # no standard error, or a closed one
        pass


#: where the note goes: [callable(message)], [None] for nowhere; standard error by default
NOTE_TO: list = [_stderr_line]
#: the longest a kernel's first call waits for a helper (s), and a helper's own limit
WAIT_S, HELPER_S = 120.0, 300
_state = {"noted": False, "helper": False}
_PENDING: dict = {}  # kernel name -> the _Helper compiling it
_STARTED: set = set()  # kernels whose followers a helper was started for
_CALL = threading.local()  # .args: (name, args) of a kernel's first call on this thread
_LOCK = threading.RLock()


def listen(nb) -> None:
    """Subscribe to Numba's compile events (once per process; a Numba without them: no note)."""
    try:
        from numba.core import event
    except ImportError:
        return
    ours = set(SOURCES.values())

    class Compiling(event.Listener):
        def on_start(self, ev):
            if getattr((ev.data or {}).get("dispatcher"), "py_func", None) in ours and not _state["helper"]:
                _compiling(nb)

        def on_end(self, ev):
            pass

    event.register("numba:compile", Compiling())


def _compiling(nb) -> None:
    """A polydl kernel is being compiled (not loaded from the cache) in this process."""
    with _LOCK:
        if not _state["noted"]:
            _state["noted"] = True
            to = NOTE_TO[0]
            if to is not None:
                from .cpu_kernels import NOTE

                try:
                    to(NOTE)
                except Exception:  # a note that cannot be shown must not stop the compile
                    pass
        call = getattr(_CALL, "args", None)
        if call is not None and call[0] in AHEAD and call[0] not in _STARTED:
            _STARTED.add(call[0])
            _start_helper(nb, *call)


def can_fork() -> bool:
    """Whether helpers are started: Linux, and kernels cached on disk."""
    from . import cpu_kernels

    return sys.platform.startswith("linux") and hasattr(os, "fork") and not cpu_kernels._UNCACHED


def _start_helper(nb, name, args) -> None:
    """Fork a helper compiling the kernels that follow ``name`` (``AHEAD``), unless compiled here."""
    from .cpu_kernels import _COMPILED

    try:
        todo = [(k, a) for k, a in AHEAD[name](*args)
                if k not in _PENDING and not (k in _COMPILED and not isinstance(_COMPILED[k], FirstCall))]
    except Exception:  # arguments of another shape than the guess expects: no helper
        return
    _fork(nb, todo)


def _fork(nb, todo):
    """A helper compiling the (kernel, arguments) of ``todo``; None where helpers are not used."""
    if not todo or not can_fork():
        return None
    r, w = os.pipe()
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns of forking a process that has (BLAS) threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:  # no memory or process left for it: compile here
        os.close(r)
        os.close(w)
        return None
    if pid == 0:
        _helper(nb, todo, w)  # never returns
    os.close(w)
    helper = _Helper(pid, r, {k for k, _ in todo})
    for k, _ in todo:
        _PENDING[k] = helper
    return helper


def _helper(nb, todo, w) -> None:
    """The forked helper: compile each kernel of ``todo`` for its arguments' types into the cache,
    writing its name to ``w`` when done; no output, default signals, ended after ``HELPER_S``."""
    _state["helper"] = True
    try:
        ends = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)
        for sig in ends:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, ends)
        signal.alarm(HELPER_S)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        for fd in map(int, os.listdir("/proc/self/fd")):  # run directory locks and pipes stay the parent's
            if fd > 2 and fd != w:
                try:
                    os.close(fd)
                except OSError:
                    pass
        sys.stdout = sys.stderr = open(os.devnull, "w")
        from .cpu_kernels import _build

        for name, args in todo:
            try:
                _build(nb, name).compile(tuple(nb.typeof(a) for a in args))
            except Exception:
                pass
            os.write(w, name.encode() + b"\n")
    finally:
        os._exit(0)


class _Helper:
    """A helper process as seen by this one: its pid, the read end of its pipe, the kernels it
    compiles and those it has reported."""

    def __init__(self, pid: int, fd: int, names: set):
        self.pid, self.fd, self.names, self.done, self.rest = pid, fd, names, set(), b""
        self.lock = threading.Lock()

    def wait(self, name: str, timeout: float) -> None:
        """Until the helper reports ``name`` (then it is in the cache), ends, or ``timeout`` s."""
        with self.lock:
            self._wait(name, timeout)

    def _wait(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.fd is not None and name not in self.done:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([self.fd], [], [], left)[0]:
                return
            data = os.read(self.fd, 4096)
            if not data:
                self.close()
                return
            *lines, self.rest = (self.rest + data).split(b"\n")
            self.done.update(line.decode() for line in lines)
        if self.fd is not None and self.done >= self.names:
            self.close()

    def close(self) -> None:
        """Stop reading; reap the helper (it exits once its last kernel is reported)."""
        os.close(self.fd)
        self.fd = None
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def first_call(nb, name: str, kernels: dict) -> "FirstCall":
    """Kernel ``name`` (``cpu_kernels.get``) for its first call: a composite's compiled parts are
    first called through ``FirstCall`` too, then the composite of the bare parts takes over."""
    from .cpu_kernel_sources import COMPOSITES
    from .cpu_kernels import _build

    if name not in COMPOSITES:
        return FirstCall(name, _build(nb, name), kernels)
    make, names = COMPOSITES[name]
    parts = [_build(nb, part) for part in names]
    first = make(*(FirstCall(n, k, {}) for n, k in zip(names, parts, strict=True)))
    return FirstCall(name, first, kernels, make(*parts))


class FirstCall:
    """Kernel ``name`` until its first call in this process returns: the call first waits for a
    helper compiling the kernel, and records its arguments, from which a compile (a cache miss)
    starts the kernels that follow it; then ``kernels[name]`` becomes ``then`` (by default the
    kernel itself)."""

    __slots__ = ("name", "kern", "kernels", "then")

    def __init__(self, name: str, kern, kernels: dict, then=None):
        self.name, self.kern, self.kernels, self.then = name, kern, kernels, then

    def __call__(self, *args):
        if _PENDING:
            with _LOCK:
                helper = _PENDING.pop(self.name, None)
            if helper is not None:
                helper.wait(self.name, WAIT_S)
        saved = getattr(_CALL, "args", None)
        _CALL.args = (self.name, args)
        try:
            return self.kern(*args)
        finally:
            _CALL.args = saved
            if self.kernels.get(self.name) is self:
                self.kernels[self.name] = self.kern if self.then is None else self.then


# ---------------------------------------------------------------------------- compiled ahead
# ``AHEAD[name](*args)``, from the arguments of kernel ``name``'s first call, names each kernel its
# op calls later with arguments of the types the op will pass (in ``polydl.ops``: only the types
# matter, dtype, dimensions, C-contiguous and writable). A wrong guess costs a spare compile.
def _like(a):
    """A C-contiguous writable array of a's dtype and number of dimensions."""
    return np.empty((1,) * a.ndim, a.dtype)


def _bn_ahead(x, gamma, beta, eps, relu, out, mu, var, inv_std):
    """bn_forward_train's (bn_nchw_forward_train's) backward pass and evaluation forward."""
    g = _like(x)
    flat = np.empty(1, mu.dtype)
    return (("bn_running", (flat, flat, flat, flat, mu.dtype.type(0.9), mu.dtype.type(0.1))),
            ("bn_backward_train", (g, x, mu, inv_std, gamma, g if relu else None, g, mu, mu)),
            ("bn_forward_eval", (x, _like(mu), _like(mu), beta, relu, g)))


def _bn_nchw_ahead(*args):
    return tuple(("bn_nchw_" + name[3:], a) for name, a in _bn_ahead(*args))


def _softmax_ahead(z, labels, p, zmax):
    """softmax_xent's second pass (after its first, softmax_shift) and its backward pass."""
    return (("softmax_finish", (z, labels, p, zmax, np.empty(z.shape[0], np.float64))),
            ("softmax_xent_backward", (p, labels, np.empty(z.shape[0], z.dtype), _like(p))))


def _avg_pool_ahead(x, *args):
    """Average pooling's backward pass: g like out, the same geometry and area, gx like x."""
    *geometry, out = args
    return (("avg_pool2d_backward", (_like(out), *geometry, _like(x))),)


def _max_pool_ahead(x):
    """Max pooling's backward pass, after its first part (count_nan): g like out (dimensions
    and dtype of x), the argmax (int32), gx like x."""
    return (("max_pool2d_backward", (_like(x), np.empty((1,) * x.ndim, np.int32), _like(x))),)


def _im2col_ahead(x, *args):
    """col2im of the columns' gradient (like col) into gx (like x), with im2col's geometry."""
    return (("col2im", (args[-1], *args[2:-1], _like(x))),)


AHEAD = {"bn_forward_train": _bn_ahead, "bn_nchw_forward_train": _bn_nchw_ahead, "softmax_shift": _softmax_ahead,
         "im2col": _im2col_ahead, "avg_pool2d_forward": _avg_pool_ahead, "count_nan": _max_pool_ahead}
