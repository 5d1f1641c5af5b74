"""Small runs and comparisons of run directories, shared by the training and CLI tests."""
import json
import signal

import numpy as np

from polydl.training import checkpoint as ck
from polydl.training.config import TrainConfig
from polydl.training.reporting import Reporter


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




def without_file_permission_override():
    """A ``preexec_fn`` for a subprocess that obeys file permissions even when run as root: it
    drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the capability bounding set (Linux), so
    the program it executes cannot read a file of mode 000. Raises OSError where that fails."""
    import ctypes
    import os

    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def drop():
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    return drop


class InterruptAt(Reporter):
    """Sends this process a real signal (SIGINT unless ``signum`` says) at the n-th step."""

    def __init__(self, n, signum=signal.SIGINT):
        self.n, self.count, self.signum = n, 0, signum

    def step(self, loss=None):
        self.count += 1
        if self.count == self.n:
            signal.raise_signal(self.signum)
