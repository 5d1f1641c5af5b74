"""Parameters packed into one flat buffer per device and dtype.

After packing, each parameter's ``.data`` and ``.grad`` are views into ``FlatGroup.data`` and
``FlatGroup.grad``, so an optimizer step is a handful of whole-buffer operations and
``zero_grad`` is one ``fill``.
"""
from __future__ import annotations

from .. import backend


class FlatGroup:
    """Parameters of one device and dtype sharing one contiguous buffer (and one for gradients)."""

    def __init__(self, params):
        params = list(params)
        first = params[0].data
        xp = backend.get_array_module(first)
        self.xp = xp
        self.device = backend.device_of(first)
        self.dtype = first.dtype
        self.params = params
        total = sum(int(p.data.size) for p in params)
        with backend.device_context(self.device):
            self.data = xp.empty(total, dtype=self.dtype)
            self.grad = xp.zeros(total, dtype=self.dtype)
        self.slices = []
        self._views = []
        off = 0
        for p in params:
            n, shape = int(p.data.size), p.data.shape
            view = self.data[off:off + n]
            view[...] = p.data.reshape(-1)
            gview = self.grad[off:off + n]
            p._gzero = p.grad is None
            if p.grad is not None:
                gview[...] = p.grad.reshape(-1)
            p.data = view.reshape(shape)
            p.grad = gview.reshape(shape)
            p._packed = True
            self._views.append(p.data)
            self.slices.append((off, off + n))
            off += n
        self.size = total

    def check(self):
        """Raise if a parameter no longer lives in this buffer (its ``.data`` was replaced)."""
        for p, view in zip(self.params, self._views):
            if p.data is not view:
                raise RuntimeError(
                    "a parameter's array was replaced after the optimizer was built (for example by "
                    "Module.to); build the optimizer after moving or casting the model")


def pack(params) -> list[FlatGroup]:
    """Group parameters by (device, dtype) and pack each group into one buffer."""
    groups: dict = {}
    seen = set()
    for p in params:
        if id(p) in seen:
            continue
        seen.add(id(p))
        key = (backend.device_of(p.data), p.data.dtype)
        groups.setdefault(key, []).append(p)
    return [FlatGroup(ps) for ps in groups.values()]
