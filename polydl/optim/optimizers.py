"""Mini-batch gradient descent, momentum, RMSprop and Adam over flat parameter buffers.

With g the gradient (plus ``weight_decay``·W when L2 regularisation is on), at update t:

SGD       W ← W − α g
Momentum  v ← β v + (1 − β) g;                 W ← W − α v
RMSprop   s ← β s + (1 − β) g²;                W ← W − α g / (√s + ε)
Adam      m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;
          m̂ = m/(1 − β1ᵗ);  v̂ = v/(1 − β2ᵗ);  W ← W − α m̂ / (√v̂ + ε)

An optimizer owns its learning rate α: a number, or a schedule (``polydl.schedules``) that it
evaluates itself at its own position in the run (epoch, step; see :meth:`Optimizer.set_run`),
which ``state_dict()`` keeps, so restoring the optimizer restores α. ``last_lr`` is the α the
last step used. Every hyperparameter is validated when it is set, at construction and after.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend, cpu_kernels
from ..checks import check_number, check_whole
from ..schedules import SCHEDULE_UNITS, Position, Schedule
from ..tensor import Tensor
from .flat import pack

__all__ = ["Optimizer", "Hyper", "SGD", "Momentum", "RMSprop", "Adam"]

class Hyper:
    """A hyperparameter of an optimizer class, validated on every set (``check_number`` with
    the bounds given here). The value lives in the instance's ``__dict__``, so reading it is a
    plain attribute lookup. Setting a β that a state buffer is scaled by rescales that buffer."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def __set_name__(self, owner, name):
        self.name = name

    def check(self, value) -> float:
        return check_number(f"optimizer {self.name}", value, self.low, self.high,
                            low_open=self.low_open, high_open=self.high_open)

    def __set__(self, obj, value):
        value = self.check(value)
        old = obj.__dict__.get(self.name)
        obj.__dict__[self.name] = value
        if old is not None and old != value:
            obj._rescale_state(self.name, old, value)


class Optimizer:
    """Base class: packs parameters into flat buffers, owns α and its schedule, keeps state.

    Subclasses declare their hyperparameters as :class:`Hyper` attributes and implement
    ``_update_numpy`` (and optionally ``_update_numba`` and ``_update_cuda``)."""

    #: names of the per-parameter state buffers (same shape as the flat parameter buffer)
    state_names: tuple = ()
    #: state buffers kept divided by (1 − β) of the named hyperparameter, which saves a pass over
    #: the buffer per step (β x + (1 − β) g becomes β x' + g); changing β rescales them
    scaled_state: dict = {}
    #: name of the fused CPU kernel in ``polydl.cpu_kernels`` (None: NumPy form only)
    numba_kernel: str | None = None

    weight_decay = Hyper(0)

    def __init__(self, params, lr, weight_decay=0.0):
        if hasattr(params, "parameters") and callable(params.parameters):
            params = params.parameters()
        params = [p for p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizers take polydl tensors (model.parameters()), not {type(p).__name__}")
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError("optimizer got no parameters that require grad")
        self._rate_key = None
        self.lr = lr
        self.weight_decay = weight_decay
        self.groups = pack(params)
        self.state: list[dict] = [{} for _ in self.groups]   # created lazily at the first update
        self.step_count = 0      # updates taken (Adam's t)
        self.last_lr = None      # α of the last step
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
        """α: a number, or the :class:`~polydl.schedules.Schedule` the optimizer evaluates."""
        return self._lr

    @lr.setter
    def lr(self, value):
        if isinstance(value, Schedule):
            self._lr = value
        elif callable(value):
            self._lr = Schedule(getattr(value, "__name__", "schedule"), {}, value)
        else:
            self._lr = check_number("optimizer lr", value, 0)
        self._rate_key = None

    def hyperparameters(self) -> dict:
        """Plain data: each hyperparameter's value; a schedule as ``{"schedule": name, "params": ...}``."""
        out = {}
        for name in self.hyperparameter_names():
            value = getattr(self, name)
            out[name] = {"schedule": value.name, "params": dict(value.params)} if isinstance(value, Schedule) else value
        return out

    def _rescale_state(self, name, old, new):
        factor = (1.0 - old) / (1.0 - new)
        for state in self.__dict__.get("state", ()):
            for buf, hyper in self.scaled_state.items():
                if hyper == name and buf in state:
                    state[buf] *= state[buf].dtype.type(factor)

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

    def next_lr(self) -> float:
        """α for the next step: the number, or the schedule at the next step's position (per
        epoch: at the epoch's first step)."""
        lr = self._lr
        if type(lr) is float:
            return lr
        key = self._epoch if self.schedule_unit == "epoch" else -1 - self.batches
        if key != self._rate_key:
            self._rate = lr(self.position().read_at(self.schedule_unit))
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

    def step(self):
        """One update of every parameter from its gradient, with α at the current position."""
        lr = self.next_lr()
        self.step_count += 1
        coef = self._coefficients(lr)
        for group, state in zip(self.groups, self.state):
            group.check()
            if not state:
                for name in self.state_names:
                    state[name] = group.xp.zeros_like(group.data)
            grad = group.grad
            if self.weight_decay:
                grad = grad + group.xp.asarray(self.weight_decay, dtype=grad.dtype) * group.data
            if group.xp is np:
                kernel = self._numba_kernel(grad)
                if kernel is not None:
                    self._update_numba(kernel, group.data, grad, state, coef)
                    continue
            elif self._update_cuda(group, grad, state, coef):
                continue
            if "tmp" not in state:  # scratch space of the NumPy form
                state["tmp"] = group.xp.empty_like(group.data)
            self._update_numpy(group.xp, group.data, grad, state, coef)
        self.last_lr = lr
        self._advance()

    def skip(self):
        """Count a mini-batch whose update is skipped (non-finite gradients under loss scaling):
        the position advances, the number of updates (Adam's t) does not."""
        self.last_lr = self.next_lr()
        self._advance()

    def _numba_kernel(self, grad):
        if self.numba_kernel is None or grad.dtype not in cpu_kernels.DTYPES or not self._numba_matches():
            return None
        return cpu_kernels.get(self.numba_kernel, grad.size)

    @classmethod
    def _numba_matches(cls) -> bool:
        """The compiled kernel stands in for ``_update_numpy`` only where the class that defines
        ``_update_numpy`` also defines ``_update_numba`` (a subclass that changes the update keeps
        its own)."""
        for klass in cls.__mro__:
            if "_update_numpy" in klass.__dict__:
                return "_update_numba" in klass.__dict__
        return False

    def _coefficients(self, lr) -> dict:
        """Scalars of this update, computed once for all parameter groups."""
        return {"lr": lr}

    def _update_numpy(self, xp, p, g, state, coef):
        """Update the flat parameter buffer ``p`` in place from the gradient ``g`` and the state
        arrays (``state["tmp"]`` is scratch space)."""
        raise NotImplementedError

    def _update_cuda(self, group, grad, state, coef) -> bool:
        """A fused CUDA kernel for the whole buffer; False when there is none."""
        return False

    def _update_numba(self, kernel, p, g, state, coef):
        """The same update as ``_update_numpy`` in one pass, through the compiled CPU kernel."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain data: the number of updates, the position in the run, the hyperparameters and
        NumPy copies of the state buffers (those named in ``scaled_state`` hold the moving average
        divided by (1 − β))."""
        return {
            "type": type(self).__name__,
            "step": int(self.step_count),
            "position": {"epoch": self._epoch, "batch": self.batch, "batches": self.batches,
                         "epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch,
                         "schedule_unit": self.schedule_unit},
            "last_lr": self.last_lr,
            "hyperparameters": self.hyperparameters(),
            "state": [{k: np.array(backend.to_numpy(v), copy=True) for k, v in buffers.items() if k != "tmp"}
                      for buffers in self.state],
        }

    def load_state_dict(self, sd: dict, hyperparameters: bool = True) -> None:
        """Restore the state buffers, the number of updates and the position; and, unless
        ``hyperparameters`` is False, the saved hyperparameters (α, its schedule, the βs). With
        False the optimizer keeps its own (a resumed run with a new α or β), and buffers scaled by
        a β are rescaled from the saved β to this optimizer's."""
        if sd.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"optimizer state is for {sd['type']}, not {type(self).__name__}")
        states = sd["state"]
        if len(states) != len(self.groups):
            raise ValueError(f"optimizer state has {len(states)} parameter groups, this optimizer {len(self.groups)}")
        saved = dict(sd.get("hyperparameters", {}))
        for group, buffers in zip(self.groups, states):
            for k, v in buffers.items():
                if tuple(v.shape) != (group.size,):
                    raise ValueError(f"optimizer state '{k}' has shape {tuple(v.shape)}, expected ({group.size},): "
                                     "the model does not match this checkpoint")
        if hyperparameters:
            for k, v in saved.items():
                if k == "lr" and isinstance(v, dict):
                    if not (isinstance(self._lr, Schedule) and self._lr.name == v["schedule"]
                            and self._lr.params == v["params"]):
                        from .. import schedules
                        self.lr = schedules.get(v["schedule"], **v["params"])
                else:
                    setattr(self, k, v)
        new = []
        for group, buffers in zip(self.groups, states):
            out = {}
            for k, v in buffers.items():
                # a copy: stepping must not write into the caller's state dict
                arr = np.array(v, dtype=group.dtype, copy=True)
                hyper = self.scaled_state.get(k)
                if hyper is not None and hyper in saved and saved[hyper] != getattr(self, hyper):
                    arr *= arr.dtype.type((1.0 - saved[hyper]) / (1.0 - getattr(self, hyper)))
                out[k] = backend.to_device(arr, group.device)
            new.append(out)
        self.state = new
        self.step_count = int(sd["step"])
        self.last_lr = sd.get("last_lr")
        pos = sd.get("position")
        if pos is not None:
            self.set_run(pos.get("epochs"), pos.get("steps_per_epoch"), pos.get("schedule_unit", "epoch"))
            self._epoch, self.batch, self.batches = int(pos["epoch"]), int(pos["batch"]), int(pos["batches"])
        self._rate_key = None

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


def _sqrt(x):
    """√x of a Python float (math.sqrt, the scalar fast path) or of an array over members."""
    return math.sqrt(x) if type(x) is float else np.sqrt(x)


def _rms_step(xp, p, numerator, g, s, beta, step_size, eps_hat, tmp):
    """s ← β s + g²;  p ← p − step_size · numerator / (√s + eps_hat), in place (the second-moment
    step that RMSprop (numerator g) and Adam (numerator m) share)."""
    dt = g.dtype.type
    s *= dt(beta)
    xp.multiply(g, g, out=tmp)
    s += tmp
    xp.sqrt(s, out=tmp)
    tmp += dt(eps_hat)
    xp.divide(numerator, tmp, out=tmp)
    tmp *= dt(step_size)
    p -= tmp


class SGD(Optimizer):
    """Mini-batch gradient descent: W ← W − α g."""

    numba_kernel = "sgd"

    def __init__(self, params, lr=0.01, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)

    def _update_numpy(self, xp, p, g, state, coef):
        tmp = state["tmp"]
        xp.multiply(g, g.dtype.type(coef["lr"]), out=tmp)
        p -= tmp

    def _update_numba(self, kernel, p, g, state, coef):
        kernel(p, g, g.dtype.type(coef["lr"]))


class Momentum(Optimizer):
    """Gradient descent with momentum: v ← β v + (1 − β) g; W ← W − α v."""

    state_names = ("v",)
    scaled_state = {"v": "beta"}  # v' = v/(1 − β): v' ← β v' + g; W ← W − α(1 − β) v'
    numba_kernel = "momentum"
    beta = Hyper(0.0, 1.0, high_open=True)

    def __init__(self, params, lr=0.01, beta=0.9, weight_decay=0.0):
        self.beta = beta
        super().__init__(params, lr, weight_decay)

    def _coefficients(self, lr):
        return {"lr": lr, "step_size": lr * (1 - self.beta)}

    def _update_numpy(self, xp, p, g, state, coef):
        v, tmp, dt = state["v"], state["tmp"], g.dtype.type
        v *= dt(self.beta)
        v += g
        xp.multiply(v, dt(coef["step_size"]), out=tmp)
        p -= tmp

    def _update_numba(self, kernel, p, g, state, coef):
        dt = g.dtype.type
        kernel(p, g, state["v"], dt(self.beta), dt(coef["step_size"]))


class RMSprop(Optimizer):
    """s ← β s + (1 − β) g²; W ← W − α g / (√s + ε)."""

    state_names = ("s",)
    scaled_state = {"s": "beta"}  # s' = s/(1 − β): α g/(√s + ε) = (α/√(1 − β)) g/(√s' + ε/√(1 − β))
    numba_kernel = "rmsprop"
    beta = Hyper(0.0, 1.0, high_open=True)
    eps = Hyper(0.0, low_open=True)

    def __init__(self, params, lr=0.001, beta=0.999, eps=1e-8, weight_decay=0.0):
        self.beta = beta
        self.eps = eps
        super().__init__(params, lr, weight_decay)

    def _coefficients(self, lr):
        root = _sqrt(1 - self.beta)
        return {"lr": lr, "step_size": lr / root, "eps_hat": self.eps / root}

    def _update_numpy(self, xp, p, g, state, coef):
        _rms_step(xp, p, g, g, state["s"], self.beta, coef["step_size"], coef["eps_hat"], state["tmp"])

    def _update_numba(self, kernel, p, g, state, coef):
        dt = g.dtype.type
        kernel(p, g, state["s"], dt(self.beta), dt(coef["step_size"]), dt(coef["eps_hat"]))


class Adam(Optimizer):
    """Adam with bias correction (β1 = 0.9, β2 = 0.999, ε = 1e-8 by default)."""

    state_names = ("m", "v")
    scaled_state = {"m": "beta1", "v": "beta2"}  # m' = m/(1 − β1), v' = v/(1 − β2)
    numba_kernel = "adam"
    beta1 = Hyper(0.0, 1.0, high_open=True)
    beta2 = Hyper(0.0, 1.0, high_open=True)
    eps = Hyper(0.0, low_open=True)

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        super().__init__(params, lr, weight_decay)

    def _coefficients(self, lr):
        # with bc = 1 − βᵗ and r = √((1 − β2)/bc2): m̂ = (1 − β1) m'/bc1, √v̂ = r √v', so
        # α m̂/(√v̂ + ε) = [α (1 − β1)/(bc1 r)] · m'/(√v' + ε/r)
        t = self.step_count
        bc1 = 1.0 - self.beta1 ** t
        bc2 = 1.0 - self.beta2 ** t
        r = _sqrt((1.0 - self.beta2) / bc2)
        return {"lr": lr, "step_size": lr * (1.0 - self.beta1) / (bc1 * r), "eps_hat": self.eps / r}

    def _update_numpy(self, xp, p, g, state, coef):
        m, dt = state["m"], g.dtype.type
        m *= dt(self.beta1)
        m += g
        _rms_step(xp, p, m, g, state["v"], self.beta2, coef["step_size"], coef["eps_hat"], state["tmp"])

    def _update_numba(self, kernel, p, g, state, coef):
        dt = g.dtype.type
        kernel(p, g, state["m"], state["v"], dt(self.beta1), dt(self.beta2), dt(coef["step_size"]),
               dt(coef["eps_hat"]))

    def _update_cuda(self, group, grad, state, coef):
        kernel = backend.fused_kernel("adam")
        if kernel is None:
            return False
        dt = grad.dtype.type
        kernel(grad, dt(self.beta1), dt(self.beta2), dt(coef["step_size"]), dt(coef["eps_hat"]),
               group.data, state["m"], state["v"])
        return True
