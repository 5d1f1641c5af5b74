"""The bundled digits and the seeded synthetic data sets."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from polydl import datasets


def _raw_digits():
    with resources.files("polydl.datasets").joinpath("data/digits.npz").open("rb") as fh:
        with np.load(fh) as z:
            return z["X"], z["y"]


def test_digits_shape_and_classes():
    d = datasets.digits()
    m = sum(d.sizes().values())
    assert m == 1797
    assert d.num_features == 64 and d.num_classes == 10
    for X, y in ((d.X_train, d.y_train), (d.X_val, d.y_val), (d.X_test, d.y_test)):
        assert X.dtype == np.float32 and X.shape[1] == 64 and y.dtype == np.int64 and len(X) == len(y)
        assert X.min() >= 0.0 and X.max() <= 1.0
    y_all = np.concatenate([d.y_train, d.y_val, d.y_test])
    assert sorted(np.unique(y_all)) == list(range(10))
    assert np.bincount(y_all).min() >= 170  # about 180 of each digit
    assert d.sizes() == {"train": 1258, "val": 180, "test": 359}


def test_bundled_file_is_the_uci_digits():
    X, y = _raw_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.min() == 0 and X.max() == 16  # 4×4 blocks of 32×32 bitmaps: counts 0..16
    readme = resources.files("polydl.datasets").joinpath("data/README.txt").read_text()
    assert "UCI" in readme and "CC BY 4.0" in readme


def test_digits_splits_are_a_disjoint_cover_of_the_data():
    d = datasets.digits()
    X, y = _raw_digits()
    full = np.concatenate([X.astype(np.float32) / 16, y[:, None].astype(np.float32)], 1)
    parts = np.concatenate([np.concatenate([Xs, ys[:, None].astype(np.float32)], 1)
                            for Xs, ys in ((d.X_train, d.y_train), (d.X_val, d.y_val), (d.X_test, d.y_test))])
    # same multiset of (image, label) rows: every sample in exactly one split
    np.testing.assert_array_equal(full[np.lexsort(full.T)], parts[np.lexsort(parts.T)])


def test_split_is_fixed_for_a_seed_and_disjoint():
    ids = np.arange(1000)
    a = datasets.split(ids[:, None], ids % 3, seed=4)
    b = datasets.split(ids[:, None], ids % 3, seed=4)
    c = datasets.split(ids[:, None], ids % 3, seed=5)
    parts = [a.X_train[:, 0], a.X_val[:, 0], a.X_test[:, 0]]
    assert sorted(np.concatenate(parts).astype(int).tolist()) == ids.tolist()
    assert a.sizes() == {"train": 700, "val": 100, "test": 200}
    np.testing.assert_array_equal(a.X_test, b.X_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.X_test, c.X_test)
    np.testing.assert_array_equal(a.y_train, a.X_train[:, 0].astype(int) % 3)  # labels travel with rows


def test_digits_split_is_fixed_for_a_seed():
    a, b, c = datasets.digits(seed=0), datasets.digits(seed=0), datasets.digits(seed=1)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.y_test, c.y_test)
    np.testing.assert_array_equal(datasets.load("digits").X_train, a.X_train)


@pytest.mark.parametrize("kwargs", [{"val_fraction": 1.0}, {"test_fraction": -0.1}, {"val_fraction": 0.5, "test_fraction": 0.5}])
def test_split_fractions_are_validated(kwargs):
    with pytest.raises(ValueError, match="fraction"):
        datasets.split(np.zeros((10, 1)), np.zeros(10), **kwargs)


@pytest.mark.parametrize("name, features, classes", [("moons", 2, 2), ("spirals", 2, 3), ("blobs", 2, 4)])
def test_synthetic_sets(name, features, classes):
    d = datasets.load(name, seed=3)
    assert d.num_features == features and d.num_classes == classes
    assert set(np.unique(np.concatenate([d.y_train, d.y_val, d.y_test]))) == set(range(classes))
    again = datasets.load(name, seed=3)
    np.testing.assert_array_equal(d.X_train, again.X_train)
    assert not np.array_equal(d.X_train, datasets.load(name, seed=4).X_train)


def test_names_and_unknown_name():
    assert {"digits", "moons", "spirals", "blobs"} <= set(datasets.names())
    with pytest.raises(ValueError) as info:
        datasets.load("mnist_typo")
    assert "digits" in str(info.value)
    with pytest.raises(ValueError):
        datasets.load("digits", colour=True)


@pytest.mark.parametrize("name, params, message", [
    ("moons", {"n_samples": 1}, "dataset parameter n_samples must be >= 2, not 1"),
    ("moons", {"n_samples": "many"}, "dataset parameter n_samples must be a whole number, not 'many'"),
    ("moons", {"noise": -0.1}, "dataset parameter noise must be >= 0, not -0.1"),
    ("spirals", {"classes": 1}, "dataset parameter classes must be >= 2, not 1"),
    ("spirals", {"classes": 5, "n_samples": 4}, "dataset parameter n_samples must be >= 5, not 4"),
    ("blobs", {"centers": 0}, "dataset parameter centers must be >= 1, not 0"),
    ("blobs", {"features": 2.5}, "dataset parameter features must be a whole number, not 2.5"),
    ("blobs", {"spread": float("inf")}, "dataset parameter spread must be a finite number, not inf"),
    ("digits", {"colour": True}, r"dataset 'digits' has no parameter 'colour' \(its parameters: seed, val_fraction, test_fraction\)"),
])
def test_synthetic_parameters_are_validated(name, params, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        datasets.load(name, **params)


def test_split_indices_partition_the_permutation():
    train, val, test = datasets.split_indices(50, seed=4, val_fraction=0.2, test_fraction=0.1)
    assert (len(train), len(val), len(test)) == (35, 10, 5)
    assert sorted(np.concatenate([test, val, train]).tolist()) == list(range(50))
    np.testing.assert_array_equal(np.concatenate([test, val, train]), np.random.default_rng(4).permutation(50))
    d = datasets.split(np.arange(50.0)[:, None], np.zeros(50), seed=4, val_fraction=0.2, test_fraction=0.1)
    np.testing.assert_array_equal(d.X_val[:, 0], val)


@pytest.mark.parametrize("name, params, message, fix", [
    ("moons", {"n_samples": 10 ** 11}, r"dataset moons: 100,000,000,000 × 2 float64 values would need 1\.46 TiB",
     "n_samples"),
    ("spirals", {"n_samples": 10 ** 11}, r"dataset spirals: 100,000,000,000 × 2 float64 values", "n_samples"),
    ("blobs", {"n_samples": 10 ** 11}, r"dataset blobs: 100,000,000,000 × 2 float64 values", "n_samples or features"),
    ("blobs", {"features": 10 ** 11}, r"dataset blobs: 1,000 × 100,000,000,000 float64 values would need 728 TiB",
     "n_samples or features"),
    ("blobs", {"centers": 10 ** 11, "n_samples": 10}, r"dataset blobs: 100,000,000,000 × 2 ", "centers or features"),
])
def test_a_size_that_cannot_fit_is_refused_before_drawing(name, params, message, fix):
    with pytest.raises(ValueError, match=rf"{message}.*, more than .*; use a smaller {fix}$"):
        datasets.load(name, **params)


@pytest.mark.parametrize("y, message", [
    ([0.7, 1.2, 0.0], r"labels must be integers \(class numbers 0, 1, 2, \.\.\.\), found 0\.7 \(sample 1\)"),
    (np.array([0, 2**64 - 1, 1], dtype=np.uint64), r"the label value 18446744073709551615 \(sample 2\) is not a "
                                                   r"class index"),
    (np.array("abc"), r"labels must be a 1-D array of class numbers or names, one per sample \(shape \(m,\)\), "
                      r"not a single value 'abc'"),
    (["a", "b", "c"], r"labels must be integer class numbers 0, 1, 2, \.\.\., not <U1"),
    ([0, 1], r"X has 3 samples but y has 2"),
])
def test_split_checks_labels_instead_of_casting_them(y, message):
    with pytest.raises(ValueError, match=f"^dataset mine: {message}"):
        datasets.split(np.zeros((3, 2)), y, name="mine")


def test_split_keeps_whole_labels():
    ds = datasets.split(np.zeros((10, 2)), np.arange(10.0) % 3, val_fraction=0.2, test_fraction=0.2)
    assert ds.y_train.dtype == np.int64 and ds.num_classes == 3
    assert datasets.split(np.zeros((4, 1)), [True, False, True, False], 0, 0.25, 0.25).num_classes == 2
