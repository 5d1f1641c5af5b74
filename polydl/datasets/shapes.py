"""The shape of one sample: ``input_shape`` (C, H, W) for images, (F,) for tabular data.

A data set keeps its features flat, ``X`` of shape (m, F) with F = prod(input_shape), so that a
multilayer perceptron trains on it as it is; a convolutional model views the rows as images with
:func:`as_images`, (m, F) → (m, *input_shape), without copying.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["check_input_shape", "input_shape_of", "as_images"]


def check_input_shape(shape, what: str = "input_shape") -> tuple[int, ...]:
    """``shape`` as a tuple of positive ints (a single int n is (n,)); anything else is a
    ``ValueError`` naming it."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{what} must be a tuple of sizes such as (1, 28, 28) or (64,), not {shape!r}") from None
    if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims):
        raise ValueError(f"{what} must be a tuple of positive whole sizes such as (1, 28, 28) or (64,), "
                         f"not {shape!r}")
    return tuple(int(d) for d in dims)


def input_shape_of(X, input_shape=None, what: str = "data") -> tuple[int, ...]:
    """The shape of one sample of ``X`` (m, ...): ``input_shape`` checked against the sizes of
    X's rows (their product must match), or, when None, X's own sample shape X.shape[1:]
    ((F,) for a flat table; (1,) for a 1-D X of one value per sample)."""
    sample = tuple(int(d) for d in np.shape(X)[1:]) or (1,)
    if input_shape is None:
        return sample
    shape = check_input_shape(input_shape, f"{what}: input_shape")
    if math.prod(shape) != math.prod(sample):
        raise ValueError(f"{what}: input_shape {shape} has {math.prod(shape):,} values per sample, but the samples "
                         f"have {math.prod(sample):,} (shape {sample})")
    return shape


def as_images(X, input_shape) -> np.ndarray:
    """The rows of ``X`` (m, F), or samples of any shape with F values each, as an array of
    shape (m, *input_shape): a view where X is contiguous. F must equal prod(input_shape); a
    ``ValueError`` names both sizes otherwise."""
    shape = check_input_shape(input_shape)
    X = np.asarray(X) if not hasattr(X, "reshape") else X
    if X.ndim < 1:
        raise ValueError(f"as_images needs samples (an array of shape (m, ...)), not a single value of shape {X.shape}")
    per = math.prod(X.shape[1:])
    if per != math.prod(shape):
        raise ValueError(f"the samples have {per:,} values each (shape {tuple(X.shape[1:])}), but input_shape "
                         f"{shape} needs {math.prod(shape):,}")
    return X.reshape((X.shape[0], *shape))
