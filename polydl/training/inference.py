"""Using a trained run: rebuild its model from the checkpoint, evaluate it, predict with it.

A run trained on class names (``cat``, ``dog``) keeps them (``LoadedRun.class_names``, index i
is the i-th name): evaluation numbers another file's names the same way, and predictions carry
the names."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import amp, backend, losses
from ..losses import probabilities
from ..metrics import classification
from ..tensor import Tensor, no_grad
from .build import build_loss, build_model, compute_dtype, param_dtype
from .checkpoint import BEST, CheckpointError, chosen
from .config import TrainConfig
from .data import REGRESSION, DataError, DataSpec, check_cast, validate_split
from .evaluation import EVAL_CHUNK, evaluate_arrays
from .model_build import recorded_shape
from .provenance import check
from .regression import estimates, evaluate_regression
from .resume import load_run_config
from .run_data import data_notes, inputs_for_run, load_for_run

__all__ = ["LoadedRun", "Predictions", "load_model", "evaluate", "predict", "probabilities"]  # probabilities: polydl.losses


@dataclass
class LoadedRun:
    config: TrainConfig
    model: object
    loss_fn: object
    mean: np.ndarray
    std: np.ndarray
    num_classes: int
    num_features: int
    epoch: int
    device: object
    class_names: list | None = None
    checkpoint: str = "last"           # which checkpoint: "best" (best.npz) or "last"
    spec: DataSpec | None = None       # what the run knows of its data: columns, preprocessing, targets

    def standardize(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.std


class Predictions(tuple):
    """``(classes, probabilities)`` of :func:`predict`: class indices (m,) and probabilities
    (m, C), NumPy arrays; ``class_names`` is the run's names of the classes (None where it was
    trained on class numbers) and ``labels`` each sample's class name (or its index); ``notes``
    holds remarks on the input (ignored columns, unseen categories, a training file that moved)."""

    def __new__(cls, classes, probabilities, class_names=None, notes=()):
        self = super().__new__(cls, (classes, probabilities))
        self.class_names = list(class_names) if class_names else None
        self.notes = list(notes)
        return self

    @property
    def classes(self) -> np.ndarray:
        return self[0]

    @property
    def probabilities(self) -> np.ndarray:
        return self[1]

    @property
    def labels(self) -> list:
        if self.class_names is None:
            return [int(c) for c in self[0]]
        return [self.class_names[int(c)] for c in self[0]]


def load_model(run_dir, device: str | None = None, checkpoint: str | None = None) -> LoadedRun:
    """The model of a run directory in evaluation mode, on ``device`` (default: the run's device),
    from its ``checkpoint``: "best" (``best.npz``), "last", or by default the best where the run
    keeps it (:func:`~polydl.training.checkpoint.chosen`)."""
    return _load_model(run_dir, device, ("normalizer", "loss", "model"), checkpoint)


def _load_model(run_dir, device, components, checkpoint=None) -> LoadedRun:
    """:func:`load_model`, once ``components`` are what they were (``provenance.check``)."""
    name = chosen(run_dir, checkpoint)
    config, meta, arrays = load_run_config(run_dir, name)
    check(meta, config, components, run_dir)
    dev = backend.check_device(device if device is not None else config.device)
    loss_fn = build_loss(config)
    try:
        num_features, num_classes, outputs = int(meta["num_features"]), int(meta["num_classes"]), int(meta["num_outputs"])
        model = build_model(config, num_features, outputs, dev, recorded_shape(meta, num_features))
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        mean, std = arrays["data/mean"], arrays["data/std"]
        names = meta.get("class_names")
        if names is not None and (not isinstance(names, list) or len(names) != num_classes):
            raise ValueError(f"its {len(names) if isinstance(names, list) else 'unreadable'} class names do not "
                             f"match its {num_classes} classes")
        spec = DataSpec.from_checkpoint(meta, arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"the checkpoint in {run_dir} is damaged or does not match its configuration "
                              f"({exc})") from None
    model.eval()
    return LoadedRun(config, model, loss_fn, mean, std, num_classes, num_features, int(meta["epoch"]), dev,
                     names, "best" if name == BEST else "last", spec)


def _on_device(run: LoadedRun, X: np.ndarray):
    """Standardised features on the run's device, in its parameters' dtype."""
    return backend.to_device(np.ascontiguousarray(run.standardize(X), dtype=param_dtype(run.config)), run.device)


def _scores(run: LoadedRun, X: np.ndarray):
    """Scores of standardised features on the run's device (no graph, eval mode)."""
    Xd = _on_device(run, X)
    out = []
    autocast_dtype = compute_dtype(run.config)
    with no_grad(), amp.autocast(autocast_dtype, enabled=autocast_dtype is not None):
        for i in range(0, len(Xd), EVAL_CHUNK):
            out.append(run.model(Tensor(Xd[i:i + EVAL_CHUNK])).data)
    xp = run.device.xp
    return out[0] if len(out) == 1 else xp.concatenate(out)


def evaluate(run_dir, dataset: str | None = None, split: str | None = None, device: str | None = None,
             target: str | None = None, checkpoint: str | None = None) -> dict:
    """Loss, accuracy and confusion matrix of a run's model on a split of its dataset (default: the
    test split), or on ``dataset`` (a name, a file, a DataFrame or arrays: all of it by default),
    its columns matched to the run's by name and preprocessed with the run's statistics; the run's
    target column(s) are the labels unless ``target`` names others. A regression gives ``rmse``,
    ``mae`` and ``r2`` in the target's units instead of accuracy; ``notes`` holds remarks (ignored
    columns, unseen categories, a data file that moved or changed).
    ``split="all"`` takes every sample (train, validation and test together); ``samples`` and
    ``total_samples`` say how many were used of how many there are. A run trained on class names
    reads the names of ``dataset`` with its own numbering (``class_names`` in the result).
    ``checkpoint`` is "best", "last" or by default the best where the run keeps it (``checkpoint``
    and ``epoch`` in the result); the result adds precision, recall and F1 per class and macro,
    ROC AUC and PR AUC for two classes and top-k accuracy (:func:`polydl.metrics.classification.report`)."""
    run = _load_model(run_dir, device, ("normalizer", "loss", "model") + (("dataset",) if dataset is None else ()),
                      checkpoint)
    cfg = run.config
    notes = []
    loaded = load_for_run(cfg, run.spec, dataset, target, notes)  # the run's own data, or another matched to it
    name, regression = loaded.name, run.spec.task == REGRESSION
    split = split if split is not None else ("test" if dataset is None else "all")
    if loaded.class_names is not None and run.class_names is None:
        raise DataError(f"{name} labels its samples with class names ({', '.join(loaded.class_names[:3])}"
                        f"{', ...' if len(loaded.class_names) > 3 else ''}), but the run in {run_dir} was trained on "
                        f"class numbers 0..{run.num_classes - 1}; label them with those numbers")
    label, splits = loaded.name, loaded.splits
    if split != "all" and split not in splits:
        raise DataError(f"unknown split '{split}' (valid: train, val, test, all)")
    used = ("train", "val", "test") if split == "all" else (split,)
    for s in used:
        Xs, ys = splits[s]
        if len(Xs) and Xs.shape[1] != run.num_features:
            raise DataError(f"{label} has {Xs.shape[1]} features per sample, but the model takes {run.num_features}")
        what, rows = loaded.where(s)
        if not regression:
            validate_split(Xs, ys, what, run.num_classes)
        check_cast(run.standardize(Xs), param_dtype(cfg), what, raw=Xs, rows=rows, split=s,
                   fixes="rescale that feature" + ("" if param_dtype(cfg) == np.float64 else
                                                   " (or train with --dtype float64)"))
    X = np.concatenate([splits[s][0] for s in used])
    y = np.concatenate([splits[s][1] for s in used])
    if len(y) == 0:
        raise DataError(f"the {split} split of {label} is empty")
    head = {"dataset": label, "split": split, "samples": int(len(y)),
            "total_samples": int(sum(len(v[1]) for v in splits.values())), "notes": notes}
    if regression:
        return {**head, **evaluate_regression(run, _on_device(run, X), y), "checkpoint": run.checkpoint,
                "epoch": run.epoch}
    scores = []
    loss, accuracy, pred = evaluate_arrays(run.model, run.loss_fn, _on_device(run, X),
                                           backend.to_device(y, run.device), compute_dtype(run.config), scores)
    pred = backend.to_numpy(pred).reshape(-1).astype(np.int64)
    k = run.num_classes
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    out = {"dataset": label, "split": split, "samples": int(len(y)),
           "total_samples": int(sum(len(v[1]) for v in splits.values())), "loss": loss,
           "accuracy": accuracy, "confusion": confusion.tolist(), "num_classes": k,
           "checkpoint": run.checkpoint, "epoch": run.epoch, "notes": notes}
    out.update(classification.report(y, pred, np.concatenate([backend.to_numpy(c) for c in scores]), k))
    if run.class_names:
        out["class_names"] = list(run.class_names)
    return out


def predict(run_dir, X_or_path, device: str | None = None, checkpoint: str | None = None) -> Predictions:
    """(classes, probabilities) as NumPy arrays for features (an array, a DataFrame, or a
    .npz/.csv path whose columns are matched to the run's by name, the target column left out),
    with the run's ``class_names`` (see :class:`Predictions`); ``checkpoint`` as for
    :func:`load_model`. A regression run gives :class:`~polydl.training.regression.Estimates`:
    (m, k) values in the target's units."""
    run = load_model(run_dir, device, checkpoint)
    notes = data_notes(run.spec)
    X, what = inputs_for_run(run.spec, X_or_path, notes)  # matched to the run's columns, encoded
    check_cast(run.standardize(X), param_dtype(run.config), what, raw=X, fixes="rescale that feature")
    scores = _scores(run, X)
    if run.spec.task == REGRESSION:
        return estimates(run.spec, scores, notes)
    classes = backend.to_numpy(losses.predict(run.loss_fn, scores)).reshape(-1).astype(np.int64)
    probs = backend.to_numpy(probabilities(run.loss_fn, scores))
    return Predictions(classes, probs, run.class_names, notes)
