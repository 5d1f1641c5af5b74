"""Using a trained run: rebuild its model from the checkpoint, evaluate it, predict with it.

A run trained on class names (``cat``, ``dog``) keeps them (``LoadedRun.class_names``, index i
is the i-th name): evaluation numbers another file's names the same way, and predictions carry
the names."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import amp, backend, losses
from ..losses import probabilities
from ..tensor import Tensor, no_grad
from .build import build_loss, build_model, compute_dtype, param_dtype
from .checkpoint import CheckpointError
from .config import TrainConfig
from .data import DataError, check_cast, check_features, load_dataset, read_features, validate_split
from .evaluation import EVAL_CHUNK, evaluate_arrays
from .provenance import check
from .resume import load_run_config

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

    def standardize(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.std


class Predictions(tuple):
    """``(classes, probabilities)`` of :func:`predict`: class indices (m,) and probabilities
    (m, C), NumPy arrays; ``class_names`` is the run's names of the classes (None where it was
    trained on class numbers) and ``labels`` each sample's class name (or its index)."""

    def __new__(cls, classes, probabilities, class_names=None):
        self = super().__new__(cls, (classes, probabilities))
        self.class_names = list(class_names) if class_names else None
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


def load_model(run_dir, device: str | None = None) -> LoadedRun:
    """The model of a run directory in evaluation mode, on ``device`` (default: the run's device)."""
    return _load_model(run_dir, device, ("normalizer", "loss"))


def _load_model(run_dir, device, components) -> LoadedRun:
    """:func:`load_model`, once ``components`` are what they were (``provenance.check``)."""
    config, meta, arrays = load_run_config(run_dir)
    check(meta, config, components, run_dir)
    dev = backend.check_device(device if device is not None else config.device)
    loss_fn = build_loss(config)
    try:
        num_features, num_classes, outputs = int(meta["num_features"]), int(meta["num_classes"]), int(meta["num_outputs"])
        model = build_model(config, num_features, outputs, dev)
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        mean, std = arrays["data/mean"], arrays["data/std"]
        names = meta.get("class_names")
        if names is not None and (not isinstance(names, list) or len(names) != num_classes):
            raise ValueError(f"its {len(names) if isinstance(names, list) else 'unreadable'} class names do not "
                             f"match its {num_classes} classes")
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"the checkpoint in {run_dir} is damaged or does not match its configuration "
                              f"({exc})") from None
    model.eval()
    return LoadedRun(config, model, loss_fn, mean, std, num_classes, num_features, int(meta["epoch"]), dev,
                     names)


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


def evaluate(run_dir, dataset: str | None = None, split: str = "test", device: str | None = None,
             target: str | None = None) -> dict:
    """Loss, accuracy and confusion matrix of a run's model on a split of its dataset (or of
    ``dataset``, a name or a file, standardised with the run's training statistics).
    ``split="all"`` takes every sample (train, validation and test together); ``samples`` and
    ``total_samples`` say how many were used of how many there are. A run trained on class names
    reads the names of ``dataset`` with its own numbering (``class_names`` in the result)."""
    run = _load_model(run_dir, device, ("normalizer", "loss") + (("dataset",) if dataset is None else ()))
    cfg = run.config
    name = dataset if dataset is not None else cfg.dataset
    params = cfg.dataset_params if dataset is None else {}
    if target is None and dataset is None:
        target = cfg.target  # the run's own label column
    loaded = load_dataset(name, cfg.data_seed, cfg.val_split, cfg.test_split, target, params,
                          class_names=run.class_names)
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
        validate_split(Xs, ys, what, run.num_classes)
        check_cast(run.standardize(Xs), param_dtype(cfg), what, raw=Xs, rows=rows, split=s,
                   fixes="rescale that feature" + ("" if param_dtype(cfg) == np.float64 else
                                                   " (or train with --dtype float64)"))
    X = np.concatenate([splits[s][0] for s in used])
    y = np.concatenate([splits[s][1] for s in used])
    if len(y) == 0:
        raise DataError(f"the {split} split of {label} is empty")
    loss, accuracy, pred = evaluate_arrays(run.model, run.loss_fn, _on_device(run, X),
                                           backend.to_device(y, run.device), compute_dtype(run.config))
    pred = backend.to_numpy(pred).reshape(-1).astype(np.int64)
    k = run.num_classes
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    out = {"dataset": label, "split": split, "samples": int(len(y)),
           "total_samples": int(sum(len(v[1]) for v in splits.values())), "loss": loss,
           "accuracy": accuracy, "confusion": confusion.tolist(), "num_classes": k}
    if run.class_names:
        out["class_names"] = list(run.class_names)
    return out


def predict(run_dir, X_or_path, device: str | None = None) -> Predictions:
    """(classes, probabilities) as NumPy arrays for features (an array, or a .npz/.csv path),
    with the run's ``class_names`` (see :class:`Predictions`)."""
    run = load_model(run_dir, device)
    if isinstance(X_or_path, (str, Path)):
        X, what = read_features(X_or_path, run.num_features), str(X_or_path)
    else:
        X, what = check_features(X_or_path, "the input", run.num_features), "the input"
    check_cast(run.standardize(X), param_dtype(run.config), what, raw=X, fixes="rescale that feature")
    scores = _scores(run, X)
    classes = backend.to_numpy(losses.predict(run.loss_fn, scores)).reshape(-1).astype(np.int64)
    probs = backend.to_numpy(probabilities(run.loss_fn, scores))
    return Predictions(classes, probs, run.class_names)
