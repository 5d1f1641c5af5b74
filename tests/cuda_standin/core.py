"""The stand-in's array type and array functions: NumPy underneath, CuPy's rules on top.

An :class:`ndarray` holds a NumPy array (its "device memory") that nothing outside the stand-in
sees. Where CuPy refuses something, so does the stand-in, with CuPy's exception type:

- no implicit conversion to NumPy: ``np.asarray(a)``, ``a.__array__()`` and a NumPy array as an
  operand of an op or a function raise ``TypeError`` (``.get()``, ``asnumpy`` copy explicitly);
  ``a[basic index] = numpy array`` raises ``ValueError`` unless the value is 0-d (CuPy's fill);
- every reduction and element gives a 0-d array, never a NumPy scalar; there is no
  ``__index__`` and no ``__format__`` with a format spec, as on CuPy;
- integer-array indices out of range wrap around instead of raising;
- dtypes CuPy lacks (object, strings, datetimes) are refused; ``empty`` memory holds NaN (or
  0xA5 bytes), as uninitialised device memory holds garbage;
- only the functions and methods CuPy 14 has exist (``names``);
- device work goes through ``graph.compute`` (new arrays) or ``graph.run`` (writes into given
  arrays), so that while the stream captures it is recorded, not run; host transfers
  (``get``, ``item``, ``float()``, ``repr``, ``set``) are refused there as CuPy refuses them.

Arithmetic, promotion (NEP 50 in both) and reductions are NumPy's, which CuPy follows.
"""
from __future__ import annotations

import numpy as np

from . import graph, indexing, memory, names
from .indexing import scatter  # noqa: F401  (cupyx.scatter_add and friends)
from .memory import Flags, MemoryPointer

SCALAR_TYPES = (bool, int, float, complex, np.generic)
_WRITES = {"sort", "partition", "put"}  # array methods that write into the array
_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")


def unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def check_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind in "OSUMm" or (dt.kind == "V" and dt.name != "bfloat16"):
        raise ValueError(f"Unsupported dtype {dt}")
    return dt


def wrap(a):
    """A stand-in array for a NumPy array; a NumPy scalar becomes a 0-d array (as CuPy gives)."""
    if isinstance(a, np.generic):
        a = np.asarray(a)
    if isinstance(a, np.ndarray):
        out = ndarray.__new__(ndarray)
        out._a = a
        if memory.TRACKING and a.base is None:
            memory.allocated(a)
        return out
    if isinstance(a, tuple):
        return tuple(wrap(x) for x in a)
    if isinstance(a, list) and a and isinstance(a[0], np.ndarray):
        return [wrap(x) for x in a]
    return a


def operand(x):
    """An operand of an op: a stand-in array (its data), or a Python or NumPy scalar."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, SCALAR_TYPES):
        return x
    raise unsupported(x)


def unwrap(x):
    """Arguments of a function: stand-in arrays to their data, anywhere in lists and tuples; a
    NumPy array is refused (it would be an implicit host-to-device copy)."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, np.ndarray):
        raise unsupported(x)
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v) for v in x)
    return x


def garbage(shape, dtype, order="C"):
    """Uninitialised memory: NaN for floats, 0xA5 bytes otherwise."""
    return memory.poison(np.empty(shape, check_dtype(dtype), order=order))


# ---------------------------------------------------------------------------- the array
def _should_use_rop(x, y):
    """CuPy's choice: defer to ``y``'s reflected op where ``y`` opts out of ufuncs or outranks."""
    y_ufunc = getattr(y, "__array_ufunc__", _HANDLED)
    if y_ufunc is not _HANDLED:
        return y_ufunc is None
    return getattr(x, "__array_priority__", 0) < getattr(y, "__array_priority__", 0)


_HANDLED = object()


def _binary(name, reflected=False):
    def op(self, other):
        from . import module

        ufunc = getattr(module, name)
        if type(other) is ndarray:
            return ufunc(other, self) if reflected else ufunc(self, other)
        if not reflected and _should_use_rop(self, other):
            return NotImplemented
        return ufunc(other, self) if reflected else ufunc(self, other)

    op.__name__ = f"__{'r' if reflected else ''}{name}__"
    return op


def _inplace(name):
    def op(self, other):
        from . import module

        getattr(module, name)(self, other, out=self)
        return self

    return op


def _unary(name):
    def op(self):
        from . import module

        return getattr(module, name)(self)

    return op


def _compare(name):
    def op(self, other):
        from . import module

        if type(other) is not ndarray:
            if _should_use_rop(self, other):
                return NotImplemented
            if isinstance(other, np.ndarray) and other.ndim == 0:
                other = other.item()
            if name in ("equal", "not_equal") and (other is None or (
                    type(other).__eq__ is object.__eq__ and not isinstance(other, SCALAR_TYPES))):
                return module.full(self.shape, name == "not_equal")
        return getattr(module, name)(self, other)

    return op


def _method(name):
    np_method = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        data = {k: unwrap(v) for k, v in kwargs.items()}
        if name in _WRITES or kwargs.get("out") is not None:
            graph.run(name, np_method, (self._a, *unwrap(args)), data)
            return kwargs.get("out")
        return wrap(graph.compute(name, np_method, (self._a, *unwrap(args)), data))

    method.__name__ = name
    return method


class ndarray:
    """A CuPy array on the stand-in's one GPU, backed by a NumPy array."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in does not model ndarray(memptr=, strides=)")
        self._a = garbage(shape, dtype, order)
        if memory.TRACKING:
            memory.allocated(self._a)

    # --------------------------------------------------------------- attributes
    shape = property(lambda self: self._a.shape)

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: Flags(self._a))
    T = property(lambda self: wrap(self._a.T))
    mT = property(lambda self: wrap(self._a.mT))
    real = property(lambda self: wrap(self._a.real))
    imag = property(lambda self: wrap(self._a.imag))
    base = property(lambda self: None if self._a.base is None else _existing(self._a.base))
    data = property(lambda self: MemoryPointer(self._a))

    @property
    def device(self):
        from .cuda import Device

        return Device(0)

    def __getattr__(self, name):
        if name in names.NDARRAY:
            raise AttributeError(f"cupy.ndarray.{name} is not modelled by the CuPy stand-in")
        raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")

    # --------------------------------------------------------------- host transfers
    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if out.shape != self.shape or out.dtype != self.dtype:
                raise ValueError(f"Shape mismatch or dtype mismatch: {out.shape} {out.dtype}")
            graph.host_transfer("D2H", stream)
            np.copyto(out, self._a)
            return out
        if self._a.size == 0:
            return np.empty(self.shape, self.dtype)
        graph.host_transfer("D2H", stream)
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        graph.host_transfer("H2D", stream)
        np.copyto(self._a, arr)

    def item(self, *args):
        if not args and self._a.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self.get().item(*args)

    def tolist(self):
        return self.get().tolist()

    def tobytes(self, order="C"):
        return self.get().tobytes(order)

    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def __repr__(self):
        return repr(self.get())

    def __str__(self):
        return str(self.get())

    def __reduce__(self):
        return _rebuild, (self.get(),)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # --------------------------------------------------------------- conversions
    def __bool__(self):
        return bool(self.get() if self._a.size == 1 else self._a)

    def __int__(self):
        return int(self.get())

    def __float__(self):
        return float(self.get())

    def __complex__(self):
        return complex(self.get())

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    # --------------------------------------------------------------- methods
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        dt = check_dtype(dtype)
        out = graph.compute("astype", np.ndarray.astype, (self._a, dt), {"order": order, "copy": copy})
        return self if out is self._a else wrap(out)

    def copy(self, order="C"):
        return wrap(graph.compute("copy", np.ndarray.copy, (self._a,), {"order": order}))

    def view(self, dtype=None, *args):
        if dtype is None or dtype is ndarray:
            return wrap(self._a.view())
        return wrap(self._a.view(check_dtype(dtype)))

    def fill(self, value):
        if type(value) is ndarray:
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = value._a
        else:
            value = np.asarray(value, dtype=self.dtype)
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value[()]
        graph.run("fill", np.ndarray.fill, (self._a, value))

    def ptp(self, axis=None, out=None, keepdims=False):
        from . import module

        return module.ptp(self, axis=axis, out=out, keepdims=keepdims)

    def scatter_add(self, slices, value):
        indexing.scatter(self, slices, value, "add")

    def scatter_max(self, slices, value):
        indexing.scatter(self, slices, value, "maximum")

    def scatter_min(self, slices, value):
        indexing.scatter(self, slices, value, "minimum")

    for _name in ("all", "any", "argmax", "argmin", "argpartition", "argsort", "choose", "clip", "compress",
                  "conj", "conjugate", "cumprod", "cumsum", "diagonal", "dot", "flatten", "max", "mean", "min",
                  "nonzero", "partition", "prod", "put", "ravel", "repeat", "reshape", "round", "searchsorted",
                  "sort", "squeeze", "std", "sum", "swapaxes", "take", "trace", "transpose", "var", "byteswap"):
        locals()[_name] = _method(_name)
    del _name

    # --------------------------------------------------------------- indexing
    def __getitem__(self, key):
        return indexing.getitem(self, key)

    def __setitem__(self, key, value):
        indexing.setitem(self, key, value)

    # --------------------------------------------------------------- NumPy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from . import module

        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            inputs += out
            kwargs["out"] = out[0]
        if method not in ("__call__", "outer", "at", "reduce", "accumulate", "reduceat"):
            return NotImplemented
        func = getattr(module, ufunc.__name__, None)
        if func is None:
            return NotImplemented
        if method != "__call__":
            func = getattr(func, method)
        for x in inputs:
            if not isinstance(x, SCALAR_TYPES) and not isinstance(x, (ndarray, np.ndarray)):
                return NotImplemented
        if "out" in kwargs:
            inputs = inputs[:-1]
        return func(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import module

        target = module
        for part in func.__module__.split(".")[1:]:
            target = getattr(target, part, None)
            if target is None:
                return NotImplemented
        cupy_func = getattr(target, func.__name__, None)
        if cupy_func is None or cupy_func is func:
            return NotImplemented
        if not all(issubclass(t, (ndarray, np.ndarray)) for t in types):
            return NotImplemented
        return cupy_func(*args, **kwargs)

    # --------------------------------------------------------------- operators
    __add__, __radd__, __iadd__ = _binary("add"), _binary("add", True), _inplace("add")
    __sub__, __rsub__, __isub__ = _binary("subtract"), _binary("subtract", True), _inplace("subtract")
    __mul__, __rmul__, __imul__ = _binary("multiply"), _binary("multiply", True), _inplace("multiply")
    __truediv__, __rtruediv__, __itruediv__ = (_binary("true_divide"), _binary("true_divide", True),
                                               _inplace("true_divide"))
    __floordiv__, __rfloordiv__, __ifloordiv__ = (_binary("floor_divide"), _binary("floor_divide", True),
                                                  _inplace("floor_divide"))
    __mod__, __rmod__, __imod__ = _binary("remainder"), _binary("remainder", True), _inplace("remainder")
    __pow__, __rpow__, __ipow__ = _binary("power"), _binary("power", True), _inplace("power")
    __matmul__, __rmatmul__ = _binary("matmul"), _binary("matmul", True)
    __and__, __rand__, __iand__ = _binary("bitwise_and"), _binary("bitwise_and", True), _inplace("bitwise_and")
    __or__, __ror__, __ior__ = _binary("bitwise_or"), _binary("bitwise_or", True), _inplace("bitwise_or")
    __xor__, __rxor__, __ixor__ = _binary("bitwise_xor"), _binary("bitwise_xor", True), _inplace("bitwise_xor")
    __lshift__, __rlshift__ = _binary("left_shift"), _binary("left_shift", True)
    __rshift__, __rrshift__ = _binary("right_shift"), _binary("right_shift", True)
    __divmod__, __rdivmod__ = _binary("divmod"), _binary("divmod", True)
    __neg__, __pos__, __abs__, __invert__ = _unary("negative"), _unary("positive"), _unary("absolute"), _unary("invert")
    __lt__, __le__ = _compare("less"), _compare("less_equal")
    __gt__, __ge__ = _compare("greater"), _compare("greater_equal")
    __eq__, __ne__ = _compare("equal"), _compare("not_equal")


def _rebuild(host):
    return wrap(np.array(host))


def _existing(a):
    """A stand-in array on memory that exists already (not an allocation)."""
    out = ndarray.__new__(ndarray)
    out._a = a
    return out
