"""Parameters packed into one flat buffer per device, dtype and population size.

After packing, each parameter's ``.data`` and ``.grad`` are views into ``FlatGroup.data`` and
``FlatGroup.grad``, so an optimizer step is a handful of whole-buffer operations and
``zero_grad`` is one ``fill``. Parameters of a population of P models (``Parameter.members``)
share a buffer of shape (P, N): row p holds member p's parameters in the order a single model
of that shape has them, so a member's row is exactly the flat buffer it would have alone.

The gradient-buffer contract
----------------------------
Two flags on a packed parameter (``polydl.Tensor`` slots) let an op write a gradient straight
into the flat buffer instead of returning it for autodiff to add:

- ``p._packed``: ``p.grad`` is a view into ``FlatGroup.grad`` (set here). Autodiff accumulates
  into it in place (``p.grad += g``) and never replaces it.
- ``p._gzero``: ``p``'s slot holds zeros now. It is set here (for a parameter without a
  gradient yet), by ``Optimizer.zero_grad`` and by ``Tensor.zero_grad``; it is cleared by
  every accumulation into the slot and by ``Module.to`` (which also clears ``_packed``).

An op whose backward computes a parameter's whole gradient in one product may, while
``p._gzero`` is True, write it into ``p.grad`` (``out=``), clear ``p._gzero`` and return None
for that parent; otherwise (the parameter already received a gradient in this backward, e.g. a
weight shared by two layers) it returns the gradient as usual. The result is the same either
way; the direct write saves a temporary and a pass over it. ``polydl.ops.linear`` does this for
W (and b).
"""
from __future__ import annotations

from .. import backend


class FlatGroup:
    """Parameters of one device, dtype and population size sharing one contiguous buffer (and one
    for gradients): shape (N,), or (P, N) for a population of P members."""

    def __init__(self, params):
        params = list(params)
        first = params[0].data
        xp = backend.get_array_module(first)
        self.xp = xp
        self.device = backend.device_of(first)
        self.dtype = first.dtype
        self.members = getattr(params[0], "members", None)
        self.params = params
        lead = () if self.members is None else (self.members,)
        per = [int(p.data.size) // (self.members or 1) for p in params]
        total = sum(per)
        with backend.device_context(self.device):
            self.data = xp.empty(lead + (total,), dtype=self.dtype)
            self.grad = xp.zeros(lead + (total,), dtype=self.dtype)
            mask = xp.zeros(total, dtype=self.dtype)
        self.slices = []
        self._views = []
        off = 0
        for p, n in zip(params, per, strict=True):
            shape = p.data.shape
            view = self.data[..., off:off + n]
            view[...] = p.data.reshape(lead + (n,))
            gview = self.grad[..., off:off + n]
            p._gzero = p.grad is None
            if p.grad is not None:
                gview[...] = p.grad.reshape(lead + (n,))
            p.data = view.reshape(shape)
            p.grad = gview.reshape(shape)
            p._packed = True
            if getattr(p, "decay", p.data.ndim - len(lead) >= 2):
                mask[off:off + n] = 1
            self._views.append(p.data)
            self.slices.append((off, off + n))
            off += n
        self.size = total
        #: 1 where L2 weight decay applies (weights), 0 elsewhere (biases, γ, β)
        self.decay_mask = mask

    def check(self):
        """Raise if a parameter no longer lives in this buffer (its ``.data`` was replaced)."""
        for p, view in zip(self.params, self._views, strict=True):
            if p.data is not view:
                raise RuntimeError(
                    "a parameter's array was replaced after the optimizer was built (for example by "
                    "Module.to); build the optimizer after moving or casting the model")


def pack(params) -> list[FlatGroup]:
    """Group parameters by (device, dtype, population size) and pack each group into one buffer."""
    groups: dict = {}
    seen = set()
    for p in params:
        if id(p) in seen:
            continue
        seen.add(id(p))
        key = (backend.device_of(p.data), p.data.dtype, getattr(p, "members", None))
        groups.setdefault(key, []).append(p)
    return [FlatGroup(ps) for ps in groups.values()]
