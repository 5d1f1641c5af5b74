"""Evaluating and predicting with a run directory."""
import numpy as np
import pytest
from run_helpers import tiny

from polydl.training import CheckpointError, DataError, evaluate, load_model, predict, probabilities, run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("inf") / "r"
    run(tiny(epochs=3, dropout=0.0, standardize=True), out)
    return out


def test_load_model_is_in_eval_mode_with_the_run_statistics(run_dir):
    r = load_model(run_dir)
    assert not r.model.training and not any(m.training for m in r.model.modules())
    assert r.num_features == 2 and r.num_classes == 2 and r.epoch == 3
    assert not np.all(r.std == 1)


def test_evaluate_uses_batchnorm_running_averages(run_dir):
    res = evaluate(run_dir)
    assert res["split"] == "test" and res["samples"] == 40
    conf = np.array(res["confusion"])
    assert conf.shape == (2, 2) and conf.sum() == 40
    assert res["accuracy"] == pytest.approx(np.trace(conf) / 40)
    # the same number as the run's own test evaluation (eval mode, running averages)
    import json
    summary = json.loads((run_dir / "summary.json").read_text())
    assert res["accuracy"] == summary["test_accuracy"]
    assert res["loss"] == pytest.approx(summary["test_loss"], rel=1e-5)
    # one sample at a time gives the same predictions: nothing depends on the batch
    X = np.random.default_rng(0).normal(size=(5, 2))
    classes, _ = predict(run_dir, X)
    singles = [predict(run_dir, X[i:i + 1])[0][0] for i in range(5)]
    assert classes.tolist() == singles


def test_evaluate_other_split_and_dataset(run_dir, tmp_path):
    assert evaluate(run_dir, split="val")["samples"] == 20
    X = np.random.default_rng(0).normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    np.savez(tmp_path / "d.npz", X=X, y=y, X_test=X, y_test=y)
    res = evaluate(run_dir, dataset=str(tmp_path / "d.npz"), split="test")
    assert res["samples"] == 30 and res["dataset"] == "d.npz"
    assert evaluate(run_dir, dataset=str(tmp_path / "d.npz"))["samples"] == 60  # another file: all of it
    np.savez(tmp_path / "bad.npz", X=X, y=y + 2, X_test=X, y_test=y + 2)
    with pytest.raises(DataError, match="out of range: the model has 2 classes"):
        evaluate(run_dir, dataset=str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "wide.npz", X=np.zeros((10, 3)), y=np.arange(10) % 2, X_test=np.zeros((4, 3)),
             y_test=np.arange(4) % 2)
    with pytest.raises(DataError, match="3 features per sample, but the model takes 2"):
        evaluate(run_dir, dataset=str(tmp_path / "wide.npz"))


def test_predict_probabilities(run_dir, tmp_path):
    X = np.random.default_rng(1).normal(size=(7, 2))
    classes, probs = predict(run_dir, X)
    assert classes.shape == (7,) and probs.shape == (7, 2)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-6)
    assert (probs.argmax(1) == classes).all()
    np.savez(tmp_path / "x.npz", X=X)
    c2, p2 = predict(run_dir, tmp_path / "x.npz")
    assert np.array_equal(c2, classes) and np.allclose(p2, probs)
    with pytest.raises(DataError, match="^the input has 5 features per sample, but the model takes 2$"):
        predict(run_dir, np.zeros((2, 5)))
    with pytest.raises(DataError, match="the input has NaN or infinity in 1 sample"):
        predict(run_dir, np.array([[0.0, 1.0], [np.inf, 0.0]]))
    with pytest.raises(DataError, match="the input has no samples"):
        predict(run_dir, np.zeros((0, 2)))


def test_probabilities_forms():
    s = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(probabilities(object(), s), np.exp(s) / np.exp(s).sum())
    p = probabilities(object(), np.array([[0.0], [100.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.0, 1.0]], atol=1e-12)

    class Own:
        def probabilities(self, scores):
            return "own"

    assert probabilities(Own(), s) == "own"


def test_binary_logistic_run_predicts_two_probabilities(tmp_path):
    run(tiny(loss="binary_cross_entropy", epochs=1), tmp_path / "b")
    classes, probs = predict(tmp_path / "b", np.zeros((3, 2)))
    assert probs.shape == (3, 2) and set(classes.tolist()) <= {0, 1}
    assert evaluate(tmp_path / "b")["samples"] == 40


def test_load_model_of_a_damaged_run(tmp_path):
    with pytest.raises(CheckpointError):
        load_model(tmp_path)


def test_evaluate_a_csv_run_matches_another_files_columns_by_name(tmp_path):
    """Another file is matched to the run's columns: by name in any order (other columns ignored
    with a note, the run's target as the labels), by position without a header; all of it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    rows = ["x0,kind,x1"] + [f"{a},{c},{b}" for (a, b), c in zip(X, y)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    run(tiny(dataset=str(tmp_path / "d.csv"), target="kind", dataset_params={}, epochs=1, batch_size=8),
        tmp_path / "r")
    own = evaluate(tmp_path / "r")
    assert own["samples"] == 12 and own["split"] == "test"  # the run's file and label column
    (tmp_path / "o.csv").write_text("x1,note,kind,x0\n" + "\n".join(f"{b},n,{c},{a}" for (a, b), c in zip(X, y)) + "\n")
    res = evaluate(tmp_path / "r", dataset=str(tmp_path / "o.csv"))
    assert res["samples"] == 60 and res["split"] == "all" and any("'note'" in n for n in res["notes"])
    full = evaluate(tmp_path / "r", dataset=str(tmp_path / "d.csv"))
    assert res["accuracy"] == full["accuracy"] and res["loss"] == full["loss"]
    (tmp_path / "h.csv").write_text("\n".join(f"{a},{c},{b}" for (a, b), c in zip(X, y)) + "\n")
    assert evaluate(tmp_path / "r", dataset=str(tmp_path / "h.csv"))["loss"] == full["loss"]  # the training width
    (tmp_path / "p.csv").write_text("x0,label,x1\n" + "\n".join(f"{a},{c},{b}" for (a, b), c in zip(X, y)) + "\n")
    with pytest.raises(DataError, match="has no column 'kind' \\(the run's target\\); name the column"):
        evaluate(tmp_path / "r", dataset=str(tmp_path / "p.csv"))
    assert evaluate(tmp_path / "r", dataset=str(tmp_path / "p.csv"), target="label")["loss"] == full["loss"]
    with pytest.raises(DataError, match="--target 'kind' is not a column"):
        evaluate(tmp_path / "r", dataset=str(tmp_path / "h.csv"), target="kind")


def test_evaluate_all_samples(run_dir):
    res = evaluate(run_dir, split="all")
    assert res["split"] == "all" and res["samples"] == res["total_samples"] == 200
    assert np.array(res["confusion"]).sum() == 200
    test = evaluate(run_dir)
    assert test["samples"] == 40 and test["total_samples"] == 200
    with pytest.raises(DataError, match=r"unknown split 'everything' \(valid: train, val, test, all\)"):
        evaluate(run_dir, split="everything")


def test_inputs_that_overflow_the_run_dtype_are_refused(run_dir, tmp_path):
    """A float32 run: a feature of 1e300 would become infinity (and the loss NaN) after the cast."""
    X = np.random.default_rng(1).normal(size=(10, 2))
    X[3, 1] = 1e300
    np.savez(tmp_path / "big.npz", X=X, y=np.arange(10) % 2)
    for split in ("all", "train"):  # sample 4 of the file falls in the training split
        with pytest.raises(DataError, match=r"big.npz: sample 4 \(train split\) has feature 2 = 1e\+300 \(standardised: "
                                            r".*\), beyond the range of float32"):
            evaluate(run_dir, dataset=str(tmp_path / "big.npz"), split=split)
    assert evaluate(run_dir, dataset=str(tmp_path / "big.npz"), split="test")["samples"] == 2
    with pytest.raises(DataError, match=r"big.npz: sample 4 has feature 2 = 1e\+300 .*beyond the range of float32"):
        predict(run_dir, tmp_path / "big.npz")
    with pytest.raises(DataError, match=r"the input: sample 4 has feature 2"):
        predict(run_dir, X)
