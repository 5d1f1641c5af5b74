"""Comparisons of runs that watch their metric (early stopping, best.npz, plateaus), shared by
the training and CLI tests."""
import json

import numpy as np
from run_helpers import arrays, meta, metrics

from polydl.training import checkpoint as ck


def summary(out, drop=("seconds",)):
    return {k: v for k, v in json.loads((out / ck.SUMMARY).read_text()).items() if k not in drop}


def best_arrays(out):
    meta_, arr = ck.load_checkpoint(out / ck.BEST)
    return meta_["epoch"], arr


def assert_same_watched_run(a, b):
    """The same weights, optimizer state, metrics, best checkpoint, stopping epoch and summary."""
    xa, xb = arrays(a), arrays(b)
    assert xa.keys() == xb.keys()
    for k in xa:
        assert np.array_equal(xa[k], xb[k]), k
    assert metrics(a) == metrics(b)
    assert meta(a)["monitor"] == meta(b)["monitor"]
    ea, ba = best_arrays(a)
    eb, bb = best_arrays(b)
    assert ea == eb and ba.keys() == bb.keys() and all(np.array_equal(ba[k], bb[k]) for k in ba)
    sa, sb = summary(a), summary(b)
    sa["best"].pop("seconds", None), sb["best"].pop("seconds", None)
    assert sa == sb
    assert (a / ck.CONFIG).read_text().replace(str(a), "") == (b / ck.CONFIG).read_text().replace(str(b), "")
