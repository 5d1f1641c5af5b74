"""The differentiable ops under one name (``import polydl.functional as F``): a re-export of
:mod:`polydl.ops`, where each concept has its module (elementwise, reductions, shapes, linear,
batch norm, layer norm, dropout, losses).

Fused nodes use closed forms: ``softmax_cross_entropy`` has dJ/dz = (ŷ − y)/m, ``batch_norm``
has the closed-form batch-normalization backward, ``linear`` is z = xW + b in one node.
"""
from __future__ import annotations

from .ops import *  # noqa: F401,F403
from .ops import __all__  # noqa: F401
from .ops.batch_norm import _batch_norm_cuda  # noqa: F401  (the CUDA kernels' tests call these directly)
from .ops.losses import _softmax_cross_entropy_cuda  # noqa: F401
