"""Indexing and scatters of stand-in arrays, with CuPy's rules.

Integer-array indices out of range wrap around (CuPy's kernels take them modulo the axis). A host
index (a list or NumPy array) is copied to the device, so it is refused while the stream captures
(H2D), as is a boolean device mask, whose count of True is read on the host (D2H); a basic index
is a view (no device work), anything else goes through ``graph.compute``/``graph.run``.
"""
from __future__ import annotations

import numpy as np

from . import core, graph, rules


def index(key):
    """An index for NumPy: stand-in arrays to their data; whether it is advanced; whether a host
    array or list is among it."""
    items = key if isinstance(key, tuple) else (key,)
    out, advanced, host = [], False, False
    for k in items:
        if type(k) is core.ndarray:
            k = k._a
        elif isinstance(k, (np.ndarray, list)):
            host = host or np.ndim(k) > 0
        if isinstance(k, (np.ndarray, list)):
            advanced = True
            k = np.asarray(k)
            if k.dtype.kind not in "biu":
                if k.size == 0:
                    k = k.astype(np.intp)
                else:
                    raise IndexError("arrays used as indices must be of integer or boolean type "
                                     f"(actual: {k.dtype.type})")
        elif isinstance(k, (bool, np.bool_)):
            advanced = True
        out.append(k)
    return out, advanced, host


def wrap_around(shape, items):
    """Integer-array indices taken modulo their axis (CuPy wraps out-of-range indices around)."""
    n_axes = sum(k.ndim if isinstance(k, np.ndarray) and k.dtype == bool else
                 0 if k is None or k is Ellipsis else 1 for k in items)
    ax, out = 0, []
    for k in items:
        if k is Ellipsis:
            ax += len(shape) - n_axes
        elif k is None:
            pass
        elif isinstance(k, np.ndarray) and k.dtype == bool:
            ax += k.ndim
        else:
            if isinstance(k, np.ndarray) and ax < len(shape) and shape[ax]:
                k = np.mod(k, shape[ax])
            ax += 1
        out.append(k)
    return tuple(out)


def _refuse_in_capture(items, host, value=None):
    """What indexing refuses while the current stream captures."""
    if not graph.capture_of():
        return
    if host or (isinstance(value, np.ndarray) and value.ndim):
        graph.host_transfer("H2D")
    if any(isinstance(k, np.ndarray) and k.dtype == bool and k.ndim for k in items):
        raise RuntimeError(rules.D2H)


def _take(a, items):
    return a[wrap_around(a.shape, items)]


def _put(a, items, value, advanced):
    a[wrap_around(a.shape, items) if advanced else items] = value


def _at(op, a, items, value, advanced):
    op.at(a, wrap_around(a.shape, items) if advanced else items, *(() if value is None else (value,)))


def getitem(a, key):
    items, advanced, host = index(key)
    if advanced:
        _refuse_in_capture(items, host)
        return core.wrap(graph.compute("getitem", _take, (a._a, tuple(items))))
    items = tuple(items)
    out = a._a[items]
    if isinstance(out, np.generic):  # an element: a 0-d view, as CuPy gives
        out = a._a[items + (Ellipsis,)]
    return core.wrap(out)


def setitem(a, key, value):
    items, advanced, host = index(key)
    if type(value) is core.ndarray:
        value = value._a
        _refuse_in_capture(items, host)
    else:
        value = np.asarray(value, dtype=a.dtype)  # CuPy fills with a host value (or copies it over)
        if not advanced and value.shape != ():
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        _refuse_in_capture(items, host, value)
        if value.ndim == 0:
            value = value[()]  # a host scalar: a kernel argument
    graph.run("setitem", _put, (a._a, tuple(items), value, advanced))


_SCATTER_DTYPES = {"add": "iIlLqQefd", "maximum": "iIlLqQfd", "minimum": "iIlLqQfd"}


def scatter(a, slices, value, op):
    """``cupyx.scatter_add`` and friends: ``np.<op>.at`` with CuPy's checks (the value may be
    a host array only where an integer or boolean array is among the indices)."""
    if type(a) is not core.ndarray:
        raise AttributeError(f"'{type(a).__name__}' object has no attribute 'scatter_{op[:3]}'")
    items, advanced, host = index(slices)
    if type(value) is core.ndarray:
        v = value._a
    elif advanced:
        v = np.asarray(value, dtype=a.dtype)
    else:
        v = core.operand(value)
    if advanced and any(isinstance(k, np.ndarray) and k.dtype != bool for k in items):
        if np.dtype(a.dtype).char not in _SCATTER_DTYPES[op]:
            half = "float16, " if op == "add" else ""
            raise TypeError(f"cupy.{op}.at only supports int32, int64, {half}float32, float64, uint32, uint64 as "
                            "data type")
    _refuse_in_capture(items, host, v)
    if type(value) is not core.ndarray and isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    graph.run(f"scatter_{op}", _at, (getattr(np, op), a._a, tuple(items), v, advanced))


def ufunc_at(u, a, indices, b=None):
    """``ufunc.at`` for a ufunc other than add, maximum and minimum (no wrap-around)."""
    if type(a) is not core.ndarray:
        raise core.unsupported(a)
    items, _, host = index(indices)
    value = None if b is None else core.operand(b)
    _refuse_in_capture(items, host, value)
    graph.run(f"{u.__name__}.at", _at, (u, a._a, tuple(items), value, False))
