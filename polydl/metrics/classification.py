"""Classification metrics from labels, predicted classes and scores (NumPy, on the host).

With the confusion matrix C (rows: the true class, columns: the predicted one), class j's

    precision_j = C[j, j] / Σᵢ C[i, j]      recall_j = C[j, j] / Σᵢ C[j, i]
    F1_j = 2 · precision_j · recall_j / (precision_j + recall_j)

(0 where a denominator is 0, as scikit-learn's ``zero_division=0``), and the macro averages are
their means over the classes. For two classes, with s the score of class 1 (a logit, or the
difference of the two classes' scores: any number that grows with p(class 1)):

    ROC AUC = P(s of a positive > s of a negative), ties counting ½ (the Mann–Whitney U / (n₊ n₋))
    PR AUC  = Σₙ (Rₙ − Rₙ₋₁) · Pₙ over the distinct thresholds, highest first (average precision)

and top-k accuracy is the fraction of samples whose class is among the k highest scores.

A run records ``val_f1`` (macro) and, for two classes, ``val_auc`` per epoch (:data:`PER_EPOCH`);
``polydl evaluate`` reports all of them (:func:`report`).
"""
from __future__ import annotations

import numpy as np

from . import Metric, register

__all__ = ["PER_EPOCH", "confusion", "precision_recall_f1", "roc_auc", "pr_auc", "top_k_accuracy", "binary_score",
           "epoch_values", "report"]

#: the metrics recorded in every epoch's record as ``val_<name>`` (where they apply)
PER_EPOCH = ("f1", "auc")


def confusion(y, pred, num_classes: int) -> np.ndarray:
    """The (k, k) confusion matrix: ``C[i, j]`` samples of class i predicted as j."""
    y, pred = np.asarray(y, dtype=np.int64).reshape(-1), np.asarray(pred, dtype=np.int64).reshape(-1)
    return np.bincount(y * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(num, den) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def precision_recall_f1(conf) -> dict:
    """Per-class ``precision``, ``recall``, ``f1`` and ``support`` (lists), and their ``macro_``
    means, of a confusion matrix."""
    conf = np.asarray(conf, dtype=np.int64)
    tp = np.diag(conf)
    precision, recall = _ratio(tp, conf.sum(axis=0)), _ratio(tp, conf.sum(axis=1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
            "support": conf.sum(axis=1).tolist(), "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()), "macro_f1": float(f1.mean())}


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``s``, ties sharing their mean rank."""
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _binary(y) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("ROC AUC and PR AUC are defined here for two classes, labels 0 and 1")
    return y.astype(bool)


def roc_auc(y, score) -> float | None:
    """The area under the ROC curve of labels 0/1 ``y`` and scores ``score``; None where one class
    is missing (it is undefined)."""
    pos = _binary(y)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pr_auc(y, score) -> float | None:
    """The area under the precision-recall curve of labels 0/1 ``y`` and scores ``score``, as
    average precision; None without positive samples."""
    pos = _binary(y)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if not pos.any():
        return None
    order = np.argsort(-s, kind="mergesort")
    s, hits = s[order], pos[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # the last sample of each distinct threshold
    tp = np.cumsum(hits)[last]
    precision = tp / (last + 1.0)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def top_k_accuracy(y, scores, k: int) -> float | None:
    """The fraction of samples whose class is among the ``k`` highest of their ``scores`` (m, C);
    None without samples."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if len(y) == 0:
        return None
    k = min(int(k), scores.shape[1])
    own = scores[np.arange(len(y)), y][:, None]
    # the class is in the top k when fewer than k classes score strictly higher (ties favour it)
    return float(np.mean((scores > own).sum(axis=1) < k))


def binary_score(scores) -> np.ndarray:
    """The score of class 1 from scores of shape (..., 1) (a logit) or (..., 2) (z₁ − z₀), in float64."""
    s = np.asarray(scores, dtype=np.float64)
    return s[..., 0] if s.shape[-1] == 1 else s[..., 1] - s[..., 0]


def epoch_values(y, pred, scores, num_classes: int) -> dict:
    """``{"val_f1": …}`` and for two classes ``val_auc`` of one model's predictions ``pred`` (m,)
    and scores (m, C) (None: no AUC)."""
    out = {"val_f1": precision_recall_f1(confusion(y, pred, num_classes))["macro_f1"]}
    if num_classes == 2 and scores is not None and np.shape(scores)[-1] in (1, 2):
        out["val_auc"] = roc_auc(y, binary_score(scores))
    return out


def report(y, pred, scores, num_classes: int, top_k=(3, 5)) -> dict:
    """What ``polydl evaluate`` reports beyond loss and accuracy: per-class and macro precision,
    recall and F1; ROC AUC and PR AUC for two classes; top-k accuracy for each k < the number of
    classes (``top_k_accuracy``: {k: value})."""
    out = precision_recall_f1(confusion(y, pred, num_classes))
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if num_classes == 2 and scores.shape[-1] in (1, 2):
            s = binary_score(scores)
            out["roc_auc"], out["pr_auc"] = roc_auc(y, s), pr_auc(y, s)
        if scores.ndim == 2 and scores.shape[1] == num_classes and any(k < num_classes for k in top_k):
            out["top_k_accuracy"] = {str(k): top_k_accuracy(y, scores, k) for k in top_k if k < num_classes}
    return out


register(Metric("f1", True, "classification", "the macro-averaged F1 score: the mean over classes of "
                "2·precision·recall/(precision + recall)"))
register(Metric("auc", True, "classification", "the area under the ROC curve (two classes): the chance that a "
                "positive sample scores above a negative one"))
