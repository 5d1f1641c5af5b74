"""Inverted dropout, for one model or a population (one random stream per member)."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..capture.record import record_forward
from ..tensor import _CAPTURE, _make
from ._common import _tensor, _xp

__all__ = ["dropout"]


def dropout(x, p, training=True):
    """Inverted dropout: keep each unit with probability 1 − p and scale it by 1/(1 − p).

    For a population, x of shape (P, m, F) and ``p`` one probability per member: member k's mask
    is drawn from its own random stream (``polydl.random.members``), as the same model alone
    would draw it (none for a member with p = 0)."""
    x = _tensor(x)
    from .. import random as _random

    if np.ndim(p):
        return _dropout_members(x, np.asarray(p, dtype=np.float64), training, _random.member_streams())
    if not training or p == 0:
        return x
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability p must be in [0, 1), not {p}")
    xd = x.data

    def forward():
        u = _random.uniform(xd.shape, xd.dtype, backend.device_of(xd))
        mask = (u >= p).astype(xd.dtype)
        mask *= xd.dtype.type(1.0 / (1.0 - p))
        return mask, xd * mask

    return _masked(x, forward)


def _masked(x, forward):
    """The output of dropout's ``forward`` (mask, x·mask); a captured step draws new masks, so
    its CUDA form cannot be one graph."""
    mask, out = forward()
    record_forward(forward, (mask, out))
    if _CAPTURE.rec is not None:
        _CAPTURE.rec.host("dropout draws its masks on the host's random stream")
    return _make(out, (x,), lambda g: (g * mask,))


def _dropout_members(x, ps, training, streams):
    if not training or not ps.any():
        return x
    if ps.min() < 0 or ps.max() >= 1:
        raise ValueError(f"dropout probabilities must be in [0, 1), not {ps.tolist()}")
    xd = x.data
    if xd.ndim < 2 or xd.shape[0] != len(ps):
        raise ValueError(f"dropout with {len(ps)} probabilities (one per member) needs input of shape "
                         f"({len(ps)}, ..., features), not {xd.shape}")
    if streams is None or len(streams) != len(ps):
        raise ValueError("a population's dropout draws from its members' random streams: run it inside "
                         "polydl.random.members(streams) with one stream per member")
    xp = _xp(xd)
    dev = backend.device_of(xd)

    def forward():
        from .. import random as _random

        draw = _random.member_streams()  # the members' streams where the step runs (the same ones)
        mask = xp.ones_like(xd)
        for k, pk in enumerate(ps.tolist()):
            if pk > 0:
                u = draw[k].uniform(xd.shape[1:], xd.dtype, dev)
                mk = (u >= pk).astype(xd.dtype)
                mk *= xd.dtype.type(1.0 / (1.0 - pk))
                mask[k] = mk
        return mask, xd * mask

    return _masked(x, forward)
