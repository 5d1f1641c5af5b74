"""What a checkpoint records of its data (``meta["data"]``, a regression's target statistics), edited
into nonsense, is one line naming the field; a checkpoint written before runs kept it still works."""
import numpy as np
import pytest
from run_helpers import tiny
from test_ckpt_meta import tampered

from polydl.training import CheckpointError, TrainConfig, evaluate, predict, run


@pytest.fixture(scope="module")
def regression_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg")
    rng = np.random.default_rng(0)
    a = rng.normal(size=80)
    (root / "d.csv").write_text("a,c,y\n" + "".join(f"{v:.4f},{'pq'[i % 2]},{2 * v:.4f}\n" for i, v in enumerate(a)))
    run(TrainConfig(dataset=str(root / "d.csv"), loss="mse", hidden=[4], epochs=1, batch_size=16, plot=False),
        root / "r")
    return root / "r"


def _data(edit):
    def go(meta, arrays):
        edit(meta["data"])
    return go


@pytest.mark.parametrize("edit, field", [
    (_data(lambda d: d.update(task="clustering")), "data.task"),
    (_data(lambda d: d["columns"][1].update(categories=[1, 2])), "data.columns[1].categories"),
    (_data(lambda d: d["columns"].pop()), "data.columns"),
    (_data(lambda d: d["columns"][0].update(fill="x")), "data.columns[0].fill"),
    (_data(lambda d: d.update(targets="y")), "data.targets"),
    (_data(lambda d: d.update(impute="zero")), "data.impute"),
    (lambda meta, arrays: arrays.update({"data/target_std": np.zeros(1)}), "array data/target_std"),
    (lambda meta, arrays: arrays.update({"data/target_mean": np.zeros(3)}), "array data/target_mean"),
])
def test_a_damaged_data_record_is_one_line(regression_dir, tmp_path, edit, field):
    bad = tampered(regression_dir, tmp_path / "bad", edit)
    for use in (lambda: evaluate(bad), lambda: predict(bad, np.zeros((1, 2)))):
        with pytest.raises(CheckpointError, match=rf"is damaged: its {field.replace('[', '.').replace(']', '.')}"):
            use()


def test_a_checkpoint_from_before_runs_knew_their_data(tmp_path):
    run(tiny(epochs=1), tmp_path / "r")

    def forget(meta, arrays):
        meta.pop("data")

    old = tampered(tmp_path / "r", tmp_path / "old", forget)
    assert evaluate(old)["samples"] == 40
    assert predict(old, np.zeros((3, 2))).probabilities.shape == (3, 2)
