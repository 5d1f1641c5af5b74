"""The owner of a study: ``tune(settings)`` opens (or creates) the Optuna study, asks trials,
hands them to an executor and tells the study what became of them.

One process owns its trials and is the only one that talks to the study about them (Optuna's
ask-and-tell interface); its workers train and report back. ``trials`` is the total for the
study: several owners on one storage together end it with exactly that many finished trials
(see :mod:`polydl.tune.storage` for the lock that makes this so). Round ``r`` of a
coarse-to-fine search starts only when every trial of round ``r − 1`` has finished.

The value told to the study is the metric of the trial's final epoch (any metric a run records,
minimised or maximised as it requires: :mod:`polydl.tune.objective`), or of its best epoch where
it keeps one (``restore_best``): the weights ``polydl evaluate`` scores. A trial that stopped
early is complete. After each epoch the value the trial would have if it ended there is
reported as an intermediate value (step = epoch); with
``prune="median"`` Optuna's ``MedianPruner`` stops trials below the median and they are told
``PRUNED``. A trial that fails (a NaN loss, a configuration the training layer rejects) is told
``FAIL`` with its one-line reason in the user attr ``error``, and the search goes on.

Crash recovery: each owner holds a shared flock on ``OUT/owners/PID-TOKEN.lock`` (its workers
too) and records ``{"host", "pid", "token", "lock"}`` in its trials' user attr ``owner``. A
``RUNNING`` trial of this machine whose owner lock is free has lost its owner (``kill -9``, a
crash, a reboot): the next owner on the study adopts it under its own trial number and
continues its run directory from the checkpoint (``training.resume``). Trials that finished
are never run again. Trials of owners on other machines are left to them.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import signal
import threading
from pathlib import Path

from .. import fsafe, training
from ..training.config import TrainConfig
from . import layout
from . import storage as _storage
from .objective import loss_objective_notes
from .owners import Owner
from .search import POLL, _make_pruner, _make_sampler, _Running, _Search  # noqa: F401
from .settings import (  # noqa: F401
    METRICS,
    MIN_TRIALS_PER_ROUND,
    OPTUNA_MISSING,
    PER_OWNER,
    PRUNERS,
    SAMPLERS,
    SETTINGS,
    TrialInfo,
    TuneError,
    TuneInterrupted,
    TuneReporter,
    TuneResult,
    TuneSettings,
    _has_own_validation,
    _mismatch,
    _show,
    require_optuna,
    study_differences,
)

__all__ = ["TuneSettings", "TuneReporter", "TuneResult", "TrialInfo", "TuneError", "TuneInterrupted", "tune",
           "METRICS", "SAMPLERS", "PRUNERS", "MIN_TRIALS_PER_ROUND", "require_optuna",
           "study_differences", "OPTUNA_MISSING"]


def _check_existing(storage_obj, settings: TuneSettings, ref) -> bool:
    """Raise unless the storage's study of this name (if any) matches; True if it exists."""
    try:
        study_id = storage_obj.get_study_id_from_name(settings.name)
    except KeyError:
        return False
    attrs = storage_obj.get_study_user_attrs(study_id)
    if "polydl_space" not in attrs:
        raise TuneError(f"the study '{settings.name}' in {ref.url} was not made by polydl tune (it has no search "
                        "space); choose another --study-name")
    diffs = study_differences(settings, attrs)
    if diffs:
        raise _mismatch(settings.name, ref.url, diffs)
    return True


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise TuneError(f"the study directory {out} is a file; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not layout.is_study_dir(out):
        raise TuneError(f"{out} exists and is not a polydl study (it has no {layout.STUDY_JSON}); choose another --out")


def _is_inside(path: Path | None, out: Path) -> bool:
    if path is None:
        return False
    try:
        path.resolve().relative_to(out.resolve())
        return True
    except ValueError:
        return False


class _SigtermAsInterrupt:
    """SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does; ``signum`` tells which came."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self._old = None
        self.signum = signal.SIGINT

    def __enter__(self):
        if self.enabled:
            self._old = signal.signal(signal.SIGTERM, self._handler)
        return self

    def _handler(self, signum, frame):
        self.signum = signum
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGTERM, self._old)


def tune(settings: TuneSettings, reporter: TuneReporter | None = None, handle_signals: bool = True) -> TuneResult:
    """Run the search of ``settings`` until the study has ``settings.trials`` finished trials.

    Everything is checked before anything is written: bad settings, a space that gives invalid
    configurations, a storage that cannot be opened and a study made with other settings are
    :class:`TuneError` (or other ``ValueError``) with one-line messages, and so are a study
    directory that cannot be written and a storage that fails (a full disk) while the search
    runs (the running trials save their checkpoints first). Ctrl-C and SIGTERM save the running
    trials' checkpoints and raise :class:`TuneInterrupted`."""
    require_optuna()
    settings.check()
    base = settings.base.validate()
    data = training.load_data(base)
    settings.space.check(base, train_size=len(data.y_train))
    out = Path(os.path.abspath(settings.out))
    try:
        return _tune(settings, base, len(data.y_train), out, reporter or TuneReporter(), handle_signals)
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # stdout closed: the command line ends quietly
            raise
        if isinstance(exc, fsafe.NotRegularFile):
            raise TuneError(exc.strerror) from None
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(out) else ""
        raise TuneError(f"cannot write the study directory {out}{where}: {exc.strerror or exc}; check its "
                        "permissions and free space, or choose another --out") from None
    except Exception as exc:
        if not _storage_failure(exc):
            raise
        raise TuneError(f"the storage of the study in {out} failed: {_storage.first_line(exc)}; free space (or fix "
                        "the database) and run the same command again to continue") from None


def _storage_failure(exc: BaseException) -> bool:
    """An error of Optuna's storage, SQLAlchemy or SQLite (a full disk, a damaged file)."""
    import optuna

    return isinstance(exc, optuna.exceptions.StorageInternalError) or type(exc).__module__.split(".")[0] in (
        "sqlalchemy", "sqlite3")


def _tune(settings: TuneSettings, base: TrainConfig, train_size: int, out: Path, reporter: TuneReporter,
          handle_signals: bool) -> TuneResult:
    import optuna

    ref = _storage.resolve(settings.storage, out)
    _check_out(out)
    fresh = not layout.is_study_dir(out)
    if not fresh:
        old = layout.read_study_json(out)
        if settings.study_name is None:  # the study's own name, also in a directory that has been moved
            settings = dataclasses.replace(settings, study_name=str(old["study_name"]))
        there = _storage.of_study_dir(old["storage"], out)  # OUT/study.db in a directory that has been moved
        if there.url != ref.url or old["study_name"] != settings.name:
            storage = there.path if there.path is not None else there.url
            raise TuneError(f"{out} holds the study '{old['study_name']}' in {there.url}; pass --storage {storage} "
                            f"--study-name {old['study_name']} to continue it, or choose another --out")
    info = settings.study_json(ref)
    inside = _is_inside(ref.path, out)
    storage_obj = None
    if not inside or not fresh:
        storage_obj = ref.open()
        with _storage.locked(ref, out):  # another owner may be between creating the study and naming its space
            _check_existing(storage_obj, settings, ref)
    executor = _make_executor(settings, base)
    notes = executor.prepare(out)  # a cluster that does not answer or lacks GPUs: nothing written yet
    executor.slots = max(1, min(executor.slots, settings.trials))
    owner = None
    logging_level = optuna.logging.get_verbosity()
    try:
        if fresh:
            out.mkdir(parents=True, exist_ok=True)
        owner = Owner(out)  # before study.json is written: a study directory that is starting has a live owner
        executor.owner_lock = str(owner.lock)
        if fresh:
            layout.write_study_json(out, info)
        if storage_obj is None:
            storage_obj = ref.open()
        _trials_dir(out)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = _make_sampler(settings)
        with _storage.locked(ref, out):
            existed = _check_existing(storage_obj, settings, ref)
            study = _storage.retrying(optuna.create_study, storage=storage_obj, study_name=settings.name,
                                      direction=settings.direction, sampler=sampler, pruner=_make_pruner(settings),
                                      load_if_exists=True)
            identity = settings.identity()
            if not existed:
                study.set_user_attr("polydl_space", settings.space.to_dict())
                study.set_user_attr(SETTINGS, identity)
            elif study.user_attrs.get(SETTINGS, {}).get("trials") != settings.trials:
                study.set_user_attr(SETTINGS, identity)  # a random search extended to more trials
        if not fresh:
            layout.write_study_json(out, info)
        for message in (*notes, *loss_objective_notes(settings.space, settings.metric)):
            reporter.note(message)
        finished = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        reporter.start({"study_name": settings.name, "storage": ref.url, "out": str(out), "trials": settings.trials,
                        "rounds": settings.rounds, "sampler": settings.sampler, "metric": settings.metric,
                        "direction": settings.direction, "prune": settings.prune, "executor": settings.executor,
                        "workers": executor.slots, "threads": getattr(executor, "threads", None),
                        "each": getattr(executor, "each", None), "space": settings.space.to_dict(),
                        "finished": finished, "train_size": train_size})
        search = _Search(settings, ref, study, sampler, executor, owner, reporter, out)
        with _SigtermAsInterrupt(handle_signals) as signals:
            try:
                executor.start()
                search.run()
            except KeyboardInterrupt:
                search.interrupt()
                result = search.result()
                done = sum(result.counts[k] for k in ("complete", "pruned", "failed"))
                raise TuneInterrupted(f"interrupted with {done} of {settings.trials} trials finished; the running trials "
                                      "saved their checkpoints: run the same command again to continue",
                                      signal=int(signals.signum)) from None
            except Exception:  # a storage that fails, a closed stdout: the running trials save their checkpoints
                search.interrupt()
                raise
        return search.result()
    finally:
        executor.close()
        if owner is not None:
            owner.release()
        optuna.logging.set_verbosity(logging_level)


def _trials_dir(out: Path) -> None:
    """Make ``OUT/trials``; refuse one that is a link or leads outside ``OUT``."""
    trials = out / layout.TRIALS
    trials.mkdir(exist_ok=True)
    if trials.is_symlink() or not trials.is_dir() or not fsafe.is_inside(trials / "0000", out):
        raise TuneError(f"{trials} is not a directory of the study {out} (a link?); remove it")


def _make_executor(settings: TuneSettings, base: TrainConfig):
    """The executor of ``settings`` (options checked, nothing started), with ``--workers``
    (default: the executor's, for ``local`` what the machine holds) at most the trials."""
    from .executors.registry import executor_class, make_executor

    workers = settings.workers
    if workers is None:
        workers = executor_class(settings.executor).default_workers(base.device)
    options = {"workers": None if workers is None else max(1, min(workers, settings.trials)), "device": base.device,
               **settings.executor_options}
    return make_executor(settings.executor, **options)
