"""A population of a model that has no population form, trained member by member.

:class:`ModelByMember` holds P copies of one model (each built as the same configuration alone
builds it). Their parameters and buffers are stacked, shape (P, ...), under the names the model
alone gives them, so that a population's optimizer trains them with one row per member and a
member's checkpoint holds the model alone's; the copies themselves are not part of the module
tree. Member k's forward pass runs its own copy with member k's rows bound in, so every member
computes exactly what the model alone computes: the same results as P separate runs, more slowly
than a model built for populations.
"""
from __future__ import annotations

from contextlib import nullcontext

from .. import backend
from .. import random as _random
from ..nn.module import Module
from ..tensor import Parameter, Tensor

__all__ = ["ModelByMember"]


def _slots(module: Module, prefix: str = ""):
    """(name, owner, attribute, tensor) of every parameter and buffer of ``module``, in the order
    (and with the names) of ``named_parameters`` and ``named_buffers``."""
    for name, value in module._members():
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(value, Tensor):
            yield full, module, name, value  # a tensor is always an attribute of its owner
        else:
            yield from _slots(value, full)


class ModelByMember(Module):
    """P models of one shape as a population: ``modules`` the P copies (member k's weights are
    copy k's; they may differ in layers without parameters, such as a Dropout that one member
    has, and the stacked tensors take the first copy's names). It maps rows shared by every member (batch, F) or one set per member (P, batch, F)
    to (P, batch, outputs). In training, member k's random draws (dropout) come from member k's
    stream where a population's streams are set (``polydl.random.members``)."""

    def __init__(self, modules: list, name: str = "model"):
        modules = list(modules)
        if not modules or not all(isinstance(m, Module) for m in modules):
            raise ValueError("ModelByMember needs one polydl.nn.Module per member")
        proto, P = modules[0], len(modules)
        self.label, self.population = name, P
        self.min_batch = max((int(getattr(m, "min_batch", 1)) for m in proto.modules()), default=1)
        slots = [list(_slots(m)) for m in modules]
        kinds = [(isinstance(t, Parameter), tuple(t.shape)) for _, _, _, t in slots[0]]
        if any([(isinstance(t, Parameter), tuple(t.shape)) for _, _, _, t in other] != kinds for other in slots[1:]):
            raise ValueError("ModelByMember needs P copies of one model (parameters and buffers of the same shapes, in "
                             "the same order)")
        self._copies = {"modules": modules, "slots": slots, "names": [s[0] for s in slots[0]]}  # not children
        for i, (full, _, _, t) in enumerate(slots[0]):
            xp = backend.get_array_module(t.data)
            data = xp.stack([s[i][3].data for s in slots])
            setattr(self, full, Parameter(data, members=P, decay=t.decay) if isinstance(t, Parameter) else Tensor(data))

    def _input(self, x, k: int):
        """Member k's input: its own of a (P, batch, F) input, else the shared rows."""
        return x[k] if x.ndim == 3 and x.shape[0] == self.population else x

    def _bind(self, k: int, slots) -> list:
        """Bind member k's rows into its copy; the rows, in the order of ``slots``."""
        rows = []
        for full, (_, owner, attr, _) in zip(self._copies["names"], slots, strict=True):
            stacked = getattr(self, full)
            row = stacked[k] if isinstance(stacked, Parameter) else Tensor(stacked.data[k])
            setattr(owner, attr, row)
            rows.append(row)
        return rows

    def _keep_buffers(self, k: int, slots, rows) -> None:
        """A buffer that the copy replaced (rather than updated in place) goes back into row k."""
        for full, (_, owner, attr, _), row in zip(self._copies["names"], slots, rows, strict=True):
            now = getattr(owner, attr)
            if not isinstance(getattr(self, full), Parameter) and (now is not row or now.data is not row.data):
                getattr(self, full).data[k] = now.data

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        streams = _random.member_streams() if self.training else None
        if streams is not None and len(streams) != self.population:
            streams = None
        out = []
        for k, (module, slots) in enumerate(zip(self._copies["modules"], self._copies["slots"], strict=True)):
            module.train(self.training)
            rows = self._bind(k, slots)
            with _random.using(streams[k]) if streams is not None else nullcontext():
                out.append(module(self._input(x, k)))
            self._keep_buffers(k, slots, rows)
        from ..functional import stack
        return stack(out)

    def extra_repr(self):
        return f"{self.label} member by member, population={self.population}"
