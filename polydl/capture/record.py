"""Recording one eager training step as a plan of replays.

While a :class:`Recorder` is active (``tensor._CAPTURE.rec``), the step runs eagerly as always and
every op that has a captured form also hands over its *replays*: zero-argument functions that
compute the same values, by the same calls, into the same arrays the eager step just produced.
An op gives its forward replay with :meth:`Recorder.op` just before its output is made
(``tensor._make`` then calls :meth:`Recorder.made`), and its backward closure gives its backward
replay with :meth:`Recorder.grad` when autodiff calls it. ``Tensor.backward``'s walk hands the
recorder each node (:meth:`Recorder.node`), how gradients reach the parameters (``p.grad += g``,
:meth:`Recorder.leaf`) and where two gradients of one tensor add (:meth:`Recorder.summed`).

Replaying the forward list and then the backward list redoes the step on new values written into
the recorded input arrays: every array the backward closures read is rewritten by a forward
replay, and every gradient lands in the array it landed in before. An op without a captured form,
or a gradient that reaches a parameter outside an optimizer's flat buffer, leaves the reason in
:attr:`Recorder.why` and the step is not captured.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import backend
from ..tensor import _CAPTURE, _accumulate_leaf

__all__ = ["Recorder", "recording", "paused", "NOTHING", "op_name", "recompute", "is_view", "record_forward"]


def NOTHING() -> None:
    """The replay of an op whose output is a view of its input: nothing to compute."""


def recompute(compute, outs):
    """A replay that runs ``compute`` (the eager code again, returning arrays) and copies each
    result into the array the eager step produced in its place (``outs``; None: not kept)."""
    def replay():
        for out, value in zip(outs, compute(), strict=True):
            if out is None or value is out:
                continue
            if _repeats(out):  # a broadcast view of its base: the base's values are the new ones
                out, value = out.base, value.base
            backend.get_array_module(out).copyto(out, value)

    return replay


def record_forward(forward, arrays) -> None:
    """While a step is recorded: the replay of an op whose ``forward()`` made ``arrays`` (the
    output and what its backward closure reads) is ``forward()`` again, copied into them."""
    rec = _CAPTURE.rec
    if rec is not None:
        rec.op(recompute(forward, arrays))


def is_view(out, src) -> bool:
    """Whether array ``out`` shares ``src``'s memory as a view (what reshape gives when it can)."""
    base = getattr(out, "base", None)
    return base is not None and (base is src or base is getattr(src, "base", None))


def op_name(backward) -> str:
    """A readable name of the op whose backward closure is ``backward``."""
    qual = getattr(backward, "__qualname__", "") or ""
    name = qual.split(".<locals>")[0] if qual else type(backward).__name__
    module = getattr(backward, "__module__", "") or ""
    return f"{module.rsplit('.', 1)[-1]}.{name}" if module else name


class Recorder:
    """The replays of one eager step, forward and backward, in the order they ran."""

    def __init__(self):
        self.forward: list = []
        self.backward: list = []
        self.pending = None
        self.why: str | None = None
        self.leaves: list = []  # parameters that received a gradient
        self.host_why: str | None = None  # why the replay needs the host between launches (no CUDA graph)

    # ------------------------------------------------------------------ what ops call
    def op(self, replay) -> None:
        """The forward replay of the op whose output is made next."""
        self.pending = replay

    def made(self, out, backward) -> None:
        """Called by ``tensor._make`` for every op output while recording."""
        replay, self.pending = self.pending, None
        if replay is None:
            self.refuse(f"{op_name(backward) if backward is not None else 'an op'} has no captured form")
        elif replay is not NOTHING:
            self.forward.append(replay)

    def grad(self, replay) -> None:
        """The backward replay of the backward closure being called (None: it has none)."""
        if replay is None:
            self.refuse("a gradient computed in a form that has no captured replay")
            replay = NOTHING
        self.backward.append(replay)

    def host(self, why: str) -> None:
        """The replay does work on the host (random draws): it runs, but not as one CUDA graph."""
        if self.host_why is None:
            self.host_why = why

    def refuse(self, why: str) -> None:
        if self.why is None:
            self.why = why

    # ------------------------------------------------------------------ what autodiff's walk calls
    def node(self, node, g) -> tuple:
        """``node``'s backward closure on ``g``, its replay kept (the closure again, its results
        copied into these arrays, where it gave none); the parents' gradients."""
        before = len(self.backward)
        closure = node._backward
        parent_grads = tuple(map(_writable, closure(g)))
        if len(self.backward) == before:
            if any(_repeats(pg) and getattr(pg, "base", None) is None for pg in parent_grads):
                self.refuse(f"the gradient of {op_name(closure)} repeats values it does not hold")
            self.backward.append(recompute(_again(closure, g), parent_grads))
        elif len(self.backward) != before + 1:
            self.refuse(f"the gradient of {op_name(closure)} was recorded more than once")
        return parent_grads

    def leaf(self, p, pg) -> None:
        """``p.grad += pg`` (into the optimizer's flat buffer), recorded."""
        if not p._packed:
            self.refuse("a parameter outside an optimizer's flat buffers receives a gradient")
            _accumulate_leaf(p, pg)
            return
        grad = p.grad
        _accumulate_leaf(p, pg)  # grad += pg, in place
        add = backend.get_array_module(grad).add
        self.backward.append(lambda: add(grad, pg, out=grad))
        self.leaves.append(p)

    def summed(self, prev, pg, total) -> None:
        """Two paths' gradients of one tensor added (``total = prev + pg``), recorded."""
        if not (hasattr(total, "shape") and total.shape == getattr(prev, "shape", None)):
            self.refuse("a gradient that broadcasts where two paths meet")
            return
        add = backend.get_array_module(total).add
        self.backward.append(lambda: add(prev, pg, out=total))


def _writable(pg):
    """A gradient as an array a replay can write into: a NumPy scalar as a 0-d array (the same
    value)."""
    return np.asarray(pg) if isinstance(pg, np.generic) else pg


def _repeats(a) -> bool:
    """Whether ``a`` is a view that repeats elements (``broadcast_to``: a stride of 0)."""
    strides = getattr(a, "strides", None)
    return bool(strides) and 0 in strides and a.size > 1


def _again(closure, g):
    return lambda: closure(g)


@contextlib.contextmanager
def recording(rec: Recorder):
    """Record the ops run inside the block into ``rec``."""
    prev, _CAPTURE.rec = _CAPTURE.rec, rec
    try:
        yield rec
    finally:
        _CAPTURE.rec = prev


@contextlib.contextmanager
def paused():
    """Nothing run inside the block is recorded (a check between the loss and its backward)."""
    prev, _CAPTURE.rec = _CAPTURE.rec, None
    try:
        yield
    finally:
        _CAPTURE.rec = prev
