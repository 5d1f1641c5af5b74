"""Streams, stream capture and CUDA graphs as CuPy 14 has them (``cupy/cuda/stream.pyx``,
``cupy/cuda/graph.pyx``, ``cupy_backends/cuda/api/runtime.pyx``), on the stand-in's one device.

Every op is issued to the current stream (``get_current_stream()``; ``with stream:`` or
``stream.use()`` change it) or to a kernel's ``stream=``. Outside a capture it runs at once (the
stand-in stays synchronous). While its stream captures, device work is recorded, not run
(``cudaStreamBeginCapture``): :func:`compute` and :func:`run` are the doors every op of the stand-in
goes through (ufuncs, functions, array methods, indexing, fills, copies, creation, kernels). An op's
new arrays are allocated at once and hold garbage (NaN, 0xA5 bytes) until the graph is launched;
a view is no device work and is made at once. ``end_capture`` gives a :class:`Graph` whose
``launch`` replays the steps in order on the same memory, each reading its operands as they are
then: new values written into the input arrays give new results.

What CuPy refuses, the stand-in refuses with CuPy's exception and message: ``begin_capture`` on
the null stream (``RuntimeError``), on a capturing stream or ``end_capture`` on a stream not
capturing (``cudaErrorIllegalState``, the capture goes on); ``synchronize()`` of the capturing stream
or of the device (``cudaErrorStreamCaptureUnsupported``), a graph launched into a capturing stream,
``stream.done``, and work on the null stream while a blocking stream captures
(``cudaErrorStreamCaptureImplicit``) invalidate the capture: ``end_capture`` then raises
``cudaErrorStreamCaptureInvalidated`` and work issued to the stream ``CUDADriverError``. A host
transfer on a capturing stream (``.get()``, ``asnumpy``, ``item``, ``float()``, ``repr``, ``.set()``,
``asarray`` of host data, host index arrays, a data-dependent shape) raises ``RuntimeError``
before CUDA sees it, and the capture goes on. cuBLAS (a float product), cuSOLVER and cuRAND raise
``NotImplementedError`` (``rules``, ``random``). Only the relaxed capture mode, CuPy's default, is modelled;
events, fork/join across streams and host callbacks are not.
"""
from __future__ import annotations

import itertools
import threading
import weakref

import numpy as np

from . import memory, rules
from .cuda import CUDADriverError, CUDARuntimeError
from .memory import root_of
from .steps import dry_run, record

RELAXED = 2
_CAPTURES: dict = {}  # stream ptr -> _Capture of the streams in capture mode
_ptrs = itertools.count(0x7F3A_0000_1000, 0x200)
_BY_PTR: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_tls = threading.local()
_NOT_MODELLED = {"record", "wait_event", "add_callback", "launch_host_func", "from_external"}


class _Capture:
    __slots__ = ("steps", "blocks", "invalid", "blocking")

    def __init__(self, blocking):
        self.steps, self.blocks, self.invalid, self.blocking = [], {}, False, blocking


class Stream:
    """``cupy.cuda.Stream``: ``Stream.null`` (ptr 0, the legacy stream), ``Stream.ptds``, or a new stream."""

    null = None
    ptds = None

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        if null or ptds:
            self.ptr, self.device_id, self._non_blocking = (0 if null else 2), -1, False
        else:
            self.ptr, self.device_id, self._non_blocking = next(_ptrs), 0, bool(non_blocking)
            _BY_PTR[self.ptr] = self
            memory.track()
        self._priority = int(priority or 0)

    def __eq__(self, other):
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self):
        return self.ptr

    def __repr__(self):
        return f"<Stream {self.ptr} (device {self.device_id})>"

    def __enter__(self):
        _stack().append(self)
        return self.use()

    def __exit__(self, *exc):
        stack = _stack()
        stack.pop()
        _tls.current = stack[-1]

    def use(self):
        if self.ptr:
            memory.track()
        _stack()
        _tls.current = self
        return self

    def __del__(self):
        if getattr(self, "ptr", 0) not in (0, 1, 2):
            _CAPTURES.pop(self.ptr, None)

    def __getattr__(self, name):
        if name in _NOT_MODELLED:
            raise AttributeError(f"cupy.cuda.Stream.{name} is not modelled by the CuPy stand-in (events and host "
                                 "callbacks need a GPU)")
        raise AttributeError(f"'Stream' object has no attribute '{name}'")

    _capture = property(lambda self: _CAPTURES.get(self.ptr))
    is_non_blocking = property(lambda self: self._non_blocking)
    priority = property(lambda self: self._priority)

    @property
    def done(self):
        """``cudaStreamQuery``: on a capturing stream an error that invalidates the capture
        (CuPy reads it as not done)."""
        if self._capture is None and not _implicit(self):
            return True
        _invalidate(self)
        return False

    def synchronize(self):
        if self._capture is not None:
            _invalidate(self)
            raise CUDARuntimeError(900, "cudaErrorStreamCaptureUnsupported")
        if _implicit(self):
            _invalidate(self)
            raise CUDARuntimeError(906, "cudaErrorStreamCaptureImplicit")

    def is_capturing(self):
        return is_capturing(self)

    def begin_capture(self, mode=None):
        if self.ptr in (0, 1):
            raise RuntimeError("cannot capture on the default (legacy) stream")
        mode = RELAXED if mode is None else mode
        if mode not in (0, 1, 2):
            raise CUDARuntimeError(1, "cudaErrorInvalidValue")
        if self._capture is not None:
            raise CUDARuntimeError(401, "cudaErrorIllegalState")
        if mode != RELAXED:
            raise NotImplementedError("the CuPy stand-in models only the relaxed capture mode (CuPy's default)")
        memory.track()
        _CAPTURES[self.ptr] = _Capture(not self._non_blocking)

    def end_capture(self):
        cap = _CAPTURES.pop(self.ptr, None)
        if cap is None:
            raise CUDARuntimeError(401, "cudaErrorIllegalState")
        if cap.invalid:
            raise CUDARuntimeError(901, "cudaErrorStreamCaptureInvalidated")
        return Graph._from(cap)


Stream.null = Stream(null=True)
Stream.ptds = Stream(ptds=True)


def _stack():
    stack = getattr(_tls, "stack", None)
    if stack is None:
        stack = _tls.stack = [Stream.null]
        _tls.current = Stream.null
    return stack


def current() -> Stream:
    """The calling thread's current stream."""
    cur = getattr(_tls, "current", None)
    if cur is None:
        _stack()
        cur = _tls.current
    return cur


def get_current_stream(device_id=-1):
    return current()


memory.current_stream = current


def stream_at(ptr: int) -> Stream:
    """The stream of a raw handle (0 and 1: the legacy stream, 2: the per-thread one)."""
    stream = {0: Stream.null, 1: Stream.null, 2: Stream.ptds}.get(ptr) or _BY_PTR.get(ptr)
    if stream is None:
        raise CUDARuntimeError(400, "cudaErrorInvalidResourceHandle")
    return stream


def _implicit(stream) -> bool:
    """Whether using ``stream`` would make the legacy stream wait on a capturing blocking stream."""
    return stream.ptr == 0 and any(c.blocking for c in _CAPTURES.values())


def _invalidate(stream) -> None:
    for ptr, cap in _CAPTURES.items():
        if ptr == stream.ptr or (stream.ptr == 0 and cap.blocking):
            cap.invalid = True


def is_capturing(stream) -> bool:
    """``runtime.streamIsCapturing`` as CuPy wraps it."""
    if _implicit(stream):
        raise CUDARuntimeError(906, "cudaErrorStreamCaptureImplicit")
    cap = _CAPTURES.get(stream.ptr)
    if cap is not None and cap.invalid:
        raise RuntimeError("the stream was capturing, but an error has invalidated the capture sequence")
    return cap is not None


def capture_of(stream=None):
    """The capture that device work issued to ``stream`` (default: the current one) joins, or None
    where it runs now; raises where CUDA refuses the launch."""
    if not _CAPTURES:
        return None
    stream = current() if stream is None else stream
    cap = _CAPTURES.get(stream.ptr)
    if cap is None:
        if _implicit(stream):
            _invalidate(stream)
            raise CUDADriverError(906, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT")
        return None
    if cap.invalid:
        raise CUDADriverError(901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED")
    return cap


def host_transfer(direction: str, stream=None) -> None:
    """CuPy's ``copy_to_host_async``/``copy_from_host_async`` check (``direction``: "D2H" or "H2D")."""
    if _CAPTURES and is_capturing(current() if stream is None else stream):
        raise RuntimeError(f"the current stream is capturing, so {direction} transfers are disallowed")


def library(name: str) -> None:
    """cuBLAS, cuSOLVER and cuRAND's ``setStream`` refuse a capturing stream."""
    if _CAPTURES and is_capturing(current()):
        raise NotImplementedError(f"calling {name} API during stream capture is currently unsupported")


def synchronize_device() -> None:
    """``cudaDeviceSynchronize``: refused while any stream of the device captures."""
    if _CAPTURES:
        for cap in _CAPTURES.values():
            cap.invalid = True
        raise CUDARuntimeError(900, "cudaErrorStreamCaptureUnsupported")


# ---------------------------------------------------------------------------- the two doors
def run(name, fn, args, kwargs=None, stream=None, check=True):
    """Device work that writes into arrays it is given (``out=``, fills, copies, scatters,
    kernels): done now, or recorded (checked first on zeros, as CuPy checks before launching,
    unless ``check`` is False) and None returned."""
    kwargs = kwargs or {}
    cap = capture_of(stream)
    if cap is None:
        return fn(*args, **kwargs)
    rules.before(name, args)
    if check:
        res, _ = dry_run(fn, args, kwargs)
        rules.after(name, args, res)
    record(cap, name, fn, args, kwargs)
    return None


def compute(name, fn, args, kwargs=None):
    """A pure op (new arrays, or views of its operands): done now, or, while the stream captures,
    its new arrays allocated holding garbage and its computation recorded to write into them."""
    kwargs = kwargs or {}
    cap = capture_of()
    if cap is None:
        return fn(*args, **kwargs)
    rules.before(name, args)
    res, dry_roots = dry_run(fn, args, kwargs)
    rules.after(name, args, res)
    seq = isinstance(res, (tuple, list))
    items = list(res) if seq else [res]
    real, outs = None, []
    for i, r in enumerate(items):
        if isinstance(r, np.ndarray) and id(root_of(r)) in dry_roots:  # a view: made now
            if real is None:
                with np.errstate(all="ignore"):
                    real = fn(*args, **kwargs)
            items[i] = real[i] if seq else real
        elif isinstance(r, (np.ndarray, np.generic)):  # new memory: allocated now, written at launch
            buf = r if isinstance(r, np.ndarray) and r.base is None and r.flags.writeable else np.array(r)
            memory.allocated(buf)
            items[i] = memory.poison(buf)
            outs.append((i, buf))
        elif r is not None:
            raise NotImplementedError(f"cupy.{name} during stream capture: the CuPy stand-in computes its "
                                      f"{type(r).__name__} result on the host")
    if outs:
        record(cap, name, fn, args, kwargs, outs, seq)
    if not seq:
        return items[0]
    return type(res)(*items) if hasattr(res, "_fields") else type(res)(items)


class Graph:
    """``cupy.cuda.Graph``: made by ``Stream.end_capture``; ``launch`` and ``upload``."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("currently this class cannot be initiated by the user and must be created via "
                                  "stream capture")

    @classmethod
    def _from(cls, cap):
        graph = cls.__new__(cls)
        graph._steps, graph._blocks = cap.steps, list(cap.blocks.values())
        return graph

    def _target(self, stream):
        stream = current() if stream is None else stream
        cap = _CAPTURES.get(stream.ptr)
        if cap is not None:
            if cap.invalid:
                raise CUDARuntimeError(901, "cudaErrorStreamCaptureInvalidated")
            cap.invalid = True
            raise CUDARuntimeError(900, "cudaErrorStreamCaptureUnsupported")
        if _implicit(stream):
            _invalidate(stream)
            raise CUDARuntimeError(906, "cudaErrorStreamCaptureImplicit")

    def upload(self, stream=None):
        self._target(stream)

    def launch(self, stream=None):
        """Run the recorded steps, in order, on the memory they were recorded with."""
        self._target(stream)
        memory.check(self._blocks, "Graph.launch")
        for step in self._steps:
            step.replay()
