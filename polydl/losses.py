"""Loss functions by name: ``get(name, **params)`` returns ``loss(scores, targets) -> scalar Tensor``.

``softmax_cross_entropy``  J = −(1/m) Σᵢ Σⱼ yⱼ log ŷⱼ, ŷ = softmax(z); dJ/dz = (ŷ − y)/m
``binary_cross_entropy``   the logistic loss on logits: (1/m) Σ [log(1 + e^z) − y z]
``mse``                    (1/n) Σ (z − y)² over all elements (integer labels become one-hot)
``mae``                    (1/n) Σ |z − y| over all elements
``huber``                  (1/n) Σ h(z − y), h(d) = d²/2 for |d| ≤ δ, δ(|d| − δ/2) beyond (``delta``)

``task`` says what a loss trains: ``"classification"`` (the default, one score per class) or
``"regression"`` (``mse``, ``mae``, ``huber``: one output per target column of numbers; on a
named dataset, whose labels are classes, they fit the one-hot rows of the classes).

With C = 2, softmax cross-entropy on the logits [0, z] equals the logistic loss on z.

For a population of P models, ``get(name, population=P, **params)`` returns a loss of scores
(P, m, C) that gives one value per member, shape (P,), member k's the loss of its scores alone.
A factory that takes ``population`` (the built-ins do) returns such a loss itself; any other
loss is applied member by member (:class:`MemberByMember`).
"""
from __future__ import annotations

import numpy as np

from . import backend, cpu_kernels
from . import functional as F
from .checks import shown
from .hookspecs import hookimpl
from .registry import RegistrationError, Registry
from .tensor import Tensor, no_grad

hardmax = F.hardmax


class Loss:
    """A named loss; ``predict(scores)`` gives the class each row of scores predicts."""

    name = "loss"
    task = "classification"

    def __call__(self, scores, targets):
        raise NotImplementedError

    def predict(self, scores):
        sd = scores.data if isinstance(scores, Tensor) else scores
        return sd.argmax(axis=-1)

    def __repr__(self):
        return f"{self.name}()"


class _Builtin(Loss):
    """A built-in loss: it takes a population's scores (P, m, C) as they are (one value per
    member), so its factory declares ``population`` (the number of members, or None)."""

    def __init__(self, population: int | None = None):
        self.population = population


def _label_problem(loss: str, scores, targets, classes: bool = True) -> str | None:
    """What is wrong with ``targets`` as the labels of ``scores``, in a user's words (None if
    nothing a user would recognise): a single value, text, and where ``classes`` are due (one
    score per class), fractions."""
    sd = scores.data if isinstance(scores, Tensor) else scores
    td = targets.data if isinstance(targets, Tensor) else targets
    if not hasattr(td, "dtype"):
        try:
            td = np.asarray(td)
        except (ValueError, TypeError):
            return None
    if not hasattr(sd, "shape"):
        return None
    if td.ndim == 0:
        return (f"{loss}: labels must be a 1-D array of class numbers, one per sample, not a single value "
                f"{shown(td)}")
    if td.dtype.kind in "USO":
        return (f"{loss}: labels must be class numbers 0, 1, 2, ... (an integer array), not {td.dtype}; "
                "number class names first")
    rows = (tuple(sd.shape[:-1]), tuple(sd.shape[1:-1]))
    if classes and td.dtype.kind == "f" and len(sd.shape) >= 2 and tuple(td.shape) in rows:
        flat = backend.to_numpy(td).reshape(-1)
        frac = np.flatnonzero(~(np.isfinite(flat) & (flat == np.round(np.where(np.isfinite(flat), flat, 0)))))
        if len(frac):
            return (f"{loss}: label {shown(flat[frac[0]])} (sample {int(frac[0]) + 1}) is not an integer: labels "
                    f"are class numbers 0, 1, 2, ... (an integer array), or target rows of shape {tuple(sd.shape)}; "
                    "for 0/1 or probability targets of one logit per sample use binary_cross_entropy")
        return (f"{loss}: labels of dtype {td.dtype} where class numbers are due; give them as integers "
                "(labels.astype(int))")
    return None


class SoftmaxCrossEntropy(_Builtin):
    name = "softmax_cross_entropy"

    capturable = True  # made of polydl's ops (polydl.capture)

    def __call__(self, scores, targets):
        try:
            return F.softmax_cross_entropy(scores, targets)
        except (ValueError, TypeError):
            problem = _label_problem(self.name, scores, targets)
            if problem is None:
                raise
        raise ValueError(problem)


class BinaryCrossEntropy(_Builtin):
    """Logistic loss on one logit per sample (scores of shape (m,) or (m, 1))."""

    name = "binary_cross_entropy"

    capturable = True  # made of polydl's ops (polydl.capture)

    def __call__(self, scores, targets):
        try:
            return F.binary_cross_entropy_with_logits(scores, targets)
        except (ValueError, TypeError):
            problem = _label_problem(self.name, scores, targets, classes=False)
            if problem is None:
                raise
        raise ValueError(problem)

    def predict(self, scores):
        sd = scores.data if isinstance(scores, Tensor) else scores
        if sd.ndim >= 2 and sd.shape[-1] > 1:
            return sd.argmax(axis=-1)
        if sd.ndim == 3:  # a population's (P, m, 1) logits
            return (sd[..., 0] > 0).astype(np.int64)
        return (sd.reshape(sd.shape[0]) > 0).astype(np.int64)


class MSE(_Builtin):
    name = "mse"
    task = "regression"

    capturable = True  # made of polydl's ops (polydl.capture)

    def __call__(self, scores, targets):
        try:
            return F.mse(scores, targets)
        except (ValueError, TypeError):
            problem = _label_problem(self.name, scores, targets)
            if problem is None:
                raise
        raise ValueError(problem)


class MAE(_Builtin):
    """Mean absolute error: the median's loss, less pulled by outliers than ``mse``."""

    name = "mae"
    task = "regression"

    capturable = True  # made of polydl's ops (polydl.capture)

    def __call__(self, scores, targets):
        try:
            return F.mae(scores, targets)
        except (ValueError, TypeError):
            problem = _label_problem(self.name, scores, targets)
            if problem is None:
                raise
        raise ValueError(problem)


class Huber(_Builtin):
    """Huber loss: squared within ``delta`` of the target (in standardised units for a run's
    target), absolute beyond it."""

    name = "huber"
    task = "regression"

    def __init__(self, population: int | None = None, delta: float = 1.0):
        super().__init__(population)
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta > 0:
            raise ValueError(f"huber: delta must be a number > 0, not {delta!r}")
        self.delta = float(delta)

    capturable = True  # made of polydl's ops (polydl.capture)

    def __call__(self, scores, targets):
        try:
            return F.huber(scores, targets, self.delta)
        except (ValueError, TypeError):
            problem = _label_problem(self.name, scores, targets)
            if problem is None:
                raise
        raise ValueError(problem)

    def __repr__(self):
        return f"huber(delta={self.delta})"


def task_of(name: str) -> str:
    """``"regression"`` or ``"classification"``: what the loss ``name`` trains (its ``task``;
    classification for a loss that does not say, or a name that is not registered)."""
    try:
        factory = registry.lookup(name)
    except (KeyError, ValueError):
        return "classification"
    return "regression" if getattr(factory, "task", "classification") == "regression" else "classification"


def predict(loss, scores):
    """Class predictions for ``scores`` under ``loss`` (arg-max unless the loss says otherwise)."""
    fn = getattr(loss, "predict", None)
    return fn(scores) if fn is not None else Loss.predict(loss, scores)


def probabilities(loss, scores):
    """Class probabilities (an array of shape (m, C)) for ``scores`` under ``loss``: the loss's own
    ``probabilities(scores)`` if it has one; else σ(z) = 1/(1 + e^−z) for one logit per sample
    (columns 1 − σ, σ), and softmax(z) for one score per class."""
    fn = getattr(loss, "probabilities", None)
    if fn is not None:
        return fn(scores)
    sd = scores.data if isinstance(scores, Tensor) else scores
    with no_grad():
        s = Tensor(sd.astype(np.float64))
        if s.ndim == 1 or s.shape[1] == 1:
            p1 = F.sigmoid(s.reshape(-1)).data
            return backend.get_array_module(p1).stack([1.0 - p1, p1], axis=1)
        return F.softmax(s, axis=1).data


def _validate(name, factory):
    if not callable(factory):
        raise RegistrationError(f"loss '{name}' must be a callable factory(**params) -> loss")
    try:
        probe = factory()
    except TypeError as exc:
        if "required" in str(exc) or "missing" in str(exc):
            return  # parameters without defaults: checked when built
        raise
    if not callable(probe):
        raise RegistrationError(f"loss factory '{name}' returned {probe!r}, not a callable (scores, targets) -> loss")
    from .tensor import tensor as _new_tensor
    probes = [(np.array([[0.5, -0.25, 0.1], [0.2, 0.3, -0.4]]), np.array([0, 2])),  # class scores
              (np.array([0.5, -0.25]), np.array([1.0, 0.0]))]                       # one logit each
    errors = []
    for scores, targets in probes:
        try:
            scores_t = _new_tensor(scores, requires_grad=True)
            with cpu_kernels.use("off"):  # the NumPy forms: checking a plugin must not import Numba
                out = probe(scores_t, targets)
            break
        except (ValueError, IndexError) as exc:
            errors.append(exc)
    else:
        raise RegistrationError(f"loss '{name}' failed on (scores (2, 3), integer labels) and on (scores (2,), "
                                f"0/1 targets): {errors[0]}")
    if not isinstance(out, Tensor) or out.data.size != 1:
        raise RegistrationError(f"loss '{name}' must return a scalar Tensor, not {type(out).__name__}"
                                f"{'' if not isinstance(out, Tensor) else ' of shape ' + str(out.shape)}")
    if not out.requires_grad:
        raise RegistrationError(f"loss '{name}' returned a Tensor with no gradient path to the scores: build it "
                                "from polydl operations on the scores Tensor, not from its .data array")
    with cpu_kernels.use("off"):
        out.backward()
    grad = scores_t.grad
    if grad is None or tuple(grad.shape) != tuple(scores_t.shape) or not np.all(np.isfinite(grad)):
        raise RegistrationError(f"loss '{name}' gave no finite gradient for the scores "
                                f"(got {None if grad is None else grad.tolist()})")


#: ``population`` is passed by population training to a factory that takes it; users do not set it
registry = Registry("losses", _validate, singular="loss", internal=("population",))


class MemberByMember:
    """A loss written for one model, for a population of ``population`` members: member k's
    value is ``loss(scores[k], targets)`` and the values are stacked, shape (P,), so each is
    exactly the loss alone would give (the targets, one per sample, are the members'). Where a
    member's loss is not a Tensor of one value, that is returned as it is (training names it).
    ``predict`` is the loss's own, member by member."""

    def __init__(self, loss, population: int):
        self.loss, self.population = loss, int(population)

    def __call__(self, scores, targets):
        z = scores if isinstance(scores, Tensor) else Tensor(scores)
        P = self.population
        if z.ndim < 2 or z.shape[0] != P:
            raise ValueError(f"{self!r} needs a population's scores, shape ({P}, batch, ...), not {tuple(z.shape)}")
        out = []
        for k in range(P):
            value = self.loss(z[k], targets)
            if not isinstance(value, Tensor) or value.data.size != 1:
                return value
            out.append(value if value.ndim == 0 else value.reshape(()))
        return _per_member(F.stack(out))

    def predict(self, scores):
        fn = getattr(self.loss, "predict", None)
        sd = scores.data if isinstance(scores, Tensor) else scores
        if fn is None or getattr(fn, "__func__", None) is Loss.predict:  # the arg-max, of every member at once
            return sd.argmax(axis=-1)
        return backend.get_array_module(sd).stack([fn(Tensor(sd[k])) for k in range(sd.shape[0])])

    def __repr__(self):
        return f"{self.loss!r} member by member"


def _per_member(out: Tensor) -> Tensor:
    out._per_member = True  # backward() seeds each member's gradient with 1
    return out


def takes_population(name: str) -> bool:
    """Whether the factory of loss ``name`` declares ``population`` (gives one value per member
    of a population's scores itself)."""
    return "population" in registry.parameters(name, internal=True)


def get(name: str, population: int | None = None, **params):
    """The loss ``name``, e.g. ``get("softmax_cross_entropy")``; ``population=P`` one for the
    scores (P, m, C) of a population, giving one value per member (:class:`MemberByMember` where
    the factory takes no ``population``)."""
    if population is not None and not takes_population(name):
        return MemberByMember(get(name, **params), population)
    if population is not None:
        params = {**params, "population": population}
    loss = registry.build(name, **params)
    if not callable(loss):
        raise ValueError(f"loss factory '{name}' returned {type(loss).__name__}, not a callable "
                         "(scores, targets) -> scalar Tensor")
    return loss


def names():
    return registry.names()


@hookimpl
def polydl_register_losses(register):
    register("softmax_cross_entropy", SoftmaxCrossEntropy)
    register("binary_cross_entropy", BinaryCrossEntropy)
    register("mse", MSE)
    register("mae", MAE)
    register("huber", Huber)
