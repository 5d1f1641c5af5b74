"""The stand-in's ``cupy.cuda``: one GPU (device 0), its runtime queries and memory pools.

What a GPU alone can show is not modelled: streams, events and CUDA graphs are absent (their
names raise ``AttributeError`` saying so), the memory numbers are those of a nominal 16 GiB card
with nothing allocated, and nothing here is timed."""
from __future__ import annotations

COUNT = 1
TOTAL_MEMORY = 16 * 2 ** 30
_NOT_MODELLED = {"Stream", "ExternalStream", "Event", "Graph", "get_current_stream", "get_elapsed_time",
                 "graph", "stream", "profile", "profiler", "nvtx", "MemoryAsyncPool", "malloc_async",
                 "malloc_managed", "ManagedMemory", "set_allocator", "using_allocator", "texture", "cub", "thrust",
                 "compiler", "nvrtc", "Module", "Function", "get_cublas_handle"}
_current = [0]


class CUDARuntimeError(RuntimeError):
    def __init__(self, status, name):
        self.status = status
        super().__init__(f"{name}: {_MESSAGES.get(name, name)}")


_MESSAGES = {"cudaErrorInvalidDevice": "invalid device ordinal"}


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
        _check(self.id)

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


class MemoryPool:
    """A memory pool that holds nothing (the stand-in does not model device memory)."""

    def __init__(self):
        self._limit = 0

    def used_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def set_limit(self, size=None, fraction=None):
        self._limit = int(size if size is not None else (fraction or 0) * TOTAL_MEMORY)

    def get_limit(self):
        return self._limit


class PinnedMemoryPool:
    def free_all_blocks(self):
        pass

    def n_free_blocks(self):
        return 0


MEMORY_POOL = MemoryPool()
PINNED_MEMORY_POOL = PinnedMemoryPool()


class _Runtime:
    """``cupy.cuda.runtime``: the device queries polydl makes."""

    CUDARuntimeError = CUDARuntimeError
    is_hip = False

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
        pass

    def __getattr__(self, name):
        raise AttributeError(f"cupy.cuda.runtime.{name} is not modelled by the CuPy stand-in")


runtime = _Runtime()


def __getattr__(name):
    if name in _NOT_MODELLED:
        raise AttributeError(f"cupy.cuda.{name} is not modelled by the CuPy stand-in (streams, events, graphs "
                             "and compilation need a GPU)")
    raise AttributeError(f"module 'cupy.cuda' has no attribute '{name}'")
