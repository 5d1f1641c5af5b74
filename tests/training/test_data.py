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
    (dict(X=np.zeros((5, 2)), y=np.array(["a", "b", "1", "b", "a"])), r"mix numbers and names \(sample 3: '1', sample 1: 'a'\)"),
    (dict(X=np.zeros((5, 2)), y=np.array([1j, 0, 1, 1, 0])), "labels must be integer class numbers"),
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
    with pytest.raises(DataError, match="bad.npz is a text file, not a .npz file"):
        D.load_data(cfg(dataset=str(bad)))
    bad.write_bytes(b"PK\x03\x04 a damaged zip archive")
    with pytest.raises(DataError, match=r"cannot read data file .*not a valid .npz file \(.*\); write it with numpy.savez"):
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
    ("1,0\n2,cat\n3,1\n", r"labels in .* mix numbers and names \(line 1: '0', line 2: 'cat'\)"),
    ("a,label\n1,0\n2,\n", r"line 3 has no label \(the label column is empty\)"),
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


# ---------------------------------------------------------------------------- sizes, formats, names
def _npz_claiming(path, shape, dtype="<f8"):
    """A .npz whose member X.npy has a header claiming ``shape`` but (almost) no data."""
    import io
    import zipfile

    from numpy.lib import format as fmt
    buf = io.BytesIO()
    fmt.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", buf.getvalue() + b"\0" * 64)
        with zf.open("y.npy", "w") as fh:
            np.save(fh, np.array([0, 1]))
    return str(path)


def test_npz_whose_header_claims_terabytes_is_refused_before_loading(tmp_path):
    p = _npz_claiming(tmp_path / "huge.npz", (10 ** 12, 10))
    with pytest.raises(DataError, match=r"huge.npz \(its headers claim array 'X' of shape \(1000000000000, 10\), "
                                        r"float64\) would need 72\.\d TiB, more than"):
        D.load_data(cfg(dataset=p))
    with pytest.raises(DataError, match="would need 72"):
        D.read_features(p)


@pytest.mark.parametrize("content, name, message", [
    ("npy", "d.npz", r"d.npz is a single NumPy array \(.npy, numpy.save\), not a .npz file; write it with "
                     r"numpy.savez\('d.npz', X=..., y=...\)"),
    ("npz", "d.npy", r"d.npy is a .npz archive \(numpy.savez\) under another name; rename it to d.npz"),
    ("npz", "d.csv", r"d.csv is a .npz archive \(numpy.savez\) under another name; rename it to d.npz"),
    ("npy", "d.csv", r"d.csv is a single NumPy array .*numpy.savez\('d.npz', X=..., y=...\)"),
    ("npy", "d.npy", r"d.npy is a single NumPy array .*numpy.savez\('d.npz', X=..., y=...\)"),
    ("text", "d.npz", r"d.npz is a text file, not a .npz file; if it holds comma-separated values, rename it to d.csv"),
    ("gzip", "d.csv", r"d.csv is gzip-compressed, not a .csv file; save the data as UTF-8 text"),
    ("xlsx", "d.csv", r"d.csv is an Excel workbook, not a .csv file; export it as CSV"),
    ("empty", "d.npz", r"d.npz is empty \(0 bytes\), not a .npz file"),
])
def test_a_file_that_is_really_another_format_says_what_it_is(tmp_path, content, name, message):
    import gzip
    import zipfile

    p = tmp_path / name
    X, y = np.arange(12.0).reshape(6, 2), np.arange(6) % 2
    if content == "npy":
        with open(p, "wb") as fh:
            np.save(fh, X)
    elif content == "npz":
        with open(p, "wb") as fh:
            np.savez(fh, X=X, y=y)
    elif content == "text":
        p.write_text("1,2,0\n3,4,1\n")
    elif content == "gzip":
        p.write_bytes(gzip.compress(b"1,2,0\n3,4,1\n"))
    elif content == "xlsx":
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("[Content_Types].xml", "<Types/>")
            zf.writestr("xl/workbook.xml", "<workbook/>")
    else:
        p.write_bytes(b"")
    with pytest.raises(DataError, match=message):
        D.load_data(cfg(dataset=str(p), batch_size=1))


def test_features_to_predict_in_an_npy_named_npz(tmp_path):
    with open(tmp_path / "x.npz", "wb") as fh:
        np.save(fh, np.ones((3, 2)))
    with pytest.raises(DataError, match=r"x.npz is a single NumPy array .*numpy.savez\('x.npz', X=...\)$"):
        D.read_features(tmp_path / "x.npz", 2)


@pytest.mark.parametrize("labels, found", [([1, 1, 1, 1, 1, 1], "1"), ([0] * 6, "0"), ([3] * 6, "3")])
def test_one_class_is_rejected_whatever_its_label(tmp_path, labels, found):
    p = write_npz(tmp_path / "d.npz", X=np.arange(12.0).reshape(6, 2), y=np.array(labels))
    with pytest.raises(DataError, match=rf"only one class \(every label is {found}\); classification needs at least two"):
        D.load_data(cfg(dataset=p, batch_size=2))


def test_one_class_name_is_rejected(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,label\n" + "".join(f"{i},cat\n" for i in range(6)))
    with pytest.raises(DataError, match=r"only one class \(every label is 'cat'\)"):
        D.load_data(cfg(dataset=str(p), batch_size=2))


def test_a_label_far_beyond_the_sample_count_is_refused(tmp_path):
    """A label becomes the class count (the output layer's width): 10^12 would be a layer of
    terabytes."""
    p = write_npz(tmp_path / "d.npz", X=np.arange(12.0).reshape(6, 2), y=np.array([0, 1, 0, 1, 0, 10 ** 12]))
    with pytest.raises(DataError, match=r"the largest label is 1,000,000,000,000, so the model would have "
                                        r"1,000,000,000,001 classes .*more than the 6 samples; number the classes"):
        D.load_data(cfg(dataset=p, batch_size=2))


def _overflow_data(tmp_path, where):
    """200 samples, 3 features; 1e300 in feature 2 of one sample of the test split, or of the training split."""
    from polydl import datasets
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    train, _, test = datasets.split_indices(200, 0, 0.1, 0.2)
    row = test[5] if where == "test" else train[7]
    X[row, 1] = 1e300
    return write_npz(tmp_path / "big.npz", X=X, y=y), row


def test_a_feature_that_overflows_float32_is_refused(tmp_path):
    """Named by the sample's row in the file (counted from 1), whichever split it fell in."""
    p, row = _overflow_data(tmp_path, "test")
    with pytest.raises(DataError, match=rf"big.npz: sample {row + 1} \(test split\) has feature 2 = 1e\+300 "
                                        r"\(standardised: [0-9.e+]+\), beyond the range of float32 \(±3.4e\+38\), where "
                                        r"it would become infinity; rescale that feature, or train with --dtype float64"):
        D.load_data(cfg(dataset=p))
    for half in ("float16", "bfloat16"):  # half precision keeps float32 data
        with pytest.raises(DataError, match="beyond the range of float32"):
            D.load_data(cfg(dataset=p, dtype=half))
    d = D.load_data(cfg(dataset=p, dtype="float64"))
    assert np.isfinite(d.X_test).all() and d.X_test.max() > 1e299


def test_a_huge_feature_in_the_training_split_is_standardised_without_overflow(tmp_path):
    """Its square overflows float64, so its std is computed from x / max|x| (which is exact)."""
    p, row = _overflow_data(tmp_path, "train")
    d = D.load_data(cfg(dataset=p))
    assert np.isfinite(d.mean).all() and np.isfinite(d.std).all() and d.std[1] > 1e298
    np.testing.assert_allclose(d.X_train[:, 1].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(d.X_train[:, 1].std(), 1, rtol=1e-12)
    with pytest.raises(DataError, match=rf"big.npz: sample {row + 1} \(train split\) has feature 2 = 1e\+300, beyond"
                                        r".*rescale that feature \(--standardize does\), or train with --dtype float64"):
        D.load_data(cfg(dataset=p, standardize=False))


def test_check_cast_names_the_sample_and_feature_from_1():
    X = np.zeros((4, 3))
    D.check_cast(X, np.float32, "x")
    X[2, 1] = -1e39
    with pytest.raises(DataError, match=r"^x: sample 3 has feature 2 = -1e\+39, beyond the range of float32"):
        D.check_cast(X, np.float32, "x")
    D.check_cast(X, np.float64, "x")


def test_zero_feature_columns(tmp_path):
    p = write_npz(tmp_path / "d.npz", X=np.zeros((6, 0)), y=np.arange(6) % 2)
    with pytest.raises(DataError, match=r"has no feature columns \(its features have shape \(6, 0\)\); give every "
                                        "sample at least one feature"):
        D.load_data(cfg(dataset=p, batch_size=2))
    with pytest.raises(DataError, match="has no feature columns"):
        D.check_features(np.zeros((3, 0)), "the input")


def test_csv_with_a_byte_order_mark(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes("\ufefflabel,a,b\n".encode("utf-8") + "".join(f"{i % 2},{i},{-i}\n" for i in range(20)).encode())
    d = D.load_data(cfg(dataset=str(p), target="label", batch_size=4))
    assert d.num_features == 2 and d.num_classes == 2


def test_samples_are_counted_from_1_and_values_print_plainly(tmp_path):
    X = np.array([[0.0, 1], [1, np.nan], [0, 0], [1, 1], [1, 0]])
    p = write_npz(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0, 1, 0]))
    with pytest.raises(DataError, match=r"\(first: NaN in sample 2, feature 2\)"):
        D.load_data(cfg(dataset=p, batch_size=1))
    p = write_npz(tmp_path / "e.npz", X=np.zeros((5, 2)), y=np.array([0, 1, 1.5, 1, 0]))
    with pytest.raises(DataError, match=r"found 1\.5 \(sample 3\);"):
        D.load_data(cfg(dataset=p, batch_size=1))


def test_csv_labels_that_are_class_names(tmp_path):
    """Names become class indices in sorted order, kept as Data.class_names; with or without a
    header row."""
    rows = [f"{i},{-i},{['dog', 'cat', 'emu'][i % 3]}" for i in range(30)]
    for text in ("\n".join(rows), "x1,x2,animal\n" + "\n".join(rows)):
        p = tmp_path / "d.csv"
        p.write_text(text + "\n")
        d = D.load_data(cfg(dataset=str(p), standardize=False, val_split=0, test_split=0, batch_size=4))
        assert d.class_names == ["cat", "dog", "emu"] and d.num_classes == 3 and d.num_features == 2
        order = np.argsort(d.X_train[:, 0])
        assert d.y_train[order].tolist() == [[1, 0, 2][i % 3] for i in range(30)]
        loaded = D.load_dataset(str(p))
        assert loaded.class_names == ["cat", "dog", "emu"] and loaded.num_classes == 3
    assert D.load_data(cfg(dataset="moons", dataset_params={"n_samples": 100})).class_names is None


def test_npz_labels_that_are_class_names_and_splits_of_their_own(tmp_path):
    X = np.arange(24.0).reshape(12, 2)
    y = np.array(["b", "a"] * 6)
    d = D.load_data(cfg(dataset=write_npz(tmp_path / "d.npz", X=X, y=y, X_val=X[:2], y_val=np.array(["a", "a"])),
                        batch_size=2))
    assert d.class_names == ["a", "b"] and d.y_val.tolist() == [0, 0]
    with pytest.raises(DataError, match=r"the val split has class name 'c', which the training labels do not have "
                                        r"\(they have a, b\)"):
        D.load_data(cfg(dataset=write_npz(tmp_path / "e.npz", X=X, y=y, X_val=X[:2], y_val=np.array(["a", "c"])),
                        batch_size=2))
    with pytest.raises(DataError, match=r"the train labels are class names but the test labels are numbers"):
        D.load_data(cfg(dataset=write_npz(tmp_path / "f.npz", X=X, y=y, X_test=X[:2], y_test=np.array([0, 1])),
                        batch_size=2))


def test_class_names_of_a_trained_run_number_another_files_names(tmp_path):
    """load_dataset(..., class_names=the run's): the names' places in that list, not the file's own order."""
    p = tmp_path / "pets.csv"
    p.write_text("x,kind\n1,dog\n2,cat\n3,dog\n")
    def labels(loaded):  # in the file's order (the split shuffles)
        X, y = loaded.splits["train"]
        return y[np.argsort(X[:, 0])].tolist()

    assert labels(D.load_dataset(str(p), val_split=0, test_split=0)) == [1, 0, 1]
    known = ["bird", "cat", "dog"]
    loaded = D.load_dataset(str(p), val_split=0, test_split=0, class_names=known)
    assert labels(loaded) == [2, 1, 2] and loaded.num_classes == 3 and loaded.class_names == known
    one = tmp_path / "one.csv"
    one.write_text("x,kind\n1,dog\n")  # fewer samples than the run has classes
    assert D.load_dataset(str(one), val_split=0, test_split=0, class_names=known).splits["train"][1].tolist() == [2]
    with pytest.raises(DataError, match=r"class name 'dog' \(sample 1\) is not a class of the run, which was trained "
                                        r"on bird, cat; remove those samples"):
        D.load_dataset(str(p), val_split=0, test_split=0, class_names=["bird", "cat"])


# ---------------------------------------------------------------------------- what a data file may be
def _without_hanging(fn, seconds=20):
    """``fn()``'s exception or result; fails if it is still blocked after ``seconds``."""
    import threading

    box = {}

    def run():
        try:
            box["out"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["out"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    return box["out"]


@pytest.mark.parametrize("name", ["d.csv", "d.npz", "d"])
def test_a_fifo_as_data_is_refused_without_blocking(tmp_path, name):
    import os

    fifo = tmp_path / name
    os.mkfifo(fifo)
    try:
        err = _without_hanging(lambda: D.load_data(cfg(dataset=str(fifo))))
        err2 = _without_hanging(lambda: D.read_features(fifo))
    finally:  # unblock a reader that did open it
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert isinstance(err, DataError) and str(err) == (f"data file {fifo} is a named pipe (FIFO), not a regular "
                                                       "file; give a .npz or .csv file")
    assert isinstance(err2, DataError) and str(err2).startswith(f"input file {fifo} is a named pipe (FIFO)")


def test_a_device_or_a_link_to_a_fifo_is_refused_and_a_link_to_data_is_read(tmp_path):
    import os

    err = _without_hanging(lambda: D.load_data(cfg(dataset="/dev/zero")))
    assert isinstance(err, DataError) and "/dev/zero is a character device, not a regular file" in str(err)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "pipe.csv").symlink_to(tmp_path / "pipe")
    err = _without_hanging(lambda: D.load_data(cfg(dataset=str(tmp_path / "pipe.csv"))))
    assert isinstance(err, DataError) and "is a named pipe (FIFO), not a regular file" in str(err)
    real = write_npz(tmp_path / "real.npz", X=np.arange(40.0).reshape(20, 2), y=np.arange(20) % 2)
    (tmp_path / "link.npz").symlink_to(real)
    assert D.load_data(cfg(dataset=str(tmp_path / "link.npz"), batch_size=4)).num_features == 2


@pytest.mark.parametrize("tail", [".csv", ".npz", "", "/d.npz"])
def test_a_data_file_name_too_long_is_one_error(tmp_path, tail):
    name = str(tmp_path / ("d" * 5000)) + tail
    with pytest.raises(DataError, match=r"^cannot read data file .*: File name too long$"):
        D.load_data(cfg(dataset=name))
    with pytest.raises(DataError, match=r"^cannot read input file .*: File name too long$"):
        D.read_features(name)


def test_a_pickle_in_a_npz_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    obj = np.empty(5, dtype=object)
    obj[:] = [Payload()] * 5
    p = tmp_path / "d.npz"
    np.savez(p, X=np.zeros((5, 2)), y=obj)
    assert str(marker).encode() in p.read_bytes()  # the payload is in the archive
    with pytest.raises(DataError, match=r"cannot read data file .*not a valid .npz file \(Object arrays cannot be "
                                        r"loaded when allow_pickle=False\)"):
        D.load_data(cfg(dataset=str(p)))
    with pytest.raises(DataError, match="allow_pickle=False"):
        D.read_features(p)
    assert not marker.exists()


# ---------------------------------------------------------------------------- labels given as arrays
@pytest.mark.parametrize("y, message", [
    (np.array("abc"), "labels must be a 1-D array of class numbers or names, one per sample (shape (m,)), "
                      "not a single value 'abc'"),
    (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), "labels must be a 1-D array of class numbers or names, one "
                                                     "per sample (shape (m,)), not an array of shape (3, 2)"),
    (np.array([0, 2**64 - 1, 1], dtype=np.uint64), "the label value 18446744073709551615 (sample 2) is not a class "
                                                   "index: labels are class numbers 0, 1, 2, ..., one per class"),
    (np.array([0, 1, 1e30]), "the label value 1e+30 (sample 3) is not a class index"),
    (np.array([0.7, 1.2, 0.0]), "labels must be integers (class numbers 0, 1, 2, ...), found 0.7 (sample 1); "
                                "number the classes"),
])
def test_labels_that_are_not_one_class_each_name_the_problem(tmp_path, y, message):
    p = write_npz(tmp_path / "d.npz", X=np.zeros((3, 2)), y=y)
    with pytest.raises(DataError) as err:
        D.load_data(cfg(dataset=p, batch_size=1))
    assert str(err.value).startswith(f"{p}: {message}")
    with pytest.raises(DataError) as err:
        D.validate_split(np.zeros((3, 2)), y, "the arrays")
    assert str(err.value).startswith(f"the arrays: {message}")
