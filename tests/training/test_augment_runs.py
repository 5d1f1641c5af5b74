"""``augment``: training images randomly cropped and flipped, drawn from (data seed, epoch, batch),
so a resumed run ends as an uninterrupted one; refused for data that are not images."""
import numpy as np
import pytest

from polydl.datasets.augment import augment, augment_rng
from polydl.training import TrainConfig, resume, run
from polydl.training.checkpoint import load_checkpoint
from polydl.training.config import ConfigError

BASE = dict(dataset="digits", model="cnn", model_params={"channels": [4]}, hidden=[16], epochs=3, batch_size=128,
            plot=False, augment=True, augment_padding=2)


def _weights(out):
    _meta, arrays = load_checkpoint(out / "checkpoint.npz")
    return {k: v for k, v in arrays.items() if k.startswith("model/")}


def test_augmented_training_differs_from_plain_and_is_reproducible(tmp_path):
    a = run(TrainConfig(**BASE), tmp_path / "a")
    b = run(TrainConfig(**BASE), tmp_path / "b")
    plain = run(TrainConfig(**{**BASE, "augment": False}), tmp_path / "plain")
    wa, wb, wp = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "plain")
    assert wa and all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert any(not np.array_equal(wa[k], wp[k]) for k in wa)
    assert a.history[-1]["train_loss"] != plain.history[-1]["train_loss"]
    assert b.history == a.history or [r["train_loss"] for r in b.history] == [r["train_loss"] for r in a.history]


def test_a_resumed_augmented_run_ends_as_an_uninterrupted_one(tmp_path):
    whole = run(TrainConfig(**BASE), tmp_path / "whole")
    run(TrainConfig(**{**BASE, "epochs": 1}), tmp_path / "part")
    resumed = resume(tmp_path / "part", {"epochs": 3})
    w1, w2 = _weights(tmp_path / "whole"), _weights(tmp_path / "part")
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]


def test_the_trainer_draws_the_batch_from_data_seed_epoch_and_batch():
    x = np.arange(2 * 64, dtype=np.float32).reshape(2, 64)
    one = augment(x, augment_rng(0, 2, 5), crop_padding=2, flip=True, input_shape=(1, 8, 8))
    two = augment(x, augment_rng(0, 2, 5), crop_padding=2, flip=True, input_shape=(1, 8, 8))
    other = augment(x, augment_rng(0, 2, 6), crop_padding=2, flip=True, input_shape=(1, 8, 8))
    assert np.array_equal(one, two) and not np.array_equal(one, other)


def test_augment_on_rows_of_features_is_one_line_and_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match=r"augment crops and flips images, but moons has samples of shape \(2,\)"):
        run(TrainConfig(dataset="moons", epochs=1, plot=False, augment=True), tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("key, value, match", [("augment_padding", -1, "augment_padding"),
                                               ("augment", "yes please", "augment"),
                                               ("augment_flip", 2, "augment_flip")])
def test_bad_augment_keys_are_refused(key, value, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**{**BASE, key: value}).validate()
