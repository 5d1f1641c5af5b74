"""Random crops of zero-padded images and horizontal flips: the exact semantics, checked image by
image against a direct padding-and-slicing reference, and reproducible from a generator's state."""
from __future__ import annotations

import numpy as np
import pytest

from polydl.datasets.augment import Augment, augment, augment_rng


def batch(n=6, c=2, h=5, w=7, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(1, 2, (n, c, h, w)).astype(dtype)   # no zero pixels


def reference(X, flips, shifts, p):
    """Each image mirrored where flips[i], padded with p zeros, cropped at (p + dy, p + dx)."""
    H, W = X.shape[-2:]
    out = np.empty_like(X)
    for i, img in enumerate(X):
        img = img[..., ::-1] if flips[i] else img
        padded = np.pad(img, [(0, 0)] * (img.ndim - 2) + [(p, p), (p, p)])
        dy, dx = shifts[i]
        out[i] = padded[..., p + dy:p + dy + H, p + dx:p + dx + W]
    return out


@pytest.mark.parametrize("p, flip", [(0, True), (1, False), (2, True), (4, True), (9, True)])
def test_matches_padding_flipping_and_cropping(p, flip):
    X = batch(n=40)
    rng = np.random.default_rng(5)
    out = augment(X, rng, crop_padding=p, flip=flip)
    draw = np.random.default_rng(5)                      # the documented draws, in their order
    flips = draw.random(40) < 0.5 if flip else np.zeros(40, bool)
    shifts = draw.integers(-p, p + 1, size=(40, 2)) if p else np.zeros((40, 2), int)
    np.testing.assert_array_equal(out, reference(X, flips, shifts, p))
    assert out.dtype == X.dtype and out.shape == X.shape


def test_a_shift_is_at_most_the_padding_and_fills_zeros():
    X = batch(n=200, h=8, w=8)
    out = augment(X, np.random.default_rng(1), crop_padding=3, flip=False)
    for img, src in zip(out, X, strict=True):
        rows = np.flatnonzero((img != 0).any(axis=(0, 2)))
        cols = np.flatnonzero((img != 0).any(axis=(0, 1)))
        dy = 8 - len(rows) if rows[0] == 0 else -(8 - len(rows))
        dx = 8 - len(cols) if cols[0] == 0 else -(8 - len(cols))
        assert abs(dy) <= 3 and abs(dx) <= 3
        np.testing.assert_array_equal(img[:, rows][:, :, cols],                # the rest is the shifted image
                                      src[:, max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)])
        zeros = np.ones((8, 8), bool)
        zeros[np.ix_(rows, cols)] = False
        assert (img[:, zeros] == 0).all()


def test_every_shift_in_range_occurs():
    out = augment(np.ones((400, 1, 4, 4)), np.random.default_rng(0), crop_padding=2, flip=False)
    sizes = {(int((o[0] != 0).any(1).sum()), int((o[0] != 0).any(0).sum())) for o in out}
    assert sizes == {(h, w) for h in (2, 3, 4) for w in (2, 3, 4)}


def test_flip_mirrors_the_last_axis():
    X = batch(n=100)
    out = augment(X, np.random.default_rng(2), crop_padding=0, flip=True)
    flipped = [np.array_equal(o, x[..., ::-1]) for o, x in zip(out, X, strict=True)]
    kept = [np.array_equal(o, x) for o, x in zip(out, X, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))          # each image one or the other
    assert 30 < sum(flipped) < 70


def test_same_generator_state_same_batch_and_input_untouched():
    X = batch()
    before = X.copy()
    a = augment(X, np.random.default_rng(7))
    b = augment(X, np.random.default_rng(7))
    c = augment(X, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(X, before)
    rng = np.random.default_rng(3)
    rng.random()
    state = rng.bit_generator.state
    first = augment(X, rng)
    rng.bit_generator.state = state
    np.testing.assert_array_equal(augment(X, rng), first)


def test_nothing_drawn_without_padding_or_flips():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    X = batch()
    out = augment(X, rng, crop_padding=0, flip=False)
    np.testing.assert_array_equal(out, X)
    assert out is not X and rng.bit_generator.state == state


def test_flat_rows_with_an_input_shape():
    X = batch(n=5, c=1, h=8, w=8)
    flat = X.reshape(5, 64)
    out = augment(flat, np.random.default_rng(4), input_shape=(1, 8, 8))
    assert out.shape == (5, 64)
    np.testing.assert_array_equal(out.reshape(X.shape), augment(X, np.random.default_rng(4)))
    np.testing.assert_array_equal(Augment(4, True, (1, 8, 8))(flat, np.random.default_rng(4)), out)


def test_three_dimensional_batches():
    X = batch(c=1)[:, 0]
    np.testing.assert_array_equal(augment(X, np.random.default_rng(1)),
                                  augment(X[:, None], np.random.default_rng(1))[:, 0])


def test_augment_rng_depends_on_seed_epoch_and_batch_only():
    draws = {k: augment_rng(*k).random(3).tolist() for k in [(0, 1, 2), (0, 1, 3), (0, 2, 2), (1, 1, 2)]}
    assert len({tuple(v) for v in draws.values()}) == 4
    assert augment_rng(0, 1, 2).random(3).tolist() == draws[(0, 1, 2)]
    # apart from the epoch's shuffling stream default_rng([data_seed, epoch])
    assert np.random.default_rng([0, 1]).random(3).tolist() not in draws.values()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"rng": 3}, TypeError, "numpy.random.Generator"),
    ({"crop_padding": -1}, ValueError, "crop_padding must be"),
    ({"crop_padding": 1.5}, ValueError, "crop_padding must be"),
    ({"flip": "yes"}, ValueError, "flip must be"),
    ({"X": np.zeros((4, 64))}, ValueError, "give input_shape for flat rows"),
    ({"X": np.zeros((4, 63)), "input_shape": (1, 8, 8)}, ValueError, "63 values each"),
])
def test_bad_arguments(kwargs, error, message):
    args = {"X": batch(), "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(error, match=message):
        augment(**args)
