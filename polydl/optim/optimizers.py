"""Mini-batch gradient descent, momentum, RMSprop and Adam over flat parameter buffers.

With g the gradient (plus ``weight_decay``·W for the weights when L2 regularisation is on; for
every parameter with ``weight_decay_all``), at update t:

SGD       W ← W − α g
Momentum  v ← β v + (1 − β) g;                 W ← W − α v
RMSprop   s ← β s + (1 − β) g²;                W ← W − α g / (√s + ε)
Adam      m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;
          m̂ = m/(1 − β1ᵗ);  v̂ = v/(1 − β2ᵗ);  W ← W − α m̂ / (√v̂ + ε)

An optimizer owns its learning rate α: a number, or a schedule (``polydl.schedules``) that it
evaluates itself at its own position in the run (epoch, step; see :meth:`Optimizer.set_run`),
which ``state_dict()`` keeps, so restoring the optimizer restores α. ``last_lr`` is the α the
last step used. Every hyperparameter is validated when it is set, at construction and after.

Over the parameters of a population of P models (``polydl.nn`` with ``population=P``) the
buffers have shape (P, N), and every hyperparameter may be one value for all members or one
per member (a sequence of P values; α a sequence of numbers or schedules): member p is updated
exactly as the same optimizer over that member alone.
"""
from __future__ import annotations

import math
from itertools import repeat

import numpy as np

from .. import backend, cpu_kernels
from ..checks import check_number, check_whole
from ..schedules import SCHEDULE_UNITS, Position, Schedule
from ..tensor import Tensor
from .flat import pack

__all__ = ["Optimizer", "Hyper", "SGD", "Momentum", "RMSprop", "Adam"]


def _is_seq(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


class Hyper:
    """A hyperparameter of an optimizer class, validated on every set (``check_number`` with
    the bounds given here): a number, or for a population one number per member (kept as a
    float64 array). The value lives in the instance's ``__dict__``, so reading it is a plain
    attribute lookup. Setting a β that a state buffer is scaled by rescales that buffer."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def __set_name__(self, owner, name):
        self.name = name

    def check(self, value, members=None):
        if _is_seq(value):
            values = list(value.tolist() if isinstance(value, np.ndarray) else value)
            if members is None:
                raise ValueError(f"optimizer {self.name} must be one number (one per member only for the parameters "
                                 f"of a population), not {len(values)} values")
            if len(values) != members:
                raise ValueError(f"optimizer {self.name} has {len(values)} values, one per member needs {members}")
            return np.array([check_number(f"optimizer {self.name}[{i}]", v, self.low, self.high, low_open=self.low_open,
                                          high_open=self.high_open) for i, v in enumerate(values)])
        return check_number(f"optimizer {self.name}", value, self.low, self.high,
                            low_open=self.low_open, high_open=self.high_open)

    def __set__(self, obj, value):
        value = self.check(value, obj.__dict__.get("members"))
        if isinstance(value, np.ndarray) and np.all(value == value[0]):
            value = float(value[0])  # one value for every member: the scalar fast path
        old = obj.__dict__.get(self.name)
        obj.__dict__[self.name] = value
        if old is not None and not np.array_equal(old, value):
            obj._rescale_state(self.name, old, value)


def _cast_numpy(value, dt):
    """A coefficient for the NumPy form: a scalar of the buffer's dtype, or a column (P, 1)."""
    return value.astype(dt)[:, None] if isinstance(value, np.ndarray) else dt.type(value)


def _cast_rows(value, dt, members):
    """A coefficient for a compiled per-member kernel: an array of P values of the buffer's dtype."""
    return value.astype(dt) if isinstance(value, np.ndarray) else np.full(members, value, dt)


class Optimizer:
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
        self._rate_key = None
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
        # the position in the run, which a schedule is evaluated at
        self._epoch = 1          # the epoch being trained, from 1
        self.batch = 0           # mini-batches done in this epoch
        self.batches = 0         # mini-batches done in the run (updates and skipped ones)
        self.epochs = None
        self.steps_per_epoch = None
        self.schedule_unit = "epoch"

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
        if _is_seq(value) and np.ndim(value) == 1:
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
        out = {name: _plain(getattr(self, name)) for name in self.hyperparameter_names()}
        return out

    def member_hyperparameters(self, member: int) -> dict:
        """The hyperparameters of one member, as the same optimizer over that member alone has them."""
        out = {}
        for name in self.hyperparameter_names():
            value = getattr(self, name)
            if isinstance(value, (list, np.ndarray)):
                value = value[member]
            out[name] = _plain(float(value) if isinstance(value, np.floating) else value)
        return out

    def _rescale_state(self, name, old, new):
        factor = (1.0 - np.asarray(old)) / (1.0 - np.asarray(new))
        for state in self.__dict__.get("state", ()):
            for buf, hyper in self.scaled_state.items():
                if hyper == name and buf in state:
                    arr = state[buf]
                    f = factor.astype(arr.dtype)
                    arr *= f[:, None] if f.ndim else arr.dtype.type(f)

    # ------------------------------------------------------------------ the position
    def set_run(self, epochs=None, steps_per_epoch=None, schedule_unit="epoch") -> "Optimizer":
        """The run's shape, which the schedule sees: ``epochs`` (its length), ``steps_per_epoch``
        (mini-batches per epoch: after that many steps the next epoch begins) and
        ``schedule_unit``, ``"epoch"`` (α read once per epoch, at its first step) or ``"step"``
        (α read at every step, at the fractional epoch). Without ``steps_per_epoch`` the epoch
        advances only when :attr:`epoch` is set."""
        self.epochs = None if epochs is None else check_whole("epochs", epochs, 1)
        self.steps_per_epoch = None if steps_per_epoch is None else check_whole("steps_per_epoch", steps_per_epoch, 1)
        if schedule_unit not in SCHEDULE_UNITS:
            raise ValueError(f"schedule_unit must be 'epoch' or 'step', not {schedule_unit!r}")
        self.schedule_unit = schedule_unit
        self._rate_key = None
        return self

    @property
    def epoch(self) -> int:
        """The epoch being trained, from 1; setting it starts that epoch (its first step is next)."""
        return self._epoch

    @epoch.setter
    def epoch(self, value):
        self._epoch = check_whole("epoch", value, 1)
        self.batch = 0

    def position(self) -> Position:
        """The position of the next step."""
        return Position(self._epoch, self.batches + 1, self.batch, self.steps_per_epoch, self.epochs)

    def next_lr(self):
        """α for the next step: the number, or the schedule at the next step's position (per
        epoch: at the epoch's first step); for a population with α per member, an array."""
        lr = self._lr
        if type(lr) is float:
            return lr
        key = self._epoch if self.schedule_unit == "epoch" else -1 - self.batches
        if key != self._rate_key:
            pos = self.position().read_at(self.schedule_unit)
            if isinstance(lr, list):
                self._rate = np.array([r if type(r) is float else r(pos) for r in lr])
            else:
                self._rate = lr(pos)
            self._rate_key = key
        return self._rate

    def _advance(self):
        self.batches += 1
        self.batch += 1
        if self.steps_per_epoch is not None and self.batch >= self.steps_per_epoch:
            self._epoch += 1
            self.batch = 0

    # ------------------------------------------------------------------ step
    def zero_grad(self):
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
        for group, state in zip(self.groups, self.state):
            group.check()
            if not state:
                for name in self.state_names:
                    state[name] = group.xp.zeros_like(group.data)
            grad = group.grad
            wd = self.weight_decay
            if wd if type(wd) is float else wd.any():
                grad = grad + self._decay_term(group) * group.data
            if self.frozen is not None:
                grad[self.frozen] = 0
            dt = group.dtype
            if group.xp is np:
                kernel = self._numba_kernel(grad)
                if kernel is not None:
                    if grad.ndim == 1:
                        T = dt.type
                        rows = {k: T(v) for k, v in coef.items()}
                    else:
                        rows = {k: _cast_rows(v, dt, grad.shape[0]) for k, v in coef.items()}
                    self._update_numba(kernel, group.data, grad, state, rows)
                    continue
            cast = {k: _cast_numpy(v, dt) for k, v in coef.items()}
            if group.xp is not np:
                cast = {k: backend.to_device(v, group.device) if isinstance(v, np.ndarray) else v
                        for k, v in cast.items()}
                if self._cuda_matches() and self._update_cuda(group, grad, state, cast):
                    continue
            if "tmp" not in state:  # scratch space of the NumPy form
                state["tmp"] = group.xp.empty_like(group.data)
            self._update_numpy(group.xp, group.data, grad, state, cast)
        self.last_lr = lr
        self._advance()

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
        ``_update_numpy`` also defines ``_update_numba`` (a subclass that changes the update keeps
        its own)."""
        for klass in cls.__mro__:
            if "_update_numpy" in klass.__dict__:
                return "_update_numba" in klass.__dict__
        return False

    @classmethod
    def _cuda_matches(cls) -> bool:
        """The fused CUDA kernel stands in for ``_update_numpy`` only where the class that defines
        ``_update_numpy`` also defines ``_update_cuda``."""
        for klass in cls.__mro__:
            if "_update_numpy" in klass.__dict__:
                return "_update_cuda" in klass.__dict__
        return False

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

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain data: the number of updates, the position in the run, the hyperparameters and
        NumPy copies of the state buffers (those named in ``scaled_state`` hold the moving average
        divided by (1 − β))."""
        return {
            "type": type(self).__name__,
            "step": int(self.step_count),
            "position": self._position_dict(),
            "last_lr": _plain(self.last_lr),
            "hyperparameters": self.hyperparameters(),
            "state": [{k: np.array(backend.to_numpy(v), copy=True) for k, v in buffers.items() if k != "tmp"}
                      for buffers in self.state],
        }

    def member_state_dict(self, member: int) -> dict:
        """Member ``member``'s ``state_dict``: exactly what the same optimizer over that member
        alone would give (its row of each buffer, its hyperparameters, the shared position)."""
        last = self.last_lr
        return {
            "type": type(self).__name__,
            "step": int(self.step_count),
            "position": self._position_dict(),
            "last_lr": float(last[member]) if isinstance(last, np.ndarray) else last,
            "hyperparameters": self.member_hyperparameters(member),
            "state": [{k: np.array(backend.to_numpy(v[member]), copy=True) for k, v in buffers.items() if k != "tmp"}
                      for buffers in self.state],
        }

    def _position_dict(self) -> dict:
        return {"epoch": self._epoch, "batch": self.batch, "batches": self.batches, "epochs": self.epochs,
                "steps_per_epoch": self.steps_per_epoch, "schedule_unit": self.schedule_unit}

    def _check_groups(self, states, member=None):
        if len(states) != len(self.groups):
            raise ValueError(f"optimizer state has {len(states)} parameter groups, this optimizer {len(self.groups)}")
        for group, buffers in zip(self.groups, states):
            want = group.data.shape if member is None else (group.size,)
            for k, v in buffers.items():
                if tuple(v.shape) != tuple(want):
                    raise ValueError(f"optimizer state '{k}' has shape {tuple(v.shape)}, expected {tuple(want)}: "
                                     "the model does not match this checkpoint")

    def load_state_dict(self, sd: dict, hyperparameters: bool = True) -> None:
        """Restore the state buffers, the number of updates and the position; and, unless
        ``hyperparameters`` is False, the saved hyperparameters (α, its schedule, the βs). With
        False the optimizer keeps its own (a resumed run with a new α or β), and buffers scaled by
        a β are rescaled from the saved β to this optimizer's."""
        if sd.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"optimizer state is for {sd['type']}, not {type(self).__name__}")
        states = sd["state"]
        self._check_groups(states)
        saved = dict(sd.get("hyperparameters", {}))
        if hyperparameters:
            for k, v in saved.items():
                if k == "lr":
                    self.lr = _restore_lr(v, self._lr)
                else:
                    setattr(self, k, v)
        new = []
        for group, buffers in zip(self.groups, states):
            out = {}
            for k, v in buffers.items():
                # a copy: stepping must not write into the caller's state dict
                arr = np.array(v, dtype=group.dtype, copy=True)
                hyper = self.scaled_state.get(k)
                if hyper is not None and hyper in saved:
                    old, now = np.asarray(saved[hyper], dtype=np.float64), np.asarray(getattr(self, hyper))
                    if not np.array_equal(old, now):
                        f = ((1.0 - old) / (1.0 - now)).astype(arr.dtype)
                        arr *= f[:, None] if f.ndim else arr.dtype.type(f)
                out[k] = backend.to_device(arr, group.device)
            new.append(out)
        self.state = new
        self.step_count = int(sd["step"])
        self.last_lr = np.array(sd["last_lr"]) if isinstance(sd.get("last_lr"), list) else sd.get("last_lr")
        self._load_position(sd.get("position"))

    def load_member_state_dict(self, member: int, sd: dict) -> None:
        """Load one member's ``state_dict`` (as :meth:`member_state_dict` gives, or a single run's)
        into its rows; the hyperparameters stay the optimizer's own."""
        if sd.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"optimizer state is for {sd['type']}, not {type(self).__name__}")
        states = sd["state"]
        self._check_groups(states, member)
        saved = dict(sd.get("hyperparameters", {}))
        for group, state, buffers in zip(self.groups, self.state, states):
            for name in self.state_names:
                if name not in state:
                    state[name] = group.xp.zeros_like(group.data)
            for k, v in buffers.items():
                arr = np.array(v, dtype=group.dtype, copy=True)
                hyper = self.scaled_state.get(k)
                if hyper is not None and hyper in saved:
                    now = getattr(self, hyper)
                    now = float(now[member]) if isinstance(now, np.ndarray) else now
                    if saved[hyper] != now:
                        arr *= arr.dtype.type((1.0 - saved[hyper]) / (1.0 - now))
                state[k][member] = backend.to_device(arr, group.device)
        self.step_count = int(sd["step"])
        self._load_position(sd.get("position"))

    def _load_position(self, pos):
        if pos is not None:
            self.set_run(pos.get("epochs"), pos.get("steps_per_epoch"), pos.get("schedule_unit", "epoch"))
            self._epoch, self.batch, self.batches = int(pos["epoch"]), int(pos["batch"]), int(pos["batches"])
        self._rate_key = None

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


def _plain(value):
    """A hyperparameter as JSON-able data: numbers, lists over members, schedules as dicts."""
    if isinstance(value, Schedule):
        return {"schedule": value.name, "params": dict(value.params)}
    if isinstance(value, np.ndarray):
        return [float(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _restore_lr(saved, current):
    """α from a state dict: numbers as they are; a schedule kept if it is the optimizer's own,
    else rebuilt by name from the registry."""
    if isinstance(saved, list):
        cur = current if isinstance(current, list) else [current] * len(saved)
        return [_restore_lr(s, c) for s, c in zip(saved, cur)]
    if isinstance(saved, dict):
        if isinstance(current, Schedule) and current.name == saved["schedule"] and current.params == saved["params"]:
            return current
        from .. import schedules
        return schedules.get(saved["schedule"], **saved["params"])
    return saved


def _sqrt(x):
    """√x of a Python float (math.sqrt, the scalar fast path) or of an array over members."""
    return math.sqrt(x) if type(x) is float else np.sqrt(x)


def _power(x, t):
    """xᵗ of a Python float, or of an array over members member by member with the same scalar
    pow (NumPy's vectorised pow, SVML on AVX-512 CPUs, can differ from it in the last bit, and a
    member must be updated exactly as the same model alone)."""
    if type(x) is float:
        return x ** t
    return np.fromiter(map(pow, x.tolist(), repeat(float(t))), np.float64, len(x))  # a member's hyperparameters: (P,) float64


def _rms_step(xp, p, numerator, g, s, beta, step_size, eps_hat, tmp):
    """s ← β s + g²;  p ← p − step_size · numerator / (√s + eps_hat), in place (the second-moment
    step that RMSprop (numerator g) and Adam (numerator m) share)."""
    s *= beta
    xp.multiply(g, g, out=tmp)
    s += tmp
    xp.sqrt(s, out=tmp)
    tmp += eps_hat
    xp.divide(numerator, tmp, out=tmp)
    tmp *= step_size
    p -= tmp


class SGD(Optimizer):
    """Mini-batch gradient descent: W ← W − α g."""

    numba_kernel = "sgd"

    def __init__(self, params, lr=0.01, weight_decay=0.0, weight_decay_all=False):
        super().__init__(params, lr, weight_decay, weight_decay_all)

    def _update_numpy(self, xp, p, g, state, coef):
        tmp = state["tmp"]
        xp.multiply(g, coef["lr"], out=tmp)
        p -= tmp

    def _update_numba(self, kernel, p, g, state, coef):
        kernel(p, g, coef["lr"])

    def _update_cuda(self, group, grad, state, coef):
        kernel = backend.fused_kernel("sgd")
        if kernel is None:
            return False
        kernel(grad, coef["lr"], group.data)
        return True


class Momentum(Optimizer):
    """Gradient descent with momentum: v ← β v + (1 − β) g; W ← W − α v."""

    state_names = ("v",)
    scaled_state = {"v": "beta"}  # v' = v/(1 − β): v' ← β v' + g; W ← W − α(1 − β) v'
    numba_kernel = "momentum"
    beta = Hyper(0.0, 1.0, high_open=True)

    def __init__(self, params, lr=0.01, beta=0.9, weight_decay=0.0, weight_decay_all=False):
        super().__init__(params, lr, weight_decay, weight_decay_all)
        self.beta = beta

    def _coefficients(self, lr):
        return {"lr": lr, "beta": self.beta, "step_size": lr * (1 - self.beta)}

    def _update_numpy(self, xp, p, g, state, coef):
        v, tmp = state["v"], state["tmp"]
        v *= coef["beta"]
        v += g
        xp.multiply(v, coef["step_size"], out=tmp)
        p -= tmp

    def _update_numba(self, kernel, p, g, state, coef):
        kernel(p, g, state["v"], coef["beta"], coef["step_size"])

    def _update_cuda(self, group, grad, state, coef):
        kernel = backend.fused_kernel("momentum")
        if kernel is None:
            return False
        kernel(grad, coef["beta"], coef["step_size"], group.data, state["v"])
        return True


class RMSprop(Optimizer):
    """s ← β s + (1 − β) g²; W ← W − α g / (√s + ε)."""

    state_names = ("s",)
    scaled_state = {"s": "beta"}  # s' = s/(1 − β): α g/(√s + ε) = (α/√(1 − β)) g/(√s' + ε/√(1 − β))
    numba_kernel = "rmsprop"
    beta = Hyper(0.0, 1.0, high_open=True)
    eps = Hyper(0.0, low_open=True)

    def __init__(self, params, lr=0.001, beta=0.999, eps=1e-8, weight_decay=0.0, weight_decay_all=False):
        super().__init__(params, lr, weight_decay, weight_decay_all)
        self.beta = beta
        self.eps = eps

    def _coefficients(self, lr):
        root = _sqrt(1 - self.beta)
        return {"lr": lr, "beta": self.beta, "step_size": lr / root, "eps_hat": self.eps / root}

    def _update_numpy(self, xp, p, g, state, coef):
        _rms_step(xp, p, g, g, state["s"], coef["beta"], coef["step_size"], coef["eps_hat"], state["tmp"])

    def _update_numba(self, kernel, p, g, state, coef):
        kernel(p, g, state["s"], coef["beta"], coef["step_size"], coef["eps_hat"])

    def _update_cuda(self, group, grad, state, coef):
        kernel = backend.fused_kernel("rmsprop")
        if kernel is None:
            return False
        kernel(grad, coef["beta"], coef["step_size"], coef["eps_hat"], group.data, state["s"])
        return True


class Adam(Optimizer):
    """Adam with bias correction (β1 = 0.9, β2 = 0.999, ε = 1e-8 by default)."""

    state_names = ("m", "v")
    scaled_state = {"m": "beta1", "v": "beta2"}  # m' = m/(1 − β1), v' = v/(1 − β2)
    numba_kernel = "adam"
    beta1 = Hyper(0.0, 1.0, high_open=True)
    beta2 = Hyper(0.0, 1.0, high_open=True)
    eps = Hyper(0.0, low_open=True)

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 weight_decay_all=False):
        super().__init__(params, lr, weight_decay, weight_decay_all)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps

    def _coefficients(self, lr):
        # with bc = 1 − βᵗ and r = √((1 − β2)/bc2): m̂ = (1 − β1) m'/bc1, √v̂ = r √v', so
        # α m̂/(√v̂ + ε) = [α (1 − β1)/(bc1 r)] · m'/(√v' + ε/r)
        t, b1, b2 = self.step_count, self.beta1, self.beta2
        if type(b1) is float and type(b2) is float:  # the scalar fast path, without the calls
            bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
            r = math.sqrt((1.0 - b2) / bc2)
        else:
            bc1, bc2 = 1.0 - _power(b1, t), 1.0 - _power(b2, t)
            r = _sqrt((1.0 - b2) / bc2)
        return {"lr": lr, "beta1": self.beta1, "beta2": self.beta2,
                "step_size": lr * (1.0 - self.beta1) / (bc1 * r), "eps_hat": self.eps / r}

    def _update_numpy(self, xp, p, g, state, coef):
        m = state["m"]
        m *= coef["beta1"]
        m += g
        _rms_step(xp, p, m, g, state["v"], coef["beta2"], coef["step_size"], coef["eps_hat"], state["tmp"])

    def _update_numba(self, kernel, p, g, state, coef):
        kernel(p, g, state["m"], state["v"], coef["beta1"], coef["beta2"], coef["step_size"], coef["eps_hat"])

    def _update_cuda(self, group, grad, state, coef):
        kernel = backend.fused_kernel("adam")
        if kernel is None:
            return False
        kernel(grad, coef["beta1"], coef["beta2"], coef["step_size"], coef["eps_hat"],
               group.data, state["m"], state["v"])
        return True
