"""A training run: ``run(config, out_dir)`` trains and writes the run directory (its
configuration, per-epoch metrics, checkpoint, summary and curves); ``resume(out_dir)`` in
``polydl.training.resume`` continues one."""
from __future__ import annotations

from pathlib import Path

from . import checkpoint as ckpt
from .build import setup
from .config import TrainConfig
from .data import ARRAYS, DATAFRAME, is_dataframe
from .errors import RunDirError
from .provenance import config_text
from .reporting import Reporter
from .results import RunResult
from .rundir import RunDir, check_out_dir, default_out_dir
from .trainer import Trainer

__all__ = ["run"]


def run(config: TrainConfig | None = None, out_dir=None, *, overwrite: bool = False,
        reporter: Reporter | None = None, handle_signals: bool = True, data=None) -> RunResult:
    """Train ``config`` (default: ``TrainConfig()``) and write the run directory ``out_dir``
    (default: ``config.out``, else a new ``runs/<timestamp>``). Everything is checked before
    anything is written. ``data``: NumPy arrays ``(X, y)`` (or a dict of ``X``, ``y``, ``X_val``,
    ...) or a pandas DataFrame (its target column ``config.target``, default the last) to train on
    instead of ``config.dataset``; the run records ``dataset = "<arrays>"`` or ``"<DataFrame>"``
    and what it knows of the columns, so that ``evaluate`` and ``predict`` take files like them.

    Raises ``ValueError`` subclasses for bad input, :class:`~polydl.training.TrainingDiverged` for
    a NaN loss, :class:`~polydl.training.TrainingInterrupted` after Ctrl-C or SIGTERM (checkpoint
    saved), :class:`~polydl.training.RunWriteError` when a file cannot be written (a run that could
    not write its first files leaves nothing behind) and
    :class:`~polydl.training.ComponentError` when a plugin's component fails. The directory is
    locked while the run trains in it."""
    config = config if config is not None else TrainConfig()
    if data is not None:
        config = config.replace(dataset=DATAFRAME if is_dataframe(data) else ARRAYS)
    dev, data = setup(config, data)
    out_dir = out_dir if out_dir is not None else config.out
    exclusive = out_dir is None
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    check_out_dir(out, overwrite)
    trainer = Trainer.build(config, data, dev, out, reporter)   # builds and checks model, loss, optimizer, schedule
    member = trainer.members[0]
    for _ in range(100):
        try:
            rundir = RunDir.create(out, overwrite, exclusive=exclusive)
            break
        except RunDirError:
            if not exclusive:
                raise
            out = default_out_dir()  # another run took the name a moment ago
            member.out_dir = out
    with rundir:
        member.config = config = config.replace(out=str(out))
        trainer.has_checkpoint = False
        try:
            trainer.write(member, ckpt.CONFIG, lambda: ckpt.atomic_write(out / ckpt.CONFIG, config_text(config)))
            trainer.save()                       # epoch 0: a run killed at once can still be resumed
            trainer.write(member, ckpt.METRICS, lambda: ckpt.write_metrics(out / ckpt.METRICS, []))
            trainer.has_checkpoint = True
        except BaseException:
            rundir.abandon()
            raise
        return trainer.fit(resumed=False, handle_signals=handle_signals)
