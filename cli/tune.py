"""``polydl tune``: hyperparameter search on an Optuna study; ``polydl tune report`` and
``polydl tune best`` read one.

The work is done by :mod:`polydl.tune`; this module turns flags into settings and prints
progress. Optuna is needed only once a search or a report runs."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from polydl.tune.executors.registry import EXECUTORS, check_options
from polydl.tune.space import Space, default_space
from polydl.tune.study import METRICS, PRUNERS, SAMPLERS, TuneError, TuneReporter

from ._common import Command, Group, number, writing
from .train import config_options, default_text, flag_overrides, resolve_config

PLOT_FILE = "tune.png"


# ---------------------------------------------------------------------------- progress
def _value(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


class LineProgress(TuneReporter):
    """One line per finished trial; with ``bar`` (a terminal) an overall bar below the lines."""

    def __init__(self, bar: bool = False, stream=None):
        self.bar = bar
        self.stream = stream
        self.finished = 0
        self.total = 0
        self._drawn = False

    def _echo(self, text: str) -> None:
        self._clear()
        click.echo(text, file=self.stream)
        self._draw()

    def _clear(self) -> None:
        if self._drawn:
            click.echo("\r\033[K", nl=False, file=self.stream)
            self._drawn = False

    def _draw(self) -> None:
        if self.bar and self.total:
            width = 30
            filled = int(width * self.finished / self.total)
            click.echo(f"[{'#' * filled}{'.' * (width - filled)}] {self.finished}/{self.total} trials", nl=False,
                       file=self.stream)
            if self.stream is not None:
                self.stream.flush()
            self._drawn = True

    def start(self, info):
        self.total, self.finished = info["trials"], info["finished"]
        rounds = f"{info['rounds']} rounds, " if info["rounds"] > 1 else ""
        prune = ", median pruning" if info.get("prune") else ""
        direction = "minimised" if info["direction"] == "minimize" else "maximised"
        n = info.get("threads")
        threads = f" ({n} BLAS thread{'s' if n != 1 else ''} each)" if n else ""
        if info.get("each"):
            threads = f" ({info['each']} each)"
        self._echo(f"tuning {', '.join(info['space'])} over {info['trials']} trials ({rounds}{info['sampler']} sampling"
                   f"{prune}; {info['metric']} {direction}) with {info['workers']} {info['executor']} worker"
                   f"{'s' if info['workers'] != 1 else ''}{threads}; study '{info['study_name']}' in {info['storage']}")
        if info["finished"]:
            self._echo(f"continuing the study: {info['finished']} of {info['trials']} trials already finished")

    def trial_end(self, t):
        self.finished = t.finished
        head = f"trial {t.number}  round {t.round}/{t.rounds}  {t.described}"
        if t.state == "complete":
            what = f"{t.metric} {_value(t.value)}"
        elif t.state == "pruned":
            what = f"pruned after epoch {t.epoch} ({t.metric} {_value(t.value)})"
        else:
            what = f"failed: {t.error}"
        best = f"best {_value(t.best_value)} (trial {t.best_number})" if t.best_number is not None else "best n/a"
        self._echo(f"{head}  {what}  {best}")

    def note(self, message):
        self._clear()
        click.echo(f"note: {message}", err=True)
        self._draw()

    def close(self):
        self._clear()


class QuietProgress(TuneReporter):
    def note(self, message):
        click.echo(f"note: {message}", err=True)

    def close(self):
        pass


def summary_line(result, out) -> str:
    c = result.counts
    total = c["complete"] + c["pruned"] + c["failed"]
    parts = f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed"
    if c["running"]:
        parts += f", {c['running']} running under other owners"
    if result.best_number is None:
        best = "no complete trial"
    else:
        values = " ".join(f"{k}={_value(v) if isinstance(v, float) else v}" for k, v in result.best_params.items())
        best = f"best {result.metric} {number(result.best_value)} in trial {result.best_number} ({values})"
    return f"study '{result.study_name}': {total} trials ({parts}); {best}; see polydl tune report {out}"


# ---------------------------------------------------------------------------- the command
SEARCH_HELP = """Search hyperparameters: train --trials N runs with sampled values, kept in an Optuna study.

\b
  polydl tune [--config FILE] [training flags] [--space FILE | --tier N]
              --trials N [--rounds R] --out DIR    run a search, or continue it
  polydl tune report STUDY                         the best trials, boxes, importances, tune.png
  polydl tune best STUDY                           the best configuration as TOML (for train --config)

The base configuration comes from --config and the training flags, as in polydl train; --seed
also seeds the sampling. Each trial is a polydl train run directory OUT/trials/NNNN. The same
command again continues the study: finished trials are kept, and a trial whose owner was killed
continues from its checkpoint. Several processes on one --storage share its --trials.

\b
Tiers of the default space (--tier N, hyperparameters in the order they matter):
  1  lr: log-uniform in [1e-4, 1]
  2  (the default) tier 1 + beta (momentum, rmsprop) or beta1 (adam): 1 - beta
     log-uniform in [0.9, 0.999]; hidden (units of every hidden layer): int on a
     log scale in [16, 256]; model_params.channels (a convolutional model's first
     layer, the others in proportion): pow2 in [8, 128]; batch_size: pow2 in [16, 256],
     at most the training set
  3  tier 2 + layers: int in [1, 4]; the schedule's decay: inverse_time decay_rate
     log-uniform in [0.01, 10], exponential base 1 - base log-uniform in [0.5, 0.999],
     staircase factor log-uniform in [0.1, 0.9]
beta2 and eps keep 0.999 and 1e-8 unless a --space file names them.

\b
A --space file has one table per configuration key (dotted keys reach parameter tables):
  [lr]
  distribution = "log_uniform"   # uniform, log_uniform, one_minus_log_uniform, int, pow2, choice
  low = 1e-4
  high = 1.0

--metric val_loss is minimised, val_accuracy, val_f1, val_auc maximised (any metric the runs
record); the value of a trial is its final epoch's, or its best epoch's with --restore-best in
the configuration (then also after each epoch, for --prune). --rounds R splits the trials over R rounds (coarse to fine): each round samples inside
the box around the best trials of the round before, and starts when that one has finished.
"""

_SEARCH_OPTIONS = ("config_file", "space_file", "tier", "trials", "rounds", "sampler", "prune", "metric", "executor",
                   "workers", "population_size", "address", "cpus_per_trial", "gpus_per_trial", "storage",
                   "study_name", "out")
#: the options of a search that go to its executor (which says which it takes)
_EXECUTOR_OPTIONS = ("population_size", "address", "cpus_per_trial", "gpus_per_trial")


@click.group("tune", cls=Group, invoke_without_command=True, help=SEARCH_HELP)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), metavar="FILE", default=None,
              help="TOML file of the base configuration (flags override it).")
@config_options
@click.option("--space", "space_file", type=click.Path(dir_okay=False), metavar="FILE", default=None,
              help="TOML file of the search space (default: the space of --tier).")
@click.option("--tier", type=click.IntRange(1, 3), default=None, help="Default space: 1, 2 (default) or 3 (see above).")
@click.option("--trials", type=int, default=None, help="Trials of the whole study (all processes together).")
@click.option("--rounds", type=int, default=None, help="Coarse-to-fine rounds (default 1: random search).")
@click.option("--sampler", type=click.Choice(SAMPLERS), default=None,
              help="random (default: each key on its own scale) or tpe (Optuna's TPESampler, seeded; no --rounds).")
@click.option("--prune", type=click.Choice(PRUNERS), default=None,
              help="Stop trials below the median at the same epoch (Optuna's MedianPruner; default: off).")
@click.option("--metric", metavar="METRIC", default=None,
              help=f"What a trial is worth, minimised or maximised as it requires: {', '.join(METRICS)} "
                   "(default: val_loss).")
@click.option("--executor", type=click.Choice(list(EXECUTORS)), default=None,
              help="Where trials train: local (default: worker processes on this machine), population (the "
                   "trials of one shape as one population in each worker: many small models at once) or ray (Ray "
                   "tasks on a cluster, or on a local Ray instance; pip install 'polydl[ray]').")
@click.option("--population-size", type=int, default=None,
              help="With --executor population: trials per population (default 16). With --executor ray: train "
                   "the trials as populations of up to this many, each one Ray task (one per GPU with --device "
                   "cuda; --cpus-per-trial and --gpus-per-trial then count per population).")
@click.option("--workers", type=int, default=None,
              help="Trials at once (default: what the machine holds: one per CPU, at most one per GiB free; with "
                   "--executor ray what the cluster holds at --cpus-per-trial and --gpus-per-trial).")
@click.option("--address", metavar="HOST:PORT", default=None,
              help="--executor ray: join the Ray cluster there (ray start --head prints it; default: start a local "
                   "instance with its files in OUT/ray).")
@click.option("--cpus-per-trial", type=float, default=None, help="--executor ray: CPUs Ray gives each trial (default 1).")
@click.option("--gpus-per-trial", type=float, default=None,
              help="--executor ray: GPUs of each trial, a fraction in (0, 1] (0.25: four trials share a card) or a "
                   "whole number; trials with a GPU train on it (default: 1 with --device cuda, else 0).")
@click.option("--storage", metavar="PATH|URL", default=None,
              help="SQLite file (default OUT/study.db), a journal file (.log, .jsonl, journal:PATH) or a database URL.")
@click.option("--study-name", metavar="NAME", default=None, help="The study in the storage (default: the name of OUT).")
@click.option("--out", type=click.Path(file_okay=False), metavar="DIR", default=None,
              help="The study directory: study.json, study.db, trials/NNNN.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but the summary line.")
@click.pass_context
def tune(ctx, config_file, space_file, tier, trials, rounds, sampler, prune, metric, executor, workers,
         population_size, address, cpus_per_trial, gpus_per_trial, storage, study_name, out, quiet, **opts):
    given = {k: v for k, v in locals().items() if k in _SEARCH_OPTIONS and v is not None}
    if ctx.invoked_subcommand is not None:
        flags = [k for k in given] + [k for k, v in opts.items() if v not in (None, ())] + (["quiet"] if quiet else [])
        if flags:
            raise click.UsageError(f"--{flags[0].replace('_', '-').replace('-file', '')} belongs to a search: write "
                                   f"polydl tune {ctx.invoked_subcommand} STUDY without the search's options")
        return
    from polydl.tune.study import TuneInterrupted, TuneSettings, require_optuna
    from polydl.tune.study import tune as run_search

    if trials is None or out is None:
        raise click.UsageError("a search needs --trials N and --out DIR (or polydl tune report|best STUDY)")
    require_optuna()
    executor = executor or "local"
    executor_options = {k: given[k] for k in _EXECUTOR_OPTIONS if k in given}
    check_options(executor, executor_options)  # before the data loads: an option this executor does not take
    if space_file is not None and tier is not None:
        raise TuneError("--space and --tier both choose the search space; give one")
    base = resolve_config(config_file, flag_overrides(opts))
    notes = []
    if space_file is not None:
        space = Space.from_toml(space_file)
    else:
        from polydl.training import load_data

        space, notes = default_space(tier or 2, base, train_size=len(load_data(base).y_train))
    settings = TuneSettings(base=base, space=space, trials=trials, out=out, rounds=1 if rounds is None else rounds,
                            sampler=sampler or "random", prune=prune, metric=metric or "val_loss", storage=storage,
                            study_name=study_name, executor=executor, workers=workers,
                            executor_options=executor_options)
    progress = QuietProgress() if quiet else LineProgress(bar=sys.stdout.isatty())
    for n in notes:
        progress.note(n)
    try:
        result = run_search(settings, reporter=progress)
    except TuneInterrupted as exc:
        progress.close()
        click.echo(f"Interrupted: {exc}", err=True)
        sys.exit(128 + exc.signal)  # 130 after Ctrl-C, 143 after SIGTERM
    finally:
        progress.close()
    click.echo(summary_line(result, out))


for _param in tune.params:
    if _param.name == "seed":
        _param.help = ("Seed of the sampling and of every trial's weights, shuffling and dropout.  "
                       f"[default: {default_text('seed')}]")


@tune.command("report", cls=Command)
@click.argument("study", metavar="STUDY")
@click.option("--study-name", metavar="NAME", default=None, help="The study, where the storage holds several.")
@click.option("--top", type=click.IntRange(1), default=10, show_default=True, help="Best trials to list.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), metavar="FILE", default=None,
              help=f"Where to write the plot (default: STUDY/{PLOT_FILE} for a study directory, else ./{PLOT_FILE}).")
@click.option("--overwrite", is_flag=True, help="Replace a plot file that polydl tune report did not write.")
def report(study, study_name, top, plot_file, overwrite):
    """The best trials of STUDY (a study directory, a storage file or a storage URL), each round's
    box, the importance of each hyperparameter beside the order they usually matter in, and
    tune.png: the metric against each hyperparameter on its sampling scale, one colour per round,
    and the optimisation history."""
    from polydl.tune import report as rep

    opened, url, study_dir = rep.open_study(study, study_name)
    target = Path(plot_file) if plot_file is not None else (study_dir or Path(".")) / PLOT_FILE
    if target.exists() and not overwrite and not rep.written_by_report(target):
        raise TuneError(f"{target} exists and was not written by polydl tune report; pass --overwrite to replace it, "
                        "or choose another --plot FILE")
    if target.is_dir():
        raise TuneError(f"--plot {target} is a directory; give a file such as {target / PLOT_FILE}")
    result = rep.build_report(opened, url, top=top)
    click.echo(rep.format_report(result), nl=False)
    with writing(target):
        written = rep.plot_study(result, target)
    if written:
        click.echo(f"plot: {target}")
    else:
        from polydl.training import plots
        click.echo(f"note: {PLOT_FILE} not written: {plots.MISSING_NOTE}", err=True)


@tune.command("best", cls=Command)
@click.argument("study", metavar="STUDY")
@click.option("--study-name", metavar="NAME", default=None, help="The study, where the storage holds several.")
def best(study, study_name):
    """The configuration of STUDY's best trial as TOML: polydl tune best OUT > best.toml, then
    polydl train --config best.toml trains it again."""
    from polydl.tune import report as rep

    opened, _, _ = rep.open_study(study, study_name)
    click.echo(rep.best_toml(opened), nl=False)
