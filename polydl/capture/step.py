"""``TrainStep``: one training step that records its first run and replays the rest.

A step is: zero the gradients, the forward pass and the loss, the backward pass, the optimizer's
update. The first step with given input and target shapes and dtypes runs eagerly, as without
capture, and records its plan (:class:`~polydl.capture.record.Recorder`). A later step with the
same shapes replays it when nothing it was recorded against has changed: copy the mini-batch
into the recorded input arrays, run the forward replays and the backward replays (the same
kernels and products into the same arrays, so the same values bit for bit), and update with the
optimizer (its ``step()`` runs as always, so a schedule's α, a changed hyperparameter or a frozen
member is picked up). Anything else runs eagerly: another shape (a last short mini-batch gets a
plan of its own), a module's attribute or mode changed (``model.eval()``, a new momentum), a
parameter or buffer whose array was replaced, another grad mode, autocast, or CPU-kernel setting.

What is captured: models whose every module declares ``capturable = True`` on the class that
defines its ``forward`` (the built-in layers do; a plugin's module may, when its forward is made of
polydl's ops only), built from ops that have a captured form (``linear``, ``batch_norm``, the
activations, ``dropout``, ``reshape``, the built-in losses), with every parameter in the
optimizer's flat buffers. Otherwise every step is eager and :attr:`TrainStep.why` says why.

On CUDA, a plan that needs nothing from the host between its launches (no random draws) is also
captured as one CUDA graph (:mod:`~polydl.capture.graph`) after one replay warms the memory pool:
each later step is one copy of the mini-batch, one graph launch and the optimizer's update.

The loss and scores a replayed step returns are the recorded step's tensors, rewritten in place by
every replay (as a CUDA graph's outputs are): read them before the next step, or copy them.
``POLYDL_CAPTURE=off`` (or ``TrainStep(..., capture=False)``) keeps every step eager.
"""
from __future__ import annotations

import operator
import os
import warnings
from contextlib import nullcontext

import numpy as np

from .. import amp, backend, cpu_kernels
from ..tensor import _MODE, Tensor
from .graph import maybe_capture
from .record import Recorder, paused, recording

__all__ = ["TrainStep", "enabled"]

_ALIASES = {"on": True, "1": True, "true": True, "yes": True, "auto": True,
            "off": False, "0": False, "false": False, "no": False}


def enabled() -> bool:
    """Whether steps are captured by default: ``POLYDL_CAPTURE`` (on/off; default on)."""
    raw = os.environ.get("POLYDL_CAPTURE", "on").strip().lower() or "on"
    if raw not in _ALIASES:
        warnings.warn(f"POLYDL_CAPTURE must be on or off, not {raw!r}; using on", RuntimeWarning, stacklevel=2)
        return True
    return _ALIASES[raw]


def _declared(obj, method: str) -> bool:
    """Whether the class that defines ``obj``'s ``method`` declares ``capturable = True`` and the
    instance does not patch it."""
    owner = next((c for c in type(obj).__mro__ if method in vars(c)), None)
    return owner is not None and bool(vars(owner).get("capturable", False)) and method not in vars(obj)


def capturable(model, loss_fn=None) -> str | None:
    """None when every module of ``model`` declares ``capturable = True`` on the class that
    defines its ``forward`` (and ``loss_fn`` on the class that defines its ``__call__``), none
    patched on the instance; else the reason. A captured step runs their Python once, when it is
    recorded: what declares itself capturable computes only through polydl's ops."""
    for module in model.modules():
        if not _declared(module, "forward"):
            return (f"{type(module).__name__}'s forward has no captured form (its class does not declare "
                    "capturable = True)")
    if loss_fn is not None and not _declared(loss_fn, "__call__"):
        return f"the loss {type(loss_fn).__name__} has no captured form (its class does not declare capturable = True)"
    return None


def _context() -> tuple:
    return _MODE.enabled, amp._STATE.dtype, cpu_kernels._MODE


class _State:
    """What plans are recorded against: the modules' and the loss's attributes, the arrays of the
    parameters and buffers, and the context."""

    def __init__(self, model, loss_fn):
        objs = list(model.modules()) + ([loss_fn] if hasattr(loss_fn, "__dict__") else [])
        self.objs = tuple(objs)
        self.attrs = [dict(vars(o)) for o in objs]
        self.lists = tuple((v, tuple(v)) for attrs in self.attrs for v in attrs.values() if type(v) is list)
        self.tensors = tuple(model.parameters()) + tuple(model.buffers())
        self.datas = tuple(map(_DATA, self.tensors))
        self.grads = tuple(map(_REQUIRES, self.tensors))
        self.context = _context()

    def same(self) -> bool:
        try:
            if (tuple(map(_DATA, self.tensors)) != self.datas or tuple(map(_REQUIRES, self.tensors)) != self.grads
                    or list(map(vars, self.objs)) != self.attrs):
                return False
            for items, saved in self.lists:
                if tuple(items) != saved:
                    return False
        except (TypeError, ValueError):  # an attribute replaced by an array compares element-wise
            return False
        return _context() == self.context


_DATA, _REQUIRES = operator.attrgetter("data"), operator.attrgetter("requires_grad")


class Plan:
    """A recorded step: its input arrays, forward and backward replays, and its outputs."""

    def __init__(self, rec: Recorder, x, y, loss, scores, params):
        self.x, self.y, self.loss, self.scores = x, y, loss, scores
        self.forward, self.backward = tuple(rec.forward), tuple(rec.backward)
        # zero_grad of the slots a gradient is added into; the others are written whole (or not at all)
        seen = {}
        for p in rec.leaves:
            seen.setdefault(id(p), p.grad)
        self.zeroed = tuple(seen.values())
        self.flags = tuple((p, p._gzero) for p in params)  # as the eager step leaves them
        self.host_why = rec.host_why if type(x) is not np.ndarray else "NumPy arrays"
        self.copy = backend.get_array_module(x).copyto
        self.graph = None  # the CUDA graph of the forward and backward replays, once captured

    def body(self) -> None:
        for replay in self.forward:
            replay()
        for replay in self.backward:
            replay()

    def run(self, x, y) -> None:
        """The step's zero_grad, forward and backward on mini-batch (x, y)."""
        copy = self.copy
        copy(self.x, x)
        copy(self.y, y)
        for grad in self.zeroed:
            grad.fill(0)
        if self.graph is not None:
            self.graph.launch()
        elif self.host_why is not None or not maybe_capture(self):
            self.body()
        for p, flag in self.flags:
            p._gzero = flag


class TrainStep:
    """``loss, scores = step(x, y)``: one training step of ``model`` on a mini-batch, captured
    after its first run with those shapes (see the module's documentation).

    ``check(loss, scores)`` runs on an eager step between the loss and its backward (nothing it
    does is recorded); ``scope()`` gives a context the forward pass runs in (a population's
    random streams)."""

    def __init__(self, model, loss_fn, optimizer, capture: bool | None = None, max_plans: int = 2):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.capture = enabled() if capture is None else bool(capture)
        self.max_plans = int(max_plans)
        self.plans: dict = {}
        self.state: _State | None = None
        self.why: str | None = None if self.capture else "capture is off"
        self.model_why: str | None = None
        self.refused: set = set()
        self.replays = 0  # steps replayed so far

    def __call__(self, x, y, check=None, scope=None):
        xd = x.data if isinstance(x, Tensor) else x
        yd = y.data if isinstance(y, Tensor) else y
        key = (xd.shape, xd.dtype, yd.shape, yd.dtype)
        opt = self.optimizer
        plan = self.plans.get(key) if self.capture else None
        if plan is not None and self.state.same():
            if scope is None:
                plan.run(xd, yd)
            else:
                with scope():
                    plan.run(xd, yd)
            opt.step()
            self.replays += 1
            return plan.loss, plan.scores
        return self._eager(xd, yd, key, check, scope)

    def _eager(self, xd, yd, key, check, scope):
        rec = self._recorder(key)
        if rec is not None:
            xd, yd = xd.copy(), yd.copy()  # the plan's input arrays
        opt = self.optimizer
        opt.zero_grad()
        with recording(rec) if rec is not None else nullcontext(), scope() if scope is not None else nullcontext():
            scores = self.model(Tensor(xd))
            loss = self.loss_fn(scores, yd)
            if check is not None:
                with paused():
                    check(loss, scores)
            loss.backward()
        if rec is not None:
            self._keep(rec, key, xd, yd, loss, scores)
        opt.step()
        return loss, scores

    def _recorder(self, key):
        """A recorder for this step, or None where it is not captured (:attr:`why` says why)."""
        if not self.capture or key in self.refused:
            return None
        if self.state is None or not self.state.same():  # something changed: the plans are stale
            self.plans.clear()
            self.refused.clear()
            self.state = _State(self.model, self.loss_fn)
            self.model_why = capturable(self.model, self.loss_fn)
            if self.model_why is None and not all(p._packed for p in self.model.parameters()):
                self.model_why = "a parameter is outside the optimizer's flat buffers"
        if self.model_why is not None:
            self.why = self.model_why
            return None
        if not _MODE.enabled or amp._STATE.dtype is not None:
            self.why = "gradients are off" if not _MODE.enabled else "autocast is on"
            return None
        return Recorder()

    def _keep(self, rec: Recorder, key, xd, yd, loss, scores) -> None:
        if rec.why is not None:
            self.why = rec.why
            self.refused.add(key)
            return
        if len(self.plans) >= self.max_plans:
            self.plans.pop(next(iter(self.plans)))
        self.plans[key] = Plan(rec, xd, yd, loss, scores, list(self.model.parameters()))
        self.why = None
