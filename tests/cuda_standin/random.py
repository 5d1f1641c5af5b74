"""The stand-in's ``cupy.random``: CuPy's ``RandomState`` API (floats only in float32 and
float64, no ``get_state``/``set_state``, as CuPy), drawing from NumPy's PCG64: the same API and
dtypes as on a GPU, not the same numbers (cuRAND's streams are not modelled). A draw while the
current stream captures raises as cuRAND's ``setStream`` does in CuPy."""
from __future__ import annotations

import functools

import numpy as np

from . import graph, names
from .core import unwrap, wrap


def _draw(method):
    """A method that calls cuRAND on the current stream."""
    @functools.wraps(method)
    def draw(self, *args, **kwargs):
        graph.library("cuRAND")
        return method(self, *args, **kwargs)

    return draw


def _float_dtype(dtype):
    dt = np.dtype(dtype)
    if dt.char not in ("f", "d"):
        raise TypeError("cupy.random only supports float32 and float64")
    return dt


def _size(size, args=()):
    return tuple(args) if args else (() if size is None else size)


class RandomState:
    def __init__(self, seed=None, method=None):
        self.seed(seed)

    def seed(self, seed=None):
        if seed is not None:
            arr = np.asarray(seed)
            if arr.dtype.kind not in "biu":
                raise TypeError("Seed must be an integer.")
            if not 0 <= int(arr) < 2 ** 64:
                raise ValueError("Seed must be an integer between 0 and 2**64 - 1")
            seed = int(arr)
        self._gen = np.random.Generator(np.random.PCG64(seed))

    @_draw
    def random_sample(self, size=None, dtype=float):
        return wrap(self._gen.random(_size(size), dtype=_float_dtype(dtype)))

    def rand(self, *size, **kwargs):
        return self.random_sample(_size(None, size), kwargs.pop("dtype", float))

    def randn(self, *size, **kwargs):
        return self.standard_normal(_size(None, size), kwargs.pop("dtype", float))

    @_draw
    def standard_normal(self, size=None, dtype=float):
        return wrap(self._gen.standard_normal(_size(size), dtype=_float_dtype(dtype)))

    @_draw
    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        dt = _float_dtype(dtype)
        return wrap((self._gen.normal(unwrap(loc), unwrap(scale), size)).astype(dt))

    @_draw
    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        dt = _float_dtype(dtype)
        return wrap(self._gen.uniform(unwrap(low), unwrap(high), size).astype(dt))

    @_draw
    def randint(self, low, high=None, size=None, dtype="l"):
        return wrap(np.asarray(self._gen.integers(low, high, size, dtype=dtype)))

    @_draw
    def permutation(self, num):
        return wrap(self._gen.permutation(unwrap(num)))

    @_draw
    def shuffle(self, a):
        self._gen.shuffle(a._a)

    @_draw
    def choice(self, a, size=None, replace=True, p=None):
        return wrap(np.asarray(self._gen.choice(unwrap(a), size, replace, unwrap(p))))

    def __getattr__(self, name):
        if name in names.RANDOM_STATE:
            raise AttributeError(f"cupy.random.RandomState.{name} is not modelled by the CuPy stand-in")
        raise AttributeError(f"'RandomState' object has no attribute '{name}'")


_default = [None]


def get_random_state():
    if _default[0] is None:
        _default[0] = RandomState()
    return _default[0]


def set_random_state(rs):
    _default[0] = rs


def seed(seed=None):
    get_random_state().seed(seed)


def reset_states():
    _default[0] = None


def __getattr__(name):
    if name in ("random_sample", "random", "rand", "randn", "standard_normal", "normal", "uniform", "randint",
                "permutation", "shuffle", "choice"):
        return getattr(get_random_state(), "random_sample" if name == "random" else name)
    if name in names.RANDOM:
        raise AttributeError(f"cupy.random.{name} is not modelled by the CuPy stand-in")
    raise AttributeError(f"module 'cupy.random' has no attribute '{name}'")
