"""``polydl evaluate`` and ``polydl predict``: use the model of a run directory."""
from __future__ import annotations

import csv
import io
import json

import click

from polydl import training
from polydl.training.checkpoint import atomic_write

from ._common import Command, check_output_file, check_path, percent, writing


def confusion_table(confusion, class_names=None) -> str:
    """Rows: the true class, columns: the predicted one, headed by the class names (or numbers)."""
    k = len(confusion)
    labels = [str(n) for n in class_names] if class_names else [str(j) for j in range(k)]
    width = max(5, max(len(str(v)) for row in confusion for v in row) + 2, max(map(len, labels)) + 2)
    first = max(9, max(map(len, labels)))
    head = "true\\pred".rjust(first) + "".join(label.rjust(width) for label in labels)
    lines = [head]
    for label, row in zip(labels, confusion, strict=True):
        lines.append(label.rjust(first) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def samples_used(res) -> str:
    """Which samples an evaluation used: ``other.npz, all 200 samples`` or ``digits test split (359
    samples)``, with ``of N`` where the split is part of a whole."""
    if res["split"] == "all":
        return f"{res['dataset']}, all {res['samples']} samples"
    return f"{res['dataset']} {res['split']} split ({res['samples']} of {res['total_samples']} samples)"


@click.command("evaluate", cls=Command)
@click.argument("run_dir", metavar="DIR", type=click.Path())
@click.option("--dataset", metavar="NAME|FILE", default=None,
              help="Evaluate on this dataset instead of the run's (standardised with the run's statistics).")
@click.option("--target", metavar="COLUMN", default=None, help="Label column of a .csv --dataset.")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True,
              help="Which split to evaluate; all: every sample (train, validation and test together).")
@click.option("--device", default=None, help="Device to evaluate on (default: the run's).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(run_dir, dataset, target, split, device, as_json):
    """Loss, accuracy and confusion matrix of the model in DIR on the test split (BatchNorm uses
    its running averages). A --dataset is split like the run's data (its test split is the same
    share of it); --split all takes every sample of it."""
    check_path(run_dir, "a run directory")
    res = training.evaluate(run_dir, dataset=dataset, split=split, device=device, target=target)
    if as_json:
        click.echo(json.dumps(res))
        return
    click.echo(f"{samples_used(res)}: loss {res['loss']:.4f}  accuracy {percent(res['accuracy'])}")
    click.echo("confusion matrix (rows: true class, columns: predicted class):")
    click.echo(confusion_table(res["confusion"], res.get("class_names")))


@click.command("predict", cls=Command)
@click.argument("run_dir", metavar="DIR", type=click.Path())
@click.argument("input_file", metavar="INPUT", type=click.Path())
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the predictions to this CSV file (default: standard output).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--device", default=None, help="Device to predict on (default: the run's).")
def predict(run_dir, input_file, out_file, overwrite, device):
    """Class and class probabilities for each sample of INPUT (.npz with X, or .csv of features)
    with the model in DIR: a CSV with columns class, p_0, p_1, ... (for a run trained on class
    names: the name, and p_<name> for each class)."""
    check_path(run_dir, "a run directory")
    if out_file is not None:
        check_output_file(out_file, overwrite)
    result = training.predict(run_dir, input_file, device=device)
    classes, probs = result
    names = result.class_names or [str(j) for j in range(probs.shape[1])]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class"] + [f"p_{n}" for n in names])
    for label, p in zip(result.labels, probs, strict=True):
        w.writerow([label] + [f"{v:.6g}" for v in p])
    if out_file is None:
        click.echo(buf.getvalue(), nl=False)
        return
    with writing(out_file):
        check_output_file(out_file, True)  # again: it may have changed meanwhile (a FIFO is never waited on)
        atomic_write(out_file, buf.getvalue())  # a link there is replaced, never written through
    click.echo(f"{len(classes)} predictions written to {out_file}")
