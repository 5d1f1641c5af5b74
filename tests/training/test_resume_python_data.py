"""Resuming a run trained on data given in Python: ``resume(run, data=...)`` with arrays or a
DataFrame continues it bit for bit on the same data, with a note on other content of the same
columns; mismatched columns or classes and a resume without the data are one clear error."""
import numpy as np
import pytest
from click.testing import CliRunner
from run_helpers import InterruptAt, assert_same_run, meta

from polydl.training import ConfigError, DataError, TrainConfig, TrainingInterrupted, resume, run
from polydl.training.reporting import Reporter


def cfg(**kw):
    return TrainConfig(**{"hidden": [8], "epochs": 4, "batch_size": 16, "plot": False, **kw})


def _arrays(n=120, seed=0, width=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, width))
    return X, X @ np.arange(1.0, width + 1) + rng.normal(0, 0.3, n)


def _frame(n=120, seed=0):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    size, weight = rng.normal(size=n), rng.normal(size=n)
    color = np.array(["red", "green", "blue"])[rng.integers(0, 3, n)]
    kind = np.where(size + (color == "red") > 0.3, "big", "small")
    return pd.DataFrame({"size": size, "color": color, "weight": weight, "kind": kind})


class Notes(Reporter):
    def __init__(self):
        self.notes = []

    def note(self, message):
        self.notes.append(message)


def test_arrays_resumed_with_the_same_data_end_bit_identical(tmp_path):
    data = _arrays()
    run(cfg(loss="mse"), tmp_path / "full", data=data)
    run(cfg(loss="mse", epochs=2), tmp_path / "part", data=data)
    notes = Notes()
    res = resume(tmp_path / "part", {"epochs": 4}, data=(data[0].copy(), data[1].copy()), reporter=notes)
    assert res.epochs == 4 and notes.notes == []
    assert_same_run(tmp_path / "full", tmp_path / "part")
    text = (tmp_path / "part" / "config.toml").read_text().replace(str(tmp_path / "part"), str(tmp_path / "full"))
    assert text == (tmp_path / "full" / "config.toml").read_text()


def test_a_dataframe_cut_mid_epoch_resumes_bit_identical_with_columns_in_another_order(tmp_path):
    df = _frame()
    run(cfg(), tmp_path / "full", data=df)
    with pytest.raises(TrainingInterrupted):
        run(cfg(), tmp_path / "cut", data=df, reporter=InterruptAt(9))  # 84 samples: 6 batches an epoch
    assert (meta(tmp_path / "cut")["epoch"], meta(tmp_path / "cut")["batch"]) == (1, 3)
    resume(tmp_path / "cut", data=df[["kind", "weight", "color", "size"]])
    assert_same_run(tmp_path / "full", tmp_path / "cut")
    assert meta(tmp_path / "cut")["data"]["source"] == meta(tmp_path / "full")["data"]["source"]


def test_other_content_of_the_same_columns_continues_with_a_note(tmp_path):
    df = _frame()
    run(cfg(epochs=2), tmp_path / "r", data=df)
    before = meta(tmp_path / "r")["data"]["source"]["sha256"]
    notes = Notes()
    assert resume(tmp_path / "r", {"epochs": 3}, data=_frame(seed=1), reporter=notes).epochs == 3
    assert notes.notes == ["the data given in Python (a DataFrame) changed since the run was trained on it (its "
                           "content differs from what the run recorded)"]
    assert meta(tmp_path / "r")["data"]["source"]["sha256"] != before  # the run now records the data it went on with
    X, y = _arrays()
    run(cfg(loss="mse", epochs=1), tmp_path / "a", data=(X, y))
    notes = Notes()
    resume(tmp_path / "a", {"epochs": 2}, data={"X": X, "y": y + 1}, reporter=notes)
    assert notes.notes == ["the data given in Python (arrays) changed since the run was trained on it (its content "
                           "differs from what the run recorded)"]


def test_mismatched_columns_or_classes_are_refused_before_anything_is_written(tmp_path):
    df = _frame()
    run(cfg(epochs=1), tmp_path / "r", data=df)
    files = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    with pytest.raises(DataError, match="^the DataFrame has no column 'color', which the run was trained on"):
        resume(tmp_path / "r", {"epochs": 2}, data=df.drop(columns=["color"]))
    new_class = df.copy()
    new_class.loc[5, "kind"] = "huge"
    with pytest.raises(DataError, match="class name 'huge' .* is not a class of the run"):
        resume(tmp_path / "r", {"epochs": 2}, data=new_class)
    with pytest.raises(ConfigError, match="^give the data to continue on as data=... or as dataset, not both$"):
        resume(tmp_path / "r", {"epochs": 2, "dataset": "x.csv"}, data=df)
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == files

    X, y = _arrays()
    run(cfg(loss="mse", epochs=1), tmp_path / "a", data=(X, y))
    with pytest.raises(DataError, match=r"^the arrays have 3 feature columns, but the run was trained on 4 \(x0, x1, "
                                        r"x2, x3\)$"):
        resume(tmp_path / "a", {"epochs": 2}, data=(X[:, :3], y))
    with pytest.raises(DataError, match=r"has 2 target column\(s\), but the run was trained on 1 \(y\)"):
        resume(tmp_path / "a", {"epochs": 2}, data=(X, np.stack([y, y], 1)))

    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)  # classes 0, 1, 2
    run(cfg(epochs=1), tmp_path / "c", data=(X, labels))
    with pytest.raises(DataError, match=r"^the labels of the arrays go up to 3, but the run was trained on 3 classes "
                                        r"\(labels 0\.\.2\)$"):
        resume(tmp_path / "c", {"epochs": 2}, data=(X, labels + (labels == 2)))
    # some classes absent: the run's classes still
    assert resume(tmp_path / "c", {"epochs": 2}, data=(X, np.minimum(labels, 1))).epochs == 2


def test_without_its_data_the_run_says_how_to_resume_it(tmp_path):
    from polydl_cli.main import main

    run(cfg(epochs=1), tmp_path / "r", data=_frame())
    expected = (f"the run in {tmp_path / 'r'} was trained on data given in Python (a DataFrame), which it cannot read "
                f"again; resume it with resume('{tmp_path / 'r'}', data=...) and data of the same columns, or with "
                "--dataset FILE (a file of the same columns)")
    with pytest.raises(DataError) as exc:
        resume(tmp_path / "r", {"epochs": 2})
    assert str(exc.value) == expected
    r = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "r"), "--epochs", "2"], prog_name="polydl")
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [f"Error: {expected}"]
    # a file of the same columns continues it
    path = tmp_path / "d.csv"
    _frame(seed=3).to_csv(path, index=False)
    r = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "r"), "--epochs", "2", "--dataset", str(path)],
                           prog_name="polydl")
    assert r.exit_code == 0, r.output
    assert meta(tmp_path / "r")["epoch"] == 2 and meta(tmp_path / "r")["data"]["source"]["kind"] == "file"


def test_a_file_trained_run_continues_on_a_dataframe_of_its_columns(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "d.csv", index=False)
    run(cfg(dataset=str(tmp_path / "d.csv"), epochs=1), tmp_path / "r")
    notes = Notes()
    resume(tmp_path / "r", {"epochs": 2}, data=df, reporter=notes)
    assert notes.notes == [f"the run continues on the DataFrame, its columns matched to those it trained on "
                           f"({tmp_path / 'd.csv'})"]
    assert meta(tmp_path / "r")["data"]["source"]["kind"] == "python"
