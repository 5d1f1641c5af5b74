"""Differentiable ops, one module per concept. Each op computes its output with ``xp`` (NumPy or
CuPy, from the input) and a closure that maps the output's gradient to its inputs' gradients;
a fused op keeps its compiled CPU kernel and its CUDA kernel glue beside its NumPy form.

- :mod:`.elementwise`: arithmetic, exp/log/sqrt, activations, softmax
- :mod:`.reductions`: sum, mean, max, logsumexp
- :mod:`.shapes`: reshape, flatten, transpose, indexing, concatenate, stack
- :mod:`.linear`: matmul and the fused z = x W + b
- :mod:`.conv`: 2-D convolution of NCHW images (im2col and col2im: :mod:`._windows`)
- :mod:`.pooling`: max, average and global average pooling
- :mod:`.batch_norm`, :mod:`.batch_norm2d` (per channel), :mod:`.layer_norm`, :mod:`.dropout`
- :mod:`.losses`: softmax cross-entropy, binary cross-entropy with logits, MSE
- :mod:`.regression_losses`: mean absolute error, Huber

``polydl.functional`` re-exports them all (``import polydl.functional as F``).
"""
from __future__ import annotations

from .batch_norm import *  # noqa: F401,F403
from .batch_norm import __all__ as _bn
from .batch_norm2d import *  # noqa: F401,F403
from .batch_norm2d import __all__ as _bn2
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _cv
from .dropout import *  # noqa: F401,F403
from .dropout import __all__ as _do
from .elementwise import *  # noqa: F401,F403
from .elementwise import __all__ as _ew
from .layer_norm import *  # noqa: F401,F403
from .layer_norm import __all__ as _ln
from .linear import *  # noqa: F401,F403
from .linear import __all__ as _li
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _lo
from .pooling import *  # noqa: F401,F403
from .pooling import __all__ as _po
from .reductions import *  # noqa: F401,F403
from .reductions import __all__ as _re
from .regression_losses import *  # noqa: F401,F403
from .regression_losses import __all__ as _rl
from .shapes import *  # noqa: F401,F403
from .shapes import __all__ as _sh

__all__ = [*_ew, *_re, *_sh, *_li, *_cv, *_po, *_bn, *_bn2, *_ln, *_do, *_lo, *_rl]
