"""Loading a run's data: a registered dataset by name, the user's ``.npz`` / ``.csv`` file, or
data given in Python, checked, split and preprocessed.

Every check on the user's data happens here, before anything is written, and fails with a
:class:`DataError` that names the problem and the fix. The preprocessing (kinds of columns,
categories, fill values, standardisation, a regression target's standardisation) is learned on
the training split only and applied to every split; given a run's :class:`DataSpec`, the run's
own preprocessing is applied instead, to a file whose columns are matched to the run's.

Labels are class indices 0, 1, 2, ..., or class names (a ``.csv`` column or a string array in a
``.npz``): names become indices in sorted order (``sorted(set(names))``: ``cat`` → 0, ``dog``
→ 1), kept as ``Data.class_names``. Under a regression loss (``mse``, ``mae``, ``huber``) a
file's target column(s) are numbers, one model output each, standardised with the training
split's mean and standard deviation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ... import datasets
from ...checks import shown
from ...losses import task_of
from .checks import DataError, check_cast
from .files import exists, is_data_file
from .labels import REGRESSION_HINT, class_indices, looks_like_regression
from .preprocessing import check_cells, encode, fit_columns, fit_standardization, standardization
from .python_data import from_python
from .sources import SPLITS, Raw, from_file, from_registry
from .spec import CLASSIFICATION, REGRESSION, DataSpec
from .tables import NUMBER

__all__ = ["Data", "LoadedDataset", "load_dataset", "load_data", "data_dtype", "task_for"]


@dataclass
class Data(datasets.Dataset):
    """A :class:`polydl.datasets.Dataset` standardised with the training split's ``mean`` and ``std``.

    ``class_names``: the name of each class index where the labels were names (sorted order),
    None where they were numbers. ``spec``: what the run knows of its data (:class:`DataSpec`);
    for a regression ``y_*`` are the standardised targets (m, k) and ``num_classes`` is k, the
    model's outputs. ``notes``: remarks on the data for the log (unseen categories, a moved file)."""

    mean: np.ndarray = None
    std: np.ndarray = None
    class_names: list[str] | None = None
    spec: DataSpec | None = None
    notes: list = field(default_factory=list)

    def split(self, name: str):
        if name not in SPLITS:
            raise DataError(f"unknown split '{name}' (valid: train, val, test)")
        return getattr(self, f"X_{name}"), getattr(self, f"y_{name}")

    @property
    def task(self) -> str:
        return self.spec.task if self.spec is not None else CLASSIFICATION

    def checkpoint_fields(self) -> tuple[dict, dict]:
        """(meta, arrays) a checkpoint keeps of the data beyond ``data/mean`` and ``data/std``: the
        spec (``meta["data"]``) and a regression's ``data/target_mean`` and ``data/target_std``."""
        if self.spec is None:
            return {}, {}
        arrays = {k: v for k, v in self.spec.to_arrays().items() if k.startswith("data/target_")}
        return {"data": self._spec_meta()}, arrays

    def _spec_meta(self) -> dict:
        """``spec.to_meta()``, made once: every checkpoint of every member writes the same (read,
        never changed)."""
        made = self.__dict__.get("_meta")
        if made is None or made[0] is not self.spec:
            made = self.__dict__["_meta"] = (self.spec, self.spec.to_meta())
        return made[1]


class LoadedDataset(NamedTuple):
    """What :func:`load_dataset` returns: every split checked and encoded, not standardised.
    ``origin``: for each split, what its samples are called in messages and their sample numbers
    there (0-based; None: their places in the split), e.g. ``("d.npz", rows of d.npz)`` for a
    split of a file. ``spec``: the data's :class:`DataSpec` (without standardisation);
    ``notes``: remarks for the log."""

    name: str
    splits: dict            # split -> (X float64 (m, n), y int64 (m,) or a regression's float64 (m, k))
    num_classes: int
    class_names: list[str] | None = None
    origin: dict | None = None
    spec: DataSpec | None = None
    notes: tuple = ()
    input_shape: tuple | None = None   # the shape of one sample (images: (C, H, W)), where the data gives one

    def where(self, split: str):
        """(label, sample numbers or None) of ``split`` for messages."""
        if self.origin and split in self.origin:
            return self.origin[split]
        return f"{self.name} ({split} split)", None


def task_for(loss: str | None, name: str, spec: DataSpec | None = None) -> str:
    """The task of a run of ``loss`` on ``name``: a run's own, else a regression for a regression
    loss on a file or data given in Python (a registered dataset's labels are classes)."""
    if spec is not None:
        return spec.task
    if loss is None or task_of(loss) != REGRESSION:
        return CLASSIFICATION
    return CLASSIFICATION if name in datasets.registry and not os.path.isfile(name) else REGRESSION


# ---------------------------------------------------------------------------- targets
def _what(raw: Raw, s: str) -> str:
    return raw.label if s == "train" else f"{raw.label} ({s} split)"


def _class_labels(raw: Raw, known):
    """(labels per split as int64, class names or None), every check of class labels made."""
    splits, names = class_indices(raw.label, {s: (raw.frames[s], y) for s, y in raw.targets.items()}, known)
    if names is None and not raw.registry and known is None:
        why = looks_like_regression(np.asarray(splits["train"][1]).reshape(-1))
        if why is not None:
            raise DataError(f"{raw.label}: the target {', '.join(raw.target_names)} looks like a regression target "
                            f"({why}), not class labels; {REGRESSION_HINT}")
    out = {}
    for s, (frame, y) in splits.items():
        what = _what(raw, s)
        y = datasets.check_labels(y, what, DataError)
        if len(frame) != len(y):
            raise DataError(f"{what}: X has {len(frame)} samples but y has {len(y)}; they must have the same length")
        if len(y) and y.min() < 0:
            raise DataError(f"{what}: labels must be in the range 0..C-1, found {int(y.min())}")
        out[s] = y
    return out, names


def _num_classes(raw: Raw, ys: dict, names, known) -> int:
    if raw.num_classes is not None:
        return raw.num_classes
    num = len(names) if names else int(max(int(v.max()) for v in ys.values() if len(v)) + 1)
    samples = sum(len(v) for v in ys.values())
    if num > max(samples, 2) and not (known and names):  # a run's names may outnumber a file's samples
        raise DataError(f"{raw.label}: the largest label is {num - 1:,}, so the model would have {num:,} classes "
                        f"(labels are class indices 0..C-1), more than the {samples:,} samples; number the classes "
                        "0, 1, 2, ... (or give class names in a .csv)")
    return num


def _targets(raw: Raw, task: str, spec: DataSpec | None, known):
    """(targets per split, number of classes or outputs, class names)."""
    if task == REGRESSION:
        k = raw.targets["train"].shape[1]
        if spec is not None and k != len(spec.targets):
            raise DataError(f"{raw.label} has {k} target column(s), but the run was trained on {len(spec.targets)} "
                            f"({', '.join(spec.targets)})")
        return dict(raw.targets), k, None
    ys, names = _class_labels(raw, known)
    if not len(ys["train"]):
        raise DataError(f"{raw.label} is empty: it has no samples")
    return ys, _num_classes(raw, ys, names, known), names


# ---------------------------------------------------------------------------- splits and features
def _check_shapes(raw: Raw, spec: DataSpec | None) -> None:
    widths = {s: len(f.names) for s, f in raw.frames.items() if len(f)}
    if len(set(widths.values())) > 1:
        raise DataError(f"{raw.label}: the splits have different numbers of features ({widths})")
    if spec is None:
        return
    n = len(raw.frames["train"].names)
    if n != len(spec.columns):
        raise DataError(f"{raw.name} has {n} features per sample, but the model takes {len(spec.columns)}")
    if not raw.named and not spec.numeric:
        text = ", ".join(c.name for c in spec.columns if c.kind != NUMBER)
        raise DataError(f"{raw.label} gives its features by position as numbers, but the run was trained on text "
                        f"columns ({text}); give a .csv file with a header row naming the columns")


def _split_off(raw: Raw, ys: dict, seed, val_split, test_split):
    """(frames, targets, origin) of the three splits: what the source did not give is split off
    its training data with the seeded permutation of the named datasets."""
    if raw.registry:
        return dict(raw.frames), ys, None
    train_idx, val_idx, test_idx = datasets.split_indices(len(ys["train"]), seed,
                                                          0 if "val" in raw.frames else val_split,
                                                          0 if "test" in raw.frames else test_split)
    frames = {"train": raw.frames["train"].take(train_idx)}
    out = {"train": ys["train"][train_idx]}
    origin = {"train": (raw.label, train_idx)}
    for s, idx in (("val", val_idx), ("test", test_idx)):
        given = s in raw.frames
        frames[s] = raw.frames[s] if given else raw.frames["train"].take(idx)
        out[s] = ys[s] if given else ys["train"][idx]
        origin[s] = raw.origin.get(s, (f"{raw.label} ({s} split)", None)) if given else (raw.label, idx)
    return frames, out, origin


def _fill_fix(spec: DataSpec | None) -> dict:
    if spec is None:
        return {}
    return {"fix": "fill them in: the run was trained without --impute, so it has no values to fill them with"}


def _encoded(raw: Raw, spec, impute, frames, notes):
    """(columns, X per split): the columns learned on the training split (or the run's), each
    split encoded with them."""
    n = len(raw.frames["train"].names)
    fillable = spec.fillable() if spec is not None else [impute is not None] * n
    for frame in raw.frames.values():
        check_cells(frame, fillable, **_fill_fix(spec))
    columns = spec.columns if spec is not None else fit_columns(frames["train"], impute, notes)
    return columns, {s: encode(frames[s], columns, notes) for s in SPLITS}


def finish(raw: Raw, task, seed=0, val_split=0.1, test_split=0.2, impute=None, spec=None, known=None) -> LoadedDataset:
    """The :class:`LoadedDataset` of data as read: targets checked, splits made, features encoded."""
    notes = []
    known = known if known is not None else (spec.class_names if spec is not None else None)
    ys, num_classes, names = _targets(raw, task, spec, known)
    _check_shapes(raw, spec)
    frames, ys, origin = _split_off(raw, ys, seed, val_split, test_split)
    columns, X = _encoded(raw, spec, impute, frames, notes)
    if spec is None:
        out = DataSpec(task, columns, list(raw.target_names), list(raw.layout), raw.named, names, raw.source, impute)
    else:
        out = replace(spec, source=raw.source, class_names=names if names else spec.class_names)
    shape = raw.input_shape if raw.input_shape and int(np.prod(raw.input_shape)) == X["train"].shape[1] else None
    return LoadedDataset(raw.name, {s: (X[s], ys[s]) for s in SPLITS}, num_classes, names, origin, out, tuple(notes),
                         shape)


def load_dataset(name: str, seed=0, val_split=0.1, test_split=0.2, target=None, params=None, class_names=None, *,
                 loss=None, impute=None, spec=None, data=None) -> LoadedDataset:
    """``LoadedDataset(name, {split: (X float64, y)}, num_classes, class_names, origin, spec, notes)``,
    checked and encoded, not standardised; ``class_names`` (sorted) where a file's labels are
    names, else None. Given ``class_names`` (a trained run's), a file's names are numbered by
    their place in it instead, and a name that is not there is an error; given ``spec`` (a
    trained run's), a file's columns are matched to the run's and preprocessed as the run's
    were. ``loss`` decides a file's task (a regression loss: numeric targets); ``impute``
    fills missing values; ``data``: arrays or a DataFrame given in Python instead of ``name``."""
    params = dict(params or {})
    task = task_for(loss, name, spec) if data is None else (spec.task if spec else
                                                            REGRESSION if loss and task_of(loss) == REGRESSION
                                                            else CLASSIFICATION)
    if data is not None:
        raw = from_python(data, target, task, loss or "the loss", spec)
        return finish(raw, task, seed, val_split, test_split, impute, spec, class_names)
    named = name in datasets.registry and not os.path.isfile(name)
    if target is not None and (named or Path(name).suffix.lower() != ".csv"):
        raise DataError(f"--target {target!r} chooses the label column of a .csv file; {name} is not one "
                        "(a .npz file has its labels in y, a named dataset its own)")
    if named:
        raw = from_registry(name, seed, val_split, test_split, params, spec)
    elif is_data_file(name) or exists(name):
        if params:
            raise DataError(f"dataset parameters ({', '.join(params)}) apply to named datasets, not to the file {name}")
        notes = []
        raw = from_file(Path(name), target, task, loss or "the loss", spec, notes)
        loaded = finish(raw, task, seed, val_split, test_split, impute, spec, class_names)
        return loaded._replace(notes=tuple(notes) + loaded.notes)
    else:
        raise DataError(f"{datasets.registry.unknown_message(name)}, or a path to a .npz or .csv file")
    return finish(raw, task, seed, val_split, test_split, impute, spec, class_names)


def data_dtype(config) -> np.dtype:
    """The dtype the data trains in: float64 for ``dtype = "float64"``, else float32 (half
    precision keeps float32 data beside its float32 master weights)."""
    return np.dtype(np.float64) if str(config.dtype) == "float64" else np.dtype(np.float32)


def _check_sizes(config, name, splits, num_classes, class_names, task) -> None:
    y_train = splits["train"][1]
    if len(y_train) == 0:
        raise DataError(f"the dataset {name} leaves no training samples after the validation and test splits")
    if config.batch_size > len(y_train):
        n = len(y_train)
        raise DataError(f"batch_size {config.batch_size} is larger than the training set ({n} sample{'s' * (n != 1)}); "
                        f"use --batch-size {len(y_train)} or less")
    if task == REGRESSION:
        return
    found = np.unique(np.concatenate([y for _, y in splits.values()]))
    if num_classes < 2 or len(found) < 2:
        label = shown(class_names[found[0]]) if class_names else int(found[0])
        raise DataError(f"the dataset {name} has only one class (every label is {label}); "
                        "classification needs at least two")


def _statistics(config, loaded: LoadedDataset, spec: DataSpec | None):
    """(mean, std, target mean, target std): the run's own where ``spec`` has them, else the
    training split's (a regression target's always standardised; a constant one by 1)."""
    X_train, y_train = loaded.splits["train"]
    if spec is not None and spec.mean is not None:
        return spec.mean, spec.std, spec.target_mean, spec.target_std
    mean, std = fit_standardization(X_train, loaded.spec.columns, config.standardize)
    if loaded.spec.task != REGRESSION:
        return mean, std, None, None
    t_mean, t_std = standardization(y_train, True)
    return mean, std, t_mean, t_std


def load_data(config, data=None, spec: DataSpec | None = None) -> Data:
    """The data of a run, checked and standardised with training statistics (a run's own, where
    ``spec`` is a run's); ``data``: arrays or a DataFrame given in Python."""
    loaded = load_dataset(config.dataset, config.data_seed, config.val_split, config.test_split, config.target,
                          config.dataset_params, loss=config.loss, impute=getattr(config, "impute", None), spec=spec,
                          data=data)
    name, splits, num_classes, class_names = loaded[:4]
    task = loaded.spec.task
    _check_sizes(config, name, splits, num_classes, class_names, task)
    mean, std, t_mean, t_std = _statistics(config, loaded, spec)
    scaled = {s: ((X - mean) / std, y if task != REGRESSION else (y - t_mean) / t_std) for s, (X, y) in splits.items()}
    dt = data_dtype(config)
    standardised = bool(np.any(mean != 0) or np.any(std != 1))
    fixes = "rescale that feature" + ("" if standardised else " (--standardize does)") + \
        (", or train with --dtype float64" if dt != np.float64 else "")
    for s, (X, _) in scaled.items():
        what, rows = loaded.where(s)
        check_cast(X, dt, what, raw=splits[s][0] if standardised else None, fixes=fixes, rows=rows, split=s)
    out_spec = loaded.spec.with_stats(mean=mean, std=std, target_mean=t_mean, target_std=t_std)
    return Data(name, *scaled["train"], *scaled["val"], *scaled["test"], num_classes, mean, std, class_names, out_spec,
                list(loaded.notes), input_shape=loaded.input_shape)
