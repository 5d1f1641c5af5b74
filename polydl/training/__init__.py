"""Training runs: configuration, data, the training loop, checkpoints, evaluation and prediction.

``run(TrainConfig(...), out_dir)`` is a function of its configuration; ``resume(out_dir)``
continues a run bit for bit (CPU); ``run_population(configs, out_dirs)`` trains many of one
shape as one computation; ``evaluate`` and ``predict`` use a finished run.

Modules: ``config`` (TrainConfig), ``data`` (datasets, files, tables and data given in Python, and
what a run knows of its data: ``DataSpec``), ``run_data`` (a trained run's data found again, new
data matched to it), ``task_metrics`` and ``regression`` (a regression's metrics and predictions),
``build`` (the model, loss and optimizer of a configuration), ``stacked`` (those of a population), ``trainer`` (the one loop,
over a model alone or a population's members), ``members`` (what is kept per member),
``divergence`` (values that are not finite, and their messages), ``results`` (what a run ends
with), ``rundir`` (run directories), ``checkpoint`` (atomic files), ``run``, ``resume`` and
``population`` (the entry points), ``evaluation`` and ``inference`` (using a model),
``provenance`` (which plugin supplied each component), ``reporting`` (progress callbacks),
``signals``, ``errors``, ``watch`` (following a run as it trains).
"""
from .checkpoint import CheckpointError
from .config import ConfigError, TrainConfig, from_dict, load_toml, merge, parse_param, parse_params
from .data import Data, DataError, DataSpec, load_data, load_dataset, read_features
from .errors import ComponentError, RunDirError, RunWriteError, TrainingDiverged, TrainingInterrupted
from .inference import LoadedRun, Predictions, evaluate, load_model, predict, probabilities
from .population import run_population
from .provenance import ProvenanceError, ProvenanceWarning
from .regression import Estimates
from .reporting import Reporter
from .results import RunResult
from .resume import RESUME_CHANGEABLE, load_run_config, resume, resume_config
from .run import run
from .rundir import default_out_dir

__all__ = ["TrainConfig", "ConfigError", "from_dict", "merge", "load_toml", "parse_param", "parse_params", "Data",
           "DataError", "load_data", "load_dataset", "read_features", "CheckpointError", "run", "resume", "resume_config", "load_run_config",
           "RunResult", "RunDirError", "Reporter", "TrainingDiverged", "TrainingInterrupted", "default_out_dir",
           "RESUME_CHANGEABLE", "run_population", "RunWriteError", "ComponentError", "LoadedRun", "Predictions",
           "evaluate", "load_model", "predict", "probabilities", "ProvenanceError", "ProvenanceWarning", "Estimates",
           "DataSpec"]
