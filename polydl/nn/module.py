"""``Module``: parameters, buffers and sub-modules found by attribute, plus ``Sequential``."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Parameter, Tensor


class Module:
    """Base class of layers and models.

    Attributes that are ``Parameter`` are trained; other ``Tensor`` attributes are buffers
    (e.g. BatchNorm's running averages); ``Module`` attributes (and lists of them) are children.
    """

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ------------------------------------------------------------------ traversal
    def _members(self):
        for name, value in vars(self).items():
            if isinstance(value, (Tensor, Module)):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value):
                for i, v in enumerate(value):
                    yield (str(i) if name == "_layers" else f"{name}.{i}"), v

    def named_children(self):
        for name, value in self._members():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix=""):
        for name, value in self._members():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(value, Parameter):
                yield full, value
            elif isinstance(value, Module):
                yield from value.named_parameters(full)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for name, value in self._members():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(value, Tensor) and not isinstance(value, Parameter):
                yield full, value
            elif isinstance(value, Module):
                yield from value.named_buffers(full)

    def buffers(self):
        return [b for _, b in self.named_buffers()]

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    # ------------------------------------------------------------------ devices
    def to(self, device=None, dtype=None):
        """Move every parameter and buffer to ``device`` and/or cast floating ones to ``dtype``.

        Build optimizers after moving a model: the move gives parameters new arrays."""
        dev = backend.check_device(device) if device is not None else None
        dt = np.dtype(dtype) if dtype is not None else None
        if dt is not None and dt.kind != "f":
            raise ValueError(f"Module.to(dtype=...) needs a floating dtype, not {dt}")
        for t in list(self.parameters()) + list(self.buffers()):
            data = t.data
            if dev is not None:
                data = backend.to_device(data, dev)
            if dt is not None and data.dtype.kind == "f" and data.dtype != dt:
                data = data.astype(dt)
            if data is not t.data:
                t.data = data
                t.grad = None
                t._packed = False
                t._gzero = False
        return self

    @property
    def device(self) -> backend.Device:
        for p in self.parameters():
            return p.device
        return backend.CPU

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Parameters and buffers by dotted name, as NumPy arrays (copies)."""
        out = {}
        for name, p in self.named_parameters():
            out[name] = np.array(backend.to_numpy(p.data), copy=True)
        for name, b in self.named_buffers():
            out[name] = np.array(backend.to_numpy(b.data), copy=True)
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy values into the existing arrays (in place, so optimizers stay attached)."""
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        if strict:
            missing = sorted(set(own) - set(state))
            unexpected = sorted(set(state) - set(own))
            if missing or unexpected:
                raise KeyError(f"state_dict does not match the model: missing {missing}, unexpected {unexpected}")
        for name, t in own.items():
            if name not in state:
                continue
            value = backend.to_numpy(state[name]) if not hasattr(state[name], "device") else state[name]
            if tuple(value.shape) != tuple(t.data.shape):
                raise ValueError(f"state_dict entry '{name}' has shape {tuple(value.shape)}, "
                                 f"the model's has {tuple(t.data.shape)}")
            value = backend.to_device(value, backend.device_of(t.data))
            t.data[...] = value.astype(t.data.dtype, copy=False)

    def __repr__(self):
        kids = list(self.named_children())
        extra = self.extra_repr()
        if not kids:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}({extra}"]
        for name, child in kids:
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"

    def extra_repr(self) -> str:
        return ""


class Sequential(Module):
    """Modules applied in order; indexable, sliceable and iterable."""

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules, not {type(layer).__name__}")
        self._layers = list(layers)

    capturable = True  # its forward is made of polydl's ops (polydl.capture)

    def forward(self, x):
        layers = self._layers
        i, n = 0, len(layers)
        while i < n:
            layer = layers[i]
            fuse = getattr(layer, "forward_fused", None)
            if fuse is not None and i + 1 < n:
                out = fuse(x, layers[i + 1])  # e.g. BatchNorm then ReLU as one node
                if out is not None:
                    x = out
                    i += 2
                    continue
            x = layer(x)
            i += 1
        return x

    def append(self, layer: Module):
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential takes Modules, not {type(layer).__name__}")
        self._layers.append(layer)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        return self._layers[index]

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)
