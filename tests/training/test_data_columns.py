"""Columns by name: text columns one-hot with the training split's categories, missing values
refused by column name or imputed on the training split, a new table matched to a run's columns."""
import numpy as np
import pytest

from polydl.training import data as D
from polydl.training.config import ConfigError, TrainConfig
from polydl.training.data import DataError


def cfg(**kw):
    return TrainConfig(**{"batch_size": 8, "val_split": 0, "test_split": 0, "standardize": False, **kw})


def write(path, header, rows):
    path.write_text("\n".join([header] + rows) + "\n")
    return str(path)


def _people(tmp_path, n=40, gap=None):
    rows = []
    for i in range(n):
        color = ["red", "green", "blue"][i % 3]
        size = "" if gap == i else str(10 + i)
        rows.append(f"{size},{color},{i % 2}")
    return write(tmp_path / "p.csv", "size,color,label", rows)


def test_a_text_column_is_one_hot_in_sorted_category_order(tmp_path):
    d = D.load_data(cfg(dataset=_people(tmp_path)))
    assert d.spec.feature_columns == ["size", "color"]
    assert d.spec.feature_names == ["size", "color=blue", "color=green", "color=red"]
    assert d.num_features == 4 and d.spec.named
    order = np.argsort(d.X_train[:, 0])
    np.testing.assert_array_equal(d.X_train[order][:3, 1:], [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    assert d.mean[1:].tolist() == [0, 0, 0] and d.std[1:].tolist() == [1, 1, 1]  # one-hot: not standardised


def test_standardisation_leaves_one_hot_features_alone(tmp_path):
    d = D.load_data(cfg(dataset=_people(tmp_path), standardize=True))
    assert d.std[0] > 1 and d.mean[1:].tolist() == [0, 0, 0] and d.std[1:].tolist() == [1, 1, 1]


def test_a_missing_value_is_refused_naming_the_column_and_the_first_line(tmp_path):
    p = _people(tmp_path, gap=6)
    with pytest.raises(DataError, match=r"p.csv: size has a missing value \(empty, NA or NaN\) at line 8 \(1 row\(s\) "
                                        r"in all\); fill them in, or train with --impute mean\|median\|most_frequent"):
        D.load_data(cfg(dataset=p))


@pytest.mark.parametrize("token", ["NA", "NaN", "nan", "null", "N/A"])
def test_missing_tokens(tmp_path, token):
    p = write(tmp_path / "t.csv", "a,b,label", [f"{i},{token if i == 2 else i},{i % 2}" for i in range(10)])
    with pytest.raises(DataError, match="b has a missing value .* at line 4"):
        D.load_data(cfg(dataset=p))


@pytest.mark.parametrize("how, expected", [("mean", np.mean), ("median", np.median)])
def test_impute_learns_on_the_training_split_only(tmp_path, how, expected):
    p = _people(tmp_path, n=60, gap=6)
    d = D.load_data(cfg(dataset=p, impute=how, test_split=0.3))
    train_sizes = [v for v in d.X_train[:, 0] if v != d.spec.columns[0].fill]
    fill = d.spec.columns[0].fill
    assert fill == pytest.approx(expected(train_sizes))
    all_sizes = [10 + i for i in range(60) if i != 6]
    assert fill != pytest.approx(expected(all_sizes))  # the test split's values are not in it
    assert d.spec.impute == how


def test_impute_most_frequent_fills_text_and_numbers(tmp_path):
    rows = [f"{i % 3},{'' if i == 4 else ['a', 'b', 'b'][i % 3]},{i % 2}" for i in range(30)]
    d = D.load_data(cfg(dataset=write(tmp_path / "m.csv", "n,c,label", rows), impute="most_frequent"))
    assert d.spec.columns[1].fill == "b" and d.spec.columns[0].fill in (0.0, 1.0, 2.0)
    assert np.all(d.X_train[:, 1:].sum(axis=1) == 1)  # the gap became category b


def test_a_column_of_numbers_with_a_word_is_a_typo_not_a_category(tmp_path):
    p = write(tmp_path / "w.csv", "x,label", [f"{i},{i % 2}" for i in range(8)] + ["zz,1"])
    with pytest.raises(DataError, match="line 10: x is 'zz', not a number; features must be numeric"):
        D.load_data(cfg(dataset=p))


def test_impute_is_checked():
    with pytest.raises(ConfigError, match="impute must be one of mean, median, most_frequent"):
        TrainConfig(impute="zero").validate()


def test_unknown_categories_encode_as_zeros_and_are_counted(tmp_path):
    from polydl.training.data.preprocessing import encode

    d = D.load_data(cfg(dataset=_people(tmp_path)))
    frame = D.Frame(["size", "color"], [np.array([1.0, 2.0, 3.0]), np.array(["red", "pink", "pink"], dtype=object)],
                    "new.csv")
    notes = []
    X = encode(frame, d.spec.columns, notes)
    assert X[:, 1:].tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert notes == ["new.csv: 2 row(s) have a category of color that the training split did not have (first: "
                     "'pink' at sample 2); they are encoded as all zeros there"]


# ---------------------------------------------------------------------------- a run's columns
def _spec(tmp_path):
    return D.load_data(cfg(dataset=_people(tmp_path))).spec


def test_a_table_with_a_header_is_matched_by_name_in_any_order(tmp_path):
    from polydl.training.data.matching import match_columns

    spec, notes = _spec(tmp_path), []
    header = ["label", "extra", "color", "size"]
    assert match_columns("n.csv", header, 4, spec, None, "evaluate", notes) == ([3, 2], [0])
    assert notes == ["n.csv: column 'extra' is not among the run's and ignored"]
    assert match_columns("n.csv", header, 4, spec, None, "predict") == ([3, 2], [])
    with pytest.raises(DataError, match=r"n.csv has no column 'size', which the run was trained on \(its feature "
                                        r"columns: size, color\)"):
        match_columns("n.csv", ["color", "label"], 2, spec, None, "predict")
    with pytest.raises(DataError, match=r"n.csv has no column 'label' \(the run's target\); name the column"):
        match_columns("n.csv", ["color", "size"], 2, spec, None, "evaluate")
    assert match_columns("n.csv", ["y", "color", "size"], 3, spec, "y", "evaluate") == ([2, 1], [0])


def test_a_table_without_a_header_needs_the_training_width(tmp_path):
    from polydl.training.data.matching import match_columns

    spec = _spec(tmp_path)
    assert match_columns("n.csv", None, 3, spec, None, "evaluate") == ([0, 1], [2])
    assert match_columns("n.csv", None, 2, spec, None, "predict") == ([0, 1], [])
    with pytest.raises(DataError, match=r"n.csv has no header row and 4 columns, but the run was trained on 3 columns "
                                        r"\(size, color, label\): give it a header row"):
        match_columns("n.csv", None, 4, spec, None, "predict")


def test_the_spec_survives_the_checkpoint(tmp_path):
    spec = D.load_data(cfg(dataset=_people(tmp_path, gap=3), impute="median")).spec
    back = D.DataSpec.from_checkpoint({"data": spec.to_meta(), "class_names": None}, spec.to_arrays())
    assert back.to_meta() == spec.to_meta() and np.array_equal(back.mean, spec.mean)
    old = D.DataSpec.from_checkpoint({"num_features": 3}, {"data/mean": np.zeros(3), "data/std": np.ones(3)})
    assert old.feature_columns == ["x0", "x1", "x2"] and old.layout[-1] == "y" and not old.named


def test_several_targets_only_for_a_regression(tmp_path):
    rows = [f"{i},{i * 0.5 + 1},{i * 2.0}" for i in range(30)]
    p = write(tmp_path / "r.csv", "a,b,c", rows)
    d = D.load_data(cfg(dataset=p, target="b,c", loss="mse"))
    assert d.spec.targets == ["b", "c"] and d.num_classes == 2 and d.y_train.shape == (30, 2)
    np.testing.assert_allclose(d.y_train.mean(axis=0), 0, atol=1e-12)  # standardised with training statistics
    with pytest.raises(DataError, match=r"--target names several columns \(b, c\), but softmax_cross_entropy is a "
                                        "classification loss"):
        D.load_data(cfg(dataset=p, target=["b", "c"]))
