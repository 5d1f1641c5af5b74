"""The training loop through polydl.training.run / resume."""
import json
import signal

import numpy as np
import pytest
from run_helpers import InterruptAt, arrays, assert_same_run, meta, metrics, tiny

import polydl
from polydl import backend, optim, schedules
from polydl.training import (
    CheckpointError,
    ConfigError,
    Reporter,
    RunDirError,
    TrainingDiverged,
    TrainingInterrupted,
    plots,
    resume,
    resume_config,
    run,
)
from polydl.training import checkpoint as ck
from polydl.training.config import from_dict, load_toml


def test_run_writes_the_run_directory(tmp_path):
    from polydl.training import plots

    out = tmp_path / "r"
    res = run(tiny(plot=True), out)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["checkpoint.npz", "config.toml", "metrics.jsonl", "summary.json", ".polydl-run",
                            ".polydl-lock"] + (["curves.png"] if plots.available() else []))
    recs = metrics(out, drop=())
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    for r in recs:
        assert {"epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"} <= r.keys()
    assert from_dict(load_toml(out / "config.toml")) == tiny(plot=True).replace(out=str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 3 and 0 <= summary["test_accuracy"] <= 1
    assert res.test_accuracy == summary["test_accuracy"] and res.epochs == 3
    m = meta(out)
    assert (m["epoch"], m["step"], m["batch"]) == (3, 3 * 5, 0)  # 140 training samples / 32 = 5 batches
    if plots.available():
        assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_is_a_function_of_its_configuration(tmp_path):
    run(tiny(), tmp_path / "a")
    run(tiny(), tmp_path / "b")
    assert_same_run(tmp_path / "a", tmp_path / "b")
    run(tiny(seed=1), tmp_path / "c")
    assert not np.array_equal(arrays(tmp_path / "a")["model/0.weight"], arrays(tmp_path / "c")["model/0.weight"])


def test_resume_with_more_epochs_equals_the_longer_run(tmp_path):
    run(tiny(epochs=4), tmp_path / "full")
    run(tiny(epochs=2), tmp_path / "part")
    res = resume(tmp_path / "part", {"epochs": 4})
    assert res.epochs == 4
    assert_same_run(tmp_path / "full", tmp_path / "part")


@pytest.mark.parametrize("at", [1, 7, 10, 13])
def test_sigint_saves_at_the_next_step_and_resume_is_exact(tmp_path, at):
    run(tiny(), tmp_path / "full")
    with pytest.raises(TrainingInterrupted) as info:
        run(tiny(), tmp_path / "cut", reporter=InterruptAt(at))
    m = meta(tmp_path / "cut")
    assert m["step"] == at and info.value.step == at
    assert m["epoch"] * 5 + m["batch"] == at
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resume(tmp_path / "cut")
    assert_same_run(tmp_path / "full", tmp_path / "cut")


def test_without_signal_handling_ctrl_c_is_a_keyboard_interrupt(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tiny(), tmp_path / "r", reporter=InterruptAt(2), handle_signals=False)


def test_nan_loss_stops_with_epoch_step_and_cause_and_keeps_last_good_checkpoint(tmp_path):
    out = tmp_path / "r"
    cfg = tiny(optimizer="sgd", normalizer="none", lr=0.05, schedule="constant", dropout=0.0, weight_decay=None,
               epochs=1)
    run(cfg, out)
    before = arrays(out)
    with pytest.raises(TrainingDiverged) as info:
        resume(out, {"epochs": 3, "lr": 1e30})
    e = info.value
    assert e.epoch == 2 and 6 <= e.step <= 10
    msg = str(e)
    assert "epoch 2" in msg and f"step {e.step}" in msg and "learning rate is probably too high" in msg
    after = arrays(out)
    for k in ("model/0.weight", "model/2.weight"):
        assert np.array_equal(before[k], after[k])
    assert meta(out)["epoch"] == 1
    assert [r["epoch"] for r in metrics(out)] == [1]


def test_nan_in_the_first_epoch_keeps_the_initial_checkpoint(tmp_path):
    cfg = tiny(optimizer="sgd", normalizer="none", lr=1e30, schedule="constant", dropout=0.0, weight_decay=None)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 2 .*initial weights"):
        run(cfg, tmp_path / "r")
    assert meta(tmp_path / "r")["epoch"] == 0
    assert metrics(tmp_path / "r") == []


ONE_BATCH = dict(optimizer="sgd", normalizer="none", schedule="constant", dropout=0.0, weight_decay=None,
                 batch_size=140)  # 140 training samples: one mini-batch, whose finite loss is the epoch's last


@pytest.mark.parametrize("lr, what", [(1e39, "the weights became NaN or infinite"),  # α overflows float32
                                      (1e30, "the validation loss became nan")])   # weights ~1e30, scores overflow
def test_a_step_with_a_finite_loss_that_leaves_unusable_weights_is_not_checkpointed(tmp_path, lr, what):
    out = tmp_path / "r"
    with pytest.raises(TrainingDiverged) as info:
        run(tiny(**ONE_BATCH, lr=lr, epochs=3), out)
    msg = str(info.value)
    assert msg.startswith(f"{what} at epoch 1, step 1 (mini-batch 1 of 1, learning rate ")
    assert "learning rate is probably too high" in msg and "last good checkpoint (epoch 0, the initial weights)" in msg
    assert meta(out)["epoch"] == 0 and metrics(out) == []
    assert all(np.all(np.isfinite(a)) for k, a in arrays(out).items() if k.startswith("model/"))
    assert not (out / "summary.json").exists()
    # the advice works: the kept checkpoint continues with a smaller rate
    res = resume(out, {"lr": 0.05})
    assert res.epochs == 3 and np.isfinite(res.loss) and np.isfinite(metrics(out)[-1]["val_loss"])


def test_weights_that_become_unusable_later_keep_the_last_good_epoch(tmp_path):
    out = tmp_path / "r"
    run(tiny(**ONE_BATCH, lr=0.05, epochs=1), out)
    before = arrays(out)
    with pytest.raises(TrainingDiverged, match=r"^the weights became NaN or infinite at epoch 2, step 2 .*"
                                               r"last good checkpoint \(epoch 1\)"):
        resume(out, {"epochs": 3, "lr": 1e39})
    after = arrays(out)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert meta(out)["epoch"] == 1 and [r["epoch"] for r in metrics(out)] == [1]


def test_babysitting_lr_change_is_recorded(tmp_path):
    out = tmp_path / "r"
    run(tiny(epochs=2, schedule="constant", lr=0.02), out)
    resume(out, {"epochs": 4, "lr": 0.005})
    recs = metrics(out)
    assert [r["lr"] for r in recs] == [0.02, 0.02, 0.005, 0.005]
    assert [bool(r.get("lr_changed")) for r in recs] == [False, False, True, False]
    assert "0.02" in recs[2]["event"] and "0.005" in recs[2]["event"]
    assert load_toml(out / "config.toml")["lr"] == 0.005
    # another schedule: its old parameters go, new ones can be given
    resume(out, {"epochs": 5, "schedule": "staircase", "schedule_params": {"factor": 0.5, "every": 1}})
    last = metrics(out)[-1]
    assert last["lr_changed"] and last["lr"] == pytest.approx(0.005 * 0.5 ** 4)
    assert load_toml(out / "config.toml")["schedule_params"] == {"factor": 0.5, "every": 1}


def test_resume_refuses_to_change_what_defines_the_run(tmp_path):
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    with pytest.raises(ConfigError, match="cannot change hidden, seed when resuming"):
        resume(out, {"hidden": [4], "seed": 3, "epochs": 2})
    with pytest.raises(ConfigError, match="already finished its 1 epochs; pass --epochs N with N > 1"):
        resume(out)
    assert resume_config(out, {"epochs": 9}).epochs == 9


def test_resume_finishes_a_run_killed_before_its_summary(tmp_path):
    out = tmp_path / "r"
    run(tiny(epochs=2), out)
    summary = (out / "summary.json").read_text()
    (out / "summary.json").unlink()
    with open(out / ck.METRICS, "a") as fh:
        fh.write('{"epo')
    res = resume(out)
    assert res.epochs == 2 and (out / "summary.json").read_text() == summary
    assert [r["epoch"] for r in metrics(out)] == [1, 2]


def test_resume_of_a_non_run_or_damaged_run(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        resume(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a polydl run directory"):
        resume(tmp_path)
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    raw = (out / ck.CHECKPOINT).read_bytes()
    (out / ck.CHECKPOINT).write_bytes(raw[:100])
    with pytest.raises(CheckpointError, match="damaged"):
        resume(out, {"epochs": 2})


def test_resume_rewrites_metrics_to_the_checkpoint(tmp_path):
    out = tmp_path / "r"
    run(tiny(epochs=2), out)
    lines = (out / ck.METRICS).read_text()
    with open(out / ck.METRICS, "a") as fh:  # an epoch the checkpoint never saw, and a torn line
        fh.write('{"epoch": 3, "train_loss": 9}\n{"epo')
    (out / ".polydl-tmp-checkpoint.npz.x").write_text("left by a kill")
    resume(out, {"epochs": 3})
    assert (out / ck.METRICS).read_text().startswith(lines)
    assert [r["epoch"] for r in metrics(out)] == [1, 2, 3]
    assert not list(out.glob(".polydl-tmp-*"))


def test_schedule_unit_step_and_epoch(tmp_path):
    calls = []

    def recording(lr0=0.01):
        constant = schedules.constant(lr0)  # checks lr0
        return lambda pos: calls.append((pos.epoch, pos.step, pos.fractional_epoch)) or constant(pos)

    schedules.registry.register("recording_test", recording)
    try:
        calls.clear()
        run(tiny(schedule="recording_test", schedule_unit="step", epochs=2), tmp_path / "s")
        # at every step, at the fractional epoch e + b/n of 5 mini-batches per epoch
        assert set(calls) == {(e, 5 * (e - 1) + b + 1, e + b / 5) for e in (1, 2) for b in range(5)}
        calls.clear()
        run(tiny(schedule="recording_test", schedule_unit="epoch", epochs=2), tmp_path / "e")
        assert set(calls) == {(1, 1, 1), (2, 6, 2)}  # at the epoch's first step, once per epoch
    finally:
        schedules.registry.unregister("recording_test")


def test_data_goes_to_the_device_once_and_syncs_once_per_epoch(tmp_path, monkeypatch):
    """Transfers between host and device do not grow with the number of mini-batches."""
    real_dev, real_np = backend.to_device, backend.to_numpy
    counts = {}

    class Count(Reporter):
        def start(self, info):
            counts.update(to_device=0, to_numpy=0)

    def to_device(a, d):
        counts["to_device"] = counts.get("to_device", 0) + 1
        return real_dev(a, d)

    def to_numpy(a):
        counts["to_numpy"] = counts.get("to_numpy", 0) + 1
        return real_np(a)

    monkeypatch.setattr(backend, "to_device", to_device)
    monkeypatch.setattr(backend, "to_numpy", to_numpy)
    seen = []
    for bs in (4, 70):  # 35 and 2 mini-batches per epoch
        run(tiny(batch_size=bs, epochs=2), tmp_path / f"r{bs}", reporter=Count())
        seen.append(dict(counts))
    assert seen[0] == seen[1]
    assert seen[0]["to_device"] == 2  # the epoch's permutation, nothing per batch


def test_float64_and_half_precision(tmp_path):
    run(tiny(dtype="float64", epochs=1), tmp_path / "r")
    assert arrays(tmp_path / "r")["model/0.weight"].dtype == np.float64
    # half dtypes: mixed precision, float32 master weights on every device
    run(tiny(dtype="float16", epochs=1), tmp_path / "h")
    assert arrays(tmp_path / "h")["model/0.weight"].dtype == np.float32


def test_bfloat16_without_ml_dtypes_is_refused_before_writing(tmp_path, monkeypatch):
    from polydl import amp

    def no_ml_dtypes(name):
        raise ValueError("dtype bfloat16 needs the ml_dtypes package (pip install ml_dtypes)")

    monkeypatch.setattr(amp, "resolve", no_ml_dtypes)
    with pytest.raises(ConfigError, match="pip install ml_dtypes"):
        run(tiny(dtype="bfloat16"), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_binary_cross_entropy_uses_one_output(tmp_path):
    run(tiny(loss="binary_cross_entropy", epochs=1), tmp_path / "r")
    assert arrays(tmp_path / "r")["model/4.weight"].shape == (8, 1)
    with pytest.raises(ConfigError, match="needs 2 classes, the data has 3"):
        run(tiny(loss="binary_cross_entropy", dataset="spirals", dataset_params={"n_samples": 150}), tmp_path / "s")


def test_no_validation_split(tmp_path):
    run(tiny(val_split=0.0, epochs=1), tmp_path / "r")
    r = metrics(tmp_path / "r")[0]
    assert r["val_loss"] is None and r["val_accuracy"] is None


def test_out_dir_rules(tmp_path, monkeypatch):
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="already holds a polydl run.*--overwrite.*--resume"):
        run(tiny(epochs=1), out)
    run(tiny(epochs=2), out, overwrite=True)
    assert meta(out)["epoch"] == 2 and (out / "notes.txt").read_text() == "mine"
    # an empty directory is fine
    (tmp_path / "empty").mkdir()
    run(tiny(epochs=1), tmp_path / "empty")
    # a path under a file cannot be written: nothing is created
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        run(tiny(epochs=1), tmp_path / "file" / "run")
    # out from the configuration, and the default runs/<timestamp>, never colliding
    run(tiny(epochs=1, out=str(tmp_path / "from_config")))
    assert (tmp_path / "from_config" / "checkpoint.npz").exists()
    monkeypatch.chdir(tmp_path)
    a = run(tiny(epochs=1)).out_dir
    b = run(tiny(epochs=1)).out_dir
    assert a != b and a.parent.name == "runs" and b.parent.name == "runs"


def test_plot_note_without_matplotlib(tmp_path, monkeypatch):
    notes = []

    class Notes(Reporter):
        def note(self, message):
            notes.append(message)

    monkeypatch.setattr(plots, "available", lambda: False)
    run(tiny(epochs=1, plot=True), tmp_path / "r", reporter=Notes())
    assert not (tmp_path / "r" / "curves.png").exists()
    assert any("pip install 'polydl[plot]'" in n for n in notes)


def test_reporter_callbacks(tmp_path):
    seen = []

    class Rec(Reporter):
        def start(self, info):
            seen.append(("start", info["dataset"], info["n_batches"]))

        def epoch_start(self, epoch, epochs, n, done):
            seen.append(("epoch_start", epoch, epochs, n, done))

        def step(self, loss=None):
            seen.append("step")

        def epoch_end(self, record, epochs):
            seen.append(("epoch_end", record["epoch"]))

    run(tiny(epochs=2), tmp_path / "r", reporter=Rec())
    assert seen[0] == ("start", "moons", 5)
    assert seen.count("step") == 10
    assert ("epoch_start", 2, 2, 5, 0) in seen and ("epoch_end", 2) in seen


def test_components_are_built_by_registry_name(tmp_path):
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        run(tiny(optimizer="nope"), tmp_path / "r")
    with pytest.raises(ValueError, match="has no parameter 'bogus'"):
        run(tiny(schedule_params={"bogus": 1}), tmp_path / "r")
    assert not (tmp_path / "r").exists()
    run(tiny(optimizer="momentum", beta=0.8, normalizer="none", activation="tanh", loss="mse", epochs=1,
             schedule="exponential", schedule_params={"base": 0.9}), tmp_path / "ok")


def test_building_blocks(tmp_path, monkeypatch):
    from polydl import losses
    from polydl.training import default_out_dir, load_dataset, load_run_config
    from polydl.training.build import build_model, num_outputs
    from polydl.training.evaluation import evaluate_arrays
    from polydl.training.resume import RESUME_CHANGEABLE

    assert num_outputs(losses.get("softmax_cross_entropy"), 5) == 5
    assert num_outputs(losses.get("binary_cross_entropy"), 2) == 1
    model = build_model(tiny(hidden=[3, 4]), 2, 5, backend.device("cpu"))
    assert [p.shape for p in model.parameters()][0] == (2, 3)
    X = np.zeros((3, 2), np.float32)
    loss, acc, pred = evaluate_arrays(model, losses.get("softmax_cross_entropy"), X, np.array([0, 1, 2]))
    assert np.isfinite(loss) and 0 <= acc <= 1 and pred.shape == (3,)
    assert evaluate_arrays(model, losses.get("softmax_cross_entropy"), X[:0], np.zeros(0, int)) == (None, None, None)
    loaded = load_dataset("blobs", seed=1, params={"n_samples": 50, "centers": 3})
    assert loaded.name == "blobs" and loaded.num_classes == 3 and loaded.class_names is None
    assert sum(len(s[1]) for s in loaded.splits.values()) == 50
    run(tiny(epochs=1), tmp_path / "r")
    config, m, arrs = load_run_config(tmp_path / "r")
    assert config.epochs == 1 and m["epoch"] == 1 and "model/0.weight" in arrs
    monkeypatch.chdir(tmp_path)
    assert default_out_dir().parent.name == "runs"
    assert {"lr", "schedule", "epochs"} <= set(RESUME_CHANGEABLE) and "hidden" not in RESUME_CHANGEABLE


class ScaledSGD(optim.SGD):
    """A plugin optimizer with a hyperparameter of its own: W ← W − α · scale · g."""

    scale = optim.Hyper(0, low_open=True)

    def __init__(self, params, lr=0.01, scale=1.0, weight_decay=0.0):
        self.scale = scale
        super().__init__(params, lr, weight_decay)

    def _coefficients(self, lr):
        return {"lr": lr * self.scale}


class _ScaledPlugin:
    @polydl.hookimpl
    def polydl_register_optimizers(self, register):
        register("scaled_sgd", ScaledSGD)


def test_an_optimizer_params_key_reaches_a_plugin_optimizer(tmp_path):
    from click.testing import CliRunner

    from polydl.testing import registered_plugin
    from polydl_cli.main import main

    def final_weights(out):
        with np.load(out / "checkpoint.npz") as z:
            return z["a/model/0.weight"]

    with registered_plugin(_ScaledPlugin(), "scaled"):
        base = dict(optimizer="scaled_sgd", schedule="constant", lr=0.1, epochs=1, dropout=0.0, weight_decay=None)
        run(tiny(**base, optimizer_params={"scale": 0.5}), tmp_path / "half")
        run(tiny(**{**base, "lr": 0.05}), tmp_path / "plain")  # α·scale is all that matters
        assert meta(tmp_path / "half")["optimizer"]["hyperparameters"]["scale"] == 0.5
        np.testing.assert_array_equal(final_weights(tmp_path / "half"), final_weights(tmp_path / "plain"))
        assert load_toml(tmp_path / "half" / "config.toml")["optimizer_params"] == {"scale": 0.5}
        # from the command line, and a bad value is the optimizer's own one-line error
        r = CliRunner().invoke(main, ["train", "--dataset", "moons", "--dataset-param", "n_samples=200", "--hidden",
                                      "8", "--epochs", "1", "--no-plot", "--optimizer", "scaled_sgd",
                                      "--optimizer-param", "scale=0.5", "--out", str(tmp_path / "cli"), "-q"])
        assert r.exit_code == 0, r.output
        assert meta(tmp_path / "cli")["optimizer"]["hyperparameters"]["scale"] == 0.5
        with pytest.raises(ValueError, match="optimizer scale must be > 0, not -1"):
            run(tiny(**base, optimizer_params={"scale": -1}), tmp_path / "bad")
        assert not (tmp_path / "bad").exists()
        with pytest.raises(ValueError, match="has no parameter 'sclae'; did you mean 'scale'"):
            run(tiny(**base, optimizer_params={"sclae": 2}), tmp_path / "typo")


def test_resume_changes_optimizer_params(tmp_path):
    out = tmp_path / "r"
    run(tiny(optimizer="rmsprop", optimizer_params={"beta": 0.9}, epochs=1), out)
    resume(out, {"epochs": 2, "optimizer_params": {"beta": 0.5}})
    assert meta(out)["optimizer"]["hyperparameters"]["beta"] == 0.5


class _Misbehaving:
    """Losses and a normalizer that pass registration (a batch of 2, 4 features) and misbehave
    while training: a per-sample vector, a Python float, a NumPy array, NaN before any update, and
    a normalizer that drops all but 4 of its layer's units."""

    @staticmethod
    def _loss(bad):
        from polydl import functional as F

        def make():
            def loss(scores, targets):
                good = F.softmax_cross_entropy(scores, targets)
                return good if len(targets) <= 2 else bad(scores, targets, good)
            return loss
        return make

    @polydl.hookimpl
    def polydl_register_losses(self, register):
        from polydl import functional as F

        register("per_sample", self._loss(lambda s, t, good: F.relu(s).sum(axis=1)))
        register("as_float", self._loss(lambda s, t, good: 2.5))
        register("as_array", self._loss(lambda s, t, good: np.full(len(t), 0.5)))
        register("nan_at_once", self._loss(lambda s, t, good: good * float("nan")))

    @polydl.hookimpl
    def polydl_register_normalizers(self, register):
        register("first_four", _FirstFour)


class _FirstFour(polydl.nn.Module):
    def __init__(self, num_features):
        self.n = num_features

    def forward(self, x):
        return x[..., :4]


def _misbehaving():
    from polydl.testing import registered_plugin

    return registered_plugin(_Misbehaving(), "shaky", distribution="polydl-shaky", version="0.2")


@pytest.mark.parametrize("loss, what", [("per_sample", "a Tensor of shape (32,)"), ("as_float", "a Python float (2.5)"),
                                        ("as_array", "a NumPy array of shape (32,)")])
def test_a_plugin_loss_that_returns_no_scalar_tensor_is_one_line_naming_it(tmp_path, loss, what):
    from polydl.training import ComponentError

    with _misbehaving():
        with pytest.raises(ComponentError) as info:
            run(tiny(loss=loss), tmp_path / "r")
    msg = str(info.value)
    assert msg.startswith(f"training stopped at epoch 1, step 1: loss '{loss}' of plugin 'shaky' (distribution "
                          f"polydl-shaky 0.2) returned {what}, not a scalar Tensor"), msg
    assert "pip install -U polydl-shaky" in msg and "\n" not in msg
    assert meta(tmp_path / "r")["epoch"] == 0


def test_a_plugin_loss_that_is_nan_before_any_update_is_named_not_the_learning_rate(tmp_path):
    with _misbehaving():
        with pytest.raises(TrainingDiverged) as info:
            run(tiny(loss="nan_at_once"), tmp_path / "r")
    msg = str(info.value)
    assert msg.startswith("the loss became nan at epoch 1, step 1 (mini-batch 1 of 5), before any update, so the "
                          "learning rate is not the cause: the loss 'nan_at_once' of plugin 'shaky' (distribution "
                          "polydl-shaky 0.2) returned it"), msg
    assert "too high" not in msg and "--lr" not in msg
    assert meta(tmp_path / "r")["epoch"] == 0 and metrics(tmp_path / "r") == []


def test_a_plugin_normalizer_of_the_wrong_width_is_one_line_naming_it(tmp_path):
    from polydl.training import ComponentError

    with _misbehaving():
        with pytest.raises(ComponentError) as info:
            run(tiny(normalizer="first_four"), tmp_path / "r")
    assert str(info.value) == (
        "normalizer 'first_four' of plugin 'shaky' (distribution polydl-shaky 0.2) returned a Tensor of shape (4, 4) "
        "for a mini-batch of shape (4, 8) in training mode: a normalizer must keep the width of its layer (8 units); "
        "update it (pip install -U polydl-shaky) or choose another normalizer")
    assert not (tmp_path / "r").exists()  # refused before anything is written
