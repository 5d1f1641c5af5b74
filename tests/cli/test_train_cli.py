"""``polydl train`` through click's CliRunner: the default run, every flag, config files, output."""
import json
import re
import time

import numpy as np
import pytest
from cli_helpers import TINY, assert_one_line_error, invoke
from run_helpers import meta, metrics

from polydl.training.config import KEYS, from_dict, load_toml


@pytest.mark.slow
def test_default_run(tmp_path, monkeypatch):
    """``polydl train`` with no arguments: digits, BatchNorm MLP, Adam, inverse_time; >= 97% in < 30 s."""
    monkeypatch.chdir(tmp_path)
    t = time.perf_counter()
    r = invoke("train")
    seconds = time.perf_counter() - t
    assert r.exit_code == 0, r.output
    assert seconds < 30
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("training mlp 64-128-64-10 (batchnorm, relu;")
    assert "adam" in lines[0] and "inverse_time" in lines[0]
    assert [ln.split()[1] for ln in lines[1:-1]] == [f"{e}/20" for e in range(1, 21)]  # one line per epoch
    summary = lines[-1]
    acc = float(re.search(r"test accuracy ([\d.]+)%", summary).group(1))
    assert acc >= 97.0, summary
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert str(run_dir.relative_to(tmp_path)) in summary
    from polydl.training import plots

    assert {p.name for p in run_dir.iterdir()} == {"checkpoint.npz", "config.toml", "metrics.jsonl", "summary.json",
                                                   ".polydl-run", ".polydl-lock"} | ({"curves.png"} if plots.available() else set())
    assert len(metrics(run_dir)) == 20
    # a second default run never collides with the first
    r2 = invoke("train", "--quiet", "--epochs", "1")
    assert r2.exit_code == 0, r2.output
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_quiet_prints_only_the_summary(tmp_path):
    r = invoke("train", *TINY, "--out", tmp_path / "r", "--quiet")
    assert r.exit_code == 0 and r.stderr == ""
    (line,) = r.stdout.splitlines()
    assert line.startswith("moons: test accuracy ") and str(tmp_path / "r") in line


def test_summary_line_counts_epochs(tmp_path):
    r = invoke("train", *TINY, "--epochs", "1", "--out", tmp_path / "r", "-q")
    assert r.exit_code == 0, r.output
    assert ", after 1 epoch in " in r.stdout
    r = invoke("train", *TINY, "--out", tmp_path / "s", "-q")
    assert ", after 2 epochs in " in r.stdout


def test_plain_lines_when_not_a_terminal(tmp_path):
    r = invoke("train", *TINY, "--out", tmp_path / "r")
    lines = r.stdout.splitlines()
    assert len(lines) == 4  # start, two epochs, summary
    assert re.match(r"epoch 1/2  lr \S+  train loss \S+ acc \S+%  val loss \S+ acc \S+%  \S+s$", lines[1])


def config_of(*flags):
    r = invoke("train", "--print-config", *flags)
    assert r.exit_code == 0, r.output
    return r.stdout


# every flag and the configuration key it sets
FLAGS = [
    (["--device", "cpu"], "device", "cpu"),
    (["--dtype", "float64"], "dtype", "float64"),
    (["--seed", "7"], "seed", 7),
    (["--data-seed", "3"], "data_seed", 3),
    (["--dataset", "spirals"], "dataset", "spirals"),
    (["--dataset", "moons", "--dataset-param", "n_samples=300", "--dataset-param", "noise=0.1"], "dataset_params",
     {"n_samples": 300, "noise": 0.1}),
    (["--target", "label"], "target", "label"),
    (["--target", "a,b"], "target", "a,b"),
    (["--impute", "median"], "impute", "median"),
    (["--val-split", "0.2"], "val_split", 0.2),
    (["--test-split", "0.3"], "test_split", 0.3),
    (["--standardize"], "standardize", True),
    (["--no-standardize"], "standardize", False),
    (["--model", "cnn"], "model", "cnn"),
    (["--model", "cnn", "--model-param", "channels=[8,16]", "--model-param", "pool=1"], "model_params",
     {"channels": [8, 16], "pool": 1}),
    (["--hidden", "32,16,8"], "hidden", [32, 16, 8]),
    (["--hidden", "none"], "hidden", []),
    (["--activation", "tanh"], "activation", "tanh"),
    (["--normalizer", "none"], "normalizer", "none"),
    (["--normalizer-param", "momentum=0.8"], "normalizer_params", {"momentum": 0.8}),
    (["--dropout", "0.25"], "dropout", 0.25),
    (["--loss", "mse"], "loss", "mse"),
    (["--loss-param", "gamma=2"], "loss_params", {"gamma": 2}),
    (["--optimizer", "momentum"], "optimizer", "momentum"),
    (["--lr", "0.2"], "lr", 0.2),
    (["--lr0", "0.3"], "lr", 0.3),
    (["--optimizer", "rmsprop", "--optimizer-param", "beta=0.5"], "optimizer_params", {"beta": 0.5}),
    (["--beta", "0.8"], "beta", 0.8),
    (["--beta1", "0.85"], "beta1", 0.85),
    (["--beta2", "0.99"], "beta2", 0.99),
    (["--eps", "1e-6"], "eps", 1e-6),
    (["--weight-decay", "0.001"], "weight_decay", 0.001),
    (["--schedule", "staircase"], "schedule", "staircase"),
    (["--schedule-param", "decay_rate=2"], "schedule_params", {"decay_rate": 2}),
    (["--schedule-unit", "step"], "schedule_unit", "step"),
    (["--epochs", "3"], "epochs", 3),
    (["--batch-size", "16"], "batch_size", 16),
    (["--no-plot"], "plot", False),
    (["--plot"], "plot", True),
    (["--out", "somewhere"], "out", "somewhere"),
    (["--monitor", "val_f1"], "monitor", "val_f1"),
    (["--min-delta", "0.001"], "min_delta", 0.001),
    (["--early-stopping-patience", "5"], "early_stopping_patience", 5),
    (["--restore-best"], "restore_best", True),
    (["--no-restore-best"], "restore_best", False),
    (["--plateau-factor", "0.2"], "plateau_factor", 0.2),
    (["--plateau-patience", "3"], "plateau_patience", 3),
    (["--warmup-epochs", "2"], "warmup_epochs", 2),
    (["--warmup-steps", "50"], "warmup_steps", 50),
    (["--augment"], "augment", True),
    (["--no-augment"], "augment", False),
    (["--augment-padding", "2"], "augment_padding", 2),
    (["--no-augment-flip"], "augment_flip", False),
    (["--augment-flip"], "augment_flip", True),
    (["--checkpoint-interval", "2.5"], "checkpoint_interval", 2.5),
]


@pytest.mark.parametrize("flags, key, value", FLAGS, ids=[" ".join(f[0]) for f in FLAGS])
def test_every_flag_sets_its_key(tmp_path, flags, key, value):
    p = tmp_path / "c.toml"
    p.write_text(config_of(*flags))
    assert load_toml(p)[key] == value


def test_there_is_a_flag_for_every_key():
    covered = {key for _, key, _ in FLAGS}
    assert covered == set(KEYS)


def test_flags_override_the_config_file(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('dataset = "moons"\nepochs = 5\nlr = 0.3\nschedule = "staircase"\n'
                 '[schedule_params]\nfactor = 0.5\nevery = 2\n[dataset_params]\nn_samples = 120\n')
    out = tmp_path / "c.toml"
    out.write_text(config_of("--config", p, "--epochs", "2", "--schedule-param", "every=1"))
    c = from_dict(load_toml(out))
    assert (c.dataset, c.epochs, c.lr, c.schedule) == ("moons", 2, 0.3, "staircase")
    assert c.schedule_params == {"factor": 0.5, "every": 1} and c.dataset_params == {"n_samples": 120}
    # another schedule on the command line drops the file's schedule parameters
    out.write_text(config_of("--config", p, "--schedule", "constant"))
    assert load_toml(out)["schedule_params"] == {}


def test_print_config_round_trips_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = config_of("--lr", "0.05", "--hidden", "10")
    (tmp_path / "c.toml").write_text(text)
    r = invoke("train", "--config", tmp_path / "c.toml", "--print-config")
    assert r.stdout == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_config_file_run(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text(f'dataset = "moons"\nhidden = [8]\nepochs = 2\nbatch_size = 32\nplot = false\n'
                 f'out = "{tmp_path / "r"}"\n[dataset_params]\nn_samples = 200\n')
    r = invoke("train", "--config", p, "--quiet")
    assert r.exit_code == 0, r.output
    assert load_toml(tmp_path / "r" / "config.toml")["dataset_params"] == {"n_samples": 200}


def test_a_run_with_many_flags(tmp_path):
    out = tmp_path / "r"
    r = invoke("train", "--dataset", "spirals", "--dataset-param", "n_samples=150", "--hidden", "12,6",
               "--activation", "leaky_relu", "--normalizer", "batchnorm", "--normalizer-param", "momentum=0.5",
               "--dropout", "0.1", "--optimizer", "rmsprop", "--lr", "0.005", "--beta", "0.9", "--eps", "1e-7",
               "--weight-decay", "0.0001", "--schedule", "exponential", "--schedule-param", "base=0.9",
               "--schedule-unit", "step", "--epochs", "2", "--batch-size", "16", "--seed", "3", "--data-seed", "4",
               "--dtype", "float64", "--val-split", "0.2", "--test-split", "0.2", "--standardize", "--no-plot",
               "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    m = meta(out)
    assert m["optimizer"]["type"] == "RMSprop"
    assert m["optimizer"]["hyperparameters"]["beta"] == 0.9 and m["optimizer"]["hyperparameters"]["eps"] == 1e-7
    assert m["num_classes"] == 3 and m["step"] == 2 * 6  # 90 training samples / 16
    recs = metrics(out)
    # exponential read at every step: base^e · α0 at the fractional epoch e = 1 + 5/6 of the epoch's last step
    assert recs[0]["lr"] == pytest.approx(0.005 * 0.9 ** (1 + 5 / 6), rel=1e-12)
    with np.load(out / "checkpoint.npz") as z:
        assert z["a/model/0.weight"].shape == (2, 12) and z["a/model/0.weight"].dtype == np.float64
    assert not (out / "curves.png").exists()


def test_out_and_overwrite(tmp_path):
    out = tmp_path / "r"
    assert invoke("train", *TINY, "--out", out, "-q").exit_code == 0
    first = (out / "checkpoint.npz").read_bytes()
    r = invoke("train", *TINY, "--out", out, "-q")
    assert_one_line_error(r, 2, "already holds a polydl run", "--overwrite")
    assert (out / "checkpoint.npz").read_bytes() == first
    r = invoke("train", *TINY, "--out", out, "-q", "--overwrite", "--seed", "1")
    assert r.exit_code == 0
    assert (out / "checkpoint.npz").read_bytes() != first


def test_plot_written_by_default(tmp_path):
    pytest.importorskip("matplotlib")
    r = invoke("train", *TINY[:-1], "--out", tmp_path / "r", "-q")
    assert r.exit_code == 0
    assert (tmp_path / "r" / "curves.png").exists()


def test_plot_note_without_matplotlib(tmp_path, monkeypatch):
    from polydl.training import plots
    monkeypatch.setattr(plots, "available", lambda: False)
    r = invoke("train", *TINY[:-1], "--out", tmp_path / "r")
    assert r.exit_code == 0
    assert "note: curves.png not written: matplotlib is not installed; pip install 'polydl[plot]'" in r.stderr
    r = invoke("train", *TINY[:-1], "--out", tmp_path / "q", "--quiet")
    assert r.stderr == ""


def test_resume_with_a_new_learning_rate(tmp_path):
    out = tmp_path / "r"
    assert invoke("train", *TINY, "--schedule", "constant", "--lr", "0.02", "--out", out, "-q").exit_code == 0
    r = invoke("train", "--resume", out, "--lr", "0.002", "--epochs", "4")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"resuming {out} after epoch 2")
    assert "α 0.02 -> 0.002 from epoch 3" in r.stdout.splitlines()[0]
    assert ("[lr changed from constant(lr0=0.02) per epoch to constant(lr0=0.002) per epoch: α 0.02 → 0.002 at "
            "epoch 3]") in r.stdout
    recs = metrics(out)
    assert [x["lr"] for x in recs] == [0.02, 0.02, 0.002, 0.002]
    assert recs[2]["lr_changed"] is True and "lr_changed" not in recs[3]
    # another schedule keeps α0 (its decay starts from it)
    r = invoke("train", "--resume", out, "--schedule", "inverse_time", "--schedule-param", "decay_rate=1",
               "--epochs", "5", "-q")
    assert r.exit_code == 0, r.output
    assert metrics(out)[-1]["lr"] == pytest.approx(0.002 / 6)


def test_resume_with_lr_continues_the_decay_from_it(tmp_path):
    """--lr X on resume: the next epoch trains at X and the schedule decays from there; --lr0 sets α0."""
    out = tmp_path / "r"
    assert invoke("train", *TINY, "--schedule", "inverse_time", "--schedule-param", "decay_rate=1", "--lr", "0.01",
                  "--epochs", "2", "--out", out, "-q").exit_code == 0
    r = invoke("train", "--resume", out, "--lr", "0.001", "--epochs", "4")
    assert r.exit_code == 0, r.output
    # α at epoch 3 would have been 0.01/(1 + 3); it is 0.001 instead, then 0.001 · (1 + 3)/(1 + 4)
    assert "α 0.0025 -> 0.001 from epoch 3" in r.stdout.splitlines()[0]
    recs = metrics(out)
    assert recs[2]["lr"] == pytest.approx(0.001, rel=1e-12) and recs[3]["lr"] == pytest.approx(0.0008, rel=1e-12)
    assert load_toml(out / "config.toml")["lr"] == pytest.approx(0.004)  # the α0 that gives 0.001 at epoch 3
    r = invoke("train", "--resume", out, "--lr0", "0.06", "--epochs", "5", "-q")
    assert r.exit_code == 0, r.output
    assert metrics(out)[-1]["lr"] == pytest.approx(0.06 / 6)
    r = invoke("train", "--resume", out, "--lr", "0.01", "--lr0", "0.1", "--epochs", "6")
    assert_one_line_error(r, 2, "--lr", "--lr0", "not both")


def test_resume_print_config(tmp_path):
    out = tmp_path / "r"
    invoke("train", *TINY, "--out", out, "-q")
    r = invoke("train", "--resume", out, "--epochs", "9", "--print-config")
    assert r.exit_code == 0 and "epochs = 9" in r.stdout
    assert meta(out)["config"]["epochs"] == 2  # nothing changed on disk


@pytest.mark.parametrize("extra, message", [
    (["--config", "x.toml"], "--config cannot be combined with --resume"),
    (["--out", "x"], "--out cannot be combined with --resume"),
    (["--overwrite"], "--overwrite cannot be combined with --resume"),
    (["--hidden", "4"], "cannot change hidden when resuming"),
    ([], "already finished its 2 epochs; pass --epochs N with N > 2"),
])
def test_resume_misuse(tmp_path, extra, message):
    out = tmp_path / "r"
    invoke("train", *TINY, "--out", out, "-q")
    before = (out / "checkpoint.npz").read_bytes()
    assert_one_line_error(invoke("train", "--resume", out, *extra), 2, message)
    assert (out / "checkpoint.npz").read_bytes() == before


def test_nan_loss_exits_1_with_epoch_step_and_cause(tmp_path):
    out = tmp_path / "r"
    r = invoke("train", *TINY, "--optimizer", "sgd", "--normalizer", "none", "--lr", "1e30", "--schedule", "constant",
               "--out", out)
    line = assert_one_line_error(r, 1, "epoch 1, step 2", "learning rate is probably too high", "--resume")
    assert "nan" in line or "inf" in line
    assert meta(out)["epoch"] == 0 and metrics(out) == []
    assert not (out / "summary.json").exists()


def test_schedule_unit_step_via_cli(tmp_path):
    out = tmp_path / "r"
    r = invoke("train", *TINY, "--schedule", "inverse_sqrt_step", "--schedule-unit", "step", "--out", out, "-q")
    assert r.exit_code == 0
    m = meta(out)
    assert m["config"]["schedule_unit"] == "step"
    epoch2 = metrics(out)[1]
    assert epoch2["lr"] == pytest.approx(0.01 / np.sqrt(10))  # α of the last step (t = 10) of epoch 2


def test_csv_with_target_column(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    rows = ["x0,kind,x1"] + [f"{a},{c},{b}" for (a, b), c in zip(X, y)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    r = invoke("train", "--dataset", tmp_path / "d.csv", "--target", "kind", "--hidden", "4", "--epochs", "2",
               "--batch-size", "16", "--no-plot", "--out", tmp_path / "r", "-q")
    assert r.exit_code == 0, r.output
    assert meta(tmp_path / "r")["num_features"] == 2
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["dataset"] == "d.csv" and summary["test_samples"] == 16


def test_help_shows_every_default_and_flags_still_default_to_none():
    """Each configuration flag's help ends with the configuration's default; the flag itself
    defaults to None, so that only the flags given override a config file."""
    import click

    from polydl_cli.main import main
    from polydl_cli.train import _CONFIG_OPTIONS, config_options

    names = {p.name for p in config_options(lambda **opts: None).__click_params__}
    for command in ("train", "tune"):
        cmd = main.commands[command]
        ctx = click.Context(cmd)
        shown = {}
        for param in cmd.params:  # not get_params(ctx): it would cache a help option without -h
            if isinstance(param, click.Option) and param.name in names | ({"out"} if command == "train" else set()):
                help_text = " ".join(param.get_help_record(ctx)[1].split())
                assert re.search(r"\[default: [^\]]+\]$", help_text), (param.name, help_text)
                assert param.default is None or param.multiple, param.name
                shown[param.name] = help_text
        assert len(shown) == len(_CONFIG_OPTIONS) + (command == "train")  # train's --out too
    assert shown["lr"].endswith("[default: 0.01]") and shown["lr0"].endswith("[default: 0.01]")
    assert shown["schedule"].endswith("[default: inverse_time]") and shown["hidden"].endswith("[default: 128,64]")
    assert shown["beta1"].endswith("[default: the optimizer's default]")
    assert shown["plot"].endswith("[default: --plot]") and shown["standardize"].endswith("[default: auto]")
    assert shown["loss_param"].endswith("[default: none]") and shown["epochs"].endswith("[default: 20]")
    out = " ".join(invoke("train", "--help").stdout.split())
    assert "--dtype [float32|float64|float16|bfloat16] Floating type" in out and "[default: float32]" in out
    assert "[default: a new directory runs/<timestamp>]" in out


def test_a_config_file_is_overridden_only_by_the_flags_given(tmp_path):
    (tmp_path / "run.toml").write_text("lr = 0.5\nschedule = \"constant\"\nepochs = 3\n")
    r = invoke("train", "--config", tmp_path / "run.toml", "--epochs", "4", "--print-config")
    (tmp_path / "resolved.toml").write_text(r.stdout)
    config = from_dict(load_toml(tmp_path / "resolved.toml"))
    assert (config.lr, config.schedule, config.epochs) == (0.5, "constant", 4)
