"""The steps of a CUDA graph: what an op recorded during a capture keeps, and its replay.

A step holds its function and arguments with every device array replaced by a reference to its
allocation (a ``memory.Block``) and the view's geometry, so that the graph keeps addresses, not
arrays, as a CUDA graph does (``memory`` tells when the program has dropped one). Replaying a step
calls the function on views rebuilt at those addresses and, for an op that made new arrays,
copies its results into the memory allocated for them during the capture.
"""
from __future__ import annotations

import numpy as np

from . import memory
from .memory import root_of


class _Holder:
    __slots__ = ("root", "__array_interface__")


class _Ref:
    """An array a step uses: its allocation's Block and the view's geometry."""

    __slots__ = ("block", "offset", "shape", "strides", "dtype", "readonly")

    def get(self) -> np.ndarray:
        root = self.block.root
        if not self.offset and root.shape == self.shape and root.strides == self.strides and root.dtype == self.dtype:
            return root
        holder = _Holder()
        holder.root = root
        holder.__array_interface__ = {"data": (root.__array_interface__["data"][0] + self.offset, self.readonly),
                                      "shape": self.shape, "strides": self.strides, "version": 3,
                                      "typestr": f"|V{self.dtype.itemsize}"}
        return np.asarray(holder).view(self.dtype)


def _each(obj, fn):
    """``obj`` with ``fn`` applied to everything in it that is not a tuple, list or dict."""
    if isinstance(obj, (tuple, list)):
        return type(obj)(_each(v, fn) for v in obj)
    if isinstance(obj, dict):
        return {k: _each(v, fn) for k, v in obj.items()}
    return fn(obj)


def _offset(a: np.ndarray, root: np.ndarray) -> int:
    """Where ``a``'s first element lies in its allocation ``root``, in bytes."""
    return a.__array_interface__["data"][0] - root.__array_interface__["data"][0]


def _refs(obj, cap):
    def ref(a):
        if not isinstance(a, np.ndarray):
            return a
        root = root_of(a)
        b = cap.blocks.get(id(root))
        if b is None:
            b = cap.blocks[id(root)] = memory.block(root)
        r = _Ref()
        r.block, r.shape, r.strides, r.dtype = b, a.shape, a.strides, a.dtype
        r.offset = _offset(a, root)
        r.readonly = not a.flags.writeable
        return r

    return _each(obj, ref)


def _resolve(obj):
    return _each(obj, lambda a: a.get() if type(a) is _Ref else a)


def _zeros_of_layout(a: np.ndarray) -> np.ndarray:
    """Zeros laid out as ``a``: ``zeros_like`` keeps an ordinary layout, but gives a view that
    repeats elements (a stride of 0, as ``broadcast_to`` makes) memory of its own, which would make
    a copy of it (``ascontiguousarray``) look like a view; such a view is rebuilt over zeros."""
    if 0 not in a.strides or a.size <= 1:
        return np.zeros_like(a)
    root = root_of(a)
    return np.ndarray(a.shape, a.dtype, np.zeros(root.nbytes, np.uint8), _offset(a, root), a.strides)


def _dry(obj, memo):
    """``obj`` with every device array replaced by zeros of its layout (one per array)."""
    def zeros(a):
        if not isinstance(a, np.ndarray):
            return a
        sub = memo.get(id(a))
        if sub is None:
            sub = memo[id(a)] = _zeros_of_layout(a)
        return sub

    return _each(obj, zeros)


class _Step:
    __slots__ = ("name", "fn", "args", "kwargs", "outs", "seq")

    def replay(self):
        res = self.fn(*_resolve(self.args), **_resolve(self.kwargs))
        if self.outs:
            items = res if self.seq else (res,)
            for i, ref in self.outs:
                np.copyto(ref.get(), items[i])


def record(cap, name, fn, args, kwargs, outs=None, seq=False):
    """Append to ``cap`` the step of ``fn(*args, **kwargs)``; ``outs``: (position in its result,
    the array allocated for that result), ``seq``: whether the result is a sequence."""
    step = _Step()
    step.name, step.fn, step.seq = name, fn, seq
    step.args, step.kwargs = _refs(args, cap), _refs(kwargs, cap)
    step.outs = [(i, _refs(buf, cap)) for i, buf in outs] if outs else None
    cap.steps.append(step)


def dry_run(fn, args, kwargs):
    """``fn`` on zeros laid out as its device arrays (CuPy's checks of shapes and dtypes; the
    result's shapes, dtypes and layouts; which results are views), and the ids of those zeros."""
    memo = {}
    with np.errstate(all="ignore"):
        res = fn(*_dry(args, memo), **_dry(kwargs, memo))
    return res, {id(root_of(s)) for s in memo.values()}
