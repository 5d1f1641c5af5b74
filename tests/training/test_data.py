"""Training data: datasets by name, .npz and .csv files, every check, standardisation."""
import numpy as np
import pytest

from polydl.training import data as D
from polydl.training.config import TrainConfig
from polydl.training.data import DataError


def cfg(**kw):
    return TrainConfig(**{"batch_size": 8, **kw})


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_named_dataset_with_params_and_splits():
    d = D.load_data(cfg(dataset="moons", dataset_params={"n_samples": 200}, val_split=0.25, test_split=0.25))
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (100, 50, 50)
    assert d.num_classes == 2 and d.num_features == 2
    assert d.X_train.dtype == np.float64 and d.y_train.dtype == np.int64


def test_data_seed_changes_the_split_and_seed_does_not():
    a = D.load_data(cfg(dataset="blobs", dataset_params={"n_samples": 100}))
    b = D.load_data(cfg(dataset="blobs", dataset_params={"n_samples": 100}, seed=5))
    c = D.load_data(cfg(dataset="blobs", dataset_params={"n_samples": 100}, data_seed=5))
    assert np.array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)


def test_standardisation_uses_training_statistics_only(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(5, 3, (100, 3))
    Xt = rng.normal(50, 30, (20, 3))  # a very different test split must not move the statistics
    y, yt = rng.integers(0, 2, 100), rng.integers(0, 2, 20)
    p = write_npz(tmp_path / "d.npz", X=X, y=y, X_test=Xt, y_test=yt)
    d = D.load_data(cfg(dataset=p, val_split=0.2))
    np.testing.assert_allclose(d.X_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(d.X_train.std(0), 1, atol=1e-12)
    raw_train = d.X_train * d.std + d.mean
    np.testing.assert_allclose(d.mean, raw_train.mean(0))
    np.testing.assert_allclose(d.X_test, (Xt - d.mean) / d.std)


def test_standardize_auto_leaves_unit_range_features_alone():
    d = D.load_data(cfg())  # digits: pixels in [0, 1]
    assert np.all(d.mean == 0) and np.all(d.std == 1)
    d2 = D.load_data(cfg(standardize=True))
    assert not np.all(d2.std == 1)
    mean, std = D.standardization(np.array([[5.0, 1.0], [7.0, 1.0]]), "auto")
    np.testing.assert_allclose(mean, [6, 1])
    np.testing.assert_allclose(std, [1, 1])  # a constant feature gets std 1


def test_no_standardize():
    d = D.load_data(cfg(dataset="blobs", standardize=False, dataset_params={"n_samples": 100}))
    assert np.all(d.mean == 0) and np.all(d.std == 1)


def test_npz_with_own_val_and_test_splits(tmp_path):
    rng = np.random.default_rng(1)
    p = write_npz(tmp_path / "d.npz", X=rng.normal(size=(40, 3)), y=np.arange(40) % 3,
                  X_val=rng.normal(size=(7, 3)), y_val=np.arange(7) % 3,
                  X_test=rng.normal(size=(9, 3)), y_test=np.arange(9) % 3)
    d = D.load_data(cfg(dataset=p))
    assert (len(d.y_train), len(d.y_val), len(d.y_test), d.num_classes) == (40, 7, 9, 3)


def test_csv_with_header_and_target(tmp_path):
    p = tmp_path / "d.csv"
    rows = ["a,label,b"] + [f"{i * 0.5},{i % 2},{-i}" for i in range(30)]
    p.write_text("\n".join(rows) + "\n")
    d = D.load_data(cfg(dataset=str(p), target="label", standardize=False, val_split=0, test_split=0))
    assert d.num_features == 2 and d.num_classes == 2
    assert sorted(d.X_train[:, 0].tolist()) == [i * 0.5 for i in range(30)]
    assert sorted(d.y_train.tolist()) == sorted(i % 2 for i in range(30))


def test_csv_without_header_label_last(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("\n".join(f"{i},{2 * i},{i % 3}" for i in range(30)) + "\n")
    d = D.load_data(cfg(dataset=str(p), val_split=0, test_split=0, standardize=False))
    assert d.num_features == 2 and d.num_classes == 3


def test_csv_target_not_a_column(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b\n1,0\n2,1\n")
    with pytest.raises(DataError, match="--target 'c' is not a column.*a, b"):
        D.load_data(cfg(dataset=str(p), target="c", batch_size=1))


@pytest.mark.parametrize("arrays, message", [
    (dict(X=np.zeros((5, 2)), y=np.zeros(4)), "X has 5 samples but y has 4"),
    (dict(X=np.zeros((5, 2)), y=np.array([0, 1, 0.5, 1, 0])), "labels must be integers"),
    (dict(X=np.zeros((5, 2)), y=np.array(["a", "b", "a", "b", "a"])), "labels must be integer class numbers"),
    (dict(X=np.zeros((5, 2)), y=np.array([0, 1, -1, 1, 0])), "labels must be in the range 0..C-1"),
    (dict(X=np.array([[0, 1], [np.nan, 1], [0, 0], [1, 1], [1, 0]]), y=np.array([0, 1, 0, 1, 0])), "NaN or infinity"),
    (dict(X=np.array([[0, 1], [np.inf, 1], [0, 0], [1, 1], [1, 0]]), y=np.array([0, 1, 0, 1, 0])), "NaN or infinity"),
    (dict(X=np.zeros((0, 2)), y=np.zeros(0, dtype=int)), "empty"),
    (dict(X=np.zeros((5, 2))), "has no array 'y'"),
    (dict(X=np.zeros((5, 2)), y=np.zeros(5, dtype=int), X_val=np.zeros((2, 2))), "only one of X_val and y_val"),
    (dict(X=np.zeros((6, 2)), y=np.zeros(6, dtype=int)), "only one class"),
    (dict(X=np.array(["a"] * 6).reshape(3, 2), y=np.zeros(3, dtype=int)), "features must be numbers"),
])
def test_bad_npz_data(tmp_path, arrays, message):
    p = write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message):
        D.load_data(cfg(dataset=p, batch_size=1, val_split=0, test_split=0))


def test_out_of_range_label_against_a_model():
    with pytest.raises(DataError, match="label 5 is out of range: the model has 3 classes"):
        D.validate_split(np.zeros((2, 1)), np.array([0, 5]), "x", num_classes=3)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file not found"):
        D.load_data(cfg(dataset=str(tmp_path / "missing.npz")))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="cannot read data file .*not a valid .npz"):
        D.load_data(cfg(dataset=str(bad)))
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        D.load_data(cfg(dataset=str(tmp_path / "dir.csv")))
    other = tmp_path / "data.txt"
    other.write_text("1,2\n")
    with pytest.raises(DataError, match="use a .npz or .csv file"):
        D.load_data(cfg(dataset=str(other)))


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("a,b\n", "header but no rows"),
    ("1,0\n2\n", "line 2 has 1 columns, expected 2"),
    ("x,y\n1,0\nzz,1\n", "line 3: x is 'zz', not a number"),
    ("1,cat\n2,dog\n", "labels in .* must be integer class numbers"),
    ("1,0\n,1\n2,0\n", "NaN or infinity"),
    ("1\n2\n", "one column"),
])
def test_bad_csv(tmp_path, text, message):
    p = tmp_path / "d.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=message):
        D.load_data(cfg(dataset=str(p), batch_size=1, val_split=0, test_split=0))


def test_batch_size_larger_than_training_set():
    with pytest.raises(DataError, match="batch_size 1000 is larger than the training set"):
        D.load_data(cfg(dataset="moons", dataset_params={"n_samples": 100}, batch_size=1000))


def test_unknown_dataset_lists_names_and_files():
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'.*digits.*\.npz or \.csv"):
        D.load_data(cfg(dataset="nope"))


def test_dataset_params_do_not_apply_to_files(tmp_path):
    p = write_npz(tmp_path / "d.npz", X=np.zeros((4, 1)), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="apply to named datasets"):
        D.load_data(cfg(dataset=p, dataset_params={"n_samples": 3}))


def test_read_features(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.ones((3, 2)))
    assert D.read_features(tmp_path / "a.npz", 2).shape == (3, 2)
    np.savez(tmp_path / "b.npz", feats=np.ones((3, 2)))
    assert D.read_features(tmp_path / "b.npz").shape == (3, 2)
    (tmp_path / "c.csv").write_text("1,2,0\n3,4,1\n")
    assert D.read_features(tmp_path / "c.csv", 2).tolist() == [[1, 2], [3, 4]]  # label column dropped
    assert D.read_features(tmp_path / "c.csv", 3).shape == (2, 3)
    with pytest.raises(DataError, match="has 3 features per sample, but the model takes 5"):
        D.read_features(tmp_path / "c.csv", 5)
    (tmp_path / "n.csv").write_text("1,nan\n")
    with pytest.raises(DataError, match="NaN"):
        D.read_features(tmp_path / "n.csv", 2)
    with pytest.raises(FileNotFoundError):
        D.read_features(tmp_path / "none.csv")


def test_a_file_is_split_like_a_named_dataset(tmp_path):
    """The same seeded permutation splits a file and a named dataset (polydl.datasets.split_indices)."""
    from polydl import datasets
    X = np.arange(60.0).reshape(30, 2)
    p = write_npz(tmp_path / "d.npz", X=X, y=np.arange(30) % 2)
    d = D.load_data(cfg(dataset=p, data_seed=3, standardize=False))
    train, val, test = datasets.split_indices(30, 3, 0.1, 0.2)
    np.testing.assert_array_equal(d.X_train, X[train])
    np.testing.assert_array_equal(d.X_val, X[val])
    np.testing.assert_array_equal(d.X_test, X[test])


def test_target_is_only_for_csv_files(tmp_path):
    p = write_npz(tmp_path / "d.npz", X=np.zeros((10, 2)), y=np.arange(10) % 2)
    for name in ("moons", p):
        with pytest.raises(DataError, match="--target 'label' chooses the label column of a .csv file"):
            D.load_data(cfg(dataset=name, target="label"))
