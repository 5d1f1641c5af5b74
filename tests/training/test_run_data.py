"""A run knows its data: its columns by name and their preprocessing, its target, the absolute
path and fingerprint of its file; evaluate, predict and resume match another file to it, and say
when the data moved or changed; data given in Python as arrays or a DataFrame."""
import os

import numpy as np
import pytest
from run_helpers import meta

from polydl.training import DataError, TrainConfig, evaluate, predict, resume, run


def _table(path, n=120, seed=0, order=("size", "color", "weight", "kind"), extra=None):
    """A .csv of a number, a text column, another number and a class (``kind``), columns in ``order``."""
    rng = np.random.default_rng(seed)
    size, weight = rng.normal(size=n), rng.normal(size=n)
    color = np.array(["red", "green", "blue"])[rng.integers(0, 3, n)]
    kind = np.where(size + (color == "red") > 0.3, "big", "small")
    cols = {"size": [f"{v:.5f}" for v in size], "color": list(color), "weight": [f"{v:.5f}" for v in weight],
            "kind": list(kind)}
    if extra:
        cols[extra] = ["x"] * n
        order = (*order, extra)
    path.write_text(",".join(order) + "\n" + "\n".join(",".join(cols[c][i] for c in order) for i in range(n)) + "\n")
    return path


def cfg(path, **kw):
    return TrainConfig(**{"dataset": str(path), "target": "kind", "hidden": [8], "epochs": 3, "batch_size": 16,
                          "plot": False, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("known")
    data = _table(root / "d.csv")
    run(cfg(data), root / "r")
    return root


def test_the_run_records_its_columns_target_and_data_file(trained):
    d = meta(trained / "r")["data"]
    assert [c["name"] for c in d["columns"]] == ["size", "color", "weight"]
    assert d["columns"][1] == {"name": "color", "kind": "category", "fill": None,
                               "categories": ["blue", "green", "red"]}
    assert d["targets"] == ["kind"] and d["layout"] == ["size", "color", "weight", "kind"] and d["named"]
    src = d["source"]
    assert src["kind"] == "file" and os.path.isabs(src["path"]) and len(src["sha256"]) == 64


def test_a_column_shuffled_copy_predicts_the_same_to_the_last_bit(trained, tmp_path):
    shuffled = _table(tmp_path / "s.csv", order=("weight", "kind", "color", "size"), extra="note")
    a, b = predict(trained / "r", trained / "d.csv"), predict(trained / "r", shuffled)
    assert np.array_equal(a.probabilities, b.probabilities) and np.array_equal(a.classes, b.classes)
    assert b.notes == [f"{shuffled}: column 'note' is not among the run's and ignored"]
    assert evaluate(trained / "r", dataset=str(shuffled))["loss"] == evaluate(trained / "r", split="all")["loss"]


def test_missing_columns_and_a_headerless_file(trained, tmp_path):
    (tmp_path / "m.csv").write_text("size,weight\n1,2\n")
    with pytest.raises(DataError, match=r"m.csv has no column 'color', which the run was trained on"):
        predict(trained / "r", tmp_path / "m.csv")
    lines = (trained / "d.csv").read_text().splitlines()[1:]
    (tmp_path / "h.csv").write_text("\n".join(lines) + "\n")  # the training width, no header
    assert np.array_equal(predict(trained / "r", tmp_path / "h.csv").probabilities,
                          predict(trained / "r", trained / "d.csv").probabilities)
    (tmp_path / "w.csv").write_text("1,red\n")
    with pytest.raises(DataError, match="has no header row and 2 columns, but the run was trained on 4 columns"):
        predict(trained / "r", tmp_path / "w.csv")


def test_evaluate_from_another_directory_uses_the_recorded_path(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained)
    run(cfg("d.csv"), tmp_path / "rel")  # the path as typed: relative
    monkeypatch.chdir(tmp_path)
    assert evaluate(tmp_path / "rel")["samples"] == 24


def test_a_changed_or_moved_data_file_is_said(tmp_path):
    data = _table(tmp_path / "d.csv")
    run(cfg(data), tmp_path / "r")
    _table(data, seed=1)  # new content at the same path
    assert any("changed since the run was trained" in n for n in evaluate(tmp_path / "r")["notes"])
    assert any("changed since" in n for n in predict(tmp_path / "r", data).notes)
    os.replace(data, tmp_path / "elsewhere.csv")
    with pytest.raises(DataError, match=r"the run's data file .*d.csv is not there any more \(moved or deleted\); "
                                        "give its data with --dataset FILE"):
        evaluate(tmp_path / "r")
    assert any("not there any more" in n for n in predict(tmp_path / "r", tmp_path / "elsewhere.csv").notes)


def test_resume_on_another_file_whose_columns_and_classes_match(tmp_path):
    data = _table(tmp_path / "d.csv")
    run(cfg(data, epochs=1), tmp_path / "r")
    other = _table(tmp_path / "o.csv", seed=5, order=("kind", "weight", "size", "color"))
    res = resume(tmp_path / "r", {"epochs": 2, "dataset": str(other)})
    assert res.epochs == 2 and meta(tmp_path / "r")["data"]["source"]["path"] == str(other.absolute())
    bad = tmp_path / "bad.csv"
    bad.write_text("size,weight,kind\n1,2,big\n")
    with pytest.raises(DataError, match="bad.csv has no column 'color'"):
        resume(tmp_path / "r", {"epochs": 3, "dataset": str(bad)})
    new_class = tmp_path / "n.csv"
    new_class.write_text("size,color,weight,kind\n" + "1,red,2,huge\n" * 20)
    with pytest.raises(DataError, match="class name 'huge' .* is not a class of the run"):
        resume(tmp_path / "r", {"epochs": 3, "dataset": str(new_class)})


def test_a_run_on_arrays(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    y = (X[:, 0] > 0).astype(int)
    res = run(TrainConfig(hidden=[8], epochs=2, batch_size=16, plot=False), tmp_path / "r", data=(X, y))
    assert res.summary["dataset"] == "<arrays>" and meta(tmp_path / "r")["data"]["source"]["kind"] == "python"
    assert predict(tmp_path / "r", X[:5]).probabilities.shape == (5, 2)
    with pytest.raises(DataError, match="trained on data given in Python"):
        evaluate(tmp_path / "r")
    np.savez(tmp_path / "x.npz", X=X, y=y)
    assert evaluate(tmp_path / "r", dataset=str(tmp_path / "x.npz"))["samples"] == 100


def test_a_run_on_a_dataframe_is_evaluated_and_predicted_on_files(tmp_path):
    pd = pytest.importorskip("pandas")
    data = _table(tmp_path / "d.csv")
    df = pd.read_csv(data)
    df.loc[3, "size"] = None
    res = run(cfg("ignored", impute="mean", target=None), tmp_path / "r", data=df)
    assert res.summary["dataset"] == "<DataFrame>"
    a = predict(tmp_path / "r", df[["kind", "weight", "color", "size"]])
    b = predict(tmp_path / "r", df)
    assert np.array_equal(a.probabilities, b.probabilities)
    assert evaluate(tmp_path / "r", dataset=str(data))["samples"] == 120
    with pytest.raises(DataError, match="the DataFrame has no column 'color'"):
        predict(tmp_path / "r", df.drop(columns=["color"]))
