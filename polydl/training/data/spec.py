"""What a run knows of its data (:class:`DataSpec`), kept in its checkpoint: the task, the input
columns by name in the model's order with the preprocessing of each (:class:`Column`: kind,
categories, fill value), the features' standardisation, the target column(s) (and for a
regression their standardisation), the class names, every column of the training table in order
(a file without a header must have that width), whether the names came with the data, and where
the data came from (a file's absolute path and fingerprint, a named dataset, data given in
Python).

In the checkpoint the JSON part is ``meta["data"]`` and the arrays are ``data/mean``,
``data/std``, and for a regression ``data/target_mean`` and ``data/target_std``. A checkpoint
written before runs kept this gets the spec of its features by position (:meth:`DataSpec.from_checkpoint`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .files import same_content
from .preprocessing import CATEGORY, Column, feature_names
from .tables import NUMBER, TEXT

__all__ = ["DataSpec", "CLASSIFICATION", "REGRESSION", "source_note", "split_targets"]

CLASSIFICATION, REGRESSION = "classification", "regression"


def split_targets(target) -> list | None:
    """The target column(s) of ``target``: None, a name, names separated by commas, or a list."""
    if target is None:
        return None
    if isinstance(target, (list, tuple)):
        return [str(t) for t in target]
    return [t.strip() for t in str(target).split(",") if t.strip()] or [str(target)]


@dataclass
class DataSpec:
    """A run's knowledge of its data (see the module's docstring); ``mean`` and ``std`` are None
    until the features are standardised (``polydl.training.data.load_data``)."""

    task: str = CLASSIFICATION
    columns: list = field(default_factory=list)
    targets: list = field(default_factory=lambda: ["y"])
    layout: list = field(default_factory=list)
    named: bool = False
    class_names: list | None = None
    source: dict | None = None
    impute: str | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    target_mean: np.ndarray | None = None
    target_std: np.ndarray | None = None

    @property
    def feature_columns(self) -> list:
        """The names of the input columns, in the model's order."""
        return [c.name for c in self.columns]

    @property
    def feature_names(self) -> list:
        """The model's features: a column of numbers by its name, a category as ``name=value``."""
        return feature_names(self.columns)

    @property
    def num_features(self) -> int:
        return sum(c.width for c in self.columns)

    @property
    def kinds(self) -> list:
        """How each input column is read: ``number`` or ``text``."""
        return [TEXT if c.kind == CATEGORY else NUMBER for c in self.columns]

    @property
    def numeric(self) -> bool:
        return all(c.kind == NUMBER for c in self.columns)

    def fillable(self) -> list:
        return [c.fill is not None for c in self.columns]

    # ------------------------------------------------------------------ checkpoint
    def to_meta(self) -> dict:
        return {"task": self.task, "columns": [c.to_dict() for c in self.columns], "targets": list(self.targets),
                "layout": list(self.layout), "named": bool(self.named), "source": self.source, "impute": self.impute}

    def to_arrays(self) -> dict:
        out = {}
        if self.mean is not None:
            out["data/mean"], out["data/std"] = np.asarray(self.mean), np.asarray(self.std)
        if self.target_mean is not None:
            out["data/target_mean"], out["data/target_std"] = np.asarray(self.target_mean), np.asarray(self.target_std)
        return out

    @classmethod
    def from_checkpoint(cls, meta: dict, arrays: dict) -> "DataSpec":
        """The spec a checkpoint records; for one written before runs kept it: its features by
        position ``x0, x1, ...``, all numbers, the label ``y`` last."""
        d = meta.get("data")
        mean, std = arrays.get("data/mean"), arrays.get("data/std")
        names = meta.get("class_names")
        if not isinstance(d, dict):
            n = int(meta.get("num_features", len(mean) if mean is not None else 0))
            cols = [Column(f"x{j}") for j in range(n)]
            return cls(CLASSIFICATION, cols, ["y"], [c.name for c in cols] + ["y"], False, names, None, None,
                       mean, std)
        return cls(d.get("task", CLASSIFICATION), [Column.from_dict(c) for c in d.get("columns", [])],
                   list(d.get("targets", ["y"])), list(d.get("layout", [])), bool(d.get("named", False)), names,
                   d.get("source"), d.get("impute"), mean, std, arrays.get("data/target_mean"),
                   arrays.get("data/target_std"))

    def with_stats(self, **stats) -> "DataSpec":
        return replace(self, **stats)


def source_note(source: dict | None, path=None) -> str | None:
    """A note where the data file a run recorded (``source``, a fingerprint) moved or changed:
    the file is not at its recorded path any more, or holds other content (read at ``path``
    where given, else at the recorded path); None where it is as recorded, or not a file."""
    if not isinstance(source, dict) or source.get("kind") != "file":
        return None
    recorded = source.get("path", "")
    where = Path(path) if path is not None else Path(recorded)
    same = same_content(source, where)
    if same is None:
        return f"the run's data file {recorded} is not there any more (moved or deleted)"
    if not same:
        return (f"the data file {where} changed since the run was trained on it (its content differs from what the "
                "run recorded)")
    if path is not None and Path(path).absolute() != Path(recorded):
        return f"the run's data moved from {recorded} to {Path(path).absolute()} (the same content)"
    return None
