"""A search's settings, as checked before anything runs and as a study records them, and what a
search reports: its errors, its trials and its result."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..training.config import ConfigError, TrainConfig
from .objective import check_metric, directions
from .space import Space, SpaceError

METRICS = directions()  # every metric a run records, and what makes it better (polydl.metrics)
SAMPLERS = ("random", "tpe")
PRUNERS = ("median",)
MIN_TRIALS_PER_ROUND = 2
OPTUNA_MISSING = "polydl tune needs Optuna: pip install 'polydl[tune]'"
SETTINGS = "polydl_settings"
#: base configuration keys that may differ between the owners of one study
PER_OWNER = ("out", "device", "plot")


class TuneError(ConfigError):
    """Settings of a search that cannot be used, or a study they do not match."""


class TuneInterrupted(Exception):
    """Ctrl-C or SIGTERM: running trials saved their checkpoints; the same call continues.
    ``signal`` is the signal's number (``signal.SIGINT`` or ``signal.SIGTERM``)."""

    def __init__(self, message: str, signal: int = 2):
        super().__init__(message)
        self.signal = signal


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise TuneError(OPTUNA_MISSING) from None
    return optuna


@dataclass
class TuneSettings:
    """A search: the base configuration, the space, and how to search it.

    ``seed`` seeds the sampling (default: the base configuration's ``seed``); ``study_name``
    defaults to the name of ``out``; ``storage`` to ``out/study.db``."""

    base: TrainConfig
    space: Space
    trials: int
    out: str | Path
    rounds: int = 1
    sampler: str = "random"
    prune: str | None = None
    metric: str = "val_loss"
    storage: str | None = None
    study_name: str | None = None
    seed: int | None = None
    executor: str = "local"
    workers: int | None = None
    executor_options: dict = field(default_factory=dict)

    @property
    def sampling_seed(self) -> int:
        return int(self.base.seed if self.seed is None else self.seed)

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    @property
    def name(self) -> str:
        return self.study_name or Path(os.path.abspath(self.out)).name

    def check(self) -> None:
        """Raise :class:`TuneError` for settings that cannot run (before anything is written)."""
        from .executors.registry import check_options

        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise TuneError(f"--trials must be >= 1 (the number of trials of the whole study), not {self.trials!r}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise TuneError(f"--rounds must be >= 1, not {self.rounds!r}")
        if self.study_name is not None and (not isinstance(self.study_name, str) or not self.study_name.strip()):
            raise TuneError(f"--study-name must be a name, not {self.study_name!r}; give one, or leave it out for "
                            "the name of --out")
        if self.rounds > 1 and self.trials < MIN_TRIALS_PER_ROUND * self.rounds:
            raise TuneError(f"--rounds {self.rounds} needs at least {MIN_TRIALS_PER_ROUND * self.rounds} trials "
                            f"({MIN_TRIALS_PER_ROUND} per round), not --trials {self.trials}; use fewer rounds or "
                            "more trials")
        try:
            check_metric(self.metric)
        except ValueError as exc:
            raise TuneError(str(exc)) from None
        if self.sampler not in SAMPLERS:
            raise TuneError(f"--sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}")
        if self.sampler == "tpe" and self.rounds > 1:
            raise TuneError("--sampler tpe decides where to sample from all the trials so far and takes no --rounds; "
                            "use --sampler random --rounds R for coarse to fine")
        if self.prune is not None and self.prune not in PRUNERS:
            raise TuneError(f"--prune must be {' or '.join(PRUNERS)}, not {self.prune!r}")
        try:  # the executor's own checks: an option it does not take, a value out of range
            check_options(self.executor, {"workers": self.workers, **self.executor_options})
        except ValueError as exc:
            raise TuneError(str(exc)) from None
        if isinstance(self.seed, bool) or (self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0)):
            raise TuneError(f"--seed must be a whole number >= 0, not {self.seed!r}")
        if not isinstance(self.space, Space) or not len(self.space):
            raise TuneError("the search space is empty")
        if self.base.val_split == 0 and "val_split" not in self.space and not _has_own_validation(self.base) \
                and self.metric.startswith("val_"):
            raise TuneError(f"--metric {self.metric} needs validation data, but val_split is 0; give --val-split 0.1")

    def identity(self) -> dict:
        """What defines the study, recorded in it and compared when it is opened again."""
        base = {k: v for k, v in self.base.to_dict().items() if k not in PER_OWNER}
        return {"metric": self.metric, "direction": self.direction, "rounds": self.rounds, "trials": self.trials,
                "sampler": self.sampler, "seed": self.sampling_seed, "prune": self.prune, "base": base}

    def study_json(self, ref) -> dict:
        return {"storage": ref.url, "study_name": self.name, "metric": self.metric, "direction": self.direction,
                "space": self.space.to_dict(), "rounds": self.rounds, "trials": self.trials,
                "sampler": self.sampler, "seed": self.sampling_seed}


def _has_own_validation(cfg: TrainConfig) -> bool:
    return str(cfg.dataset).lower().endswith(".npz")


# ---------------------------------------------------------------------------- reporting
@dataclass
class TrialInfo:
    """A trial that just finished, for progress lines."""

    number: int
    round: int
    rounds: int
    params: dict
    described: str
    state: str                  # complete, pruned, failed
    metric: str
    value: float | None
    best_value: float | None
    best_number: int | None
    finished: int
    total: int
    error: str | None = None
    epoch: int | None = None


class TuneReporter:
    """Progress callbacks of :func:`tune`; the base class reports nothing."""

    def start(self, info: dict) -> None: ...
    def trial_end(self, info: TrialInfo) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class TuneResult:
    study_name: str
    storage: str
    out: Path
    counts: dict
    best_number: int | None
    best_value: float | None
    best_params: dict
    metric: str


# ---------------------------------------------------------------------------- comparing studies
def study_differences(settings: TuneSettings, attrs: dict) -> list[str]:
    """What differs between ``settings`` and the study whose user attrs are ``attrs``."""
    out = []
    there_space = attrs.get("polydl_space")
    if there_space is not None:
        try:
            other = Space.from_dict(there_space, config_keys=False)
            out += settings.space.differences(other, here="here", there="in the study")
        except SpaceError:
            out.append("the study's space cannot be read")
    there = attrs.get(SETTINGS) or {}
    here = settings.identity()
    for key in ("metric", "rounds", "trials", "sampler", "seed", "prune"):
        if key == "trials" and settings.rounds == 1 and there.get("rounds") == 1:
            continue  # a random search may be extended
        if key in there and there[key] != here[key]:
            out.append(f"{key} {_show(here[key])} here, {_show(there[key])} in the study")
    if "base" in there:
        a, b = here["base"], there["base"]
        for key in sorted(set(a) | set(b)):
            if key not in PER_OWNER and a.get(key) != b.get(key):
                out.append(f"base {key} {_show(a.get(key))} here, {_show(b.get(key))} in the study")
    return out


def _show(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _mismatch(name, url, diffs) -> TuneError:
    return TuneError(f"the study '{name}' in {url} was made with different settings: {'; '.join(diffs)}; search "
                     "with the study's settings, or choose another --study-name or --out")
