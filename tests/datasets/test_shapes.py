"""A data set's input shape: the flat (F,) by default, (1, 8, 8) for digits, checked against X;
``as_images`` views flat rows as images."""
from __future__ import annotations

import numpy as np
import pytest

from polydl import datasets
from polydl.datasets.shapes import as_images, check_input_shape, input_shape_of


def test_digits_are_one_by_eight_by_eight_images_kept_flat():
    d = datasets.digits()
    assert d.input_shape == (1, 8, 8) and d.X_train.shape[1] == 64 and d.num_features == 64
    images = as_images(d.X_train, d.input_shape)
    assert images.shape == (len(d.X_train), 1, 8, 8) and np.shares_memory(images, d.X_train)
    np.testing.assert_array_equal(images[3, 0, 2], d.X_train[3, 16:24])     # row by row


@pytest.mark.parametrize("name, shape", [("moons", (2,)), ("spirals", (2,)), ("blobs", (2,))])
def test_tabular_sets_keep_the_flat_shape(name, shape):
    assert datasets.load(name).input_shape == shape


def test_the_default_is_xs_own_sample_shape():
    X, y = np.zeros((10, 5), np.float32), np.arange(10) % 2
    args = ("d", X, y, X, y, X, y, 2)
    assert datasets.Dataset(*args).input_shape == (5,)
    assert datasets.Dataset(*args, input_shape=(5, 1)).input_shape == (5, 1)
    assert datasets.split(X, y, input_shape=[1, 5]).input_shape == (1, 5)
    X4 = np.zeros((10, 3, 4, 4))
    ds = datasets.Dataset("d", X4, y, X4, y, X4, y, 2)
    assert ds.input_shape == (3, 4, 4) and ds.num_features == 48


def test_an_input_shape_that_does_not_fit_x_is_refused():
    X, y = np.zeros((10, 64)), np.zeros(10)
    with pytest.raises(ValueError, match=r"dataset d: input_shape \(1, 7, 7\) has 49 values per sample, but the "
                                         r"samples have 64 \(shape \(64,\)\)"):
        datasets.Dataset("d", X, y, X, y, X, y, 2, input_shape=(1, 7, 7))


@pytest.mark.parametrize("bad", [(), (0, 8), (1.5,), "abc", None, (True, 2)])
def test_bad_shapes(bad):
    with pytest.raises(ValueError, match="input_shape must be a tuple"):
        check_input_shape(bad)


def test_input_shape_of():
    assert input_shape_of(np.zeros((3, 2, 5))) == (2, 5)
    assert input_shape_of(np.zeros(3)) == (1,)
    assert check_input_shape(7) == (7,)


def test_as_images_names_both_sizes():
    with pytest.raises(ValueError, match=r"the samples have 63 values each \(shape \(63,\)\), but input_shape "
                                         r"\(1, 8, 8\) needs 64"):
        as_images(np.zeros((2, 63)), (1, 8, 8))
    assert as_images(np.zeros((2, 1, 8, 8)), (1, 8, 8)).shape == (2, 1, 8, 8)
    assert datasets.as_images is as_images


def test_the_trainers_data_keeps_working():
    from polydl.training.data import Data

    X, y = np.zeros((4, 3)), np.arange(4) % 2
    data = Data("d", X, y, X, y, X, y, 2, np.zeros(3), np.ones(3), None)
    assert data.input_shape == (3,) and data.mean.shape == (3,) and data.class_names is None
