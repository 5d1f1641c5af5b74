"""A strict CuPy stand-in for the tests of machines without a GPU (never shipped with polydl).

``install()`` puts it in ``sys.modules`` as ``cupy`` and ``cupyx`` before polydl imports CuPy
(``pytest --cuda-standin`` does so in ``tests/conftest.py``), so ``device="cuda"`` runs polydl's
CuPy code paths on one stand-in GPU: arrays of a type of their own backed by NumPy that refuse
implicit conversion to NumPy as CuPy does (``core``, ``indexing``), CuPy's namespace and nothing
more (``module``, ``names``), the device queries (``cuda``), allocators and memory pools
(``memory``), ``RandomState`` (``random``), ``cupyx.scatter_add``, ``ElementwiseKernel``/``RawKernel``
running the kernels' CUDA sources on the CPU (``kernels``, through ``cuda_emulator``), and
streams with CUDA-graph capture (``graph``, ``steps``, ``rules``): work issued to a capturing
stream is recorded, not run, a graph's launch replays it on the same memory, and what CuPy
refuses during a capture (host transfers, cuBLAS, cuSOLVER, cuRAND, synchronisation) is refused
with CuPy's error.

What it cannot show is what a GPU run must still establish: speed, real device memory (the pool
reports nothing allocated on a nominal 16 GiB card), concurrency between streams (each op runs
or is recorded in program order; events are absent), capture modes other than CuPy's relaxed
default, cuRAND's numbers (the generator draws NumPy's), the order of float operations in
CuPy's own reductions, and whether the kernels compile (``test_nvrtc`` checks that with NVRTC).
"""
from __future__ import annotations

import sys
import types

from . import core, cuda, module, names, random

__all__ = ["install", "installed", "ndarray"]
ndarray = core.ndarray
_MODULES = ("cupy", "cupyx", "cupy.cuda", "cupy.cuda.runtime", "cupy.random", "cupy.linalg")


def _facade(name, impl, allowed, extra=()):
    """A module that offers ``impl``'s attributes named in ``allowed`` (or ``extra``) only."""
    mod = types.ModuleType(name, impl.__doc__)

    def getattr_(attr):
        if attr in allowed or attr in extra:
            return getattr(impl, attr)
        raise AttributeError(f"module '{name}' has no attribute '{attr}'")

    mod.__getattr__ = getattr_
    mod.__polydl_standin__ = True
    return mod


def _linalg():
    import numpy as np

    mod = types.ModuleType("cupy.linalg")
    for attr in names.LINALG:
        fn = getattr(np.linalg, attr, None)
        if fn is not None:
            setattr(mod, attr, module._function(attr, fn) if callable(fn) and not isinstance(fn, type) else fn)
    return mod


def _cupyx_getattr(attr):
    if attr in names.CUPYX:
        raise AttributeError(f"cupyx.{attr} is not modelled by the CuPy stand-in")
    raise AttributeError(f"module 'cupyx' has no attribute '{attr}'")


def installed() -> bool:
    return getattr(sys.modules.get("cupy"), "__polydl_standin__", False)


def install() -> None:
    """Make ``import cupy`` and ``import cupyx`` give the stand-in (once per process; refused
    where the real CuPy is already imported)."""
    if installed():
        return
    if "cupy" in sys.modules:
        raise RuntimeError("the CuPy stand-in must be installed before CuPy is imported")
    cupy = _facade("cupy", module, names.MODULE, ("__version__", "ndarray", "ufunc"))
    cupy.__version__ = names.VERSION
    cuda_mod = _facade("cupy.cuda", cuda, {"Device", "runtime", "driver", "get_device_id", "is_available"}
                       | cuda._GRAPH_NAMES | cuda._MEMORY_NAMES | cuda._NOT_MODELLED)
    random_mod = _facade("cupy.random", random, names.RANDOM)
    cupyx = types.ModuleType("cupyx")
    cupyx.__polydl_standin__ = True
    cupyx.scatter_add = lambda a, slices, value: core.scatter(a, slices, value, "add")
    cupyx.scatter_max = lambda a, slices, value: core.scatter(a, slices, value, "maximum")
    cupyx.scatter_min = lambda a, slices, value: core.scatter(a, slices, value, "minimum")
    cupyx.__getattr__ = _cupyx_getattr
    linalg = _linalg()
    module.cuda, module.random, module.linalg = cuda_mod, random_mod, linalg
    for name, mod in zip(_MODULES, (cupy, cupyx, cuda_mod, cuda.runtime, random_mod, linalg)):
        sys.modules[name] = mod
    from polydl import backend

    backend._CUPY = backend._CUPY_ERROR = None  # polydl imports it afresh
    backend._KERNELS.clear()

