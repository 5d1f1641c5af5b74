"""Loss and accuracy of a model on arrays already on its device, in evaluation mode."""
from __future__ import annotations

import numpy as np

from .. import amp, backend, losses
from ..tensor import Tensor, no_grad

__all__ = ["EVAL_CHUNK", "evaluate_arrays"]

#: samples per forward pass when evaluating
EVAL_CHUNK = 8192


def evaluate_arrays(model, loss_fn, X, y, autocast_dtype=None, scores_out: list | None = None):
    """(mean loss, accuracy, predictions) over device arrays, BatchNorm in eval mode, no graph;
    ``autocast_dtype`` runs the products in half precision. One device-to-host transfer for the
    loss and the count. For a population the loss and accuracy are arrays, one value per member,
    and the predictions have shape (P, m). For a regression (float targets (m, k)) the accuracy is
    None and the predictions are the outputs, (m, k) or (P, m, k). A list ``scores_out`` receives
    the scores of each chunk (device arrays, in order)."""
    m = int(X.shape[0])
    if m == 0:
        return None, None, None
    xp = backend.get_array_module(X)
    was_training = model.training
    model.eval()
    total = xp.zeros((), dtype=np.float64)
    preds = []
    regression = y.dtype.kind == "f"  # a regression's targets (m, k): no accuracy; the outputs are the predictions
    try:
        with no_grad(), amp.autocast(autocast_dtype, enabled=autocast_dtype is not None):
            for i in range(0, m, EVAL_CHUNK):
                xb, yb = X[i:i + EVAL_CHUNK], y[i:i + EVAL_CHUNK]
                scores = model(Tensor(xb))
                total = total + loss_fn(scores, yb).data.astype(np.float64) * xb.shape[0]
                preds.append(scores.data if regression else losses.predict(loss_fn, scores))
                if scores_out is not None:
                    scores_out.append(scores.data)
    finally:
        model.train(was_training)
    pred = preds[0] if len(preds) == 1 else xp.concatenate(preds, axis=-1 if not regression else -2)
    if regression:
        loss = backend.to_numpy(total) / m
        return (loss if total.ndim else float(loss)), None, pred
    if total.ndim:  # a population: one loss and one count per member
        correct = (pred == y).sum(axis=-1)
        both = backend.to_numpy(xp.stack([total, correct.astype(np.float64)]))
        return both[0] / m, both[1] / m, pred
    correct = (pred.reshape(-1) == y).sum()
    both = backend.to_numpy(xp.stack([total, correct.astype(np.float64)]))
    return float(both[0]) / m, float(both[1]) / m, pred
