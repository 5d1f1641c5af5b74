"""``polydl evaluate`` and ``polydl predict``: use the model of a run directory."""
from __future__ import annotations

import csv
import io
import json

import click

from polydl import training
from polydl.training.checkpoint import WHICH, atomic_write

from ._common import Command, check_output_file, check_path, number, percent, writing


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


def metrics_table(res) -> str:
    """Precision, recall, F1 and support per class and their macro means; ROC AUC and PR AUC for
    two classes; top-k accuracy."""
    k = len(res["precision"])
    labels = [str(n) for n in res.get("class_names") or range(k)]
    first = max(5, max(map(len, labels)))
    lines = ["class".rjust(first) + "  precision     recall         f1    support"]
    for j, label in enumerate(labels):
        lines.append(f"{label.rjust(first)}  {res['precision'][j]:9.4f}  {res['recall'][j]:9.4f}  {res['f1'][j]:9.4f}"
                     f"  {res['support'][j]:9d}")
    lines.append(f"{'macro'.rjust(first)}  {res['macro_precision']:9.4f}  {res['macro_recall']:9.4f}  "
                 f"{res['macro_f1']:9.4f}  {sum(res['support']):9d}")
    extra = []
    if "roc_auc" in res:
        extra.append(f"ROC AUC {number(res['roc_auc'])}  PR AUC {number(res['pr_auc'])}")
    extra += [f"top-{n} accuracy {percent(v)}" for n, v in (res.get("top_k_accuracy") or {}).items()]
    if extra:
        lines.append("  ".join(extra))
    return "\n".join(lines)


def regression_text(res) -> str:
    """A regression's loss, RMSE, MAE (in the target's units) and R²."""
    targets = ", ".join(res.get("targets") or [])
    return (f"loss {number(res['loss'])}  RMSE {number(res['rmse'], '.6g')}  MAE {number(res['mae'], '.6g')}  "
            f"R² {number(res['r2'])}" + (f"  ({targets})" if targets else ""))


def regression_csv(result) -> str:
    """Predictions of a regression: one column per target, in the target's units (round-trip exact)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(result.target_names)
    for row in result:
        w.writerow([repr(float(v)) for v in row])
    return buf.getvalue()


def samples_used(res) -> str:
    """Which samples an evaluation used: ``other.npz, all 200 samples`` or ``digits test split (359
    samples)``, with ``of N`` where the split is part of a whole."""
    if res["split"] == "all":
        return f"{res['dataset']}, all {res['samples']} samples"
    return f"{res['dataset']} {res['split']} split ({res['samples']} of {res['total_samples']} samples)"


@click.command("evaluate", cls=Command)
@click.argument("run_dir", metavar="DIR", type=click.Path())
@click.option("--dataset", metavar="NAME|FILE", default=None,
              help="Evaluate on this dataset instead of the run's: its columns matched to the run's by name, "
                   "preprocessed with the run's statistics; all of it unless --split says otherwise.")
@click.option("--target", metavar="COLUMN", default=None,
              help="Label column(s) of a --dataset that names them otherwise than the run's target.")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default=None,
              help="Which split to evaluate; all: every sample (train, validation and test together). "
                   "[default: test of the run's data, all of a --dataset]")
@click.option("--device", default=None, help="Device to evaluate on (default: the run's).")
@click.option("--checkpoint", "which", type=click.Choice(WHICH), default=None,
              help="The best epoch's weights (best.npz, kept with --restore-best) or the last; default: the best "
                   "where the run keeps it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(run_dir, dataset, target, split, device, which, as_json):
    """Loss, accuracy and confusion matrix of the model in DIR on the test split (BatchNorm uses
    its running averages); for a regression, RMSE, MAE and R². A --dataset is scored whole, its
    columns matched to the run's by name; --split test (val, train) takes that split of it,
    split like the run's data."""
    check_path(run_dir, "a run directory")
    res = training.evaluate(run_dir, dataset=dataset, split=split, device=device, target=target, checkpoint=which)
    for note in res.get("notes") or ():
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps(res))
        return
    weights = f"  ({'best.npz' if res.get('checkpoint') == 'best' else 'the last checkpoint'}, epoch {res.get('epoch')})"
    if res.get("task") == "regression":
        click.echo(f"{samples_used(res)}: {regression_text(res)}{weights}")
        return
    click.echo(f"{samples_used(res)}: loss {res['loss']:.4f}  accuracy {percent(res['accuracy'])}{weights}")
    click.echo("confusion matrix (rows: true class, columns: predicted class):")
    click.echo(confusion_table(res["confusion"], res.get("class_names")))
    if "precision" in res:
        click.echo(metrics_table(res))


@click.command("predict", cls=Command)
@click.argument("run_dir", metavar="DIR", type=click.Path())
@click.argument("input_file", metavar="INPUT", type=click.Path())
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the predictions to this CSV file (default: standard output).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--device", default=None, help="Device to predict on (default: the run's).")
@click.option("--checkpoint", "which", type=click.Choice(WHICH), default=None,
              help="The best epoch's weights (best.npz) or the last; default: the best where the run keeps it.")
def predict(run_dir, input_file, out_file, overwrite, device, which):
    """Class and class probabilities for each sample of INPUT (.npz with X, or .csv of features)
    with the model in DIR: a CSV with columns class, p_0, p_1, ... (for a run trained on class
    names: the name, and p_<name> for each class); for a regression, one column per target in its
    units. A .csv with a header is matched to the run's columns by name (the target column and
    other columns are left out); one without a header needs the training width."""
    check_path(run_dir, "a run directory")
    if out_file is not None:
        check_output_file(out_file, overwrite)
    result = training.predict(run_dir, input_file, device=device, checkpoint=which)
    for note in getattr(result, "notes", ()):
        click.echo(f"note: {note}", err=True)
    if hasattr(result, "target_names"):  # a regression: values in the target's units
        text, count = regression_csv(result), len(result)
    else:
        classes, probs = result
        names = result.class_names or [str(j) for j in range(probs.shape[1])]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["class"] + [f"p_{n}" for n in names])
        for label, p in zip(result.labels, probs, strict=True):
            w.writerow([label] + [f"{v:.6g}" for v in p])
        text, count = buf.getvalue(), len(classes)
    if out_file is None:
        click.echo(text, nl=False)
        return
    with writing(out_file):
        check_output_file(out_file, True)  # again: it may have changed meanwhile (a FIFO is never waited on)
        atomic_write(out_file, text)  # a link there is replaced, never written through
    click.echo(f"{count} predictions written to {out_file}")
