"""``polydl schedules``: the registered learning-rate schedules, and α per epoch of one."""
from __future__ import annotations

import click

from polydl import schedules as _schedules
from polydl import training
from polydl.schedules import Position

from ._common import Command, Group, check_output_file, writing

#: the most epochs ``schedules show`` prints
MAX_EPOCHS = 100_000


def _params_text(name) -> str:
    params = _schedules.describe(name)
    return ", ".join(k if v is None else f"{k}={v}" for k, v in params.items())


@click.group("schedules", cls=Group, invoke_without_command=True)
@click.pass_context
def schedules(ctx):
    """The registered learning-rate schedules: parameters with their defaults, and the formula."""
    if ctx.invoked_subcommand is not None:
        return
    entries = _schedules.registry.entries()
    params = {e.name: _params_text(e.name) for e in entries}
    width = max(len(e.name) for e in entries)
    pwidth = max(len(p) for p in params.values())
    for e in entries:
        origin = "" if e.builtin else f"  [plugin {e.plugin}]"
        line = f"{e.name.ljust(width)}  {params[e.name].ljust(pwidth)}  {_schedules.formula(e.name)}".rstrip()
        click.echo(f"{line}{origin}")


@schedules.command("show", cls=Command)
@click.argument("name")
@click.option("--lr0", type=float, default=0.01, show_default=True, help="Initial learning rate α0.")
@click.option("--epochs", type=int, default=20, show_default=True, help=f"Epochs to show (at most {MAX_EPOCHS:,}).")
@click.option("--steps-per-epoch", type=int, default=1, show_default=True,
              help="Mini-batches per epoch (the step t at the start of epoch e is (e-1)·steps+1).")
@click.option("--param", multiple=True, metavar="NAME=VALUE", help="Schedule parameter (repeatable).")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also draw α against epoch into this PNG (needs matplotlib).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --plot file.")
def show(name, lr0, epochs, steps_per_epoch, param, plot_file, overwrite):
    """α at each epoch of schedule NAME, to see a decay before training with it."""
    if not 1 <= epochs <= MAX_EPOCHS:
        raise ValueError(f"--epochs must be in [1, {MAX_EPOCHS:,}] (the most this shows), not {epochs:,}")
    if steps_per_epoch < 1:
        raise ValueError(f"--steps-per-epoch must be >= 1, not {steps_per_epoch}")
    params = training.parse_params(param, "--param")
    if "lr0" in params:
        raise ValueError("--param cannot set lr0: give it with --lr0")
    if plot_file is not None:  # first, so that a plot that cannot be written prints nothing else
        check_output_file(plot_file, overwrite)
    sched = _schedules.get(name, lr0=lr0, **params)
    # α at each epoch's first step, in a run of --epochs epochs (what a schedule that follows the run's length sees)
    values = [sched(Position(e, (e - 1) * steps_per_epoch + 1, 0, steps_per_epoch, epochs)) for e in range(1, epochs + 1)]
    if plot_file is not None:
        from polydl.training import plots
        if plots.available():
            with writing(plot_file):
                plots.plot_schedule(range(1, epochs + 1), values, plot_file, repr(sched))
    click.echo(f"{name}({', '.join(f'{k}={v}' for k, v in {'lr0': lr0, **params}.items())})")
    click.echo("epoch  lr")
    for e, v in enumerate(values, 1):
        click.echo(f"{e:5d}  {v:.6g}")
    if plot_file is not None:
        if not plots.available():  # the table is still worth having; the plot is not there
            raise ValueError(f"cannot draw {plot_file}: {plots.MISSING_NOTE}")
        click.echo(f"plot written to {plot_file}")
