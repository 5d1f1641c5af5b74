"""Data augmentation for images: random horizontal flips and random crops of a zero-padded image.

For a batch X of n images (n, ..., H, W) and padding p, image i is first mirrored along its last
axis (x → W−1−x) where flip_i, then shifted by (dy_i, dx_i), each uniform in {−p, ..., p}:

    out[i, ..., y, x] = img_i[..., y + dy_i, x + dx_i]   where 0 ≤ y + dy_i < H and 0 ≤ x + dx_i < W,
                        0                                 elsewhere,

which is the H×W crop at offset (p + dy_i, p + dx_i) of the image padded with p zeros on each side.
The draws come from the given NumPy ``Generator``, in this order: ``flip = rng.random(n) < 0.5``
(with ``flip``), then ``(dy, dx) = rng.integers(-p, p + 1, size=(n, 2))`` (with p > 0), so the same
generator state gives the same batch. :func:`augment_rng` derives a batch's generator from the data
seed, the epoch and the batch number, so that a resumed run draws what an uninterrupted one does.
"""
from __future__ import annotations

import numpy as np

from .shapes import as_images

__all__ = ["augment", "augment_rng", "Augment", "STREAM"]

STREAM = 0x617567  # "aug": keeps these draws apart from the data seed's other streams


def augment_rng(data_seed: int, epoch: int, batch: int) -> np.random.Generator:
    """The generator of batch ``batch`` (0, 1, ...) of ``epoch``: ``default_rng([data_seed, epoch,
    batch, STREAM])``; independent of the order in which batches are drawn or a run is resumed."""
    return np.random.default_rng([int(data_seed), int(epoch), int(batch), STREAM])


def _check(X, rng, crop_padding, flip, input_shape):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"augment draws from a numpy.random.Generator (numpy.random.default_rng(seed)), "
                        f"not {type(rng).__name__}")
    if isinstance(crop_padding, bool) or not isinstance(crop_padding, (int, np.integer)) or crop_padding < 0:
        raise ValueError(f"crop_padding must be a whole number of pixels ≥ 0, not {crop_padding!r}")
    if not isinstance(flip, (bool, np.bool_)):
        raise ValueError(f"flip must be true or false, not {flip!r}")
    images = as_images(X, input_shape) if input_shape is not None else np.asarray(X)
    if images.ndim < 3:
        raise ValueError(f"augment needs a batch of images (n, ..., height, width), not an array of shape "
                         f"{images.shape}; give input_shape for flat rows")
    return images


def augment(X, rng: np.random.Generator, crop_padding: int = 4, flip: bool = True, input_shape=None) -> np.ndarray:
    """A new batch: each image of ``X`` (n, ..., H, W) randomly flipped and shifted (see the module's
    docstring); ``X`` is left as it is. With ``input_shape`` (e.g. (1, 28, 28)), ``X`` is flat rows
    (n, prod(input_shape)) and so is the result. ``crop_padding=0`` and ``flip=False`` draw nothing
    and return a copy."""
    images = _check(X, rng, crop_padding, flip, input_shape)
    n, (H, W), p = images.shape[0], images.shape[-2:], int(crop_padding)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    shifts = rng.integers(-p, p + 1, size=(n, 2)) if p else np.zeros((n, 2), np.int64)
    cols = np.arange(W)[None, :] + shifts[:, 1:2]                   # (n, W): source column of each x
    cols = np.where(flips[:, None], W - 1 - cols, cols)             # mirrored first, then shifted
    rows = np.arange(H)[None, :] + shifts[:, 0:1]                   # (n, H)
    inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]   # (n, H, W)
    flat = images.reshape(n, -1, H, W)
    i = np.arange(n)[:, None, None, None]
    c = np.arange(flat.shape[1])[None, :, None, None]
    out = flat[i, c, np.clip(rows, 0, H - 1)[:, None, :, None], np.clip(cols, 0, W - 1)[:, None, None, :]]
    out = np.where(inside[:, None], out, np.zeros((), out.dtype))
    return out.reshape(np.shape(X))


class Augment:
    """``augment`` with its settings fixed: ``Augment(crop_padding=4, flip=True)(X, rng)``."""

    def __init__(self, crop_padding: int = 4, flip: bool = True, input_shape=None):
        self.crop_padding, self.flip, self.input_shape = crop_padding, flip, input_shape

    def __call__(self, X, rng: np.random.Generator) -> np.ndarray:
        return augment(X, rng, self.crop_padding, self.flip, self.input_shape)

    def __repr__(self) -> str:
        return f"Augment(crop_padding={self.crop_padding}, flip={self.flip})"
