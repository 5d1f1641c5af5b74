"""The stand-in's ``cupy`` namespace: CuPy 14's public names, each NumPy's function behind
CuPy's argument rules (``core``), plus the CuPy-only parts polydl uses (``asnumpy``,
``get_array_module``, the kernels, the memory pools, ``cuda``, ``random``). Device work goes
through ``graph.compute``/``graph.run`` (recorded while the stream captures)."""
from __future__ import annotations

import sys

import numpy as np

from . import core, graph, indexing, names
from .core import check_dtype, garbage, ndarray, operand, unwrap, wrap

__version__ = names.VERSION
_CACHE: dict = {}
# creation functions whose prototype may be a host array (CuPy reads only its shape and dtype)
_LIKE = {"zeros_like", "ones_like", "full_like"}
# functions that read only shapes and dtypes (no device work)
_METADATA = {"shape", "ndim", "size", "result_type", "can_cast", "min_scalar_type", "promote_types", "common_type",
             "may_share_memory", "shares_memory", "iscomplexobj", "isrealobj", "isscalar", "isfortran", "isdtype",
             "issubdtype", "broadcast_shapes", "mintypecode", "iterable"}
# functions that write into an array they are given
_WRITES = {"copyto", "place", "put", "putmask", "fill_diagonal", "put_along_axis"}


class ufunc:
    """A CuPy ufunc: NumPy's, on stand-in arrays and scalars only, outputs stand-in arrays."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = self.name = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs
        self.types = np_ufunc.types

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    @staticmethod
    def _outs(out):
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            if type(o) is not ndarray:
                raise TypeError("Output arguments type must be cupy.ndarray")
        return outs

    def __call__(self, *args, out=None, **kwargs):
        ins, extra = args[:self.nin], args[self.nin:]
        if extra:
            out = extra if len(extra) > 1 else extra[0]
        if "dtype" in kwargs and kwargs["dtype"] is not None:
            check_dtype(kwargs["dtype"])
        data = tuple(operand(a) for a in ins)
        if out is None:
            return wrap(graph.compute(self.name, self._u, data, kwargs))
        outs = self._outs(out)
        graph.run(self.name, self._u, data, {"out": tuple(o._a for o in outs), **kwargs})
        return outs[0] if len(outs) == 1 else outs

    def _method(self, name, a, *args, out=None, **kwargs):
        if type(a) is not ndarray:
            raise core.unsupported(a)
        fn = getattr(self._u, name)
        if out is None:
            return wrap(graph.compute(f"{self.name}.{name}", fn, (a._a, *args), kwargs))
        outs = self._outs(out)
        graph.run(f"{self.name}.{name}", fn, (a._a, *args), {"out": outs[0]._a, **kwargs})
        return outs[0]

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        return self._method("reduce", array, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def accumulate(self, array, axis=0, dtype=None, out=None):
        return self._method("accumulate", array, axis=axis, dtype=dtype, out=out)

    def reduceat(self, array, indices, axis=0, dtype=None, out=None):
        return self._method("reduceat", array, unwrap(indices), axis=axis, dtype=dtype, out=out)

    def outer(self, a, b, **kwargs):
        return wrap(graph.compute(f"{self.name}.outer", self._u.outer, (operand(a), operand(b)), kwargs))

    def at(self, a, indices, b=None):
        if self.name in ("add", "maximum", "minimum"):
            indexing.scatter(a, indices, b, self.name)
        else:
            indexing.ufunc_at(self._u, a, indices, b)


def _function(name, np_func):
    """NumPy's ``np_func`` on stand-in arrays: a host array anywhere among the arguments is
    refused; an argument returned as it is comes back as the same stand-in array."""
    like = name in _LIKE

    def func(*args, **kwargs):
        if kwargs.get("dtype") is not None:
            check_dtype(kwargs["dtype"])
        if like:
            return wrap(_like(name, *args, **kwargs))
        out = kwargs.get("out")
        data, kw = unwrap(args), {k: unwrap(v) for k, v in kwargs.items()}
        if name in _METADATA:
            return np_func(*data, **kw)
        if out is not None or name in _WRITES:
            graph.run(name, np_func, data, kw)
            return out
        result = graph.compute(name, np_func, data, kw)
        for a, d in zip(args, data):
            if result is d and type(a) is ndarray:
                return a
        return wrap(result)

    func.__name__ = func.__qualname__ = name
    func.__module__ = "cupy"
    return func


def _layout(prototype, dtype, order, subok, shape):
    """(shape, dtype, "C" or "F") of an array made like ``prototype``: CuPy reads only its shape,
    dtype and layout (a host prototype is allowed)."""
    if subok:
        raise TypeError("subok is not supported yet")
    proto = prototype._a if type(prototype) is ndarray else prototype
    if not isinstance(proto, np.ndarray):
        raise core.unsupported(prototype)
    like = np.empty_like(proto, dtype=dtype, order=order, shape=shape)
    return like.shape, like.dtype, "F" if like.flags.f_contiguous and not like.flags.c_contiguous else "C"


def _like(name, prototype, *args, dtype=None, order="K", subok=None, shape=None, **kwargs):
    """``zeros_like`` and friends: a new array of the prototype's layout, filled."""
    shape, dtype, layout = _layout(prototype, dtype, order, subok, shape)
    base = name[:-len("_like")]
    return graph.compute(base, getattr(np, base), (shape, *unwrap(args)),
                         {"dtype": dtype, "order": layout, **{k: unwrap(v) for k, v in kwargs.items()}})


def __getattr__(name):
    obj = _CACHE.get(name)
    if obj is not None:
        return obj
    if name not in names.MODULE:
        raise AttributeError(f"module 'cupy' has no attribute '{name}'")
    np_obj = getattr(np, name, None)
    if np_obj is None:
        raise AttributeError(f"cupy.{name} is not modelled by the CuPy stand-in")
    if isinstance(np_obj, np.ufunc):
        obj = ufunc(np_obj)
    elif callable(np_obj) and not isinstance(np_obj, type):
        obj = _function(name, np_obj)
    else:  # dtypes, constants, newaxis
        obj = np_obj
    _CACHE[name] = obj
    return obj


# ---------------------------------------------------------------------------- CuPy's own
def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """A device array of host data (NumPy arrays, lists, scalars) or of another device array."""
    on_device = type(obj) is ndarray or (isinstance(obj, (list, tuple)) and _has_device(obj))
    if not on_device:  # host data: copied to the device (a 0-d value: filled in by a kernel)
        host = np.array(unwrap_nested(obj), dtype=dtype, order=order, ndmin=ndmin)
        check_dtype(host.dtype)
        if host.ndim:
            graph.host_transfer("H2D")
            return wrap(host)
        return wrap(graph.compute("array", np.array, (host[()],), {"dtype": host.dtype}))
    data = obj._a if type(obj) is ndarray else unwrap_nested(obj)
    if dtype is not None:
        check_dtype(dtype)
    out = graph.compute("array", np.array, (data,), {"dtype": dtype, "copy": copy, "order": order, "ndmin": ndmin})
    check_dtype(out.dtype)
    return obj if type(obj) is ndarray and out is obj._a else wrap(out)


def _has_device(x):
    return type(x) is ndarray or (isinstance(x, (list, tuple)) and any(_has_device(v) for v in x))


def unwrap_nested(x):
    if type(x) is ndarray:
        return x._a
    if isinstance(x, (list, tuple)):
        return [unwrap_nested(v) for v in x]
    return x


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return array(a, dtype, copy, order or "K")


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A host copy of a device array (anything else as ``np.asarray`` gives it)."""
    if type(a) is ndarray:
        return a.get(stream, order, out)
    return np.asarray(a, order=order)


def ascontiguousarray(a, dtype=None):
    if type(a) is not ndarray:
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy._core.core._ndarray_base, got "
                        f"{type(a).__name__})")
    dt = a.dtype if dtype is None else check_dtype(dtype)
    if dt == a.dtype and a._a.flags.c_contiguous and a.ndim:
        return a
    return wrap(graph.compute("ascontiguousarray", np.ascontiguousarray, (a._a,), {"dtype": dt}))


def get_array_module(*args):
    if not any(type(a) is ndarray for a in args):
        return np
    cupy = sys.modules.get("cupy")
    return cupy if getattr(cupy, "__polydl_standin__", False) else sys.modules[__name__]


def empty(shape, dtype=float, order="C"):
    return wrap(garbage(shape, dtype, order))


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    return wrap(garbage(*_layout(prototype, dtype, order, subok, shape)))


def is_available():
    return True


def get_default_memory_pool():
    from .memory import MEMORY_POOL

    return MEMORY_POOL


def get_default_pinned_memory_pool():
    from .memory import PINNED_MEMORY_POOL

    return PINNED_MEMORY_POOL


def ElementwiseKernel(*args, **kwargs):
    from .kernels import ElementwiseKernel

    return ElementwiseKernel(*args, **kwargs)


def RawKernel(*args, **kwargs):
    from .kernels import RawKernel

    return RawKernel(*args, **kwargs)


for _name in ("array", "asarray", "asanyarray", "asnumpy", "ascontiguousarray", "get_array_module", "empty",
              "empty_like", "is_available", "get_default_memory_pool", "get_default_pinned_memory_pool",
              "ElementwiseKernel", "RawKernel"):
    globals()[_name].__module__ = "cupy"
del _name

# the submodules (``cuda``, ``random``, ``linalg``) are set by ``cuda_standin.install``
