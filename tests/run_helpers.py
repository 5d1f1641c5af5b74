"""Small runs and comparisons of run directories, shared by the training and CLI tests."""
import json

import numpy as np

from polydl.training import checkpoint as ck
from polydl.training.config import TrainConfig


def tiny(**kw) -> TrainConfig:
    """A run of a fraction of a second: 200 moons, one small hidden layer."""
    base = {"dataset": "moons", "dataset_params": {"n_samples": 200}, "hidden": [8], "epochs": 3,
            "batch_size": 32, "plot": False, "dropout": 0.1}
    base.update(kw)
    return TrainConfig(**base)


def arrays(run_dir) -> dict:
    with np.load(run_dir / ck.CHECKPOINT) as z:
        return {k[2:]: np.array(z[k]) for k in z.files if k != "meta"}


def meta(run_dir) -> dict:
    with np.load(run_dir / ck.CHECKPOINT) as z:
        return json.loads(bytes(z["meta"]))


def metrics(run_dir, drop=("seconds",)) -> list:
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (run_dir / ck.METRICS).read_text().splitlines()]


def assert_same_run(a, b):
    """Bit-identical weights, optimizer state and RNG, and the same metrics but for seconds."""
    xa, xb = arrays(a), arrays(b)
    assert xa.keys() == xb.keys()
    for k in xa:
        assert np.array_equal(xa[k], xb[k]), k
    assert metrics(a) == metrics(b)
    ma, mb = meta(a), meta(b)
    assert ma["rng"] == mb["rng"]
    assert (ma["epoch"], ma["step"]) == (mb["epoch"], mb["step"])


