"""Layer normalization, a normalizer for polydl.

For each sample x (one row of a (batch, num_features) Tensor):

    x̂ = (x − mean(x)) / √(var(x) + ε),      y = γ · x̂ + β

with mean and (biased) variance over the features of that sample, and γ, β learnable vectors of
``num_features`` values (initialised to ones and zeros). Unlike batch normalization the
statistics come from one sample, so training and evaluation compute the same thing and a batch
of one is fine.

It is written with polydl's operations only (``polydl.functional.layer_norm``), so autodiff gives
its gradient and it runs on the CPU and on CUDA without importing NumPy or CuPy.

    polydl train --normalizer layernorm
"""
from __future__ import annotations

import math
import numbers

import polydl
from polydl import functional as F
from polydl.nn import Module

__all__ = ["LayerNorm", "polydl_register_normalizers"]
__version__ = "0.1.0"


class LayerNorm(Module):
    """y = γ · (x − μ) / √(σ² + ε) + β over the last (feature) axis of each sample.

    ``affine=False`` leaves out γ and β (no parameters)."""

    cancels_bias = False  # μ is per sample, so it does not cancel a preceding Linear's bias

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True, dtype=None, device=None):
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"LayerNorm num_features must be a positive integer, not {num_features!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps <= 0:
            raise ValueError(f"LayerNorm eps must be a finite number > 0, not {eps!r}")
        if not isinstance(affine, bool):
            raise ValueError(f"LayerNorm affine must be True or False, not {affine!r}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.affine = affine
        if affine:
            self.gamma = polydl.Parameter(polydl.tensor([1.0] * self.num_features, dtype=dtype, device=device).data)
            self.beta = polydl.Parameter(polydl.tensor([0.0] * self.num_features, dtype=dtype, device=device).data)

    def forward(self, x):
        if not isinstance(x, polydl.Tensor):
            x = polydl.tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.num_features:
            raise ValueError(f"LayerNorm({self.num_features}) got an input of shape {tuple(x.shape)}: "
                             f"its last axis must have {self.num_features} features")
        if self.affine:
            return F.layer_norm(x, self.gamma, self.beta, self.eps)
        return F.layer_norm(x, 1.0, 0.0, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}" + ("" if self.affine else ", affine=False")


@polydl.hookimpl
def polydl_register_normalizers(register):
    # A class is a factory too: LayerNorm(num_features, **params) returns the Module.
    register("layernorm", LayerNorm)
