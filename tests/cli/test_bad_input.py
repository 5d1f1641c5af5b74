"""Every bad input: one ``Error:`` line on stderr, exit 2, no traceback, nothing written or overwritten."""
import os

import numpy as np
import pytest
from cli_helpers import TINY, assert_one_line_error, cli, invoke

from polydl import backend


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


X5 = np.arange(10.0).reshape(5, 2)
Y5 = np.array([0, 1, 0, 1, 0])


def npy_named(path):
    with open(path, "wb") as fh:
        np.save(fh, X5)
    return path


def make_inputs(tmp):
    """name -> extra flags; files are created under tmp."""
    (tmp / "garbage.npz").write_bytes(b"this is not a zip archive")
    (tmp / "damaged.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp / "adir.csv").mkdir()
    (tmp / "empty.csv").write_text("")
    (tmp / "header_only.csv").write_text("a,b,label\n")
    (tmp / "labels.csv").write_text("1,2,0\n3,4,dog\n")
    (tmp / "badnum.csv").write_text("1,2,0\n3,x,1\n")
    (tmp / "malformed.toml").write_text("epochs = = 3\n")
    (tmp / "unknown.toml").write_text("epochz = 3\n")
    (tmp / "wrongtype.toml").write_text('epochs = "ten"\n')
    (tmp / "afile").write_text("not a directory")
    (tmp / "notarun").mkdir()
    (tmp / "damaged").mkdir()
    (tmp / "damaged" / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    return {
        "missing data file": (["--dataset", tmp / "missing.npz"], "data file not found"),
        "unreadable npz": (["--dataset", tmp / "garbage.npz"], "garbage.npz is a text file, not a .npz file"),
        "damaged npz": (["--dataset", tmp / "damaged.npz"], "cannot read data file"),
        "data file is a directory": (["--dataset", tmp / "adir.csv"], "is a directory"),
        "X and y lengths differ": (["--dataset", npz(tmp / "len.npz", X=X5, y=Y5[:4])], "X has 5 samples but y has 4"),
        "labels not integers": (["--dataset", npz(tmp / "frac.npz", X=X5, y=[0, 1, 0.5, 1, 0])], "labels must be integers"),
        "labels mix numbers and names": (["--dataset", tmp / "labels.csv"], "mix numbers and names (line 1: '0', line 2: 'dog')"),
        "a label of 10^12": (["--dataset", npz(tmp / "huge_label.npz", X=X5, y=[0, 1, 0, 1, 10 ** 12])],
                             "the largest label is 1,000,000,000,000, so the model would have 1,000,000,000,001 classes"),
        "one class, labelled 1": (["--dataset", npz(tmp / "ones.npz", X=X5, y=[1, 1, 1, 1, 1])], "only one class (every label is 1)"),
        "an .npy named .npz": (["--dataset", npy_named(tmp / "array.npz")], "is a single NumPy array (.npy, numpy.save), not a .npz file"),
        "hidden layer of 10^12 units": (["--hidden", "1000000000000"], "Linear(64, 1000000000000): drawing its weight"),
        "10^11 samples asked of a dataset": (["--dataset", "moons", "--dataset-param", "n_samples=100000000000"],
                                             "dataset moons: 100,000,000,000 × 2 float64 values would need 1.46 TiB"),
        "labels out of range": (["--dataset", npz(tmp / "neg.npz", X=X5, y=[0, 1, -1, 1, 0])], "range 0..C-1"),
        "NaN in X": (["--dataset", npz(tmp / "nan.npz", X=np.where(X5 == 3, np.nan, X5), y=Y5)], "NaN or infinity"),
        "inf in X": (["--dataset", npz(tmp / "inf.npz", X=np.where(X5 == 3, np.inf, X5), y=Y5)], "NaN or infinity"),
        "non-numeric feature": (["--dataset", tmp / "badnum.csv"], "not a number"),
        "empty npz": (["--dataset", npz(tmp / "empty.npz", X=np.zeros((0, 2)), y=np.zeros(0, int))], "empty"),
        "empty csv": (["--dataset", tmp / "empty.csv"], "empty"),
        "csv with only a header": (["--dataset", tmp / "header_only.csv"], "empty"),
        "batch size 0": (["--batch-size", "0"], "batch_size must be >= 1"),
        "batch size negative": (["--batch-size", "-5"], "batch_size must be >= 1"),
        "batch size > training set": (["--batch-size", "100000"], "larger than the training set"),
        "epochs 0": (["--epochs", "0"], "epochs must be >= 1"),
        "epochs negative": (["--epochs", "-3"], "epochs must be >= 1"),
        "epochs not a number": (["--epochs", "ten"], "'ten' is not a valid integer"),
        "unknown schedule": (["--schedule", "cosinus"], "unknown schedule 'cosinus'"),
        "unknown loss": (["--loss", "hinge"], "unknown loss 'hinge'"),
        "unknown normalizer": (["--normalizer", "groupnorm"], "unknown normalizer 'groupnorm'"),
        "unknown optimizer": (["--optimizer", "adamw"], "unknown optimizer 'adamw'"),
        "unknown dataset": (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        "unknown activation": (["--activation", "gelu"], "unknown activation 'gelu'"),
        "unknown schedule parameter": (["--schedule-param", "decay=1"], "has no parameter 'decay'"),
        "bad schedule parameter value": (["--schedule-param", "decay_rate=-1"], "decay_rate must be >= 0"),
        "malformed schedule parameter": (["--schedule-param", "decay_rate"], "must look like name=value"),
        "lr0 as a schedule parameter": (["--schedule-param", "lr0=0.1"], "schedule_params cannot set lr0: it comes from lr (--lr)"),
        "seed as a dataset parameter": (["--dataset", "moons", "--dataset-param", "seed=1"], "cannot set seed: it comes from data_seed (--data-seed)"),
        "split as a dataset parameter": (["--dataset", "moons", "--dataset-param", "val_fraction=0.5"], "it comes from val_split (--val-split)"),
        "num_features as a normalizer parameter": (["--normalizer-param", "num_features=3"], "normalizer_params cannot set num_features"),
        "unknown normalizer parameter": (["--normalizer-param", "momentm=0.5"], "normalizer 'batchnorm' has no parameter 'momentm'; did you mean 'momentum'? (its parameters: momentum, eps)"),
        "unknown loss parameter": (["--loss-param", "gamma=2"], "loss 'softmax_cross_entropy' has no parameter 'gamma' (its parameters: none)"),
        "unknown dataset parameter": (["--dataset", "moons", "--dataset-param", "samples=5"], "dataset 'moons' has no parameter 'samples'; did you mean 'n_samples'?"),
        "dataset parameter of the wrong type": (["--dataset", "moons", "--dataset-param", "n_samples=abc"], "dataset parameter n_samples must be a whole number, not 'abc'"),
        "negative dataset parameter": (["--dataset", "moons", "--dataset-param", "noise=-1"], "dataset parameter noise must be >= 0, not -1"),
        "zero classes": (["--dataset", "spirals", "--dataset-param", "classes=0"], "dataset parameter classes must be >= 2, not 0"),
        "target of a named dataset": (["--dataset", "moons", "--target", "label"], "--target 'label' chooses the label column of a .csv file"),
        "target of a .npz file": (["--dataset", npz(tmp / "t.npz", X=X5, y=Y5), "--target", "y"], "a .npz file has its labels in y"),
        "bad optimizer hyperparameter": (["--beta1", "1.5"], "beta1 must be"),
        "optimizer without that hyperparameter": (["--beta", "0.9"], "has no parameter 'beta'"),
        "malformed TOML": (["--config", tmp / "malformed.toml"], "malformed TOML"),
        "unknown TOML key": (["--config", tmp / "unknown.toml"], "closest valid key is 'epochs'"),
        "wrong TOML type": (["--config", tmp / "wrongtype.toml"], "epochs must be a whole number"),
        "missing TOML file": (["--config", tmp / "none.toml"], "config file not found"),
        "cuda:N that does not exist": (["--device", "cuda:99"], "cuda:99"),
        "unknown device": (["--device", "tpu"], "unknown device 'tpu'"),
        "out under a file": (["--out", tmp / "afile" / "run"], "afile"),
        "out is a file": (["--out", tmp / "afile"], "is a file"),
        "resume a missing directory": (["--resume", tmp / "nowhere"], "not found"),
        "resume a directory that is not a run": (["--resume", tmp / "notarun"], "not a polydl run directory"),
        "resume a damaged checkpoint": (["--resume", tmp / "damaged"], "damaged"),
        "resume a file": (["--resume", tmp / "afile"], "not a polydl run directory"),
    }


def case_names():
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        return list(make_inputs(Path(d)))


def snapshot(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = open(p, "rb").read()
    return out


@pytest.mark.parametrize("name", case_names())
def test_bad_input(tmp_path, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags, fragment = make_inputs(tmp_path)[name]
    before = snapshot(tmp_path)
    has_out = "--out" in flags or "--resume" in flags
    args = ["train", *map(str, flags)] + ([] if has_out else ["--out", str(tmp_path / "out")])
    if "--dataset" in flags or "--resume" in flags:
        args += ["--batch-size", "1"] if "--batch-size" not in flags and "--resume" not in flags else []
    assert_one_line_error(invoke(*args), 2, fragment)
    assert snapshot(tmp_path) == before  # nothing written or overwritten
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


@pytest.mark.skipif(backend.cuda_available(), reason="a GPU is present")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_cupy_or_gpu(tmp_path, spec):
    line = assert_one_line_error(invoke("train", "--device", spec, "--out", tmp_path / "out"), 2, spec)
    assert "CuPy" in line or "GPU" in line
    assert not (tmp_path / "out").exists()


def test_bad_input_does_not_touch_an_existing_run_even_with_overwrite(tmp_path):
    out = tmp_path / "r"
    assert invoke("train", *TINY, "--out", out, "-q").exit_code == 0
    before = snapshot(out)
    for flags in (["--epochs", "0"], ["--schedule", "nope"], ["--dataset", tmp_path / "missing.csv"]):
        assert_one_line_error(invoke("train", *flags, "--out", out, "--overwrite"), 2)
        assert snapshot(out) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read and write anything")
def test_unreadable_file_and_unwritable_directory(tmp_path):  # pragma: no cover - not run as root
    p = npz(tmp_path / "d.npz", X=X5, y=Y5)
    os.chmod(p, 0)
    assert_one_line_error(invoke("train", "--dataset", p, "--batch-size", "1", "--out", tmp_path / "o"), 2, "cannot read")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    assert_one_line_error(invoke("train", *TINY, "--out", ro / "run"), 2, "not writable")


def test_unwritable_output_directory_even_as_root(tmp_path, monkeypatch):
    """The permission check itself (the test above cannot run as root, who may write anywhere)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if os.fspath(path) == str(ro)
                        else real_access(path, mode, **kw))
    assert_one_line_error(invoke("train", *TINY, "--out", ro / "run"), 2, f"{ro} is not writable", "--out DIR")
    assert list(ro.iterdir()) == []


def test_csv_that_is_not_text(tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x01,2\n")
    assert_one_line_error(invoke("train", "--dataset", tmp_path / "bin.csv", "--out", tmp_path / "o"), 2,
                          "is binary data, not a .csv file", "UTF-8")
    assert not (tmp_path / "o").exists()


def test_bad_input_in_a_real_process(tmp_path):
    r = cli("train", "--epochs", "0", "--out", tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == "Error: epochs must be >= 1 (the number of passes over the training data), not 0"
    assert r.stdout == "" and not (tmp_path / "o").exists()


def test_a_model_too_large_for_the_memory_free_with_its_gradients_and_optimizer_state(tmp_path):
    """Each layer alone fits this machine; the three of them with their gradients and Adam's two
    values per parameter do not: one line before anything is allocated or written."""
    from polydl import memory

    w = int((memory.limit() / 24) ** 0.5)
    line = assert_one_line_error(invoke("train", "--hidden", f"{w},{w},{w}", "--out", tmp_path / "o"), 2,
                                 f"training mlp 64-{w}-{w}-{w}-10 with adam would need about", "more than the")
    assert "2 values per parameter" in line
    assert not (tmp_path / "o").exists()


def _tampered_run(tmp_path, name, edit):
    from polydl.training import checkpoint as ck

    out = tmp_path / name
    assert invoke("train", *TINY, "--out", out, "-q").exit_code == 0
    meta, arrays = ck.load_checkpoint(out / "checkpoint.npz")
    for key in ("format", "version"):
        meta.pop(key)
    edit(meta, arrays)
    ck.save_checkpoint(out / "checkpoint.npz", meta, arrays)
    return out


@pytest.mark.parametrize("edit, fragment", [
    (lambda m, a: m.update(epoch=None), "its epoch is null"),
    (lambda m, a: m.update(history="junk"), 'its history is "junk"'),
    (lambda m, a: m.update(epoch="three"), 'its epoch is "three"'),
    (lambda m, a: m.update(num_classes="many"), 'its num_classes is "many"'),
    (lambda m, a: a.update({"data/mean": np.zeros(5)}), "its array data/mean is of shape (5,), not of shape (2,)"),
    (lambda m, a: a.update({"data/std": np.zeros(2)}), "its array data/std is 0 for feature 0"),
], ids=["epoch null", "history junk", "epoch three", "num_classes many", "mean length", "std zero"])
def test_hand_edited_checkpoint_metadata_is_one_line_naming_the_field(tmp_path, edit, fragment):
    out = _tampered_run(tmp_path, "r", edit)
    (tmp_path / "x.csv").write_text("0.1,0.2\n1,-1\n")
    before = snapshot(out)
    for args in (["train", "--resume", out, "--epochs", "4"], ["evaluate", out], ["predict", out, tmp_path / "x.csv"]):
        assert_one_line_error(invoke(*args), 2, f"the checkpoint {out / 'checkpoint.npz'} is damaged: ", fragment)
    assert snapshot(out) == before


def test_a_finite_loss_that_leaves_nan_weights_exits_1_and_such_weights_are_refused(tmp_path):
    out = tmp_path / "r"
    r = invoke("train", *TINY, "--optimizer", "sgd", "--normalizer", "none", "--schedule", "constant", "--lr", "1e39",
               "--batch-size", "140", "--out", out)  # one mini-batch per epoch: the epoch's last loss is finite
    assert_one_line_error(r, 1, "the weights became NaN or infinite at epoch 1, step 1", "last good checkpoint (epoch 0",
                          f"--resume {out}")
    assert not (out / "summary.json").exists()
    nan = _tampered_run(tmp_path, "nan", lambda m, a: a.update({"model/0.weight": a["model/0.weight"] * np.nan}))
    (tmp_path / "x.csv").write_text("0.1,0.2\n")
    for args in (["evaluate", nan], ["predict", nan, tmp_path / "x.csv"]):
        assert_one_line_error(invoke(*args), 2, "are not finite (nan in 0.weight)")


def test_a_plugin_loss_returning_a_float_is_one_line_naming_plugin_and_distribution(tmp_path):
    import polydl
    from polydl import functional as F
    from polydl.testing import registered_plugin

    class P:
        @polydl.hookimpl
        def polydl_register_losses(self, register):
            register("as_float", lambda: lambda s, t: F.softmax_cross_entropy(s, t) if len(t) <= 2 else 2.5)

    with registered_plugin(P(), "floaty", distribution="polydl-floaty", version="1.0"):
        r = invoke("train", *TINY, "--loss", "as_float", "--out", tmp_path / "r")
    assert_one_line_error(r, 1, "loss 'as_float' of plugin 'floaty' (distribution polydl-floaty 1.0) returned a "
                                "Python float (2.5), not a scalar Tensor", "pip install -U polydl-floaty")
