"""The one module that chooses the array module: NumPy for ``cpu``, CuPy for ``cuda``.

Everything else in polydl asks ``get_array_module(array)`` (Chainer's ``xp``) and never
imports CuPy itself. Device strings are ``"cpu"``, ``"cuda"`` (the current GPU) and
``"cuda:N"``.
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np

__all__ = [
    "Device", "DeviceError", "device", "get_array_module", "device_of", "asarray",
    "to_device", "to_numpy", "cuda_available", "cuda_device_count", "cupy_version", "cuda_devices",
    "cuda_versions", "fused_kernel", "raw_kernel", "tune_malloc",
    "default_dtype", "set_default_dtype", "check_device", "same_device", "device_context",
]

_CUPY = None          # the cupy module once imported
_CUPY_ERROR = None    # why it could not be imported
_DEFAULT_DTYPE = np.dtype(np.float32)
_INSTALL_HINT = "install it with pip install 'polydl[cuda]' (CUDA 12) or pip install 'polydl[cuda13]' (CUDA 13)"


class DeviceError(RuntimeError):
    """A device that cannot be used: CuPy missing, no GPU, or arrays on two devices."""


def _cupy():
    """Import CuPy on first need; ``None`` if it is not installed or fails to import."""
    global _CUPY, _CUPY_ERROR
    if _CUPY is None and _CUPY_ERROR is None:
        try:
            import cupy  # the only import of cupy in polydl
            _CUPY = cupy
        except Exception as exc:  # ImportError, or a broken CUDA runtime
            _CUPY_ERROR = exc
    return _CUPY


def cupy_version() -> str | None:
    cp = _cupy()
    return None if cp is None else cp.__version__


def cuda_device_count() -> int:
    cp = _cupy()
    if cp is None:
        return 0
    try:
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def cuda_devices() -> list[dict]:
    """Name, memory and compute capability of each visible GPU (empty without CuPy or a GPU)."""
    out = []
    cp = _cupy()
    for i in range(cuda_device_count()):
        try:
            props = cp.cuda.runtime.getDeviceProperties(i)
            name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
            out.append({"index": i, "name": name, "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
                        "compute_capability": f"{props['major']}.{props['minor']}"})
        except Exception as exc:  # pragma: no cover - depends on the driver
            out.append({"index": i, "name": f"unknown ({exc})"})
    return out


def cuda_versions() -> dict:
    """CUDA driver and runtime versions as CuPy reports them (empty without CuPy)."""
    cp = _cupy()
    if cp is None:
        return {}
    out = {}
    for key, fn in (("driver", "driverGetVersion"), ("runtime", "runtimeGetVersion")):
        try:
            v = int(getattr(cp.cuda.runtime, fn)())
            out[key] = f"{v // 1000}.{(v % 1000) // 10}"
        except Exception:
            out[key] = "unknown"
    return out


def cuda_free_memory(index: int | None = None) -> int | None:
    """Bytes free on CUDA device ``index``: what the driver reports free plus what CuPy's memory
    pool holds unused; None without CuPy or a driver."""
    cp = _cupy()
    if cp is None:
        return None
    try:
        with cp.cuda.Device(index or 0):
            free, _total = cp.cuda.runtime.memGetInfo()
            return int(free) + int(cp.get_default_memory_pool().free_bytes())
    except Exception:  # no driver, no such device: unknown
        return None


def cuda_available() -> bool:
    return cuda_device_count() > 0


class Device:
    """A device: ``type`` is ``"cpu"`` or ``"cuda"``; ``index`` the GPU number (None for CPU)."""

    __slots__ = ("type", "index")

    def __init__(self, type: str, index: int | None = None):
        self.type = type
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, Device) and self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device('{self}')"

    @property
    def xp(self):
        """The array module of this device."""
        return np if self.type == "cpu" else _require_cupy(self)


CPU = Device("cpu")


def _require_cupy(dev: Device):
    cp = _cupy()
    if cp is None:
        raise DeviceError(
            f"device '{dev}' needs CuPy, which is not installed ({_CUPY_ERROR}); {_INSTALL_HINT}")
    count = cuda_device_count()
    if count == 0:
        raise DeviceError(
            f"device '{dev}' needs a CUDA GPU, but CuPy {cp.__version__} sees none; "
            "check the NVIDIA driver and CUDA_VISIBLE_DEVICES, and that CuPy matches the CUDA version "
            f"({_INSTALL_HINT}), or use --device cpu")
    if dev.index is not None and dev.index >= count:
        raise DeviceError(
            f"device '{dev}' does not exist: CuPy sees {count} GPU(s), cuda:0 to cuda:{count - 1}")
    return cp


def device(spec=None) -> Device:
    """Parse ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (or a Device, or None for CPU) into a Device.

    Only the spelling is checked here; ``check_device`` also checks that CUDA is usable."""
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:0', not {spec!r}")
    s = spec.strip().lower()
    if s == "cpu":
        return CPU
    if s == "cuda":
        return Device("cuda", None)
    if s.startswith("cuda:") and s[5:].isdigit():
        return Device("cuda", int(s[5:]))
    raise ValueError(f"unknown device {spec!r}: use 'cpu', 'cuda' or 'cuda:N'")


def check_device(spec) -> Device:
    """Parse a device and make sure it can be used (CuPy present, the GPU visible)."""
    dev = device(spec)
    if dev.type == "cuda":
        _require_cupy(dev)
    return dev


def get_array_module(array):
    """``numpy`` for NumPy arrays and scalars, ``cupy`` for CuPy arrays."""
    if type(array) is np.ndarray:
        return np
    cp = _CUPY
    if cp is not None and isinstance(array, cp.ndarray):
        return cp
    return np


def device_of(array) -> Device:
    if type(array) is np.ndarray or _CUPY is None or not isinstance(array, _CUPY.ndarray):
        return CPU
    return Device("cuda", int(array.device.id))


def same_device(a, b) -> bool:
    """Whether two arrays live on one device; Python and NumPy scalars go anywhere."""
    if type(a) is np.ndarray and type(b) is np.ndarray:
        return True
    cp = _CUPY
    if cp is None:
        return True
    ca, cb = isinstance(a, cp.ndarray), isinstance(b, cp.ndarray)
    if ca and cb:
        return a.device.id == b.device.id
    if not ca and not cb:
        return True
    return not isinstance(b if ca else a, np.ndarray)


def default_dtype() -> np.dtype:
    return _DEFAULT_DTYPE


def set_default_dtype(dtype) -> None:
    global _DEFAULT_DTYPE
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"default dtype must be a floating type, not {dt}")
    _DEFAULT_DTYPE = dt


def device_context(dev):
    """A context that makes ``dev`` current for allocations: a CUDA device, or nothing on the CPU."""
    dev = device(dev)
    if dev.type == "cpu":
        return contextlib.nullcontext()
    cp = _require_cupy(dev)
    return cp.cuda.Device(dev.index if dev.index is not None else cp.cuda.Device().id)


def to_device(array, dev) -> object:
    """Copy ``array`` to ``dev`` (no copy if it is already there)."""
    dev = device(dev)
    if dev.type == "cpu":
        return to_numpy(array)
    with device_context(dev):
        cp = _CUPY
        if isinstance(array, cp.ndarray) and dev.index in (None, array.device.id):
            return array
        return cp.asarray(array)


def to_numpy(array) -> np.ndarray:
    """A NumPy array of ``array`` wherever it lives (a copy from the GPU)."""
    if type(array) is np.ndarray:
        return array
    cp = _CUPY
    if cp is not None and isinstance(array, cp.ndarray):
        return cp.asnumpy(array)
    return np.asarray(array)


def asarray(data, dtype=None, dev=None):
    """An array on ``dev`` holding ``data``: Python numbers and lists become the default float
    dtype (float32) unless they are all integers or booleans; arrays keep their dtype."""
    if dtype is not None:
        dtype = np.dtype(dtype)
    is_array = isinstance(data, np.ndarray) or (_CUPY is not None and isinstance(data, _CUPY.ndarray))
    dev = device_of(data) if dev is None and is_array else device(dev)
    if not is_array:
        arr = np.asarray(data)
        if dtype is None and arr.dtype.kind in "fc" or (dtype is None and arr.dtype == object):
            arr = arr.astype(_DEFAULT_DTYPE)
        data = arr
    if dev.type == "cpu":
        arr = to_numpy(data)
        return arr if dtype is None or arr.dtype == dtype else arr.astype(dtype)
    arr = to_device(data, dev)
    return arr if dtype is None or arr.dtype == dtype else arr.astype(dtype)


#: dtypes CuPy's scatter-add adds atomically (``cupyx.scatter_add``)
_SCATTER_DTYPES = "iIlLqQefd"


def scatter_add(target, index, values) -> None:
    """``target[index] += values`` with repeated indices accumulating (``np.add.at``). On CUDA a
    dtype CuPy cannot add atomically (bfloat16) is summed in float32 and rounded once."""
    if type(target) is np.ndarray:
        np.add.at(target, index, values)
        return
    import cupyx  # ships with CuPy

    if target.dtype.char in _SCATTER_DTYPES:
        cupyx.scatter_add(target, index, values)
        return
    acc = target.astype(np.float32)
    cupyx.scatter_add(acc, index, values.astype(np.float32) if hasattr(values, "astype") else values)
    target[...] = acc.astype(target.dtype)


# ---------------------------------------------------------------------------- host memory
_MALLOC_TUNED = None


def tune_malloc() -> bool:
    """Keep large freed blocks in glibc's heap instead of returning them to the kernel.

    A training step allocates and frees the same large activations every step; by default glibc
    serves blocks above its mmap threshold with fresh mappings, so every step pays one page fault
    per 4 KiB page (a 512×1024 float32 BatchNorm forward ran 5× slower from that alone). This
    raises the mmap threshold to glibc's maximum (32 MiB) and the trim threshold to 512 MiB.
    Called by ``import polydl`` on Linux unless ``POLYDL_MALLOC_TUNING=0``; returns whether the
    settings were applied."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED is not None:
        return _MALLOC_TUNED
    _MALLOC_TUNED = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 32 * 2 ** 20) == 1
        ok = libc.mallopt(m_trim_threshold, 512 * 2 ** 20) == 1 and ok
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    _MALLOC_TUNED = ok
    return ok


# ---------------------------------------------------------------------------- CuPy kernels
# Fused kernels for the hot paths on CUDA (one launch instead of several); their sources are in
# polydl.cuda_kernels, each beside the NumPy form of the op that uses it, and tests compare the two.
_KERNELS: dict = {}


def fused_kernel(name: str):
    """The CuPy ElementwiseKernel ``name`` of ``cuda_kernels.ELEMENTWISE`` (compiled on its first
    call for each dtype), or None without CuPy."""
    kern = _KERNELS.get(name)
    if kern is None:
        cp = _cupy()
        if cp is None:
            return None
        from .cuda_kernels import ELEMENTWISE

        in_params, out_params, body = ELEMENTWISE[name]
        kern = cp.ElementwiseKernel(in_params, out_params, body, f"polydl_{name}")
        _KERNELS[name] = kern
    return kern


def raw_kernel(name: str, x_dtype, t_dtype):
    """The CuPy RawKernel ``name`` of ``cuda_kernels.RAW`` for activations of ``x_dtype`` and
    parameters of ``t_dtype`` (compiled on its first launch), or None without CuPy; called as
    ``kernel(grid, block, args)``."""
    key = (name, np.dtype(x_dtype).name, np.dtype(t_dtype).name)
    kern = _KERNELS.get(key)
    if kern is None:
        cp = _cupy()
        if cp is None:
            return None
        from .cuda_kernels import raw_source

        kern = cp.RawKernel(raw_source(name, x_dtype, t_dtype), f"polydl_{name}")
        _KERNELS[key] = kern
    return kern
