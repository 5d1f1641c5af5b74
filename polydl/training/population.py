"""Population training: P models of one shape train as one batched computation on one device,
each with its own hyperparameters, and each exactly as if it had been trained alone.

``run_population(configs, out_dirs)`` takes configurations that agree on everything that fixes
the shapes and the data (:data:`SHARED_KEYS`) and differ in anything else (:data:`MEMBER_KEYS`:
the learning rate and its schedule, the optimizer's hyperparameters, dropout, the seed of the
weights). The members' parameters carry a leading population axis (``nn.mlp(...,
population=P)``), the optimizer holds one row of its flat buffers and one value of every
hyperparameter per member, and every member sees the same mini-batches (the data seed); the
trainer is the one a model alone trains with (``trainer``), over P members.

Each member writes its own ordinary run directory — ``config.toml``, ``metrics.jsonl``,
``checkpoint.npz``, ``summary.json``, ``curves.png`` — that ``polydl evaluate``, ``polydl
predict`` and ``polydl train --resume`` take exactly as if the member had been trained alone: its
weights, optimizer state and random stream are those of the same run alone. The members'
checkpoints (at most every ``checkpoint_interval`` seconds, as a run alone's) are written
together in two phases (every member's new checkpoint staged first, all synced at once, then all
put in place), so that a process killed at any moment leaves them at one position, and the same
call again continues the population from there. A member whose loss, weights or validation loss
become NaN or infinite is stopped alone: its directory keeps its last good checkpoint, its run
ends with the message a single run gives, and its parameters stay at their last good values while
the others train on.

Modules: ``stacked`` (the configurations checked, the stacked model, loss and optimizer),
``members`` (what is kept per member), ``trainer`` (the loop), ``reporting`` (progress).
"""
from __future__ import annotations

import os
from pathlib import Path

from . import checkpoint as ckpt
from .build import setup
from .config import ConfigError
from .errors import RunDirError
from .members import STOPPED, outcome_of
from .monitor import as_given
from .provenance import config_text
from .reporting import PopulationReporter, ProgressReporter
from .results import MemberStopped, result_of
from .resume import load_run_config
from .rundir import RunDir, check_out_dir
from .stacked import MEMBER_KEYS, SHARED_KEYS, check_members
from .trainer import PENDING, Trainer

__all__ = ["run_population", "check_members", "MEMBER_KEYS", "SHARED_KEYS", "PopulationReporter",
           "ProgressReporter", "MemberStopped", "PENDING", "STOPPED"]


def _step_of(path):
    """(step, members stopped) of the checkpoint at ``path``; None where it is missing or damaged
    (a staged one that a killed process did not finish)."""
    try:
        meta = ckpt.load_checkpoint(path)[0]
        return int(meta["step"]), set((meta.get("population") or {}).get("stopped") or {})
    except (ckpt.CheckpointError, KeyError, TypeError, ValueError):
        return None


def _settle(out_dirs) -> None:
    """Finish or undo a two-phase save that a killed process left: if every member in it (those
    its checkpoints do not record as stopped) has its new checkpoint staged or already in place,
    put the staged ones in place; else remove them."""
    staged = [Path(d) / PENDING for d in out_dirs]
    if not any(p.exists() for p in staged):
        return
    seen = [_step_of(p) if p.exists() else None for p in staged]
    complete = all(s is not None for s, p in zip(seen, staged, strict=True) if p.exists())
    if complete:
        target, stopped = max(seen, key=lambda s: -1 if s is None else s[0])
        for k, (d, s) in enumerate(zip(out_dirs, seen, strict=True)):
            if str(k) in stopped or s is not None and s[0] == target:
                continue
            placed = _step_of(Path(d) / ckpt.CHECKPOINT)
            complete = complete and placed is not None and placed[0] >= target
    for p, s in zip(staged, seen, strict=True):
        if p.exists():
            if complete and s[0] == target:
                os.replace(p, p.parent / ckpt.CHECKPOINT)
            else:
                p.unlink()


def _existing(configs, out_dirs, settle: bool):
    """(metas, arrays) of a population that ran in ``out_dirs`` before, or None for a new one;
    with ``settle`` (the directories locked) a two-phase save a killed process left is finished
    or undone first."""
    dirs = [Path(d) for d in out_dirs]
    if not any((d / ckpt.CHECKPOINT).exists() or (d / PENDING).exists() for d in dirs):
        return None
    if settle:
        _settle(dirs)
        if not any((d / ckpt.CHECKPOINT).exists() for d in dirs):
            return None  # killed before its first checkpoints were in place
    metas, arrays = [], []
    for k, (cfg, d) in enumerate(zip(configs, dirs, strict=True)):
        if not settle and not (d / ckpt.CHECKPOINT).exists():
            continue  # staged only: settled under the lock
        old, meta, arr = load_run_config(d)
        old = as_given(old, meta)  # α0 as given, before any plateau lowered it
        pop = meta.get("population") or {}
        if pop.get("size") != len(configs) or pop.get("index") != k:
            raise RunDirError(f"{d} holds a run that is not member {k} of this population of {len(configs)}; "
                              "give new directories, or overwrite=True to replace it")
        was, now = _defining(old), _defining(cfg)
        if was != now:
            diff = sorted(key for key, v in now.items() if was.get(key) != v)
            raise RunDirError(f"{d} holds member {k} of a population with another configuration (it differs in "
                              f"{', '.join(diff)}); give new directories, or overwrite=True to replace it")
        metas.append(meta)
        arrays.append(arr)
    return metas, arrays


def _defining(config) -> dict:
    """What of ``config`` defines the run (how often it is checkpointed does not)."""
    return {k: v for k, v in config.to_dict().items() if k != "checkpoint_interval"}


def _start(pop: Trainer, out_dirs, overwrite: bool, rundirs: list) -> None:
    """A new population's directories, made together (their markers synced at once by a few
    threads, rather than one after the other), and its first files. Each one made is in
    ``rundirs`` (to be released, or abandoned on an error) before the first error is raised."""
    made = [ckpt.threads().submit(RunDir.create, d, overwrite) for d in out_dirs]
    failed = [f.exception() for f in made if f.exception() is not None]
    rundirs.extend(f.result() for f in made if f.exception() is None)
    if failed:
        raise failed[0]
    _first_files(pop)


def _first_files(pop: Trainer) -> None:
    """Together, the first checkpoints, configurations and empty metrics of the members."""
    pop.has_checkpoint = False
    pop.save([(mb, ckpt.CONFIG, config_text(mb.config), None) for mb in pop.members]
             + [(mb, ckpt.METRICS, "", None) for mb in pop.members])
    pop.has_checkpoint = True


def _continue(pop: Trainer, configs, out_dirs, rundirs: list):
    """Continue the population in ``out_dirs`` from its members' checkpoints; returns the
    outcomes where nothing is left to train, else None."""
    for d in out_dirs:
        rundirs.append(RunDir.open(d))
    previous = _existing(configs, out_dirs, settle=True)  # again, now that the directories are ours
    if previous is None:  # killed before its first checkpoints were in place: it starts again
        for d in out_dirs:
            ckpt.remove_temporaries(d)
        _first_files(pop)
        return None
    metas, arrays = previous
    stopped = {}
    for m in metas:
        stopped.update(m["population"].get("stopped") or {})
    live = [i for i in range(len(metas)) if str(i) not in stopped]
    positions = {(metas[i]["epoch"], metas[i]["step"], metas[i]["batch"]) for i in live}
    if len(positions) > 1:
        raise RunDirError(f"the members of the population in {out_dirs[0].parent} are at different positions "
                          f"{sorted(positions)}; they cannot continue as one population")
    if not live:
        return [outcome_of(stopped[str(i)], d) for i, d in enumerate(out_dirs)]
    pop.load(metas, arrays, live[0])
    for k, message in stopped.items():
        pop.retire(pop.members[int(k)], outcome_of(message, pop.members[int(k)].out_dir, metas[int(k)]["epoch"] + 1))
    for mb in pop.active():
        ckpt.remove_temporaries(mb.out_dir)
    # the metrics of the checkpoints' epochs only, and a plateau's α0 (a kill before), together
    pop.write_files([(mb, ckpt.METRICS, "".join(ckpt.metrics_line(r) for r in mb.history), None) for mb in pop.active()]
                    + [(mb, ckpt.CONFIG, config_text(mb.config), None) for mb in pop.active()])
    if pop.epoch >= pop.config.epochs and not pop.batch:
        if all((mb.out_dir / ckpt.SUMMARY).exists() for mb in pop.active()):
            return [mb.outcome if mb.outcome is not None else result_of(mb.out_dir) for mb in pop.members]
    return None


def run_population(configs, out_dirs, *, overwrite: bool = False, reporter: PopulationReporter | None = None,
                   handle_signals: bool = True) -> list:
    """Train ``configs`` (``TrainConfig`` s or dicts) as one population, member ``k`` writing the
    ordinary run directory ``out_dirs[k]``. Returns one outcome per member: its
    :class:`~polydl.training.RunResult`, the :class:`~polydl.training.TrainingDiverged` that
    stopped it, or :class:`MemberStopped`. Called again on the directories of a population that
    was interrupted (Ctrl-C, SIGTERM, or a killed process), it continues from the members'
    checkpoints, ending exactly as an uninterrupted population would (on the CPU). Raises
    ``ConfigError`` for configurations that cannot share one computation (naming the key that
    differs) and ``TrainingInterrupted`` after Ctrl-C or SIGTERM (the checkpoints saved)."""
    configs = check_members(configs)
    out_dirs = [Path(d) for d in out_dirs]
    if len(out_dirs) != len(configs) or len({d.resolve() for d in out_dirs}) != len(out_dirs):
        raise ConfigError(f"a population of {len(configs)} needs {len(configs)} different run directories, not "
                          f"{len(out_dirs)}")
    configs = [c.replace(out=str(d)) for c, d in zip(configs, out_dirs, strict=True)]
    dev, data = setup(configs[0])
    previous = None if overwrite else _existing(configs, out_dirs, settle=False)
    if previous is None:
        for d in out_dirs:
            check_out_dir(d, overwrite)
    pop = Trainer.build_population(configs, data, dev, out_dirs, reporter)
    rundirs = []
    try:
        if previous is None:
            _start(pop, out_dirs, overwrite, rundirs)
        else:
            done = _continue(pop, configs, out_dirs, rundirs)
            if done is not None:
                return done
        return pop.fit(resumed=previous is not None, handle_signals=handle_signals)
    except BaseException:
        if previous is None and not pop.has_checkpoint:
            for rd in rundirs:
                rd.abandon()
        raise
    finally:
        for rd in rundirs:
            rd.release()

