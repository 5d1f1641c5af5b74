"""``Tensor`` and the define-by-run graph.

Each op computes its output and, when gradients are being recorded, gives the output its
parents and a small backward closure ``g -> (grad of each parent)`` (micrograd's design).
``Tensor.backward()`` walks the graph once in reverse topological order, accumulates ``.grad``
of the leaves, and releases the graph.
"""
from __future__ import annotations

import contextlib
import heapq
import itertools
import threading

import numpy as np

from . import backend

__all__ = ["Tensor", "Parameter", "tensor", "no_grad", "enable_grad", "is_grad_enabled"]


class _GradMode:
    enabled = True


_MODE = _GradMode()


class _Capture(threading.local):
    """The recorder of the training step this thread is capturing (``polydl.capture``), None
    otherwise: another thread's ops are never recorded into it."""
    rec = None


_CAPTURE = _Capture()


def is_grad_enabled() -> bool:
    return _MODE.enabled


@contextlib.contextmanager
def no_grad():
    """Run ops without recording the graph (evaluation, optimizer updates)."""
    prev = _MODE.enabled
    _MODE.enabled = False
    try:
        yield
    finally:
        _MODE.enabled = prev


@contextlib.contextmanager
def enable_grad():
    prev = _MODE.enabled
    _MODE.enabled = True
    try:
        yield
    finally:
        _MODE.enabled = prev


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Tensor:
    """An array (NumPy or CuPy) with an optional gradient and the op that produced it."""

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_packed", "_gzero", "_seq",
                 "_per_member", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected ops

    def __init__(self, data, requires_grad: bool = False):
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._parents = ()
        self._backward = None
        self._packed = False  # .grad is a view into an optimizer's flat buffer
        self._gzero = False   # ... and that view was just zeroed (an op may write into it directly)
        self._seq = 0         # creation order of op outputs: a topological order of the graph

    # ------------------------------------------------------------------ properties
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> backend.Device:
        return backend.device_of(self.data)

    @property
    def xp(self):
        return backend.get_array_module(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._backward is None and self._parents is not None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if type(self.data) is np.ndarray else f", device='{self.device}'"
        return f"tensor({backend.to_numpy(self.data)!r}{dev}{grad})"

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied from the GPU if needed)."""
        return backend.to_numpy(self.data)

    def item(self) -> float:
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __bool__(self):
        return bool(self.data)

    def to(self, device=None, dtype=None) -> "Tensor":
        """A copy on ``device`` and/or of ``dtype`` (self when nothing changes). Differentiable."""
        data = self.data
        if device is not None:
            data = backend.to_device(data, device)
        if dtype is not None and data.dtype != np.dtype(dtype):
            data = data.astype(dtype)
        if data is self.data:
            return self
        src_type = self.data.dtype

        def backward(g):
            g = backend.to_device(g, backend.device_of(self.data))
            return (g.astype(src_type, copy=False),)

        return _make(data, (self,), backward)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> "Tensor":
        return self.to("cuda" if index is None else f"cuda:{index}")

    def float(self) -> "Tensor":
        return self.to(dtype=np.float32)

    def double(self) -> "Tensor":
        return self.to(dtype=np.float64)

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def zero_grad(self) -> None:
        if self._packed:
            self.grad.fill(0)
            self._gzero = True
        else:
            self.grad = None

    # ------------------------------------------------------------------ autodiff
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Back-propagate from this tensor: accumulate d(self)/d(leaf) into each leaf's ``.grad``.

        ``grad`` defaults to 1 for a scalar, and to 1 for each member of a population's loss (one
        value per member, which each member's gradient does not mix). The graph is released
        afterwards unless ``retain_graph`` is true."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: "
                               "no input of the computation had requires_grad=True")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1 and not getattr(self, "_per_member", False):
                raise RuntimeError(f"backward() without a gradient needs a scalar, not shape {self.shape}; "
                                   "pass grad= of the same shape")
            grad = xp.ones_like(self.data)  # a population's loss: each member's gradient seeded with 1
        else:
            grad = grad.data if isinstance(grad, Tensor) else backend.asarray(grad, self.data.dtype, self.device)
            if grad.shape != self.data.shape:
                raise ValueError(f"grad has shape {grad.shape}, expected {self.data.shape}")

        if self._backward is None:  # a leaf: d self / d self
            if self._parents is None:
                raise RuntimeError(_RELEASED)
            _accumulate_leaf(self, grad)
            return
        _walk(self, grad, retain_graph)

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return _F.add(self, other)

    def __radd__(self, other):
        return _F.add(other, self)

    def __sub__(self, other):
        return _F.sub(self, other)

    def __rsub__(self, other):
        return _F.sub(other, self)

    def __mul__(self, other):
        return _F.mul(self, other)

    def __rmul__(self, other):
        return _F.mul(other, self)

    def __truediv__(self, other):
        return _F.div(self, other)

    def __rtruediv__(self, other):
        return _F.div(other, self)

    def __neg__(self):
        return _F.neg(self)

    def __pow__(self, exponent):
        return _F.pow(self, exponent)

    def __matmul__(self, other):
        return _F.matmul(self, other)

    def __rmatmul__(self, other):
        return _F.matmul(other, self)

    def __getitem__(self, index):
        return _F.getitem(self, index)

    # comparisons give plain boolean tensors (no gradient)
    def __lt__(self, other):
        return Tensor(self.data < _raw(other))

    def __le__(self, other):
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other):
        return Tensor(self.data > _raw(other))

    def __ge__(self, other):
        return Tensor(self.data >= _raw(other))

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ methods
    def sum(self, axis=None, keepdims=False):
        return _F.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _F.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _F.max(self, axis, keepdims)

    def exp(self):
        return _F.exp(self)

    def log(self):
        return _F.log(self)

    def sqrt(self):
        return _F.sqrt(self)

    def reshape(self, *shape):
        return _F.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def transpose(self, *axes):
        return _F.transpose(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else (axes or None))

    @property
    def T(self):
        return _F.transpose(self, None)

    def relu(self):
        return _F.relu(self)

    def sigmoid(self):
        return _F.sigmoid(self)

    def tanh(self):
        return _F.tanh(self)

    def argmax(self, axis=-1):
        return Tensor(self.data.argmax(axis=axis))


class Parameter(Tensor):
    """A leaf tensor that a Module trains (``requires_grad=True``).

    ``members``: the population size P when the first axis holds one copy per member of a
    population (None for an ordinary parameter). ``decay``: whether L2 weight decay applies to it
    (by default to weights, the parameters with at least two axes per member, not to biases or a
    normalizer's γ and β)."""

    __slots__ = ("members", "decay")

    def __init__(self, data, members: int | None = None, decay: bool | None = None):
        if isinstance(data, Tensor):
            data = data.data
        _check_grad_dtype(getattr(data, "dtype", None), data)
        super().__init__(data, requires_grad=True)
        self.members = None if members is None else int(members)
        per_member = data.ndim - (1 if members is not None else 0)
        self.decay = per_member >= 2 if decay is None else bool(decay)

    def __repr__(self):
        return "Parameter(" + super().__repr__() + ")"


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _walk(root, grad, retain_graph: bool) -> None:
    """The backward walk from ``root`` (an op output) with seed ``grad``."""
    rec = _CAPTURE.rec  # a step being captured: the walk's work is also recorded for replay
    # Every op output is numbered when it is created, after its inputs, so visiting nodes in
    # decreasing number visits each one after all of its consumers: its gradient is complete.
    heap = [(-root._seq, root)]
    grads = {id(root): grad}
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        node = pop(heap)[1]
        g = grads.pop(id(node))
        parent_grads = node._backward(g) if rec is None else rec.node(node, g)
        for p, pg in zip(node._parents, parent_grads, strict=True):
            if pg is None or not p.requires_grad:
                continue
            if p._backward is None:
                if p._parents is None:
                    raise RuntimeError(_RELEASED)
                if rec is None:
                    _accumulate_leaf(p, pg)
                else:
                    rec.leaf(p, pg)
                continue
            key = id(p)
            prev = grads.get(key)
            if prev is None:
                grads[key] = pg
                push(heap, (-p._seq, p))
            else:
                total = grads[key] = prev + pg
                if rec is not None:
                    rec.summed(prev, pg, total)
        if not retain_graph:
            node._parents = None  # released: not a leaf, and its graph is gone
            node._backward = None


def _accumulate_leaf(leaf, g):
    if leaf._packed:
        leaf.grad += g  # in place into the optimizer's flat gradient buffer
        leaf._gzero = False
    elif leaf.grad is None:  # a fresh, writable array the leaf owns (g may be shared or a view)
        leaf.grad = g.astype(leaf.data.dtype, copy=True) if hasattr(g, "astype") else g
    else:
        leaf.grad = leaf.grad + g


_next_seq = itertools.count(1).__next__
_RELEASED = ("backward() through a graph that an earlier backward() already released; "
             "pass retain_graph=True to the first backward() to go through it twice")


def _make(data, parents, backward):
    """The output tensor of an op; records the graph if any parent needs a gradient."""
    out = Tensor.__new__(Tensor)
    out.data = data
    out.grad = None
    out._packed = False
    out._gzero = False
    if _MODE.enabled:
        for p in parents:
            if p.requires_grad:
                out.requires_grad = True
                out._parents = parents
                out._backward = backward
                out._seq = _next_seq()
                if _CAPTURE.rec is not None:
                    _CAPTURE.rec.made(out, backward)
                return out
    out.requires_grad = False
    out._parents = ()
    out._backward = None
    out._seq = 0
    if _CAPTURE.rec is not None:
        _CAPTURE.rec.made(out, backward)
    return out


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor. Python floats become float32; arrays keep their dtype unless ``dtype``."""
    if isinstance(data, Tensor):
        data = data.data
    arr = backend.asarray(data, dtype, backend.check_device(device) if device is not None else None)
    if requires_grad:
        _check_grad_dtype(arr.dtype, arr)
    return Tensor(arr, requires_grad=requires_grad)


def _check_grad_dtype(dtype, data) -> None:
    """Refuse a tensor that would need a gradient but is not a floating array (integers, booleans,
    complex numbers, objects, or no array at all): its gradient would not be a float."""
    if dtype is None or not hasattr(data, "ndim"):
        raise ValueError(f"only floating arrays can require grad, not {type(data).__name__}; "
                         "pass an array of floats, such as numpy.asarray(data, dtype='float32')")
    if getattr(dtype, "kind", None) != "f":
        raise ValueError(f"only floating tensors can require grad, not {dtype}; convert it with .astype('float32')")


from . import functional as _F  # noqa: E402  (operators dispatch to the functional ops)
