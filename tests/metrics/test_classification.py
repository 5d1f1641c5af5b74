"""Classification metrics against their definitions, computed the slow way."""
import itertools

import numpy as np
import pytest

from polydl import metrics
from polydl.metrics import classification as C


def brute_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    pairs = [(a > b) + 0.5 * (a == b) for a, b in itertools.product(pos, neg)]
    return float(np.mean(pairs))


def brute_ap(y, s):
    """Σ over the distinct thresholds t (highest first) of (R(t) − R(previous)) · P(t)."""
    total, prev = 0.0, 0.0
    for t in sorted(set(s), reverse=True):
        chosen = s >= t
        tp = (chosen & (y == 1)).sum()
        recall, precision = tp / (y == 1).sum(), tp / chosen.sum()
        total += (recall - prev) * precision
        prev = recall
    return total


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_and_pr_auc_against_their_definitions_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.normal(size=60) + y, 1)  # rounded: many ties
    assert C.roc_auc(y, s) == pytest.approx(brute_auc(y, s), abs=1e-12)
    assert C.pr_auc(y, s) == pytest.approx(brute_ap(y, s), abs=1e-12)


def test_known_values_and_undefined_cases():
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    assert C.roc_auc(y, s) == 0.75 and C.pr_auc(y, s) == pytest.approx(5 / 6)  # scikit-learn's values
    assert C.roc_auc([1, 1], [0.2, 0.3]) is None and C.pr_auc([0, 0], [0.2, 0.3]) is None
    with pytest.raises(ValueError, match="two classes"):
        C.roc_auc([0, 2], [0.1, 0.2])


def test_precision_recall_f1_per_class_and_macro():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    conf = C.confusion(y, pred, 3)
    assert conf.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    r = C.precision_recall_f1(conf)
    assert r["precision"] == pytest.approx([1, 0.5, 0.5]) and r["recall"] == pytest.approx([2 / 3, 0.5, 1])
    assert r["f1"] == pytest.approx([0.8, 0.5, 2 / 3]) and r["support"] == [3, 2, 1]
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    empty = C.precision_recall_f1(C.confusion([0, 0], [0, 0], 2))  # class 1 never seen: 0, not NaN
    assert empty["precision"] == [1.0, 0.0] and empty["f1"] == [1.0, 0.0]


def test_top_k_accuracy():
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    y = np.array([2, 2, 0])
    assert C.top_k_accuracy(y, scores, 1) == 0.0
    assert C.top_k_accuracy(y, scores, 2) == pytest.approx(2 / 3)  # a tie for second place counts
    assert C.top_k_accuracy(y, scores, 3) == 1.0 and C.top_k_accuracy([], np.zeros((0, 3)), 2) is None


def test_binary_score_ranks_like_the_probability_of_class_1():
    logits = np.array([[0.0, 2.0], [1.0, -1.0], [3.0, 3.5]])
    assert C.binary_score(logits).tolist() == [2.0, -2.0, 0.5]
    assert C.binary_score(np.array([[0.3], [-1.0]])).tolist() == [0.3, -1.0]


def test_report_and_epoch_values():
    y = np.array([0, 1, 1, 0])
    scores = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.5], [0.2, 0.1]])
    pred = scores.argmax(1)
    rep = C.report(y, pred, scores, 2)
    assert rep["roc_auc"] == 1.0 and rep["pr_auc"] == 1.0 and "top_k_accuracy" not in rep
    assert C.epoch_values(y, pred, scores, 2) == {"val_f1": rep["macro_f1"], "val_auc": 1.0}
    assert set(C.epoch_values(y, pred, None, 3)) == {"val_f1"}
    three = C.report(np.array([0, 1, 2]), np.array([0, 1, 1]), np.eye(3), 3, top_k=(2, 3))
    assert three["top_k_accuracy"] == {"2": 1.0} and "roc_auc" not in three


def test_the_recorded_metrics_are_registered_with_their_directions():
    assert metrics.direction("val_f1") == metrics.direction("val_auc") == "maximize"
    assert {"val_f1", "val_auc"} <= set(metrics.recorded_names("classification"))
    assert metrics.get("f1").task == "classification"
