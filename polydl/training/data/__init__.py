"""Training data: a registered dataset by name, the user's ``.npz`` / ``.csv`` file, or arrays or a
pandas DataFrame given in Python; and what a run knows of its data.

Modules, low to high: ``checks`` (checks on arrays, :class:`DataError`), ``files`` (reading files
safely, fingerprints), ``tables`` (``.csv`` tables and :class:`Frame`, columns by name),
``labels`` (class labels and regression targets), ``preprocessing`` (kinds of columns, one-hot
categories, imputation, standardisation), ``spec`` (:class:`DataSpec`: what a run records of its
data), ``matching`` (a new table's columns matched to a run's), ``sources`` (reading a dataset or
a file into splits), ``python_data`` (arrays and DataFrames), ``loading`` (:func:`load_dataset`,
:func:`load_data`), ``inputs`` (inputs to predict on). Every name that ``polydl.training.data``
had as one module is importable from here.
"""
from .checks import DataError, check_cast, check_features, validate_split
from .files import FEATURES_NPZ_FIX, FILE_SUFFIXES, NPZ_FIX, fingerprint, is_data_file
from .inputs import read_features, read_inputs
from .loading import Data, LoadedDataset, data_dtype, load_data, load_dataset, task_for
from .preprocessing import IMPUTE, Column, standardization
from .python_data import ARRAYS, DATAFRAME, is_dataframe
from .spec import CLASSIFICATION, REGRESSION, DataSpec, source_note, split_targets
from .tables import MISSING, Frame

__all__ = ["DataError", "Data", "LoadedDataset", "load_data", "load_dataset", "read_features", "check_features",
           "check_cast", "validate_split", "is_data_file", "standardization", "data_dtype", "NPZ_FIX",
           "FEATURES_NPZ_FIX", "FILE_SUFFIXES", "read_inputs", "task_for", "IMPUTE", "Column", "DataSpec",
           "CLASSIFICATION", "REGRESSION", "source_note", "split_targets", "MISSING", "Frame", "fingerprint",
           "ARRAYS", "DATAFRAME", "is_dataframe"]
