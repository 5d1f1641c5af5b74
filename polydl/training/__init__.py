"""Training runs: configuration, data, the training loop, checkpoints, evaluation and prediction.

``run(TrainConfig(...), out_dir)`` is a function of its configuration; ``resume(out_dir)``
continues a run bit for bit (CPU); ``evaluate`` and ``predict`` use a finished run.
"""
from .checkpoint import CheckpointError
from .config import ConfigError, TrainConfig, from_dict, load_toml, merge, parse_param, parse_params
from .data import Data, DataError, load_data, load_dataset, read_features
from .inference import LoadedRun, evaluate, load_model, predict, probabilities
from .run import (RESUME_CHANGEABLE, Reporter, RunDirError, RunResult, TrainingDiverged, TrainingInterrupted,
                  default_out_dir, load_run_config, resume, resume_config, run)

__all__ = ["TrainConfig", "ConfigError", "from_dict", "merge", "load_toml", "parse_param", "parse_params", "Data",
           "DataError", "load_data", "load_dataset", "read_features", "CheckpointError", "run", "resume", "resume_config", "load_run_config",
           "RunResult", "RunDirError", "Reporter", "TrainingDiverged", "TrainingInterrupted", "default_out_dir",
           "RESUME_CHANGEABLE", "LoadedRun", "load_model", "evaluate", "predict", "probabilities"]
