"""Losses as fused nodes: softmax cross-entropy (dJ/dz = (ŷ − y)/m), binary cross-entropy with logits, MSE."""
from __future__ import annotations

import numpy as np

from .. import backend, cpu_kernels, cuda_kernels
from ..capture.record import record_forward
from ..tensor import _CAPTURE, Tensor, _make
from ._common import _FLOATS, _cpu_kernel, _dev_error, _tensor, _xp

__all__ = ["one_hot", "hardmax", "softmax_cross_entropy", "binary_cross_entropy_with_logits", "mse"]


def one_hot(labels, num_classes, dtype=np.float32):
    """Rows of zeros with a one at each label: an array on the labels' device."""
    ld = labels.data if isinstance(labels, Tensor) else labels
    xp = _xp(ld)
    out = xp.zeros((ld.shape[0], num_classes), dtype=dtype)
    out[xp.arange(ld.shape[0]), ld] = 1
    return out


def hardmax(scores):
    """Hard max: the one-hot of the arg-max of each row, e.g. [0.8, 0.1, 0.1] → [1, 0, 0]."""
    sd = scores.data if isinstance(scores, Tensor) else scores
    xp = _xp(sd)
    idx = sd.argmax(axis=-1)
    return Tensor((idx[..., None] == xp.arange(sd.shape[-1])).astype(sd.dtype))


def _targets(targets, ref, loss: str):
    """The targets of a loss as an array beside the scores' array ``ref``: a Tensor's array, an
    array as it is, a list or a number converted (a list of ints becomes integer labels)."""
    if type(targets) is np.ndarray:
        td = targets
    elif isinstance(targets, Tensor):
        td = targets.data
    elif hasattr(targets, "shape") and hasattr(targets, "dtype"):
        td = targets
    else:
        td = np.asarray(targets)
        if td.dtype.kind not in "biuf":
            raise ValueError(f"{loss} targets must be numbers (integer labels or target values), not "
                             f"{type(targets).__name__} of {td.dtype}")
        if type(ref) is not np.ndarray:
            td = backend.to_device(td, backend.device_of(ref))
    if not backend.same_device(ref, td):
        raise _dev_error(ref, td)
    return td


def _check_nonempty(loss: str, zd):
    if zd.size == 0:
        raise ValueError(f"{loss} got an empty batch (scores of shape {zd.shape}); it needs at least one sample")


def _check_labels(zd, yd):
    if yd.ndim != zd.ndim - 1 or yd.shape != zd.shape[:-1]:
        raise ValueError(f"labels of shape {yd.shape} do not match scores of shape {zd.shape}: "
                         "expected one integer label per row")


def _per_member(out):
    """Mark a population loss (one value per member): ``backward()`` seeds each member with 1."""
    out._per_member = True
    return out


def _member_labels(zd, td, what):
    """For scores (P, m, C) of a population: the labels (m,) shared by the members, or (P, m)."""
    if td.shape != zd.shape[1:-1] and td.shape != zd.shape[:-1]:
        raise ValueError(f"{what}: labels of shape {td.shape} do not match a population's scores of shape "
                         f"{zd.shape}: give one label per sample, shape {zd.shape[1:-1]} (shared by the members) "
                         f"or {zd.shape[:-1]}")


def softmax_cross_entropy(logits, targets):
    """J = −(1/m) Σᵢ Σⱼ yⱼ log ŷⱼ with ŷ = softmax(z); one node with dJ/dz = (ŷ − y)/m.

    ``targets`` are integer class labels (shape (m,); a list of ints is converted) or one-hot /
    probability rows (m, C); boolean labels are refused as ambiguous. Scores of a population of P
    models, shape (P, m, C), give one J per member (shape (P,), each the mean over that member's
    m samples) with labels (m,) shared by the members or (P, m)."""
    z = _tensor(logits)
    zd = z.data
    xp = _xp(zd)
    td = _targets(targets, zd, "softmax_cross_entropy")
    _check_softmax_targets(zd, td)
    labels = td.dtype.kind in "iu"
    if type(zd) is not np.ndarray and labels:
        fast = _softmax_cross_entropy_cuda(z, zd, td)
        if fast is not None:
            return fast
    in_dtype = zd.dtype
    if in_dtype.itemsize < 4:
        zd = zd.astype(np.float32)  # half scores: the loss and ŷ in float32
    c = zd.shape[-1]
    members = zd.ndim == 3
    if members and labels:
        _member_labels(zd, td, "softmax_cross_entropy")
    if labels and c and (zd.ndim == 2 or members and td.ndim == 1):
        fast = _softmax_cross_entropy_cpu(z, zd, td, in_dtype)
        if fast is not None:
            return fast
    n = zd.shape[0] if members else 1
    m = zd.size // (c * n) if c else 0  # samples per member
    rows = t1 = None
    if labels:
        if not members:
            _check_labels(zd, td)
        rows = xp.arange(m)
        t1 = td.reshape(-1, m)  # (1, m) shared, or (P, m)
    elif td.shape != zd.shape:
        raise ValueError(f"targets of shape {td.shape} do not match scores of shape {zd.shape}")
    forward = _numpy_forward(xp, zd, td, (n, m, c), rows, t1)
    p, loss = forward()
    if zd is z.data:
        record_forward(forward, (p, loss))

    def backward(g):
        if labels:  # (ŷ − y)/m with y one-hot
            gz = p.reshape(n, m, c).copy()
            if t1.shape[0] == 1:
                gz[:, rows, t1[0]] -= 1
            else:
                xp.put_along_axis(gz, t1[:, :, None], xp.take_along_axis(gz, t1[:, :, None], axis=2) - 1, axis=2)
            gz = gz.reshape(zd.shape)
        else:
            gz = p - td
        gz *= (g[:, None, None] if members else g) * (1.0 / m)
        return (gz if gz.dtype == in_dtype else gz.astype(in_dtype),)

    out = _make(loss, (z,), backward)
    return _per_member(out) if members else out


def _numpy_forward(xp, zd, td, nmc, rows, t1):
    """The NumPy form of softmax cross-entropy's forward pass: ``forward() -> (ŷ, J)`` for
    integer labels (``t1`` of shape (1, m) shared or (P, m), ``rows`` = 0..m−1) or target rows."""
    n, m, c = nmc
    members = zd.ndim == 3

    def forward():
        zmax = zd.max(axis=-1, keepdims=True)
        p = zd - zmax
        xp.exp(p, out=p)
        s = p.sum(axis=-1, keepdims=True)
        lse = xp.log(s)
        lse += zmax  # log Σ exp z, per row
        if t1 is not None:
            if xp is np and m and (t1.min() < 0 or t1.max() >= c):
                _bad_label(t1.reshape(-1), c)
            z3 = zd.reshape(n, m, c)
            zy = z3[:, rows, t1[0]] if t1.shape[0] == 1 else xp.take_along_axis(z3, t1[:, :, None], axis=2)[:, :, 0]
            # −log ŷ_y = log Σ exp z − z_y
            if members:
                loss = (lse.reshape(n, m).sum(axis=1) - zy.sum(axis=1)) * (1.0 / m)
            else:
                loss = (lse.sum() - zy.sum()) * (1.0 / m)
        else:
            prod = td * (zd - lse)
            loss = -(prod.reshape(n, -1).sum(axis=1) if members else prod.sum()) * (1.0 / m)
        p /= s  # ŷ
        return p, xp.asarray(loss, dtype=zd.dtype)

    return forward


def _check_softmax_targets(zd, td) -> None:
    """One line for scores softmax cross-entropy cannot use: an empty batch, or boolean labels."""
    _check_nonempty("softmax_cross_entropy", zd)
    if td.dtype.kind == "b":
        raise ValueError("softmax_cross_entropy got boolean labels; give integer class indices "
                         "(labels.astype(int)), or use binary_cross_entropy for 0/1 targets")


def _bad_label(labels, c):
    bad = int(np.flatnonzero((labels < 0) | (labels >= c))[0])
    raise ValueError(f"label {int(labels[bad])} (sample {bad + 1} of the batch) is not a class index: "
                     f"labels must be integers in [0, {c}) for {c} classes")


def _softmax_cross_entropy_cpu(z, zd, td, in_dtype):
    """``softmax_cross_entropy`` of (m, C) scores, or a population's (P, m, C) with labels (m,)
    shared, with integer labels through the compiled CPU kernels (one call forward, one
    backward; an ordinary model is the population of one); None where they do not apply."""
    kern = _cpu_kernel("softmax_xent", zd)
    members = zd.ndim == 3
    m = zd.shape[-2]
    if (kern is None or type(td) is not np.ndarray or not td.dtype.isnative or td.shape != (m,) or not m
            or not zd.flags.c_contiguous):
        return None
    z3 = zd if members else zd[None]
    n, _, c = z3.shape
    p = np.empty_like(z3)
    totals = np.empty(n, np.float64)
    if kern(z3, td, p, totals) >= 0:
        _bad_label(td, c)
    loss = np.asarray(totals / m if members else totals[0] / m, dtype=zd.dtype)
    kern_back = cpu_kernels.get("softmax_xent_backward", zd.size)
    if _CAPTURE.rec is not None and zd is z.data:
        settled = cpu_kernels.settled(kern)

        def replay():
            if settled(z3, td, p, totals) >= 0:
                _bad_label(td, c)
            loss[...] = totals / m if members else totals[0] / m

        _CAPTURE.rec.op(replay)

    def backward(g):
        gz = np.empty_like(p)
        if members:
            scale = (np.asarray(g, np.float64) * (1.0 / m)).astype(zd.dtype).reshape(n)
        else:  # the same value, without three NumPy calls on a 0-d array
            scale = np.array((float(g) * (1.0 / m),), zd.dtype)
        kern_back(p, td, scale, gz)
        gz = gz if members else gz[0]
        if _CAPTURE.rec is not None:
            _CAPTURE.rec.grad(_xent_backward_replay(cpu_kernels.settled(kern_back), p, td, g, scale, gz, members, m)
                              if gz.dtype == in_dtype else None)
        return (gz if gz.dtype == in_dtype else gz.astype(in_dtype),)

    out = _make(loss, (z,), backward)
    return _per_member(out) if members else out


def _xent_backward_replay(kern_back, p, td, g, scale, gz, members, m):
    """The compiled backward of softmax cross-entropy again: g/m into the recorded scale, then
    (ŷ − onehot(y))·g/m into the recorded gradient."""
    gz3 = gz if members else gz[None]
    if members:
        def replay():
            scale[...] = (np.asarray(g, np.float64) * (1.0 / m)).astype(scale.dtype)
            kern_back(p, td, scale, gz3)
    else:
        def replay():
            scale[0] = float(g) * (1.0 / m)
            kern_back(p, td, scale, gz3)
    return replay


def _softmax_cross_entropy_cuda(z, zd, td):
    """``softmax_cross_entropy`` of (m, C) scores, or a population's (P, m, C) with labels (m,)
    shared, with integer labels through the fused CUDA kernels: one launch forward (ŷ and each
    member's loss), one backward ((ŷ − onehot(y))·g/m). Half scores are read as they are; ŷ and
    the loss are float32 (float64 for float64 scores). A label outside [0, C) gives a NaN loss.
    None where the kernels do not apply (the NumPy form runs)."""
    members = zd.ndim == 3
    if zd.ndim not in (2, 3) or not zd.flags.c_contiguous:
        return None
    m, c = zd.shape[-2], zd.shape[-1]
    in_dtype = zd.dtype
    if td.shape != (m,) or not m or not c or (in_dtype not in _FLOATS and not cuda_kernels.x_kind(in_dtype)):
        return None
    t_dtype = _FLOATS[1] if in_dtype == _FLOATS[1] else _FLOATS[0]
    kern = backend.raw_kernel("softmax_xent", in_dtype, t_dtype)
    kern_back = backend.fused_kernel("softmax_xent_backward")
    if kern is None or kern_back is None:
        return None
    xp = _xp(zd)
    labels = td if td.dtype == np.int64 and td.flags.c_contiguous else xp.ascontiguousarray(td, dtype=np.int64)
    n = zd.shape[0] if members else 1
    p = xp.empty(zd.shape, t_dtype)  # ŷ
    loss = xp.empty(n, t_dtype)
    args = (zd, labels, np.int64(m), np.int64(c), np.float64(1.0 / m), p, loss)
    kern((n, 1, 1), cuda_kernels.SOFTMAX_BLOCK, args)
    if _CAPTURE.rec is not None:
        def replay():
            if labels is not td:
                xp.copyto(labels, td)
            kern((n, 1, 1), cuda_kernels.SOFTMAX_BLOCK, args)

        _CAPTURE.rec.op(replay)

    def backward(g):
        g_in = g
        cast = xp.asarray(g, dtype=t_dtype)
        g = cast.reshape(-1)  # one value per member (one for a single model)
        gz = xp.empty(zd.shape, in_dtype)
        kern_back(p, labels, g, m, c, t_dtype.type(1.0 / m), gz)
        if _CAPTURE.rec is not None:
            def replay():
                if cast is not g_in:  # the eager step cast the incoming gradient
                    xp.copyto(cast, g_in, casting="unsafe")
                kern_back(p, labels, g, m, c, t_dtype.type(1.0 / m), gz)

            _CAPTURE.rec.grad(replay)
        return (gz,)

    out = _make(loss if members else loss.reshape(()), (z,), backward)
    return _per_member(out) if members else out


def binary_cross_entropy_with_logits(logits, targets):
    """Logistic loss J = (1/m) Σ [log(1 + e^z) − y·z], stable form; dJ/dz = (σ(z) − y)/m.

    Targets are 0/1 labels or probabilities in [0, 1] (outside it J is unbounded below). The
    range is checked for NumPy targets (one min and one max); CUDA targets are not checked, which
    would cost a host synchronisation per step. Logits of a population, shape (P, m, 1), give one
    J per member (shape (P,)) with targets (m,) shared by the members."""
    z = _tensor(logits)
    zd = z.data
    xp = _xp(zd)
    td = _targets(targets, zd, "binary_cross_entropy")
    _check_nonempty("binary_cross_entropy", zd)
    members = zd.ndim == 3
    if members and td.size == zd.size // zd.shape[0]:
        td = td.reshape((1,) + zd.shape[1:])  # shared by the members
    elif td.size == zd.size:
        td = td.reshape(zd.shape)
    if td.shape != zd.shape and not (members and td.shape == (1,) + zd.shape[1:]):
        raise ValueError(f"targets of shape {td.shape} do not match scores of shape {zd.shape}")
    if type(td) is np.ndarray and not (td.min() >= 0 and td.max() <= 1):
        flat = td.reshape(-1)
        bad = flat[~((flat >= 0) & (flat <= 1))][0].item()
        raise ValueError(f"binary_cross_entropy targets must lie in [0, 1] (0/1 labels or probabilities), found "
                         f"{bad!r}; for more than two classes use softmax_cross_entropy")
    yd = td.astype(zd.dtype, copy=False)
    n = zd.shape[0] if members else 1
    m = zd.size // n
    terms = xp.maximum(zd, 0) - zd * yd + xp.log1p(xp.exp(-xp.abs(zd)))
    loss = xp.asarray((terms.reshape(n, -1).sum(axis=1) if members else terms.sum()) / m, dtype=zd.dtype)

    def backward(g):
        e = xp.exp(-xp.abs(zd))
        sig = xp.where(zd >= 0, 1 / (1 + e), e / (1 + e))
        scale = (g.reshape((n,) + (1,) * (zd.ndim - 1)) if members else g) / m
        return (((sig - yd) * scale).astype(zd.dtype, copy=False),)

    out = _make(loss, (z,), backward)
    return _per_member(out) if members else out


def mse(pred, target):
    """Mean squared error over all elements: (1/n) Σ (pred − target)². Predictions of a
    population, shape (P, m, C), give one error per member (shape (P,)) against targets shared by
    the members ((m,) labels or (m, C)) or one set per member (P, m, C)."""
    pred = _tensor(pred)
    pd = pred.data
    labels = _targets(target, pd, "mse")
    _check_nonempty("mse", pd)
    members = pd.ndim == 3
    one_hot_labels = labels.dtype.kind in "iub" and pd.ndim == labels.ndim + 1 + members
    if one_hot_labels:
        if labels.dtype.kind == "b":
            raise ValueError("mse got boolean labels for (batch, classes) predictions; give integer class indices "
                             "(labels.astype(int))")
        if not members:
            _check_labels(pd, labels)
    shape = pd.shape if one_hot_labels else labels.shape
    if shape != pd.shape and not (members and shape == pd.shape[1:]):
        raise ValueError(f"targets of shape {shape} do not match predictions of shape {pd.shape}")
    k = pd.shape[0] if members else 1

    def forward():
        td = labels
        if one_hot_labels:
            if type(pd) is np.ndarray and (td.min() < 0 or td.max() >= pd.shape[-1]):
                _bad_label(td.reshape(-1), pd.shape[-1])
            td = one_hot(td, pd.shape[-1], pd.dtype)
        diff = pd - td
        sq = diff * diff
        return diff, _xp(pd).asarray((sq.reshape(k, -1).sum(axis=1) if members else sq.sum()) / (diff.size // k),
                                     dtype=pd.dtype)

    diff, loss = forward()
    n = diff.size // k
    record_forward(forward, (diff, loss))
    if not members:
        return _make(loss, (pred,), lambda g: (diff * (g * (2.0 / n)),))
    return _per_member(_make(loss, (pred,), lambda g: (diff * (g[:, None, None] * (2.0 / n)),)))
