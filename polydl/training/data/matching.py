"""How a new table is matched to the columns a run was trained on (its :class:`DataSpec`).

A file with a header row, for a run whose columns had names, is matched by name, in any order:
the run's feature columns are taken, its target column(s) are the labels of ``evaluate`` and are
left out by ``predict``, other columns are ignored with a note, and a missing column is an error
naming it. A file without a header must have the training width (its columns in the training
order), or for ``predict`` just the feature columns. A run whose columns were positions (a
``.npz``, a named dataset, a file without a header) matches by position: the target is the
column ``--target`` names, else the run's target name where the header has it, else the last.
"""
from __future__ import annotations

from ...checks import shown
from .checks import DataError
from .spec import DataSpec, split_targets

__all__ = ["match_columns", "target_indices"]


def target_indices(path, header, width: int, target) -> list:
    """The indices of the target column(s) ``target`` (names, or integer positions; default: the
    last column) of a table of ``width`` columns."""
    names = split_targets(target)
    if names is None:
        return [width - 1]
    if header is not None and len(names) > 1 and target in header:
        names = [target]  # a column whose name has a comma in it
    out = []
    for t in names:
        if header is not None and t in header:
            out.append(header.index(t))
        elif t.lstrip("-").isdigit() and -width <= int(t) < width:
            out.append(int(t) % width)
        else:
            have = f"its columns are {', '.join(header)}" if header else f"it has no header row and {width} columns"
            raise DataError(f"--target {shown(t)} is not a column of {path}: {have}")
    if len(set(out)) != len(out):
        raise DataError(f"--target names a column of {path} twice")
    return out


def _by_name(path, header, spec: DataSpec, targets, mode, notes):
    feats = spec.feature_columns
    if mode == "evaluate":
        gone = [t for t in targets if t not in header]
        if gone:
            raise DataError(f"{path} has no column {', '.join(map(shown, gone))} (the run's target); name the column "
                            "that holds it with --target COLUMN")
    missing = [f for f in feats if f not in header]
    if missing:
        raise DataError(f"{path} has no column{'s' * (len(missing) > 1)} {', '.join(map(shown, missing))}, which the "
                        f"run was trained on (its feature columns: {', '.join(feats)}); give every one of them")
    extra = [c for c in header if c not in feats and c not in targets]
    if extra:
        notes.append(f"{path}: column{'s' * (len(extra) > 1)} {', '.join(map(shown, extra))} "
                     f"{'are' if len(extra) > 1 else 'is'} not among the run's and ignored")
    tcols = [header.index(t) for t in targets if t in header] if mode == "evaluate" else []
    return [header.index(f) for f in feats], tcols


def _by_position(path, header, width, spec: DataSpec, target, mode):
    n, k = len(spec.feature_columns), len(spec.targets)
    if header is not None:
        if target is not None:
            tcols = target_indices(path, header, width, target)
        elif all(t in header for t in spec.targets):
            tcols = [header.index(t) for t in spec.targets]
        elif mode == "evaluate" or width == n + k:
            tcols = list(range(width - k, width))
        else:
            tcols = []
    elif target is not None:
        tcols = target_indices(path, None, width, target)
    elif width == len(spec.layout) and width != n:
        tcols = [spec.layout.index(t) for t in spec.targets if t in spec.layout]
    elif mode == "evaluate":
        tcols = list(range(width - k, width))
    else:
        tcols = []
    fcols = [c for c in range(width) if c not in tcols]
    if len(fcols) != n:
        raise DataError(f"{path} has {len(fcols)} features per sample, but the model takes {n}")
    return fcols, (tcols if mode == "evaluate" else [])


def match_columns(path, header, width: int, spec: DataSpec, target=None, mode: str = "evaluate", notes=None):
    """(feature column indices in the run's order, target column indices) of a table of
    ``width`` columns (``header``: its names, or None) for ``mode`` ``"evaluate"`` (targets
    needed) or ``"predict"`` (targets left out: none are returned); ``target`` names the target
    column(s) where the file names them otherwise. Notes (ignored columns) go to ``notes``."""
    notes = notes if notes is not None else []
    if header is not None and spec.named:
        targets = split_targets(target) or list(spec.targets)
        if target is not None and len(targets) > 1 and target in header:
            targets = [target]
        return _by_name(path, header, spec, targets, mode, notes)
    if header is None and spec.named:
        n = len(spec.feature_columns)
        if target is not None:
            return _by_position(path, None, width, spec, target, mode)
        if width == len(spec.layout):
            fcols = [spec.layout.index(f) for f in spec.feature_columns]
            tcols = [spec.layout.index(t) for t in spec.targets]
            return fcols, (tcols if mode == "evaluate" else [])
        if width == n and mode == "predict":
            return list(range(n)), []
        also = f", or its {n} feature columns" if mode == "predict" else ""
        raise DataError(f"{path} has no header row and {width} columns, but the run was trained on {len(spec.layout)} "
                        f"columns ({', '.join(spec.layout)}): give it a header row naming its columns, or those "
                        f"columns in that order{also}")
    return _by_position(path, header, width, spec, target, mode)
