"""polydl's CUDA kernel sources run on the CPU, for the tests of machines without a GPU.

``RawKernel(source, name)`` compiles a raw kernel's CUDA C source as C++ (g++) with a small
emulation of CUDA: every block runs in turn, its threads as coroutines (``ucontext`` stacks,
switched by ``_setjmp``/``_longjmp``) that give way at each ``__syncthreads()``, in a fresh
random order at every barrier, so a missing barrier shows as a wrong result; a barrier that
some threads of a block never reach is an error. It is called as CuPy's ``RawKernel``,
``kernel(grid, block, args)``, with NumPy arrays for device arrays, and checks each argument
against the kernel's C signature (an array of the pointer's element type, a NumPy scalar of the
parameter's exact C type), as the GPU would need them. Each C-contiguous array is copied into a
buffer with guard bytes around it, which must come back unchanged (a write out of bounds);
arrays named in ``poison`` are filled with NaN first, so an element the kernel never writes
shows.

``ElementwiseKernel(in_params, out_params, body)`` runs an ElementwiseKernel's body over the
broadcast arrays (CuPy's rules: type placeholders bound by the arrays, scalars cast to them,
``raw`` arrays indexed flat, ``i`` the flat index), with float16 and bfloat16 as small classes
over the same conversions as the raw kernels.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from polydl import cuda_kernels

CXX = shutil.which("g++") or shutil.which("c++")
_CACHE = os.path.join(tempfile.gettempdir(), f"polydl-cuda-emulator-{os.getuid()}")

HEADER = r"""
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <ucontext.h>

struct dim3 { unsigned int x, y, z; };
static dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

static inline unsigned int __float_as_uint(float f) { unsigned int u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(unsigned int u) { float f; memcpy(&f, &u, 4); return f; }
static inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }

namespace emu {
// A thread starts on a stack of its own (makecontext, entered once per launch) and then switches
// with _setjmp/_longjmp, which unlike swapcontext make no system call; after its body it parks,
// and the next block resumes it to run the body again.
struct Thread { ucontext_t ctx; jmp_buf jb; char* stack; bool started, done; long barriers; dim3 idx; };
static const size_t STACK = 1 << 16;
static ucontext_t scheduler_ctx;
static jmp_buf scheduler;
static Thread* current;
static void (*body)();
static void yield() {
    if (!_setjmp(current->jb)) _longjmp(scheduler, 1);
}
static void entry() {
    for (;;) {
        body();
        current->done = true;
        yield();
    }
}
static void resume(Thread& th) {
    current = &th;
    threadIdx = th.idx;
    if (_setjmp(scheduler)) return;
    if (th.started) _longjmp(th.jb, 1);
    th.started = true;
    swapcontext(&scheduler_ctx, &th.ctx);
}
static unsigned long long rng_state;
static unsigned long long next_random() {  // xorshift64*
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}
}  // namespace emu

static void __syncthreads() {
    emu::current->barriers++;
    emu::yield();
}

namespace emu {
// 0: ran; 1: a barrier that not every thread of a block reached
static int launch(dim3 grid, dim3 block, unsigned int seed, void (*fn)()) {
    gridDim = grid;
    blockDim = block;
    body = fn;
    rng_state = 0x9E3779B97F4A7C15ULL ^ ((unsigned long long)seed + 1);
    const size_t n = (size_t)block.x * block.y * block.z;
    Thread* threads = (Thread*)calloc(n, sizeof(Thread));
    size_t* order = (size_t*)malloc(n * sizeof(size_t));
    for (size_t t = 0; t < n; ++t) {
        Thread& th = threads[t];
        th.stack = (char*)malloc(STACK);
        th.idx = dim3{(unsigned int)(t % block.x), (unsigned int)((t / block.x) % block.y),
                      (unsigned int)(t / ((size_t)block.x * block.y))};
        getcontext(&th.ctx);
        th.ctx.uc_stack.ss_sp = th.stack;
        th.ctx.uc_stack.ss_size = STACK;
        th.ctx.uc_link = nullptr;
        makecontext(&th.ctx, entry, 0);
    }
    int rc = 0;
    for (unsigned int bz = 0; bz < grid.z && !rc; ++bz)
    for (unsigned int by = 0; by < grid.y && !rc; ++by)
    for (unsigned int bx = 0; bx < grid.x && !rc; ++bx) {
        blockIdx = dim3{bx, by, bz};
        for (size_t t = 0; t < n; ++t) {
            threads[t].done = false;
            threads[t].barriers = 0;
            order[t] = t;
        }
        for (;;) {
            for (size_t t = n; t > 1; --t) {  // a fresh order at every barrier
                const size_t k = (size_t)(next_random() % t);
                const size_t tmp = order[t - 1]; order[t - 1] = order[k]; order[k] = tmp;
            }
            bool any = false;
            for (size_t r = 0; r < n; ++r) {
                Thread& th = threads[order[r]];
                if (th.done) continue;
                any = true;
                resume(th);
            }
            if (!any) break;
            long waiting = -1;
            bool finished = false;
            for (size_t t = 0; t < n; ++t) {
                if (threads[t].done) { finished = true; continue; }
                if (waiting >= 0 && threads[t].barriers != waiting) rc = 1;
                waiting = threads[t].barriers;
            }
            if (finished && waiting >= 0) rc = 1;  // some threads left while others wait at a barrier
            if (rc) break;
        }
    }
    for (size_t t = 0; t < n; ++t) free(threads[t].stack);
    free(threads);
    free(order);
    return rc;
}
}  // namespace emu
"""

_HALF_CLASSES = r"""
struct float16 {
    unsigned short bits;
    float16() : bits(0) {}
    float16(float v) : bits(polydl_float_to_half(v)) {}
    operator float() const { return polydl_half_to_float(bits); }
};
struct bfloat16 {
    unsigned short bits;
    bfloat16() : bits(0) {}
    bfloat16(float v) : bits(polydl_float_to_bf16(v)) {}
    operator float() const { return polydl_bf16_to_float(bits); }
};
template <class V> struct Raw {
    V* data;
    V& operator[](long long k) const { return data[k]; }
};
"""

_C_SCALARS = {"long long": np.int64, "int": np.int32, "unsigned int": np.uint32, "float": np.float32,
              "double": np.float64}
_CTYPES = {np.int64: ctypes.c_longlong, np.int32: ctypes.c_int, np.uint32: ctypes.c_uint,
           np.float32: ctypes.c_float, np.float64: ctypes.c_double}
_CUPY_TYPES = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float", "float64": "double",
               "int64": "long long", "int32": "int", "bool": "bool"}


def available() -> bool:
    return CXX is not None


def _build(source: str, tag: str):
    """Compile ``source`` into a shared library (cached by its hash) and load it."""
    os.makedirs(_CACHE, exist_ok=True)
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    lib = os.path.join(_CACHE, f"{tag}-{digest}.so")
    if not os.path.exists(lib):
        src = lib[:-3] + ".cpp"
        with open(src, "w") as fh:
            fh.write(source)
        tmp = lib + f".{os.getpid()}"
        proc = subprocess.run([CXX, "-std=c++17", "-O1", "-U_FORTIFY_SOURCE", "-fPIC", "-shared", "-fno-fast-math", "-ffp-contract=off",
                               "-o", tmp, src], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"the kernel source does not compile as C++:\n{proc.stderr[-4000:]}")
        os.replace(tmp, lib)
    return ctypes.CDLL(lib)


def _typedefs(source: str) -> dict:
    """The source's typedefs, the first of each name winning (the others sit in branches of the
    preprocessor that the first one's definition leaves out)."""
    out = {}
    for ctype, alias in re.findall(r"typedef\s+([\w ]+?)\s+(\w+);", source):
        out.setdefault(alias, ctype)
    return out


def _dtype_of_c(ctype: str) -> set:
    return {"float": {"float32"}, "double": {"float64"}, "unsigned short": {"float16", "bfloat16"},
            "long long": {"int64"}, "int": {"int32"}}[ctype]


class RawKernel:
    """A raw kernel's CUDA C source, compiled for the CPU; ``kernel(grid, block, args)``."""

    def __init__(self, source: str, name: str, poison=(), seed: int = 0):
        m = re.search(r'extern "C" __global__ void ' + name + r"\s*\(([^)]*)\)", source)
        if m is None:
            raise ValueError(f"no kernel {name} in the source")
        types = _typedefs(source)
        self.params = []
        for decl in m.group(1).split(","):
            decl = " ".join(decl.split())
            pm = re.fullmatch(r"(const )?([\w ]+?)\s*(\*?)\s*(\w+)", decl)
            const, ctype, star, pname = pm.groups()
            ctype = types.get(ctype, ctype)
            self.params.append((pname, ctype, bool(star), bool(const)))
        self.name, self.poison, self.seed = name, set(poison), seed
        decls = ", ".join(f"{'const ' if c else ''}{t}{'*' if s else ''} {n}" for n, t, s, c in self.params)
        names = ", ".join(f"emu_arg_{n}" for n, *_ in self.params)
        statics = "".join(f"static {'const ' if c else ''}{t}{'*' if st else ''} emu_arg_{n};\n"
                          for n, t, st, c in self.params)
        stores = " ".join(f"emu_arg_{n} = {n};" for n, *_ in self.params)
        wrapper = (f"{statics}static void emu_body() {{ {name}({names}); }}\n"
                   f'extern "C" int emu_{name}(unsigned int emu_gx, unsigned int emu_gy, unsigned int emu_gz, '
                   f"unsigned int emu_bx, unsigned int emu_by, unsigned int emu_bz, unsigned int emu_seed, {decls}) {{\n"
                   f"    {stores}\n"
                   f"    return emu::launch(dim3{{emu_gx, emu_gy, emu_gz}}, dim3{{emu_bx, emu_by, emu_bz}}, emu_seed, emu_body);\n}}\n")
        self.lib = _build(HEADER + source + wrapper, name)
        self.fn = getattr(self.lib, f"emu_{name}")
        self.fn.restype = ctypes.c_int
        self.launches = 0

    def __call__(self, grid, block, args, shared_mem=0):
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        grid, block = tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block))
        cargs, guarded = [], []
        for a, (pname, ctype, star, const) in zip(args, self.params):
            if star:
                if type(a) is not np.ndarray:
                    raise TypeError(f"{self.name}: {pname} must be an array, not {type(a).__name__}")
                if a.dtype.name not in _dtype_of_c(ctype):
                    raise TypeError(f"{self.name}: {pname} is {ctype}*, got an array of {a.dtype}")
                if a.flags.c_contiguous:
                    pad = 64
                    buf = np.full(a.nbytes + 2 * pad, 0xA5, np.uint8)
                    inner = buf[pad:pad + a.nbytes]
                    inner[:] = np.frombuffer(a.tobytes(), np.uint8)
                    before = None if pname in self.poison and not const else inner.tobytes()
                    if before is None:
                        inner.view(a.dtype)[:] = np.nan
                    guarded.append((a, buf, inner, pad, const, before))
                    cargs.append(ctypes.c_void_p(inner.ctypes.data))
                else:
                    cargs.append(ctypes.c_void_p(a.ctypes.data))
            else:
                want = _C_SCALARS[ctype]
                if type(a) is not want:
                    raise TypeError(f"{self.name}: {pname} is {ctype}, which needs a NumPy {want.__name__} scalar, "
                                    f"got {type(a).__name__}")
                cargs.append(_CTYPES[want](a))
        rc = self.fn(*(ctypes.c_uint(v) for v in grid + block), ctypes.c_uint(self.seed + self.launches), *cargs)
        self.launches += 1
        if rc != 0:
            raise RuntimeError(f"{self.name}: a __syncthreads() that not every thread of a block reached")
        for a, buf, inner, pad, const, before in guarded:
            if (buf[:pad] != 0xA5).any() or (buf[pad + a.nbytes:] != 0xA5).any():
                raise RuntimeError(f"{self.name}: a write out of the bounds of an argument array")
            changed = before is None or inner.tobytes() != before
            if const and changed:
                raise RuntimeError(f"{self.name}: a write into a const argument")
            if changed:  # an array passed twice comes back from the copy that was written
                np.copyto(a, inner.view(a.dtype).reshape(a.shape))


def raw_kernel(name, x_dtype, t_dtype, poison=()):
    """``backend.raw_kernel`` run on the CPU."""
    return RawKernel(cuda_kernels.raw_source(name, x_dtype, t_dtype), f"polydl_{name}", poison)


class ElementwiseKernel:
    """An ElementwiseKernel's body run on the CPU over broadcast NumPy arrays."""

    def __init__(self, in_params: str, out_params: str, body: str, name: str = "kernel"):
        def parse(s):
            out = []
            for p in s.split(","):
                words = p.split()
                out.append((words[-1], words[-2], "raw" in words[:-2]))
            return out

        self.ins, self.outs, self.body, self.name = parse(in_params), parse(out_params), body, name
        self._libs = {}

    def __call__(self, *args):
        if len(args) != len(self.ins) + len(self.outs):
            raise TypeError(f"{self.name}: pass every input and output ({len(self.ins) + len(self.outs)} arguments)")
        params = self.ins + self.outs
        types = {}
        for a, (pname, t, _raw) in zip(args, params):  # placeholders are bound by arrays only (as CuPy)
            if isinstance(a, np.ndarray):
                fixed = t if len(t) > 1 else None
                dt = types.setdefault(t, a.dtype) if fixed is None else np.dtype(fixed)
                if dt != a.dtype:
                    raise TypeError(f"{self.name}: {pname} is {a.dtype}, but {t} is {dt}")
        shape = np.broadcast_shapes(*(np.shape(a) for a, (_, _, raw) in zip(args, params)
                                      if isinstance(a, np.ndarray) and not raw))
        for a, (pname, _, raw_out) in zip(args[len(self.ins):], self.outs):
            if not raw_out and a.shape != shape:
                raise ValueError(f"{self.name}: output {pname} has shape {a.shape}, the loop {shape}")
        size = int(np.prod(shape))
        arrays = []
        for k, (a, (_pname, t, raw)) in enumerate(zip(args, params)):
            dt = np.dtype(t) if len(t) > 1 else types[t]
            if raw:
                arrays.append(np.ascontiguousarray(a))
            elif k >= len(self.ins):
                arrays.append(a if a.flags.c_contiguous else np.ascontiguousarray(a))
            else:
                arrays.append(np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=dt), shape)))
        key = tuple(sorted((k, v.name) for k, v in types.items()))
        fn = self._libs.get(key)
        if fn is None:
            typedefs = "".join(f"typedef {_CUPY_TYPES[v.name]} {k};\n" for k, v in types.items())
            decls, binds = [], []
            for k, (pname, t, raw) in enumerate(params):
                ct = t if len(t) == 1 else _CUPY_TYPES[t]
                const = "const " if k < len(self.ins) else ""
                decls.append(f"{const}{ct}* _raw_{pname}")
                binds.append(f"Raw<{const}{ct}> {pname}{{_raw_{pname}}};" if raw else f"{const}{ct}& {pname} = _raw_{pname}[i];")
            src = (HEADER + cuda_kernels.PRELUDE.split("#if POLYDL_X_KIND")[0] + _HALF_CLASSES + typedefs
                   + f'extern "C" void emu_{self.name}(long long _n, {", ".join(decls)}) {{\n'
                   + "    for (long long i = 0; i < _n; ++i) {\n        " + "\n        ".join(binds)
                   + f"\n        {self.body}\n    }}\n}}\n")
            fn = getattr(_build(src, self.name), f"emu_{self.name}")
            self._libs[key] = fn
        fn(ctypes.c_longlong(size), *(ctypes.c_void_p(a.ctypes.data) for a in arrays))
        for a, b in zip(args[len(self.ins):], arrays[len(self.ins):]):
            if a is not b:
                np.copyto(a, b)
        outs = args[len(self.ins):]
        return outs[0] if len(outs) == 1 else outs


def fused_kernel(name):
    """``backend.fused_kernel`` run on the CPU."""
    in_params, out_params, body = cuda_kernels.ELEMENTWISE[name]
    return ElementwiseKernel(in_params, out_params, body, f"polydl_{name}")
