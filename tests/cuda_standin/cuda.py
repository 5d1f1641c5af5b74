"""The stand-in's ``cupy.cuda``: one GPU (device 0), its runtime queries, memory pools and
allocators (``memory``), streams, stream capture and CUDA graphs (``graph``).

What a GPU alone can show is not modelled: events, external streams, ``MemoryAsyncPool`` and the
compiler are absent (their names raise ``AttributeError`` saying so), the memory numbers are those
of a nominal 16 GiB card with nothing allocated, streams do not run concurrently, and nothing
here is timed."""
from __future__ import annotations

from . import memory
from .memory import TOTAL_MEMORY

COUNT = 1
_NOT_MODELLED = {"ExternalStream", "Event", "get_elapsed_time", "graph", "stream", "profile", "profiler", "nvtx",
                 "MemoryAsyncPool", "malloc_async", "malloc_managed", "ManagedMemory", "texture", "cub", "thrust",
                 "compiler", "nvrtc", "Module", "Function", "get_cublas_handle"}
_GRAPH_NAMES = {"Stream", "Graph", "get_current_stream"}
_MEMORY_NAMES = {"MemoryPool", "PinnedMemoryPool", "get_allocator", "set_allocator", "using_allocator"}
_current = [0]


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``: "<error name>: <cudaGetErrorString>"."""

    def __init__(self, status, name):
        self.status = status
        super().__init__(f"{name}: {_MESSAGES.get(name, name)}")


class CUDADriverError(RuntimeError):
    """``cupy.cuda.driver.CUDADriverError`` (a kernel launch): "<CUDA_ERROR_...>: <cuGetErrorString>"."""

    def __init__(self, status, name):
        self.status = status
        super().__init__(f"{name}: {_MESSAGES.get(name, name)}")


_CAPTURE_MESSAGES = {  # CUDA's error strings (as HIP's tests list them for NVIDIA)
    "StreamCaptureUnsupported": "operation not permitted when stream is capturing",
    "StreamCaptureInvalidated": "operation failed due to a previous error during capture",
    "StreamCaptureImplicit": "operation would make the legacy stream depend on a capturing blocking stream",
}
_MESSAGES = {"cudaErrorInvalidDevice": "invalid device ordinal", "cudaErrorInvalidValue": "invalid argument",
             "cudaErrorIllegalState": "the operation cannot be performed in the present state",
             "cudaErrorInvalidResourceHandle": "invalid resource handle",
             **{f"cudaError{k}": v for k, v in _CAPTURE_MESSAGES.items()},
             "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED": _CAPTURE_MESSAGES["StreamCaptureInvalidated"],
             "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT": _CAPTURE_MESSAGES["StreamCaptureImplicit"]}


def _check(index):
    if not 0 <= index < COUNT:
        raise CUDARuntimeError(101, "cudaErrorInvalidDevice")


class Device:
    """``cupy.cuda.Device(n)``: a context that makes device n current (only device 0 exists)."""

    def __init__(self, device=None):
        self.id = _current[0] if device is None else int(device)
        self._prev = []

    def __enter__(self):
        _check(self.id)
        self._prev.append(_current[0])
        _current[0] = self.id
        return self

    def __exit__(self, *exc):
        _current[0] = self._prev.pop()

    def use(self):
        _check(self.id)
        _current[0] = self.id

    def synchronize(self):
        from .graph import synchronize_device

        _check(self.id)
        synchronize_device()

    @property
    def compute_capability(self):
        props = runtime.getDeviceProperties(self.id)
        return f"{props['major']}{props['minor']}"

    @property
    def mem_info(self):
        return runtime.memGetInfo()

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def get_device_id():
    return _current[0]


def is_available():
    return True


class _Runtime:
    """``cupy.cuda.runtime``: the device queries polydl makes."""

    CUDARuntimeError = CUDARuntimeError
    is_hip = False
    streamDefault, streamNonBlocking, streamLegacy, streamPerThread = 0, 1, 1, 2
    streamCaptureModeGlobal, streamCaptureModeThreadLocal, streamCaptureModeRelaxed = 0, 1, 2
    streamCaptureStatusNone, streamCaptureStatusActive, streamCaptureStatusInvalidated = 0, 1, 2

    @staticmethod
    def getDeviceCount():
        return COUNT

    @staticmethod
    def getDevice():
        return _current[0]

    @staticmethod
    def setDevice(index):
        _check(index)
        _current[0] = index

    @staticmethod
    def getDeviceProperties(index):
        _check(index)
        return {"name": b"CuPy stand-in (NumPy)", "totalGlobalMem": TOTAL_MEMORY, "major": 9, "minor": 0,
                "multiProcessorCount": 132, "warpSize": 32, "maxThreadsPerBlock": 1024,
                "sharedMemPerBlock": 48 * 1024}

    @staticmethod
    def memGetInfo():
        return TOTAL_MEMORY, TOTAL_MEMORY

    @staticmethod
    def driverGetVersion():
        return 12090

    @staticmethod
    def runtimeGetVersion():
        return 12090

    @staticmethod
    def deviceSynchronize():
        from .graph import synchronize_device

        synchronize_device()

    @staticmethod
    def streamIsCapturing(ptr):
        from . import graph

        return graph.is_capturing(graph.stream_at(ptr))

    @staticmethod
    def streamSynchronize(ptr):
        from . import graph

        graph.stream_at(ptr).synchronize()

    def __getattr__(self, name):
        raise AttributeError(f"cupy.cuda.runtime.{name} is not modelled by the CuPy stand-in")


runtime = _Runtime()


class _Driver:
    """``cupy.cuda.driver``: its error only."""

    CUDADriverError = CUDADriverError

    def __getattr__(self, name):
        raise AttributeError(f"cupy.cuda.driver.{name} is not modelled by the CuPy stand-in")


driver = _Driver()


def __getattr__(name):
    if name in _GRAPH_NAMES:
        from . import graph

        return getattr(graph, name)
    if name in _MEMORY_NAMES:
        return getattr(memory, name)
    if name in _NOT_MODELLED:
        raise AttributeError(f"cupy.cuda.{name} is not modelled by the CuPy stand-in (events, asynchronous "
                             "allocation and compilation need a GPU)")
    raise AttributeError(f"module 'cupy.cuda' has no attribute '{name}'")
