"""Regression losses as fused nodes beside :func:`~polydl.ops.losses.mse`: the mean absolute error
and the Huber loss, over every element of the predictions.

``mae``    J = (1/n) Σ |z − y|;                     dJ/dz = sign(z − y)/n (0 where z = y)
``huber``  J = (1/n) Σ h(z − y), h(d) = d²/2 for |d| ≤ δ, δ(|d| − δ/2) beyond;
           dJ/dz = clip(z − y, −δ, δ)/n

Targets are values of the predictions' shape (m, k), or (m,) for one output; integer class
labels become one-hot rows, as ``mse`` takes them. Predictions of a population, shape (P, m, k),
give one value per member (shape (P,)) against targets shared by the members ((m, k)) or one set
per member (P, m, k).
"""
from __future__ import annotations

import numpy as np

from ..tensor import _make
from ._common import _tensor, _xp
from .losses import _bad_label, _check_labels, _check_nonempty, _per_member, _targets, one_hot

__all__ = ["mae", "huber"]


def _residuals(loss: str, pd, td):
    """(z − y, members): the targets ``td`` brought to the predictions' shape (one-hot rows for
    integer labels, a column for (m,) values against (m, 1) predictions), then subtracted."""
    members = pd.ndim == 3
    if td.dtype.kind in "iub" and pd.ndim == td.ndim + 1 + members:
        if td.dtype.kind == "b":
            raise ValueError(f"{loss} got boolean labels for (batch, classes) predictions; give integer class "
                             "indices (labels.astype(int))")
        if not members:
            _check_labels(pd, td)
        if type(pd) is np.ndarray and (td.min() < 0 or td.max() >= pd.shape[-1]):
            _bad_label(td.reshape(-1), pd.shape[-1])
        td = one_hot(td, pd.shape[-1], pd.dtype)
    elif td.ndim == pd.ndim - 1 - members and pd.shape[-1] == 1 and td.shape == pd.shape[members:-1]:
        td = td.reshape(td.shape + (1,))  # one value per sample against one output
    if td.shape != pd.shape and not (members and td.shape == pd.shape[1:]):
        raise ValueError(f"{loss}: targets of shape {td.shape} do not match predictions of shape {pd.shape}")
    return pd - td.astype(pd.dtype, copy=False), members


def _node(pred, terms, grad_of):
    """The loss node: the mean of ``terms`` (per member for a population) and dJ/dz = grad/n."""
    pd = pred.data
    xp = _xp(pd)
    members = pd.ndim == 3
    k = pd.shape[0] if members else 1
    n = terms.size // k
    loss = xp.asarray((terms.reshape(k, -1).sum(axis=1) if members else terms.sum()) / n, dtype=pd.dtype)
    if not members:
        return _make(loss, (pred,), lambda g: ((grad_of() * (g * (1.0 / n))).astype(pd.dtype, copy=False),))
    return _per_member(_make(loss, (pred,), lambda g: (
        (grad_of() * (g[:, None, None] * (1.0 / n))).astype(pd.dtype, copy=False),)))


def mae(pred, target):
    """Mean absolute error over all elements: (1/n) Σ |pred − target|; the gradient is the sign of
    the residual over n (0 where it is 0)."""
    pred = _tensor(pred)
    pd = pred.data
    td = _targets(target, pd, "mae")
    _check_nonempty("mae", pd)
    diff, _ = _residuals("mae", pd, td)
    xp = _xp(pd)
    return _node(pred, xp.abs(diff), lambda: xp.sign(diff))


def huber(pred, target, delta: float = 1.0):
    """Huber loss over all elements: the mean of d²/2 where |d| ≤ δ and δ(|d| − δ/2) beyond, d =
    pred − target: squared near the target, absolute far from it (outliers pull less)."""
    delta = float(delta)
    if not delta > 0:
        raise ValueError(f"huber: delta must be > 0, not {delta!r}")
    pred = _tensor(pred)
    pd = pred.data
    td = _targets(target, pd, "huber")
    _check_nonempty("huber", pd)
    diff, _ = _residuals("huber", pd, td)
    xp = _xp(pd)
    a = xp.abs(diff)
    terms = xp.where(a <= delta, 0.5 * diff * diff, delta * (a - 0.5 * delta))
    return _node(pred, terms, lambda: xp.clip(diff, -delta, delta))
