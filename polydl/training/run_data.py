"""The data of a trained run: where its own data is now, another dataset read as the run reads its
own, and inputs to predict on.

A run records its data file by absolute path and fingerprint (``DataSpec.source``), so its own
data is found from any directory; a file that changed since is used with a note, and one that is
gone is an error naming it (its relative path from the current directory is tried first, with a
note where the same content is found there). Another dataset's columns are matched to the run's
and preprocessed with the run's statistics, categories and fill values."""
from __future__ import annotations

from pathlib import Path

from .data import Data, DataError, DataSpec, load_data, load_dataset, read_inputs, source_note
from .data.files import same_content
from .data.python_data import described

__all__ = ["own_dataset", "load_for_run", "inputs_for_run", "data_notes", "resumed_data"]


def own_dataset(config, spec: DataSpec) -> tuple:
    """(the name or path to read a run's own data from, notes): the recorded absolute path of a
    file, with a note where it changed or moved; a named dataset by its name."""
    source = spec.source or {}
    if source.get("kind") == "python":
        raise DataError(f"the run was trained on data given in Python ({described(source)}), which it "
                        "cannot read again; give data to evaluate on with --dataset FILE (or dataset=...)")
    if source.get("kind") != "file":
        return config.dataset, []
    recorded = Path(source["path"])
    if recorded.exists():
        note = source_note(source)
        return str(recorded), [note] if note else []
    here = Path(config.dataset)
    if here.exists() and same_content(source, here):
        return str(here), [source_note(source, here)]
    raise DataError(f"the run's data file {recorded} is not there any more (moved or deleted); give its data with "
                    "--dataset FILE")


def load_for_run(config, spec: DataSpec, dataset=None, target=None, notes=None):
    """The :class:`~polydl.training.data.LoadedDataset` of a run's own data (``dataset`` None) or
    of ``dataset`` (a name, a file, or a DataFrame / arrays), split like the run's data, its
    columns matched to the run's and encoded with the run's preprocessing."""
    notes = notes if notes is not None else []
    data = dataset if dataset is not None and not isinstance(dataset, (str, Path)) else None
    if dataset is None:
        name, found = own_dataset(config, spec)
        notes.extend(found)
        params = config.dataset_params
        if spec.source is None:  # a checkpoint from before runs knew their data: the run's own label column
            target = config.target
    else:
        name, params = (str(dataset) if data is None else "<data>"), {}
    loaded = load_dataset(name, config.data_seed, config.val_split, config.test_split, target, params,
                          spec.class_names, loss=config.loss, impute=spec.impute, spec=spec, data=data)
    notes.extend(loaded.notes)
    return loaded


def inputs_for_run(spec: DataSpec, X_or_path, notes=None) -> tuple:
    """(features encoded with the run's preprocessing, not standardised, what they are called) of
    an input file, an array or a DataFrame."""
    return read_inputs(X_or_path, spec, notes if notes is not None else [])


def data_notes(spec: DataSpec) -> list:
    """The note on a run's data file that moved or changed since it trained (for ``predict``,
    which does not read it)."""
    note = source_note(spec.source)
    return [note] if note else []


def resumed_data(config, old, meta: dict, arrays: dict) -> Data:
    """The data a resumed run continues on, preprocessed as the run's was (its statistics,
    categories and fill values): its own, found by its recorded path (with a note where it moved or
    changed), or the ``dataset`` it is resumed with, whose columns and classes must match the
    run's. A checkpoint from before runs knew their data loads as it did then."""
    spec = DataSpec.from_checkpoint(meta, arrays)
    if spec.source is None:
        return load_data(config)
    notes = []
    if config.dataset == old.dataset:
        name, notes = own_dataset(old, spec)
    else:
        name = config.dataset
        notes.append(f"the run continues on {name}, its columns matched to those it trained on ({old.dataset})")
    data = load_data(config.replace(dataset=name), spec=spec)
    data.notes[:0] = notes
    return data
