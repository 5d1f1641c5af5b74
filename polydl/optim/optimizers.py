"""Mini-batch gradient descent, momentum, RMSprop and Adam over flat parameter buffers.

With g the gradient (plus ``weight_decay``·W when L2 regularisation is on), at step t:

SGD       W ← W − α g
Momentum  v ← β v + (1 − β) g;                 W ← W − α v
RMSprop   s ← β s + (1 − β) g²;                W ← W − α g / (√s + ε)
Adam      m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;
          m̂ = m/(1 − β1ᵗ);  v̂ = v/(1 − β2ᵗ);  W ← W − α m̂ / (√v̂ + ε)
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend, cpu_kernels
from ..tensor import Tensor
from .flat import pack


def _check_number(name, value, low=0.0, high=None, low_inclusive=True, high_inclusive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
        raise ValueError(f"optimizer {name} must be a finite number, not {value!r}")
    value = float(value)
    if low is not None and (value < low or (not low_inclusive and value == low)):
        raise ValueError(f"optimizer {name} must be {'>=' if low_inclusive else '>'} {low}, not {value}")
    if high is not None and (value > high or (not high_inclusive and value == high)):
        raise ValueError(f"optimizer {name} must be {'<=' if high_inclusive else '<'} {high}, not {value}")
    return value


_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Optimizer:
    """Base class: packs parameters into flat buffers, validates hyperparameters, keeps state."""

    #: names of the per-parameter state buffers (same shape as the flat parameter buffer)
    state_names: tuple = ()
    #: state buffers kept divided by (1 − β) of the named hyperparameter, which saves a pass over
    #: the buffer per step (β x + (1 − β) g becomes β x' + g); changing β rescales them
    scaled_state: dict = {}
    #: name of the fused CPU kernel in ``polydl.cpu_kernels`` (None: NumPy form only)
    cpu_kernel: str | None = None

    def __setattr__(self, name, value):
        old = self.__dict__.get(name)
        object.__setattr__(self, name, value)
        if old is None or old == value or name not in self.scaled_state.values():
            return
        factor = (1.0 - old) / (1.0 - value)
        for st in self.__dict__.get("state", ()):
            for buf, hyper in self.scaled_state.items():
                if hyper == name and buf in st:
                    st[buf] *= st[buf].dtype.type(factor)

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
        self.lr = lr
        self.weight_decay = _check_number("weight_decay", weight_decay)
        self.groups = pack(params)
        self.state: list[dict] = [{} for _ in self.groups]   # created lazily at the first step
        self.step_count = 0

    # ------------------------------------------------------------------ learning rate
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _check_number("lr", value)

    @property
    def params(self):
        return [p for g in self.groups for p in g.params]

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    # ------------------------------------------------------------------ step
    def zero_grad(self):
        for g in self.groups:
            g.grad.fill(0)
            for p in g.params:
                p._gzero = True

    def step(self):
        """One update of every parameter from its gradient."""
        self.step_count += 1
        c = self._coefficients()
        for group, state in zip(self.groups, self.state):
            group.check()
            if not state:
                for name in self.state_names:
                    state[name] = group.xp.zeros_like(group.data)
            grad = group.grad
            if self.weight_decay:
                grad = grad + group.xp.asarray(self.weight_decay, dtype=grad.dtype) * group.data
            if group.xp is np:
                kern = self._cpu_kernel(grad)
                if kern is not None:
                    self._cpu(kern, group.data, grad, state, c)
                    continue
            elif self._fused(group, grad, state, c):
                continue
            if "tmp" not in state:  # scratch space of the NumPy form
                state["tmp"] = group.xp.empty_like(group.data)
            self._kernel(group.xp, group.data, grad, state, c)

    def _cpu_kernel(self, grad):
        if self.cpu_kernel is None or grad.dtype not in _KERNEL_DTYPES or not self._cpu_matches():
            return None
        return cpu_kernels.get(self.cpu_kernel, grad.size)

    @classmethod
    def _cpu_matches(cls) -> bool:
        """The compiled kernel stands in for ``_kernel`` only where the class that defines
        ``_kernel`` also defines ``_cpu`` (a subclass that changes the update keeps its own)."""
        for klass in cls.__mro__:
            if "_kernel" in klass.__dict__:
                return "_cpu" in klass.__dict__
        return False

    def _coefficients(self) -> dict:
        """Scalars of this step, computed once for all parameter groups."""
        return {"lr": self.lr}

    def _kernel(self, xp, p, g, st, c):
        """Update the flat parameter buffer ``p`` in place from the gradient ``g`` and the state
        arrays ``st`` (``st["tmp"]`` is scratch space)."""
        raise NotImplementedError

    def _fused(self, group, grad, state, c) -> bool:
        """A fused device kernel for the whole buffer; False when there is none."""
        return False

    def _cpu(self, kern, p, g, st, c):
        """The same update as ``_kernel`` in one pass, through the compiled CPU kernel."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain data: the integer step, the hyperparameters and NumPy copies of the state buffers
        (those named in ``scaled_state`` hold the moving average divided by (1 − β))."""
        return {
            "type": type(self).__name__,
            "step": int(self.step_count),
            "hyperparameters": self.hyperparameters(),
            "state": [{k: np.array(backend.to_numpy(v), copy=True) for k, v in st.items() if k != "tmp"}
                      for st in self.state],
        }

    def load_state_dict(self, sd: dict) -> None:
        if sd.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"optimizer state is for {sd['type']}, not {type(self).__name__}")
        states = sd["state"]
        if len(states) != len(self.groups):
            raise ValueError(f"optimizer state has {len(states)} parameter groups, this optimizer {len(self.groups)}")
        new = []
        for group, st in zip(self.groups, states):
            out = {}
            for k, v in st.items():
                if tuple(v.shape) != (group.size,):
                    raise ValueError(f"optimizer state '{k}' has shape {tuple(v.shape)}, expected ({group.size},): "
                                     "the model does not match this checkpoint")
                # a copy: stepping must not write into the caller's state dict
                out[k] = backend.to_device(np.array(v, dtype=group.dtype, copy=True), group.device)
            new.append(out)
        # hyperparameters first, while the old buffers are in place: a changed β rescales those,
        # never the loaded ones (already scaled for the saved β)
        for k, v in sd.get("hyperparameters", {}).items():
            setattr(self, k, v)
        self.state = new
        self.step_count = int(sd["step"])

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Mini-batch gradient descent: W ← W − α g."""

    def __init__(self, params, lr=0.01, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)

    cpu_kernel = "sgd"

    def _kernel(self, xp, p, g, st, c):
        tmp = st["tmp"]
        xp.multiply(g, g.dtype.type(c["lr"]), out=tmp)
        p -= tmp

    def _cpu(self, kern, p, g, st, c):
        kern(p, g, g.dtype.type(c["lr"]))


class Momentum(Optimizer):
    """Gradient descent with momentum, the notes' form: v ← β v + (1 − β) g; W ← W − α v."""

    state_names = ("v",)
    scaled_state = {"v": "beta"}  # v' = v/(1 − β): v' ← β v' + g; W ← W − α(1 − β) v'

    def __init__(self, params, lr=0.01, beta=0.9, weight_decay=0.0):
        self.beta = _check_number("beta", beta, 0.0, 1.0)
        super().__init__(params, lr, weight_decay)

    def hyperparameters(self):
        return {**super().hyperparameters(), "beta": self.beta}

    def _coefficients(self):
        return {"lr": self.lr, "step_size": self.lr * (1 - self.beta)}

    def _kernel(self, xp, p, g, st, c):
        v, tmp, dt = st["v"], st["tmp"], g.dtype.type
        v *= dt(self.beta)
        v += g
        xp.multiply(v, dt(c["step_size"]), out=tmp)
        p -= tmp

    cpu_kernel = "momentum"

    def _cpu(self, kern, p, g, st, c):
        dt = g.dtype.type
        kern(p, g, st["v"], dt(self.beta), dt(c["step_size"]))


class RMSprop(Optimizer):
    """s ← β s + (1 − β) g²; W ← W − α g / (√s + ε)."""

    state_names = ("s",)
    scaled_state = {"s": "beta"}  # s' = s/(1 − β): α g/(√s + ε) = (α/√(1 − β)) g/(√s' + ε/√(1 − β))

    def __init__(self, params, lr=0.001, beta=0.999, eps=1e-8, weight_decay=0.0):
        self.beta = _check_number("beta", beta, 0.0, 1.0)
        self.eps = _check_number("eps", eps, 0.0, low_inclusive=False)
        super().__init__(params, lr, weight_decay)

    def hyperparameters(self):
        return {**super().hyperparameters(), "beta": self.beta, "eps": self.eps}

    def _coefficients(self):
        root = math.sqrt(1 - self.beta)
        return {"lr": self.lr, "step_size": self.lr / root, "eps_hat": self.eps / root}

    def _kernel(self, xp, p, g, st, c):
        s, tmp, dt = st["s"], st["tmp"], g.dtype.type
        s *= dt(self.beta)
        xp.multiply(g, g, out=tmp)
        s += tmp
        xp.sqrt(s, out=tmp)
        tmp += dt(c["eps_hat"])
        xp.divide(g, tmp, out=tmp)
        tmp *= dt(c["step_size"])
        p -= tmp

    cpu_kernel = "rmsprop"

    def _cpu(self, kern, p, g, st, c):
        dt = g.dtype.type
        kern(p, g, st["s"], dt(self.beta), dt(c["step_size"]), dt(c["eps_hat"]))


class Adam(Optimizer):
    """Adam with bias correction (β1 = 0.9, β2 = 0.999, ε = 1e-8 by default)."""

    state_names = ("m", "v")
    scaled_state = {"m": "beta1", "v": "beta2"}  # m' = m/(1 − β1), v' = v/(1 − β2)

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.beta1 = _check_number("beta1", beta1, 0.0, 1.0)
        self.beta2 = _check_number("beta2", beta2, 0.0, 1.0)
        self.eps = _check_number("eps", eps, 0.0, low_inclusive=False)
        super().__init__(params, lr, weight_decay)

    def hyperparameters(self):
        return {**super().hyperparameters(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _coefficients(self):
        # with bc = 1 − βᵗ and r = √((1 − β2)/bc2): m̂ = (1 − β1) m'/bc1, √v̂ = r √v', so
        # α m̂/(√v̂ + ε) = [α (1 − β1)/(bc1 r)] · m'/(√v' + ε/r)
        t = self.step_count
        bc1 = 1.0 - self.beta1 ** t
        bc2 = 1.0 - self.beta2 ** t
        r = math.sqrt((1.0 - self.beta2) / bc2)
        return {"lr": self.lr, "step_size": self.lr * (1.0 - self.beta1) / (bc1 * r), "eps_hat": self.eps / r}

    def _kernel(self, xp, p, g, st, c):
        m, v, tmp, dt = st["m"], st["v"], st["tmp"], g.dtype.type
        m *= dt(self.beta1)
        m += g
        v *= dt(self.beta2)
        xp.multiply(g, g, out=tmp)
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp += dt(c["eps_hat"])
        xp.divide(m, tmp, out=tmp)
        tmp *= dt(c["step_size"])
        p -= tmp

    cpu_kernel = "adam"

    def _cpu(self, kern, p, g, st, c):
        dt = g.dtype.type
        kern(p, g, st["m"], st["v"], dt(self.beta1), dt(self.beta2), dt(c["step_size"]), dt(c["eps_hat"]))

    def _fused(self, group, grad, state, c):
        kernel = backend.fused_kernel("adam")
        if kernel is None:
            return False
        dt = grad.dtype.type
        kernel(grad, dt(self.beta1), dt(self.beta2), dt(c["step_size"]), dt(c["eps_hat"]),
               group.data, state["m"], state["v"])
        return True
