"""Normalization layers by name: ``get(name, num_features, **params)`` returns a Module.

``batchnorm``  z̃ = γ · (z − μ_B) / √(σ²_B + ε) + β with mini-batch statistics (running averages in
              evaluation mode); ``none``  the identity.

For a population of P models, ``get(name, num_features, population=P)`` returns a Module of a
(P, m, F) input, each member normalised with its own parameters and buffers (shape (P, ...)). A
factory that takes ``population`` (the built-ins do) builds it; any other normalizer is applied
member by member (:class:`MemberByMember`).
"""
from __future__ import annotations

from . import backend, cpu_kernels
from .hookspecs import hookimpl
from .nn.module import Module
from .registry import RegistrationError, Registry
from .tensor import Parameter, Tensor


def _validate(name, factory):
    """A factory ``(num_features, **params) -> Module`` whose Module maps a (batch, num_features)
    Tensor to a Tensor of the same shape, in training and in evaluation mode."""
    if not callable(factory):
        raise RegistrationError(f"normalizer '{name}' must be a callable factory(num_features, **params)")
    import numpy as np

    from .tensor import tensor
    try:
        probe = factory(4)
    except TypeError as exc:
        raise RegistrationError(f"normalizer factory '{name}' must accept num_features as its first argument "
                                f"({exc})") from exc
    if not isinstance(probe, Module):
        raise RegistrationError(f"normalizer factory '{name}' returned {type(probe).__name__}, "
                                "not a polydl.nn.Module")
    x = tensor(np.array([[0.5, -1.0, 2.0, 0.1], [1.5, 0.25, -0.5, -0.3], [-2.0, 1.0, 0.0, 0.7]],
                        dtype=np.float32), requires_grad=True)
    for mode in ("training", "evaluation"):
        probe.train(mode == "training")
        try:
            with cpu_kernels.use("off"):  # the NumPy forms: checking a plugin must not import Numba
                out = probe(x)
        except Exception as exc:
            raise RegistrationError(f"normalizer '{name}' failed in {mode} mode on a batch of shape (3, 4): "
                                    f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(out, Tensor) or tuple(out.shape) != (3, 4):
            got = f"a Tensor of shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
            raise RegistrationError(f"normalizer '{name}' must map a (batch, num_features) Tensor to a Tensor of "
                                    f"the same shape; on (3, 4) in {mode} mode it gave {got}")


#: ``population`` is passed by ``nn.mlp`` for a population; a factory may take ``dtype`` and ``device`` (where its parameters start), but polydl never passes them:
#: ``polydl.nn.mlp`` builds the normalizer with its defaults and the model is moved with ``Module.to``
registry = Registry("normalizers", _validate, singular="normalizer", internal=("population", "dtype", "device"))


def _tensors(module: Module, prefix: str = ""):
    """(name, owner, attribute, tensor) of every parameter and buffer of ``module``, in the order
    (and with the names) of ``named_parameters`` and ``named_buffers``."""
    for name, value in module._members():
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(value, Tensor):
            yield full, module, name, value
        else:
            yield from _tensors(value, full)


class MemberByMember(Module):
    """A normalizer written for one model, for a population: member k's copy normalises member
    k's (m, F) rows of a (P, m, F) input, with member k's row of each parameter and buffer. The
    parameters and buffers are stacked, shape (P, ...), under the names the module alone gives
    them (so the optimizer trains them as a population's and a member's checkpoint holds the
    module alone's); the copies are not part of the module tree."""

    def __init__(self, modules: list, name: str = "normalizer"):
        proto, P = modules[0], len(modules)
        self.label, self.population = name, P
        self.cancels_bias = bool(getattr(proto, "cancels_bias", False))
        self.min_batch = int(getattr(proto, "min_batch", 1))
        slots = [list(_tensors(m)) for m in modules]
        self._copies = {"modules": list(modules), "slots": slots}  # a dict: not traversed as children
        for i, (full, _, _, t) in enumerate(slots[0]):
            xp = backend.get_array_module(t.data)
            data = xp.stack([s[i][3].data for s in slots])
            setattr(self, full, Parameter(data, members=P, decay=t.decay) if isinstance(t, Parameter) else Tensor(data))

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        P = self.population
        if x.ndim != 3 or x.shape[0] != P:
            raise ValueError(f"{self.label} member by member needs a population's input, shape ({P}, batch, features), "
                             f"not {tuple(x.shape)}")
        out = []
        for k, (module, slots) in enumerate(zip(self._copies["modules"], self._copies["slots"], strict=True)):
            module.train(self.training)
            rows = []
            for full, owner, attr, _ in slots:
                stacked = getattr(self, full)
                row = stacked[k] if isinstance(stacked, Parameter) else Tensor(stacked.data[k])
                setattr(owner, attr, row)
                rows.append(row)
            out.append(module(x[k]))
            for (full, owner, attr, _), row in zip(slots, rows, strict=True):  # a buffer the module replaced goes back
                now = getattr(owner, attr)
                if not isinstance(getattr(self, full), Parameter) and (now is not row or now.data is not row.data):
                    getattr(self, full).data[k] = now.data
        from .functional import stack
        return stack(out)

    def extra_repr(self):
        return f"{self.label} member by member, population={self.population}"


def takes_population(name: str) -> bool:
    """Whether the factory of normalizer ``name`` declares ``population`` (builds a module that
    normalises a population itself)."""
    return "population" in registry.parameters(name, internal=True)


def get(name: str, num_features: int, population: int | None = None, **params):
    """A normalization Module for ``num_features`` features, e.g. ``get("batchnorm", 64, momentum=0.9)``;
    ``population=P`` one for each of P members (:class:`MemberByMember` where the factory takes no
    ``population``)."""
    if population is not None and not takes_population(name):
        from .nn.layers import check_population

        P = check_population(population)
        return MemberByMember([get(name, num_features, **params) for _ in range(P)], name)
    if population is not None:
        params = {**params, "population": population}
    module = registry.build(name, num_features, **params)
    if not isinstance(module, Module):
        raise ValueError(f"normalizer factory '{name}' returned {type(module).__name__}, not a polydl.nn.Module")
    return module


def names():
    return registry.names()


def _batchnorm(num_features, momentum=0.9, eps=1e-5, population=None):
    from .nn.batchnorm import BatchNorm
    return BatchNorm(num_features, momentum=momentum, eps=eps, population=population)


def _none(num_features, population=None):
    from .nn.layers import Identity
    return Identity()


@hookimpl
def polydl_register_normalizers(register):
    register("batchnorm", _batchnorm)
    register("none", _none)
