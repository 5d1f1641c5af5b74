"""What is kept per member: its epoch records, its checkpoint's fields, and how a population's
checkpoints record the members that stopped."""
from pathlib import Path

import numpy as np

from polydl.training import TrainConfig, TrainingDiverged
from polydl.training.members import STOPPED, Member, checkpoint, epoch_record, outcome_of, stopped_outcomes
from polydl.training.results import MemberStopped, RunResult


class _Data:
    name, num_classes, num_features, class_names = "moons", 2, 2, None
    mean, std = np.zeros(2), np.ones(2)


def test_an_epoch_record_weighs_mini_batches_by_their_size_and_carries_a_pending_event():
    mb = Member(0, TrainConfig(), Path("run"), [], pending_event="lr changed")
    sizes = np.array([4.0, 4.0, 2.0])
    record = epoch_record(mb, 2, 6, 0.01, np.array([1.0, 2.0, 4.0]), np.array([4, 2, 1]), sizes, 10, 0.5, 0.75, 1.25)
    assert record == {"epoch": 2, "step": 6, "lr": 0.01, "train_loss": (4 + 8 + 8) / 10, "train_accuracy": 0.7,
                      "val_loss": 0.5, "val_accuracy": 0.75, "lr_changed": True, "event": "lr changed",
                      "seconds": 1.25}
    assert mb.history == [record] and mb.pending_event is None
    assert "event" not in epoch_record(mb, 3, 9, 0.01, np.ones(3), np.ones(3), sizes, 10, None, None, 1.0)


def test_a_checkpoint_holds_the_fields_of_a_run_alone_and_a_member_its_population():
    mb = Member(1, TrainConfig(), Path("run"), ["0.weight"], history=[{"epoch": 1}])
    opt = {"type": "Adam", "step": 3, "state": [{"m": np.ones(2), "v": np.zeros(2)}]}
    args = dict(position=(1, 3, 0), epoch_seconds=0.5, rng={"seed": 1}, optimizer=opt, model={"0.weight": np.ones(2)},
                partial=(np.zeros(3), np.zeros(3, dtype=np.int64)), data=_Data(), outputs=2)
    meta, arrays = checkpoint(mb, **args)
    assert list(meta) == ["config", "epoch", "step", "batch", "epoch_start_step", "epoch_seconds", "rng", "optimizer",
                          "history", "pending_event", "loss_scaler", "dataset", "num_classes", "num_features",
                          "num_outputs", "class_names", "components"]
    assert meta["optimizer"] == {"type": "Adam", "step": 3, "groups": [["m", "v"]]}
    assert list(arrays) == ["model/0.weight", "opt/0/m", "opt/0/v", "data/mean", "data/std", "partial/losses",
                            "partial/correct"]
    meta, _ = checkpoint(mb, **args, population={"size": 2, "index": 1})
    assert list(meta)[-1] == "population"


def test_stopped_members_are_recorded_and_read_back():
    members = [Member(k, TrainConfig(), Path(f"m{k}"), []) for k in range(4)]
    members[1].outcome = TrainingDiverged("the loss became nan", 2, 5, 0.1, Path("m1"))
    members[2].outcome = MemberStopped(Path("m2"), 3)
    members[3].outcome = RunResult(Path("m3"), 4, 8, [])
    stopped = stopped_outcomes(members)
    assert stopped == {"1": "the loss became nan", "2": f"{STOPPED}3"}
    back = outcome_of(stopped["2"], Path("m2"))
    assert isinstance(back, MemberStopped) and back.epoch == 3
    back = outcome_of(stopped["1"], Path("m1"), epoch=2)
    assert isinstance(back, TrainingDiverged) and back.epoch == 2 and str(back) == "the loss became nan"
