"""The optimizer base class: flat buffers, α and the hyperparameters, one update on three backends.

An optimizer owns its learning rate α: a number, or a schedule (``polydl.schedules``) that it
evaluates itself at its own position in the run (:mod:`polydl.optim.clock`), which
``state_dict()`` keeps (:mod:`polydl.optim.state`), so restoring the optimizer restores α.
``last_lr`` is the α the last step used. Every hyperparameter is validated when it is set, at
construction and after (:class:`~polydl.optim.hyper.Hyper`).

With g the gradient (plus ``weight_decay``·W for the weights when L2 regularisation is on; for
every parameter with ``weight_decay_all``), a step computes the update's coefficients once
(``_coefficients``) and applies it to each flat buffer (:mod:`polydl.optim.flat`) with one of
three forms of the same arithmetic:

- the compiled CPU kernel ``polydl.cpu_kernels.get(numba_kernel)`` (``_update_numba``), for a
  NumPy buffer where the kernels are on;
- the fused CUDA kernel (``_update_cuda``), for a CuPy buffer where it compiles;
- the NumPy/CuPy form (``_update_numpy``) otherwise.

Over the parameters of a population of P models (``polydl.nn`` with ``population=P``) the
buffers have shape (P, N), and every hyperparameter may be one value for all members or one
per member (a sequence of P values; α a sequence of numbers or schedules): member p is updated
exactly as the same optimizer over that member alone. ``freeze(p)`` stops member p.
"""
from __future__ import annotations

import numpy as np

from .. import backend, cpu_kernels
from ..checks import check_number
from ..schedules import Schedule
from ..tensor import Tensor
from .clock import RunClock
from .flat import pack
from .hyper import Hyper, is_seq, plain, rescale
from .state import StateDicts

__all__ = ["Optimizer"]


def _cast_numpy(value, dt):
    """A coefficient for the NumPy form: a scalar of the buffer's dtype, or a column (P, 1)."""
    return value.astype(dt)[:, None] if isinstance(value, np.ndarray) else dt.type(value)


def _cast_rows(value, dt, members):
    """A coefficient for a compiled per-member kernel: an array of P values of the buffer's dtype."""
    return value.astype(dt) if isinstance(value, np.ndarray) else np.full(members, value, dt)


def _scalars(coef: dict, dt) -> dict:
    """Each coefficient as a scalar of dtype ``dt`` (one conversion for all; the same rounding as
    ``dt.type(value)``)."""
    return dict(zip(coef, np.array(tuple(coef.values()), dtype=dt), strict=True))


_FORMS: dict = {}


def _own_form(cls, method: str) -> bool:
    """Whether the class that defines ``_update_numpy`` also defines ``method`` (a subclass that
    changes the update keeps its own form, not its parent's kernel)."""
    known = _FORMS.get((cls, method))
    if known is None:
        owner = next((k for k in cls.__mro__ if "_update_numpy" in k.__dict__), None)
        known = _FORMS[(cls, method)] = owner is not None and method in owner.__dict__
    return known


class Optimizer(RunClock, StateDicts):
    """Base class: packs parameters into flat buffers, owns α and its schedule, keeps state.

    Subclasses declare their hyperparameters as :class:`Hyper` attributes, put the numbers an
    update needs into ``_coefficients`` and implement ``_update_numpy`` (and optionally
    ``_update_numba`` and ``_update_cuda``); the coefficients reach them in the buffer's dtype
    (one value, or one per member)."""

    #: names of the per-parameter state buffers (same shape as the flat parameter buffer)
    state_names: tuple = ()
    #: state buffers kept divided by (1 − β) of the named hyperparameter, which saves a pass over
    #: the buffer per step (β x + (1 − β) g becomes β x' + g); changing β rescales them
    scaled_state: dict = {}
    #: name of the fused CPU kernel in ``polydl.cpu_kernels`` (None: NumPy form only); its
    #: per-member form for a population is ``<name>_rows``
    numba_kernel: str | None = None

    weight_decay = Hyper(0)

    def __init__(self, params, lr, weight_decay=0.0, weight_decay_all=False):
        if hasattr(params, "parameters") and callable(params.parameters):
            params = params.parameters()
        params = [p for p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizers take polydl tensors (model.parameters()), not {type(p).__name__}")
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError("optimizer got no parameters that require grad")
        groups = pack(params)
        members = {g.members for g in groups}
        if len(members) > 1:
            raise ValueError("optimizer parameters mix populations of different sizes "
                             f"({', '.join(str(m or 1) for m in sorted(members, key=lambda m: m or 0))}); "
                             "give each population its own optimizer")
        self.__dict__["members"] = members.pop()  # P, or None for an ordinary model
        self._start_clock()
        self.lr = lr
        self.weight_decay = weight_decay
        if not isinstance(weight_decay_all, (bool, np.bool_)):
            raise ValueError(f"weight_decay_all must be True or False, not {weight_decay_all!r}")
        self.weight_decay_all = bool(weight_decay_all)
        self.groups = groups
        self.state: list[dict] = [{} for _ in self.groups]   # created lazily at the first update
        self.step_count = 0      # updates taken (Adam's t)
        self.last_lr = None      # α of the last step (one per member for a population)
        self.frozen = None       # members that no longer train (bool array), or None
        self._decay_cache = {}

    # ------------------------------------------------------------------ hyperparameters
    @classmethod
    def hyperparameter_names(cls) -> list[str]:
        """``lr`` and the class's :class:`Hyper` attributes, base classes first."""
        names = ["lr"]
        for klass in reversed(cls.__mro__):
            names += [k for k, v in vars(klass).items() if isinstance(v, Hyper) and k not in names]
        return names

    @property
    def lr(self):
        """α: a number or a :class:`~polydl.schedules.Schedule` (for a population, one per member)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        if is_seq(value) and np.ndim(value) == 1:
            members = self.__dict__.get("members")
            values = list(value)
            if members is None or len(values) != members:
                raise ValueError(f"optimizer lr has {len(values)} values; one per member needs the parameters of a "
                                 f"population of {len(values)}" if members is None else
                                 f"optimizer lr has {len(values)} values, one per member needs {members}")
            rates = [self._one_lr(v, f"lr[{i}]") for i, v in enumerate(values)]
            self._lr = rates[0] if all(r is rates[0] or (type(r) is float and r == rates[0]) for r in rates) else rates
        else:
            self._lr = self._one_lr(value, "lr")
        self._rate_key = None

    @staticmethod
    def _one_lr(value, label):
        if isinstance(value, Schedule):
            return value
        if callable(value):
            return Schedule(getattr(value, "__name__", "schedule"), {}, value)
        return check_number(f"optimizer {label}", value, 0)

    def hyperparameters(self) -> dict:
        """Plain data: each hyperparameter's value (a list over members where they differ); a
        schedule as ``{"schedule": name, "params": ...}``."""
        return {name: plain(getattr(self, name)) for name in self.hyperparameter_names()}

    def member_hyperparameters(self, member: int) -> dict:
        """The hyperparameters of one member, as the same optimizer over that member alone has them."""
        out = {}
        for name in self.hyperparameter_names():
            value = getattr(self, name)
            if isinstance(value, (list, np.ndarray)):
                value = value[member]
            out[name] = plain(float(value) if isinstance(value, np.floating) else value)
        return out

    def _rescale_state(self, name, old, new) -> None:
        """β ``name`` changed from ``old`` to ``new``: rescale the buffers kept divided by (1 − β)."""
        for state in self.__dict__.get("state", ()):
            for buf, hyper in self.scaled_state.items():
                if hyper == name and buf in state:
                    rescale(state[buf], old, new)

    # ------------------------------------------------------------------ step
    def zero_grad(self):
        """Zero every flat gradient buffer (one ``fill``) and mark each parameter's slot freshly
        zeroed (``_gzero``: see :mod:`polydl.optim.flat`)."""
        for g in self.groups:
            g.grad.fill(0)
            for p in g.params:
                p._gzero = True

    def _decay_term(self, group):
        """``weight_decay`` times the decay mask (every parameter with ``weight_decay_all``), cached."""
        wd = self.weight_decay
        key = (id(group), wd if type(wd) is float else wd.tobytes(), self.weight_decay_all)
        term = self._decay_cache.get(key)
        if term is None:
            xp, dt = group.xp, group.dtype
            mask = xp.ones_like(group.decay_mask) if self.weight_decay_all else group.decay_mask
            if type(wd) is float:
                term = mask * dt.type(wd)
            else:
                term = backend.to_device(np.asarray(wd, dtype=dt)[:, None], group.device) * mask[None, :]
            self._decay_cache = {key: term}
        return term

    def step(self):
        """One update of every parameter from its gradient, with α at the current position."""
        lr = self._lr
        if type(lr) is not float:  # a schedule, or α per member
            lr = self.next_lr()
        self.step_count += 1
        coef = self._coefficients(lr)
        for group, state in zip(self.groups, self.state, strict=True):
            group.check()
            if not state:
                for name in self.state_names:
                    state[name] = group.xp.zeros_like(group.data)
            self._update_group(group, self._gradient(group), state, coef)
        self.last_lr = lr
        self._advance()

    def _gradient(self, group):
        """The group's gradient with weight decay added and frozen members' rows zeroed."""
        grad = group.grad
        wd = self.weight_decay
        if wd if type(wd) is float else wd.any():
            grad = grad + self._decay_term(group) * group.data
        if self.frozen is not None:
            grad[self.frozen] = 0
        return grad

    def _update_group(self, group, grad, state, coef) -> None:
        """Apply the update to one flat buffer: the compiled CPU kernel, else the fused CUDA
        kernel, else the NumPy/CuPy form."""
        dt = group.dtype
        if group.xp is np:
            kernel = self._numba_kernel(grad)
            if kernel is not None:
                if grad.ndim == 1:
                    rows = _scalars(coef, dt)
                else:
                    rows = {k: _cast_rows(v, dt, grad.shape[0]) for k, v in coef.items()}
                self._update_numba(kernel, group.data, grad, state, rows)
                return
        cast = {k: _cast_numpy(v, dt) for k, v in coef.items()}
        if group.xp is not np:
            cast = {k: backend.to_device(v, group.device) if isinstance(v, np.ndarray) else v
                    for k, v in cast.items()}
            if self._cuda_matches() and self._update_cuda(group, grad, state, cast):
                return
        if "tmp" not in state:  # scratch space of the NumPy form
            state["tmp"] = group.xp.empty_like(group.data)
        self._update_numpy(group.xp, group.data, grad, state, cast)

    def skip(self):
        """Count a mini-batch whose update is skipped (non-finite gradients under loss scaling):
        the position advances, the number of updates (Adam's t) does not."""
        self.last_lr = self.next_lr()
        self._advance()

    def freeze(self, member: int) -> None:
        """Stop training member ``member`` of a population: its gradients count as 0 from now on
        and its state is cleared, so its parameters keep the values they have now."""
        if self.members is None:
            raise ValueError("freeze needs the parameters of a population")
        if self.frozen is None:
            self.frozen = np.zeros(self.members, dtype=bool)
        self.frozen[member] = True
        for state in self.state:
            for name in self.state_names:
                if name in state:
                    state[name][member] = 0

    def _numba_kernel(self, grad):
        if self.numba_kernel is None or grad.dtype not in cpu_kernels.DTYPES or not self._numba_matches():
            return None
        return cpu_kernels.get(self.numba_kernel if grad.ndim == 1 else self.numba_kernel + "_rows", grad.size)

    @classmethod
    def _numba_matches(cls) -> bool:
        """The compiled kernel stands in for ``_update_numpy`` only where the class that defines
        ``_update_numpy`` also defines ``_update_numba``."""
        return _own_form(cls, "_update_numba")

    @classmethod
    def _cuda_matches(cls) -> bool:
        """The fused CUDA kernel stands in for ``_update_numpy`` only where the class that defines
        ``_update_numpy`` also defines ``_update_cuda``."""
        return _own_form(cls, "_update_cuda")

    # ------------------------------------------------------------------ what a subclass defines
    def _coefficients(self, lr) -> dict:
        """The numbers of this update (one, or one per member), computed once for all groups."""
        return {"lr": lr}

    def _update_numpy(self, xp, p, g, state, coef):
        """Update the flat parameter buffer ``p`` in place from the gradient ``g`` and the state
        arrays (``state["tmp"]`` is scratch space); ``coef`` holds the coefficients in ``p``'s
        dtype, scalars or columns (P, 1) over members."""
        raise NotImplementedError

    def _update_cuda(self, group, grad, state, coef) -> bool:
        """The same update as ``_update_numpy`` in one launch, through the fused CUDA kernel
        (``polydl.cuda_kernels``; ``coef``: scalars, or device columns (P, 1) that broadcast over a
        population's (P, N) buffers); False when there is none."""
        return False

    def _update_numba(self, kernel, p, g, state, coef):
        """The same update as ``_update_numpy`` in one pass, through the compiled CPU kernel
        (``coef``: scalars for a 1-D buffer, arrays of P values for a population's rows)."""
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"
