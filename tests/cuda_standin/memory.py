"""The stand-in's device memory: CuPy's allocators and pools, and what a CUDA graph may do with them.

CuPy 14 (``cupy/cuda/memory.pyx``): an array's memory comes from the current allocator
(``get_allocator``: the thread's ``using_allocator`` one, else the global ``set_allocator`` one;
by default ``get_default_memory_pool().malloc``). A ``MemoryPool`` (``SingleDeviceMemoryPool._malloc``)
serves a request, rounded up to 512 bytes, from the arena of the *current stream*
(``get_current_stream_ptr()``) or else by ``cudaMalloc``; a freed block goes back to the arena it
came from and a later request on that stream may get it. Nothing there looks at stream capture:
allocating while the stream captures works (``begin_capture`` defaults to the relaxed mode so that
``cudaMalloc`` is allowed), the allocation is not a node of the graph, and the graph keeps
addresses, not memory: an array the graph uses that is dropped after (or during) the capture
frees its block, and a graph launched after the pool has handed that block to another array
overwrites that array. ``free_all_blocks`` gives free blocks back to the device.

NumPy memory is never reused, so the stand-in checks what a GPU would silently get wrong: each
array a graph uses is a :class:`Block` (the graph holds its NumPy memory, so the stand-in can still
compute, and counts references to see when the program has dropped it). A dropped block is lost to
the graph once a request on its pool and stream, outside the capture that allocated it, could
have been served by it (the smallest such free block, as best fit), once ``free_all_blocks``
releases it, or at once when no pool holds it (``using_allocator(None)``: ``cudaFree``).
``Graph.launch`` then raises :class:`FreedMemoryUse`. The pool's byte counts stay those of a pool
holding nothing, and a request may find a block a real pool would have passed over for a
closer fit (the check errs towards raising).
"""
from __future__ import annotations

import contextlib
import sys
import threading
import weakref

import numpy as np

TOTAL_MEMORY = 16 * 2 ** 30
_FILL = {"f": np.nan, "c": complex(np.nan, np.nan)}
TRACKING = False  #: set once a stream or an allocator other than the default is used
current_stream = None  #: set by ``graph`` (the current stream of the calling thread)


class FreedMemoryUse(AssertionError):
    """A graph launch would use device memory its arrays no longer own (silent corruption on a GPU)."""


def poison(a: np.ndarray) -> np.ndarray:
    """Fill ``a`` as uninitialised device memory: NaN for floats, 0xA5 bytes otherwise."""
    fill = _FILL.get(a.dtype.kind)
    if fill is not None:
        a.fill(fill)
    elif a.size:
        a[...] = np.frombuffer(b"\xa5" * a.itemsize, a.dtype)[0]
    return a


def rounded(nbytes: int) -> int:
    """CuPy's ``_round_size``: a pool's block size for a request."""
    return -(-int(nbytes) // 512) * 512


class Flags:
    """``ndarray.flags``: CuPy's three (no ``writeable``)."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = bool(a.flags.owndata)

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]


class MemoryPointer:
    """``ndarray.data``: the address of the first element on device 0."""

    __slots__ = ("ptr", "device_id")

    def __init__(self, a):
        self.ptr = int(a.__array_interface__["data"][0])
        self.device_id = 0

    @property
    def device(self):
        from .cuda import Device

        return Device(0)


class _PoolPointer:
    """What ``MemoryPool.malloc`` returns: ``ptr``, ``size``, ``device_id`` of a pooled block."""

    def __init__(self, pool, size):
        self.mem, self.pool, self.size, self.device_id = np.empty(size, np.uint8), pool, size, 0
        self.ptr = int(self.mem.ctypes.data)


class MemoryPool:
    """``cupy.cuda.MemoryPool``: reports nothing allocated; ``malloc`` as an allocator for
    ``using_allocator``/``set_allocator``; ``free_all_blocks`` releases its free blocks."""

    def __init__(self, allocator=None):
        self._limit = 0

    def malloc(self, size):
        return _PoolPointer(self, rounded(size))

    def used_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self, stream=None):
        for (pool_id, arena), blocks in list(_ARENAS.items()):
            if pool_id == id(self) and (stream is None or arena == stream.ptr):
                for b in list(blocks):
                    if b.lost is None and b.free():
                        b.lost = "given back to the device by MemoryPool.free_all_blocks()"

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
_global = [MEMORY_POOL.malloc]
_local = threading.local()


def _check_allocator(allocator):
    if allocator is not None and not isinstance(getattr(allocator, "__self__", None), MemoryPool):
        raise NotImplementedError("the CuPy stand-in models only a MemoryPool's malloc (or None, cudaMalloc) as "
                                  "an allocator")
    return allocator


def get_allocator():
    allocator = getattr(_local, "allocator", None)
    return _global[0] if allocator is None else allocator


def set_allocator(allocator=None):
    if getattr(_local, "allocator", None) is not None:
        raise ValueError("Can't change the global allocator inside `using_allocator` context manager")
    track()
    _global[0] = _check_allocator(allocator) or _malloc


@contextlib.contextmanager
def using_allocator(allocator=None):
    """``cupy.cuda.using_allocator``: the calling thread's allocator inside the block."""
    track()
    previous = getattr(_local, "allocator", None)
    _local.allocator = _check_allocator(allocator) or _malloc
    try:
        yield
    finally:
        _local.allocator = previous


def _malloc(size):
    """``cupy.cuda.memory._malloc``: ``cudaMalloc`` with no pool (freed by ``cudaFree``)."""
    return _PoolPointer(None, int(size))


def current_pool():
    """The pool the current allocator draws from (None: plain ``cudaMalloc``)."""
    return getattr(get_allocator(), "__self__", None)


def track():
    global TRACKING
    TRACKING = True


# ---------------------------------------------------------------------------- blocks of graphs
_ALLOC: dict = {}  # id(array) -> (weakref, pool, arena, capture) of arrays allocated while tracking
_BLOCKS: dict = {}  # id(root) -> weakref to its Block
_ARENAS: dict = {}  # (id(pool), stream ptr) -> WeakSet of the Blocks allocated there


class _Probe:
    __slots__ = ("root",)


def _baseline() -> int:
    probe = _Probe()
    probe.root = np.empty(0)
    return sys.getrefcount(probe.root)


_BASE = _baseline()  # references to a Block's root when the Block holds the only one


class Block:
    """An allocation a graph uses: its memory (``root``), pool, stream arena and size, and the
    capture it was allocated in (None: before it)."""

    __slots__ = ("root", "pool", "arena", "size", "capture", "taken", "lost", "__weakref__")

    def free(self) -> bool:
        """Whether the program has dropped every array on this memory (its pool holds it as free)."""
        return sys.getrefcount(self.root) <= _BASE and (self.taken is None or self.taken() is None)


def root_of(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def block(root: np.ndarray) -> Block:
    """The Block of an allocation (one per allocation, shared by the graphs that use it)."""
    ref = _BLOCKS.get(id(root))
    b = ref() if ref is not None else None
    if b is not None and b.root is root:
        return b
    info = _ALLOC.get(id(root))
    if info is not None and info[0]() is root:
        pool, arena, capture = info[1:]
    else:  # allocated before any stream or allocator was used: the default pool, the null stream
        pool, arena, capture = MEMORY_POOL, 0, None
    b = Block()
    b.root, b.pool, b.arena, b.size, b.capture, b.taken, b.lost = (root, pool, arena, rounded(root.nbytes),
                                                                   capture, None, None)
    key = id(root)
    _BLOCKS[key] = weakref.ref(b, lambda _r, k=key: _BLOCKS.pop(k, None))
    if pool is not None:
        _ARENAS.setdefault((id(pool), arena), weakref.WeakSet()).add(b)
    return b


def allocated(a: np.ndarray) -> None:
    """A new array's memory comes from the current pool and stream: note where, and whether the
    request could take a free block a graph still uses (best fit among those)."""
    key = id(a)
    info = _ALLOC.get(key)
    if info is not None and info[0]() is a:
        return
    stream = current_stream()
    pool, cap = current_pool(), stream._capture
    _ALLOC[key] = (weakref.ref(a, lambda _r, k=key: _ALLOC.pop(k, None)), pool, stream.ptr, cap)
    blocks = _ARENAS.get((id(pool), stream.ptr)) if pool is not None else None
    if not blocks or not a.nbytes:
        return
    size, best = rounded(a.nbytes), None
    for b in blocks:
        if b.lost is None and b.size >= size and (best is None or b.size < best.size) and b.free():
            best = b
    if best is None:
        return
    if cap is not None and best.capture is cap:  # a temporary of the capture reused within it
        best.taken = weakref.ref(a)
    else:
        best.lost = "handed by the memory pool to an array allocated since"


def check(blocks, name: str) -> None:
    """Raise where a launch would use memory its arrays no longer own."""
    for b in blocks:
        if b.lost is None and b.pool is None and b.free():
            b.lost = "freed by cudaFree (no memory pool)"
        if b.lost is not None:
            raise FreedMemoryUse(
                f"{name} uses a {b.root.dtype} array of {b.root.shape} that the program dropped and whose "
                f"memory was {b.lost}: on a GPU the launch silently overwrites or reads another array. Keep "
                "every array a graph uses (inputs, outputs and the temporaries of the capture) alive "
                "while the graph may be launched.")
