"""The stand-in's ``ElementwiseKernel`` and ``RawKernel``: CuPy's argument checks, then the
kernel's own CUDA source run on the CPU by ``cuda_emulator`` (g++).

Each launch is checked against ``cuda_launches``, the list of launches that ``test_nvrtc``
compiles with NVRTC: a kernel polydl launches with arguments of types that list lacks fails
here, so NVRTC compiles every launch the suite makes. A launch goes to ``stream=`` (default: the
current stream) through ``graph.run``: recorded, not run, while that stream captures."""
from __future__ import annotations

import re

import cuda_emulator
import cuda_launches
import numpy as np

from . import graph
from .core import SCALAR_TYPES, ndarray, unsupported

#: outputs of polydl's raw kernels, filled with NaN before each launch (an element the kernel
#: never writes shows)
POISON = ("out", "stats", "gx", "grads", "p", "loss")
_MAX_BLOCK = (1024, 1024, 64)
_MAX_GRID = (2 ** 31 - 1, 65535, 65535)


class LaunchNotCompiled(AssertionError):
    """A launch whose argument types ``test_nvrtc`` does not compile."""


def _param(text, is_const):
    words = text.split()
    if len(words) < 2:
        raise Exception(f"Syntax error: {text}")
    t, name = words[-2:]
    raw = False
    for w in words[:-2]:
        if w != "raw":
            raise Exception(f'Unknown keyword "{w}"')
        raw = True
    return name, (None if len(t) == 1 else np.dtype(t)), t, raw


def _broadcast_layout(arrays, shape):
    """CuPy's ``_reduced_view_core``: the loop's shape once contiguous axes are merged, and each
    array's strides over it."""
    ndim = len(shape)
    if ndim <= 1:
        return shape, [a.strides for a in arrays]
    strided = [a for a in arrays if not a.flags.c_contiguous]
    if strided and ndim == 2:
        return shape, [a.strides for a in arrays]
    if not strided:
        return (int(np.prod(shape)),), [(a.itemsize,) for a in arrays]
    vec, axes, last = list(shape), [], -1
    for ax in range(ndim):
        if vec[ax] == 1:
            continue
        if last < 0:
            last = ax
            continue
        if all(a.strides[ax] * vec[ax] == a.strides[last] for a in strided):
            vec[ax] *= vec[last]
        else:
            axes.append(last)
        last = ax
    if last >= 0:
        axes.append(last)
    if len(axes) == ndim:
        return shape, [a.strides for a in arrays]
    return tuple(vec[ax] for ax in axes), [tuple(a.strides[ax] for ax in axes) for a in arrays]


class ElementwiseKernel:
    """``cupy.ElementwiseKernel``: CuPy's checks of the arguments and their types, the body run
    by ``cuda_emulator.ElementwiseKernel`` over the arrays' data."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True, preamble="",
                 no_return=False, return_tuple=False, **kwargs):
        if not re.match(r"^[a-zA-Z_][a-zA-Z_0-9]*$", name):
            raise ValueError(f'Invalid kernel name: "{name}"')
        if preamble or kwargs:
            raise NotImplementedError("the CuPy stand-in does not model ElementwiseKernel preambles or options")
        self.in_params = tuple(_param(p, True) for p in in_params.split(",") if p.strip())
        self.out_params = tuple(_param(p, False) for p in out_params.split(",") if p.strip())
        if "i" in [p[0] for p in self.in_params + self.out_params]:
            raise ValueError("Can not use 'i' as a parameter name")
        self.nin, self.nout = len(self.in_params), len(self.out_params)
        self.nargs = self.nin + self.nout
        self.name, self.operation = name, operation
        self.no_return, self.return_tuple = no_return, return_tuple
        self._emu = cuda_emulator.ElementwiseKernel(in_params, out_params, operation, name)

    def _types(self, args):
        """CuPy's ``_decide_params_type_core``: placeholders bound by the arrays' dtypes, which
        must agree; fixed-type arrays must have that type exactly."""
        bound = {}
        for k, ((pname, dtype, ctype, _), a) in enumerate(zip(self.in_params + self.out_params, args)):
            is_out = k >= self.nin
            if type(a) is not ndarray:
                if is_out:
                    raise TypeError("Output arguments must be cupy.ndarray")
                continue
            if dtype is not None:
                if a.dtype != dtype:
                    raise TypeError(f"Type is mismatched. {pname} {a.dtype} {dtype}")
            elif ctype in bound:
                if bound[ctype] != a.dtype:
                    raise TypeError(f"Type is mismatched. {pname} {a.dtype} {bound[ctype]} {ctype}")
            else:
                bound[ctype] = a.dtype
        return bound

    def _check_call(self, args, block_size, stream) -> None:
        """CuPy's checks of a call's arguments, before anything is launched."""
        if len(args) not in (self.nin, self.nargs):
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either {self.nin} or "
                            f"{self.nargs} (with outputs), but given {len(args)}.")
        if block_size <= 0:
            raise ValueError("block_size must be greater than zero")
        if stream is not None and not isinstance(stream, graph.Stream):
            raise TypeError(f"stream must be a cupy.cuda.Stream, not {type(stream).__name__}")
        for a in args:
            if type(a) is not ndarray and not isinstance(a, SCALAR_TYPES):
                raise unsupported(a)

    def __call__(self, *args, size=-1, block_size=128, stream=None):
        self._check_call(args, block_size, stream)
        params = self.in_params + self.out_params
        nonraw = [a._a for a, p in zip(args, params) if type(a) is ndarray and not p[3]]
        if size != -1:
            if nonraw:
                raise ValueError("Specified 'size' can be used only if all of the ndarray are 'raw'.")
            raise NotImplementedError("the CuPy stand-in does not model ElementwiseKernel(size=)")
        if not nonraw:
            raise ValueError("Loop size is undecided.")
        shape = np.broadcast_shapes(*(a.shape for a in nonraw))
        bound = self._types(args)
        types = [bound.get(p[2]) if p[1] is None else p[1] for p in params]
        outs = list(args[self.nin:])
        if not outs:
            from .core import garbage, wrap

            outs = [wrap(garbage(shape, t)) for t in types[self.nin:]]
        for o, p in zip(outs, self.out_params):
            if not p[3] and o.shape != shape:
                raise ValueError("Out shape is mismatched")
        ret = None if self.no_return else (outs[0] if self.nout == 1 and not self.return_tuple else tuple(outs))
        if 0 in shape:
            return ret
        full = list(args[:self.nin]) + outs
        values = []
        for a, t, p in zip(full, types, params):
            if type(a) is ndarray:
                values.append(a._a)
            else:
                if t is None:
                    raise TypeError(f"{self.name}: the type of {p[0]} is not bound by any array")
                values.append(np.array(a, dtype=t)[()])
        record_elementwise(self.name, params, full, types, shape)
        graph.run(self.name, self._emu, tuple(values), stream=stream, check=False)
        return ret


def record_elementwise(name, params, args, types, shape):
    """The launch's signature (arrays and scalars with their types) must be one ``test_nvrtc``
    compiles; its layout (CuPy's reduced loop) is kept for the record."""
    arrays = [a._a for a, p in zip(args, params) if type(a) is ndarray and not p[3]]
    views = [np.broadcast_to(a, shape) for a in arrays]
    loop, _ = _broadcast_layout(views, shape)
    kinds = tuple(("a" if type(a) is ndarray else "s", np.dtype(t).name) for a, t in zip(args, types))
    layout = []
    for a, p in zip(args, params):
        if type(a) is not ndarray:
            layout.append(None)
        elif p[3]:
            layout.append((a.ndim, bool(a._a.flags.c_contiguous)))
        else:
            view = np.broadcast_to(a._a, shape)
            layout.append((len(loop), bool(view.flags.c_contiguous)))
    cuda_launches.check_elementwise(name, kinds, tuple(layout), len(loop))


class RawKernel:
    """``cupy.RawKernel``: CuPy's conversion of the arguments (device arrays by pointer, NumPy
    scalars and size-1 host arrays by value, Python ints as int64 and floats as float64), the
    launch's limits, then the source run by ``cuda_emulator.RawKernel``, which checks every
    argument against the kernel's C signature and guards the arrays' bounds."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False, *,
                 enable_cooperative_groups=False, jitify=False):
        if options or backend != "nvrtc" or translate_cucomplex or enable_cooperative_groups or jitify:
            raise NotImplementedError("the CuPy stand-in does not model RawKernel options")
        self.code, self.name = code, name
        self._emu = None

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        if not isinstance(args, tuple):
            raise TypeError("args must be a tuple")
        if shared_mem:
            raise NotImplementedError("the CuPy stand-in does not model dynamic shared memory")
        if stream is not None and not isinstance(stream, graph.Stream):
            raise TypeError(f"stream must be a cupy.cuda.Stream, not {type(stream).__name__}")
        grid = tuple(grid) if isinstance(grid, tuple) else (grid,)
        block = tuple(block) if isinstance(block, tuple) else (block,)
        g3, b3 = grid + (1,) * (3 - len(grid)), block + (1,) * (3 - len(block))
        if any(b > m for b, m in zip(b3, _MAX_BLOCK)) or np.prod(b3) > 1024 or min(b3) < 1:
            raise RuntimeError(f"{self.name}: block {block} exceeds the GPU's limits (1024 threads, "
                               f"{_MAX_BLOCK})")
        if any(g > m for g, m in zip(g3, _MAX_GRID)) or min(g3) < 1:
            raise RuntimeError(f"{self.name}: grid {grid} is empty or exceeds the GPU's limits {_MAX_GRID}")
        values = []
        for a in args:
            if type(a) is ndarray:  # its first element's address, whatever its strides
                values.append(a._a)
            elif isinstance(a, np.ndarray):
                if a.size != 1:
                    raise TypeError(f"You are trying to pass a numpy.ndarray of shape {a.shape} as a kernel "
                                    "parameter. Only numpy.ndarrays of size one can be passed by value. If you "
                                    "meant to pass a pointer to __global__ memory, you need to pass a cupy.ndarray "
                                    "instead.")
                values.append(a.reshape(-1)[0])
            elif type(a) is bool:
                values.append(np.bool_(a))
            elif type(a) is int:
                values.append(np.int64(a))
            elif type(a) is float:
                values.append(np.float64(a))
            elif isinstance(a, np.generic):
                values.append(a)
            else:
                raise unsupported(a)
        cuda_launches.check_raw(self.code)
        if self._emu is None:
            self._emu = cuda_emulator.RawKernel(self.code, self.name, POISON)
        graph.run(self.name, self._emu, (g3, b3, tuple(values)), stream=stream, check=False)
