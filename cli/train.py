"""``polydl train``: a training run from flags and/or a TOML file; ``--resume`` continues one.

The work is done by :mod:`polydl.training`; this module turns flags into a configuration and
reports progress."""
from __future__ import annotations

import sys

import click

from polydl import cpu_kernels, training
from polydl.training.config import DTYPES, IMPUTE, SCHEDULE_UNITS, UNSET_NOTES, ConfigError, TrainConfig

from ._common import Command, check_path, number, percent, plural

PARAM = "NAME=VALUE"


def _hidden(text: str) -> list:
    text = text.strip()
    if text.lower() in ("", "none", "[]"):
        return []
    try:
        sizes = [int(t) for t in text.strip("[]").replace(" ", "").split(",") if t]
    except ValueError:
        raise ConfigError(f"--hidden must be layer sizes separated by commas, such as 128,64, not {text!r}") from None
    return sizes


# flag -> config key, for the flags whose value goes straight into the configuration
_SIMPLE = ("device", "dtype", "seed", "data_seed", "dataset", "target", "val_split", "test_split", "activation",
           "normalizer", "dropout", "loss", "optimizer", "lr", "beta", "beta1", "beta2", "eps", "weight_decay",
           "schedule", "schedule_unit", "epochs", "batch_size", "plot", "out", "monitor", "min_delta",
           "early_stopping_patience", "restore_best", "plateau_factor", "plateau_patience", "warmup_epochs",
           "warmup_steps", "impute", "model", "augment", "augment_padding", "augment_flip", "checkpoint_interval")
_TABLE_FLAGS = {"schedule_param": "schedule_params", "dataset_param": "dataset_params",
                "normalizer_param": "normalizer_params", "loss_param": "loss_params",
                "optimizer_param": "optimizer_params", "model_param": "model_params"}


def flag_overrides(opts: dict, resuming: bool = False) -> dict:
    """The configuration keys that the given flags set (``None`` = flag not given). ``--lr0`` sets
    α0 (the key ``lr``); resuming, ``--lr`` is the rate from now on and ``--lr0`` a new α0, which
    ``polydl.training.resume`` tells apart as ``lr`` and ``lr0``."""
    over = {k: opts[k] for k in _SIMPLE if opts.get(k) is not None}
    if opts.get("lr0") is not None:
        if resuming:
            over["lr0"] = opts["lr0"]
        elif "lr" in over and over["lr"] != opts["lr0"]:
            raise ConfigError("--lr and --lr0 both set α0 of a new run; give one of them")
        else:
            over["lr"] = opts["lr0"]
    if opts.get("hidden") is not None:
        over["hidden"] = _hidden(opts["hidden"])
    if opts.get("standardize") is not None:
        over["standardize"] = opts["standardize"]
    for flag, table in _TABLE_FLAGS.items():
        if opts.get(flag):
            over[table] = training.parse_params(opts[flag], f"--{flag.replace('_', '-')}")
    return over


def resolve_config(config_file, overrides: dict) -> TrainConfig:
    """Defaults, then the TOML file, then the flags."""
    base = TrainConfig().to_dict()
    source = "the flags"
    if config_file is not None:
        base = training.merge(base, training.load_toml(config_file))
        source = f"{config_file} or the flags"
    merged = training.merge(base, overrides, update_tables=True)
    return training.from_dict(merged, source=source)


# ---------------------------------------------------------------------------- progress
class LineReporter(training.Reporter):
    """One plain line per epoch (logs, CI)."""

    def start(self, info):
        if info["resumed"]:
            before, after = info.get("lr_before"), info.get("lr_after")
            change = (f"; α {before:.4g} -> {after:.4g} from epoch {info['epoch'] + 1}"
                      if before is not None and before != after else f"; α {info['next_lr']:.4g}")
            click.echo(f"resuming {info['out_dir']} after epoch {info['epoch']} (step {info['step']}) of "
                       f"{plural(info['epochs'], 'epoch')}, {info['schedule']}{change}")
            return
        s = info["sizes"]
        click.echo(f"training {info.get('architecture', 'mlp')} {info['model']} ({info['normalizer']}, {info['activation']}; "
                   f"{info['num_parameters']:,} parameters) on {info['dataset']} ({s['train']} train / {s['val']} val / "
                   f"{s['test']} test) with {info['loss']} and {info['optimizer']}, {info['schedule']}, "
                   f"{plural(info['epochs'], 'epoch')} of {plural(info['n_batches'], 'mini-batch')}, on {info['device']} "
                   f"({info['dtype']}) -> {info['out_dir']}{dropped_note(info)}")

    def line(self, r, epochs):
        extra = f"  [{r['event']}]" if r.get("event") else ""
        if "val_rmse" in r:  # a regression: RMSE (the target's units) and R² instead of accuracy
            return (f"epoch {r['epoch']}/{epochs}  lr {r['lr']:.4g}  train loss {number(r['train_loss'])}  val loss "
                    f"{number(r['val_loss'])} RMSE {number(r['val_rmse'], '.5g')} R² {number(r['val_r2'])}"
                    f"  {r['seconds']:.2f}s{extra}")
        return (f"epoch {r['epoch']}/{epochs}  lr {r['lr']:.4g}  train loss {number(r['train_loss'])} "
                f"acc {percent(r['train_accuracy'])}  val loss {number(r['val_loss'])} acc {percent(r['val_accuracy'])}"
                f"  {r['seconds']:.2f}s{extra}")

    def epoch_end(self, record, epochs):
        click.echo(self.line(record, epochs))

    def note(self, message):
        click.echo(f"note: {message}", err=True)


def dropped_note(info) -> str:
    """The header's note on a last mini-batch too small for the model (a single sample under BatchNorm)."""
    n = info.get("dropped")
    if not n:
        return ""
    return (f"; the last {plural(n, 'sample')} of each epoch is left out ({info['normalizer']} needs mini-batches "
            "of at least 2 samples)")


class BarReporter(LineReporter):
    """A progress bar per epoch on a terminal, then the epoch's line."""

    bar = None

    def epoch_start(self, epoch, epochs, n_batches, done):
        self.bar = click.progressbar(length=n_batches, label=f"epoch {epoch}/{epochs}", file=sys.stdout,
                                     update_min_steps=max(1, n_batches // 100), show_eta=True)
        self.bar.__enter__()
        if done:
            self.bar.update(done)

    def step(self, loss=None):
        self.bar.update(1)

    def epoch_end(self, record, epochs):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        super().epoch_end(record, epochs)


class QuietReporter(training.Reporter):
    pass


def regression_summary(result) -> str:
    """The summary line of a regression: test RMSE, MAE and R² (the target's units)."""
    s = result.summary
    test = (f"test RMSE {number(s['test_rmse'], '.5g')}, MAE {number(s['test_mae'], '.5g')}, R² {number(s['test_r2'])} "
            f"({s['test_samples']} samples)" if s.get("test_rmse") is not None else "no test split")
    return (f"{s['dataset']}: {test}, val R² {number(s.get('val_r2'))}, after {plural(s['epochs'], 'epoch')} "
            f"in {s['seconds']:.1f}s{monitor_text(s)}; run in {result.out_dir}")


def summary_line(result) -> str:
    s = result.summary
    if s.get("task") == "regression":
        return regression_summary(result)
    test = (f"test accuracy {percent(s['test_accuracy'])} (loss {number(s['test_loss'])}, {s['test_samples']} samples)"
            if s.get("test_accuracy") is not None else "no test split")
    return (f"{s['dataset']}: {test}, val accuracy {percent(s['val_accuracy'])}, after {plural(s['epochs'], 'epoch')} "
            f"in {s['seconds']:.1f}s{monitor_text(s)}; run in {result.out_dir}")


def monitor_text(s: dict) -> str:
    """The summary line's part on early stopping and the best epoch (nothing where neither is)."""
    out = ""
    if s.get("stopped_early"):
        out += f" (stopped early: {s['stopped_early']['reason']})"
    best = s.get("best")
    if best:
        test = (f"test accuracy {percent(best['test_accuracy'])}" if best.get("test_accuracy") is not None
                else f"{s['monitor']} {number(s['best_value'])}")
        out += f"; best epoch {best['epoch']}: {test} ({best['checkpoint']})"
    return out


# ---------------------------------------------------------------------------- the command
def _opt(*decls, **kw):
    kw.setdefault("default", None)
    return click.option(*decls, **kw)


_DEFAULTS = TrainConfig().to_dict()


def default_text(key: str, flag: str | None = None) -> str:
    """How ``--help`` shows the configuration's default of ``key``: ``0.01``, ``128,64``,
    ``--plot``, ``none`` (an empty table), or what leaving it unset means."""
    value = _DEFAULTS[key]
    if value is None:
        return UNSET_NOTES.get(key, "not set")
    if isinstance(value, bool):
        return f"--{'' if value else 'no-'}{flag or key.replace('_', '-')}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return str(value)


def _config_opt(*decls, key: str | None = None, **kw):
    """A flag that sets the configuration key ``key`` (default: the flag's name). It defaults to
    None, so that only the flags given override a config file; its help shows the configuration's
    default."""
    name = decls[0].split("/")[0].lstrip("-")
    key = key or _TABLE_FLAGS.get(name.replace("-", "_"), name.replace("-", "_"))
    kw["help"] = f"{kw['help']}  [default: {default_text(key, name)}]"
    return _opt(*decls, **kw)


def config_options(fn):
    """The flags that set configuration keys (shared by the commands that build a training
    configuration: ``train``, and those that run many trainings)."""
    for option in reversed(_CONFIG_OPTIONS):
        fn = option(fn)
    return fn


_CONFIG_OPTIONS = [
    _config_opt("--device", help="cpu, cuda or cuda:N."),
    _config_opt("--dtype", type=click.Choice(DTYPES), help="Floating type of weights and data; float16/bfloat16 train "
                "in mixed precision (half products, float32 master weights, loss scaling for float16): fast on GPUs."),
    _config_opt("--seed", type=int, help="Seed of the weights and of dropout."),
    _config_opt("--data-seed", type=int, help="Seed of the train/validation/test split, of synthetic data and of the "
                "order of the mini-batches."),
    _config_opt("--dataset", metavar="NAME|FILE", help="digits, moons, spirals, blobs, a plugin's (PLUGIN:NAME for "
                "one plugin's), or a .npz/.csv file."),
    _config_opt("--dataset-param", multiple=True, metavar=PARAM, help="Parameter of a named dataset (repeatable)."),
    _config_opt("--target", metavar="COLUMN", help="Label column of a .csv (a regression may name several: a,b)."),
    _config_opt("--impute", type=click.Choice(IMPUTE), help="Fill missing values (empty, NA, NaN) with the training "
                "split's mean, median or most frequent value (text columns: the most frequent)."),
    _config_opt("--val-split", type=float, help="Fraction of the data held out for validation."),
    _config_opt("--test-split", type=float, help="Fraction held out for testing (data without a test split)."),
    _config_opt("--standardize/--no-standardize", help="Z-score the features with training statistics (auto: unless "
                "they already lie in [-1, 1])."),
    _config_opt("--model", help="mlp, cnn (convolutions, then the --hidden head; on images such as digits), lenet5, "
                "or a plugin's (PLUGIN:NAME for one plugin's)."),
    _config_opt("--model-param", multiple=True, metavar=PARAM, help="Model parameter, e.g. channels=[32,64] or "
                "kernel_size=5 for cnn (repeatable)."),
    _config_opt("--hidden", metavar="SIZES", help="Hidden layer sizes, e.g. 128,64 (none: no hidden layer)."),
    _config_opt("--activation", help="relu, leaky_relu, tanh, sigmoid or identity."),
    _config_opt("--normalizer", help="batchnorm, none, or a plugin's (PLUGIN:NAME for one plugin's)."),
    _config_opt("--normalizer-param", multiple=True, metavar=PARAM, help="Normalizer parameter (repeatable)."),
    _config_opt("--dropout", type=float, help="Dropout probability after each hidden layer."),
    _config_opt("--loss", help="softmax_cross_entropy, binary_cross_entropy, mse, mae, huber (regression: mse, mae, "
                "huber on numeric targets), or a plugin's (PLUGIN:NAME for one "
                "plugin's)."),
    _config_opt("--loss-param", multiple=True, metavar=PARAM, help="Loss parameter (repeatable)."),
    _config_opt("--optimizer", help="sgd, momentum, rmsprop, adam, or a plugin's (PLUGIN:NAME for one plugin's)."),
    _config_opt("--optimizer-param", multiple=True, metavar=PARAM,
                help="Optimizer hyperparameter, e.g. a plugin optimizer's own (repeatable)."),
    _config_opt("--lr", type=float, help="Learning rate α0, which the schedule decays; with --resume, the rate from "
                "the next step on (the decay continues from it)."),
    _config_opt("--lr0", key="lr", type=float, help="α0 of the schedule (with --resume: a new α0, as if the run had "
                "started with it)."),
    _config_opt("--beta", type=float, help="Momentum / RMSprop β."),
    _config_opt("--beta1", type=float, help="Adam β1."),
    _config_opt("--beta2", type=float, help="Adam β2."),
    _config_opt("--eps", type=float, help="RMSprop / Adam ε."),
    _config_opt("--weight-decay", type=float, help="L2 regularisation λ of the weights (not biases, γ, β)."),
    _config_opt("--schedule", help="Learning-rate schedule (see polydl schedules; PLUGIN:NAME for one plugin's)."),
    _config_opt("--schedule-param", multiple=True, metavar=PARAM,
                help="Schedule parameter, e.g. decay_rate=1 (repeatable)."),
    _config_opt("--schedule-unit", type=click.Choice(SCHEDULE_UNITS), help="Update α once per epoch or at every "
                "mini-batch."),
    _config_opt("--epochs", type=int, help="Passes over the training data."),
    _config_opt("--batch-size", type=int, help="Samples per mini-batch."),
    _config_opt("--plot/--no-plot", help="Write curves.png (needs matplotlib)."),
    _config_opt("--checkpoint-interval", type=float, metavar="SECONDS", help="Write the checkpoint at an epoch's end "
                "at most every SECONDS (0: every epoch); always at the end, on Ctrl-C or SIGTERM, before a pruning "
                "decision and at an early stop. A run killed in between resumes from the last one."),
    _config_opt("--monitor", metavar="METRIC", help="The metric that early stopping, --restore-best and the plateau "
                "watch: val_loss, val_accuracy, val_f1, val_auc (two classes), train_loss, ..."),
    _config_opt("--min-delta", type=float, help="An improvement of the monitored metric is a change by more than "
                "this."),
    _config_opt("--early-stopping-patience", type=int, metavar="N", help="Stop after N epochs in which the monitored "
                "metric has not improved (0: never)."),
    _config_opt("--restore-best/--no-restore-best", help="Keep best.npz, the checkpoint of the best epoch, which "
                "evaluate and predict then use (--checkpoint last: the last epoch's)."),
    _config_opt("--plateau-factor", type=float, help="Multiply α by this (in (0, 1)) when the monitored metric has "
                "not improved for --plateau-patience epochs."),
    _config_opt("--plateau-patience", type=int, metavar="N", help="Lower α after N epochs without improvement of the "
                "monitored metric (0: never)."),
    _config_opt("--warmup-epochs", type=int, metavar="N", help="α rises linearly from 0 to the schedule's over the "
                "first N epochs."),
    _config_opt("--warmup-steps", type=int, metavar="N", help="α rises linearly from 0 to the schedule's over the "
                "first N mini-batch steps."),
    _config_opt("--augment/--no-augment", help="Augment the training images: a random crop of each image padded "
                "with zeros, and a horizontal flip of half of them (drawn from the data seed, so --resume draws the "
                "same)."),
    _config_opt("--augment-padding", type=int, metavar="PIXELS", help="Zero padding around each image before "
                "its random crop (--augment)."),
    _config_opt("--augment-flip/--no-augment-flip", help="Mirror half of the training images left to right "
                "(--augment)."),
]


@click.command("train", cls=Command)
@_opt("--config", "config_file", type=click.Path(dir_okay=False), metavar="FILE",
      help="TOML file of configuration keys (flags override it).")
@click.option("--print-config", is_flag=True, help="Print the resolved configuration as TOML and exit.")
@_opt("--resume", type=click.Path(), metavar="DIR",
      help="Continue the run in DIR from its checkpoint (optionally with a new --lr, --schedule or --epochs).")
@_config_opt("--out", type=click.Path(), metavar="DIR", help="Run directory.")
@click.option("--overwrite", is_flag=True, help="Replace the run in an existing --out directory.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but the summary line.")
@config_options
def train(config_file, print_config, resume, overwrite, quiet, **opts):
    """Train a model and write a run directory (metrics.jsonl, config.toml, checkpoint, curves.png).

    With no options: a BatchNorm MLP with Adam and inverse_time decay on the bundled digits."""
    overrides = flag_overrides(opts, resuming=resume is not None)
    if resume is not None:
        check_path(resume, "a run directory")
        for flag, value in (("--config", config_file), ("--out", opts["out"]), ("--overwrite", overwrite or None)):
            if value is not None:
                raise ConfigError(f"{flag} cannot be combined with --resume: a resumed run keeps its directory and "
                                  "configuration (change --lr, --schedule or --epochs instead)")
        if print_config:
            config = training.resume_config(resume, overrides)
            click.echo(config.to_toml(), nl=False)
            return
    else:
        config = resolve_config(config_file, overrides)
        if print_config:
            click.echo(config.to_toml(), nl=False)
            return
    reporter = QuietReporter() if quiet else BarReporter() if sys.stdout.isatty() else LineReporter()
    try:
        with cpu_kernels.notes(reporter.note):  # "compiling the CPU kernels", as a note (none with --quiet)
            if resume is not None:
                result = training.resume(resume, overrides, reporter=reporter)
            else:
                result = training.run(config, overwrite=overwrite, reporter=reporter)
    except (training.TrainingDiverged, training.RunWriteError, training.ComponentError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except training.TrainingInterrupted as exc:
        click.echo(f"Interrupted: {exc}", err=True)
        sys.exit(128 + exc.signal)  # 130 after Ctrl-C, 143 after SIGTERM
    click.echo(summary_line(result))
