"""A checkpoint whose metadata or arrays were edited by hand is one line naming the damaged field,
whether it is resumed, evaluated or predicted with; an intact one passes untouched."""
import shutil

import numpy as np
import pytest
from run_helpers import tiny

from polydl.training import CheckpointError, evaluate, predict, resume, run
from polydl.training import checkpoint as ck
from polydl.training.population import run_population


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("meta") / "r"
    run(tiny(epochs=2), out)
    return out


def tampered(run_dir, dest, edit):
    """A copy of ``run_dir`` whose checkpoint was loaded, edited by ``edit(meta, arrays)`` and saved."""
    shutil.copytree(run_dir, dest)
    meta, arrays = ck.load_checkpoint(dest / ck.CHECKPOINT)
    for key in ("format", "version"):
        meta.pop(key)
    edit(meta, arrays)
    ck.save_checkpoint(dest / ck.CHECKPOINT, meta, arrays)
    return dest


def _set(key, value):
    def edit(meta, arrays):
        meta[key] = value
    return edit


def _array(key, make):
    def edit(meta, arrays):
        arrays[key] = make(arrays[key])
    return edit


CASES = {
    "epoch null": (_set("epoch", None), "its epoch is null, not a whole number >= 0"),
    "epoch as a word": (_set("epoch", "three"), 'its epoch is "three", not a whole number >= 0'),
    "negative step": (_set("step", -4), "its step is -4, not a whole number >= 0"),
    "history not a list": (_set("history", "junk"), 'its history is "junk", not a list of epoch records'),
    "history record of text": (_set("history", [{"epoch": 1, "val_loss": "low"}]),
                               'its history[0].val_loss is "low", not a number'),
    "num_classes as a word": (_set("num_classes", "many"), 'its num_classes is "many", not a whole number >= 1'),
    "num_features zero": (_set("num_features", 0), "its num_features is 0, not a whole number >= 1"),
    "class names of another count": (_set("class_names", ["a", "b", "c"]), "not 2 names (one per class)"),
    "rng not a state": (_set("rng", 5), "its rng is 5, not the state of a random generator"),
    "optimizer groups junk": (_set("optimizer", {"groups": "x"}), "its optimizer is"),
    "mean of the wrong length": (_array("data/mean", lambda a: np.zeros(5)),
                                 "its array data/mean is of shape (5,), not of shape (2,), one value per feature"),
    "std all zero": (_array("data/std", np.zeros_like),
                     "its array data/std is 0 for feature 0, not > 0 for every feature (a standard deviation)"),
    "std with NaN": (_array("data/std", lambda a: a * np.nan), "its array data/std is NaN or infinite in places"),
    "weights of text": (_array("model/0.weight", lambda a: a.astype(str)), "its array model/0.weight is"),
}


@pytest.mark.parametrize("name", CASES)
def test_a_damaged_field_is_one_line_naming_it_for_every_consumer(run_dir, tmp_path, name):
    edit, fragment = CASES[name]
    bad = tampered(run_dir, tmp_path / "bad", edit)
    before = (bad / ck.CHECKPOINT).read_bytes()
    for use in (lambda: resume(bad, {"epochs": 4}), lambda: evaluate(bad), lambda: predict(bad, np.zeros((3, 2)))):
        with pytest.raises(CheckpointError) as info:
            use()
        msg = str(info.value)
        assert msg.startswith(f"the checkpoint {bad / ck.CHECKPOINT} is damaged: ") and fragment in msg, msg
        assert "\n" not in msg and msg.endswith("start a new run, or restore the file from a backup")
    assert (bad / ck.CHECKPOINT).read_bytes() == before  # nothing was written


def test_weights_that_are_not_finite_are_refused(run_dir, tmp_path):
    bad = tampered(run_dir, tmp_path / "nan", _array("model/0.weight", lambda a: np.full_like(a, np.nan)))
    for use in (lambda: evaluate(bad), lambda: predict(bad, np.zeros((3, 2))), lambda: resume(bad, {"epochs": 4})):
        with pytest.raises(CheckpointError, match=r"^the weights in the checkpoint .* are not finite \(nan in "
                                                  r"0\.weight\): the run diverged"):
            use()
    inf = tampered(run_dir, tmp_path / "inf", _array("model/0.weight", lambda a: np.where(a > 0, np.inf, a)))
    with pytest.raises(CheckpointError, match=r"not finite \(inf in 0\.weight\)"):
        evaluate(inf)


def test_intact_checkpoints_pass(run_dir, tmp_path):
    from polydl.training.ckpt_meta import check_weights, validate

    meta, arrays = ck.load_checkpoint(run_dir / ck.CHECKPOINT)
    validate(meta, arrays, "x")
    check_weights(arrays, "x")
    base = dict(dataset="moons", dataset_params={"n_samples": 200}, hidden=[4], epochs=1, plot=False)
    run_population([tiny(**base, seed=0), tiny(**base, seed=1)], [tmp_path / "m0", tmp_path / "m1"])
    for d in ("m0", "m1"):
        meta, arrays = ck.load_checkpoint(tmp_path / d / ck.CHECKPOINT)
        validate(meta, arrays, d)
        evaluate(tmp_path / d)
    # fields older checkpoints lack are left to their consumers
    meta = {k: v for k, v in meta.items() if k not in ("num_features", "batch", "optimizer", "class_names")}
    validate(meta, {}, "old")
