"""Population training: P members trained together against the same configurations trained alone,
the members' run directories as ordinary runs, a member that diverges, interruption and resume."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from run_helpers import arrays, assert_same_run, meta, metrics

import polydl
from polydl.training import ConfigError, TrainConfig, TrainingDiverged, TrainingInterrupted, evaluate, resume, run
from polydl.training.population import PopulationReporter, check_members, run_population

BASE = dict(dataset="moons", dataset_params={"n_samples": 300}, hidden=[8, 6], epochs=3, batch_size=32, plot=False)


def members(dtype="float64"):
    """Members that differ in everything a population lets them differ in."""
    return [
        TrainConfig(**BASE, dtype=dtype, lr=0.01, seed=0),
        TrainConfig(**BASE, dtype=dtype, lr=0.05, seed=1, beta1=0.8, dropout=0.1, schedule="exponential",
                    schedule_params={"base": 0.5}),
        TrainConfig(**BASE, dtype=dtype, lr=0.002, seed=2, eps=1e-6, weight_decay=0.01, dropout=0.3,
                    schedule="staircase", schedule_params={"every": 1}),
    ]


def alone(configs, root):
    return [run(c, root / f"alone{k}") for k, c in enumerate(configs)]


def test_members_equal_the_same_runs_alone_in_float64(tmp_path):
    configs = members()
    outs = [tmp_path / f"m{k}" for k in range(3)]
    got = run_population(configs, outs)
    ref = alone(configs, tmp_path)
    for k in range(3):
        a, b = arrays(outs[k]), arrays(tmp_path / f"alone{k}")
        assert a.keys() == b.keys()
        for name in b:
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-10, err_msg=name)
        for ra, rb in zip(metrics(outs[k]), metrics(tmp_path / f"alone{k}")):
            assert ra.keys() == rb.keys()
            for key in ra:
                if isinstance(rb[key], float):
                    assert ra[key] == pytest.approx(rb[key], rel=1e-9, abs=1e-12), (k, key)
                else:
                    assert ra[key] == rb[key]
        assert got[k].accuracy == pytest.approx(ref[k].accuracy, abs=1e-12)
        assert meta(outs[k])["rng"] == meta(tmp_path / f"alone{k}")["rng"]  # its own dropout stream


def test_members_in_float32_agree_to_float32_rounding(tmp_path):
    configs = [c.replace(epochs=3) for c in members("float32")]
    run_population(configs, [tmp_path / f"m{k}" for k in range(3)])
    alone(configs, tmp_path)
    worst = 0.0
    for k in range(3):
        for ra, rb in zip(metrics(tmp_path / f"m{k}"), metrics(tmp_path / f"alone{k}")):
            for key in ("train_loss", "val_loss", "lr"):
                worst = max(worst, abs(ra[key] - rb[key]) / max(abs(rb[key]), 1e-30))
    assert worst <= 1e-5, worst  # measured: 0 (the same kernels member by member)


def test_a_population_of_one_is_the_single_run_bit_for_bit_including_resume(tmp_path):
    config = members("float32")[1].replace(epochs=4)
    run(config, tmp_path / "alone")

    class StopAt(PopulationReporter):
        steps = 0

        def step(self, loss=None):
            StopAt.steps += 1
            if StopAt.steps == 11:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        run_population([config], [tmp_path / "pop"], reporter=StopAt())
    assert meta(tmp_path / "pop")["batch"] > 0  # saved mid-epoch
    (result,) = run_population([config], [tmp_path / "pop"])
    assert result.epochs == 4
    assert_same_run(tmp_path / "alone", tmp_path / "pop")


def test_a_member_that_diverges_stops_alone_with_the_message_of_a_run_alone(tmp_path):
    configs = [TrainConfig(**BASE, lr=0.01, seed=0), TrainConfig(**BASE, lr=1e9, optimizer="sgd", seed=1,
                                                                 normalizer="none"),
               TrainConfig(**BASE, lr=0.02, seed=2)]
    configs = [c.replace(optimizer="sgd", normalizer="none", epochs=4) for c in configs]
    ended = []

    class Record(PopulationReporter):
        def member_end(self, index, outcome):
            ended.append((index, type(outcome).__name__))

    got = run_population(configs, [tmp_path / f"m{k}" for k in range(3)], reporter=Record())
    assert isinstance(got[1], TrainingDiverged) and not isinstance(got[0], TrainingDiverged)
    assert ended[0] == (1, "TrainingDiverged") and sorted(ended[1:]) == [(0, "RunResult"), (2, "RunResult")]
    with pytest.raises(TrainingDiverged) as single:
        run(configs[1], tmp_path / "alone1")
    assert str(got[1]).replace(str(tmp_path / "m1"), "DIR") == str(single.value).replace(str(tmp_path / "alone1"), "DIR")
    assert_same_run(tmp_path / "alone1", tmp_path / "m1")  # the same last good checkpoint
    run(configs[0], tmp_path / "alone0")
    for name, value in arrays(tmp_path / "alone0").items():  # the others trained on, unharmed
        np.testing.assert_allclose(arrays(tmp_path / "m0")[name], value, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("lr, what", [(1e39, "weights"), (1e30, "validation loss")])
def test_a_member_whose_weights_become_unusable_stops_alone_as_a_run_alone(tmp_path, lr, what):
    """Its losses are finite (one mini-batch per epoch), its weights or validation loss are not."""
    from polydl.training import load_data

    one = dict(BASE, optimizer="sgd", normalizer="none", schedule="constant", dropout=0.0, weight_decay=None)
    one["batch_size"] = len(load_data(TrainConfig(**one)).y_train)
    configs = [TrainConfig(**one, lr=0.01, seed=0), TrainConfig(**one, lr=lr, seed=1), TrainConfig(**one, lr=0.02, seed=2)]
    got = run_population(configs, [tmp_path / f"m{k}" for k in range(3)])
    assert isinstance(got[1], TrainingDiverged) and not isinstance(got[0], TrainingDiverged)
    assert str(got[1]).startswith(f"the {what} became ")
    with pytest.raises(TrainingDiverged) as single:
        run(configs[1], tmp_path / "alone1")
    assert str(got[1]).replace(str(tmp_path / "m1"), "DIR") == str(single.value).replace(str(tmp_path / "alone1"), "DIR")
    assert_same_run(tmp_path / "alone1", tmp_path / "m1")  # the initial weights, the last good checkpoint
    assert meta(tmp_path / "m1")["epoch"] == 0
    assert got[0].epochs == got[2].epochs == 3 and meta(tmp_path / "m2")["epoch"] == 3
    run(configs[0], tmp_path / "alone0")
    for name, value in arrays(tmp_path / "alone0").items():  # the others trained on, unharmed
        np.testing.assert_allclose(arrays(tmp_path / "m0")[name], value, rtol=1e-6, atol=1e-7, err_msg=name)


def test_member_directories_are_ordinary_runs(tmp_path):
    configs = members("float32")
    outs = [tmp_path / f"m{k}" for k in range(3)]
    got = run_population(configs, outs)
    for k, out in enumerate(outs):
        summary = json.loads((out / "summary.json").read_text())
        res = evaluate(out)
        assert res["accuracy"] == summary["test_accuracy"] == got[k].accuracy
    run(configs[2], tmp_path / "alone2")
    resume(outs[2], {"epochs": 5})
    resume(tmp_path / "alone2", {"epochs": 5})
    for name, value in arrays(tmp_path / "alone2").items():
        np.testing.assert_allclose(arrays(outs[2])[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    assert len(metrics(outs[2])) == 5


@pytest.mark.parametrize("change, key", [({"hidden": [4]}, "hidden"), ({"batch_size": 16}, "batch_size"),
                                         ({"optimizer": "sgd"}, "optimizer"), ({"data_seed": 3}, "data_seed")])
def test_members_that_cannot_share_one_computation_are_named(change, key):
    configs = members()
    configs[2] = configs[2].replace(**change)
    with pytest.raises(ConfigError, match=rf"configurations 0 and 2 differ in {key} "):
        check_members(configs)


def test_half_dtypes_and_mismatched_directories_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="float32 or float64, not float16"):
        check_members([TrainConfig(**BASE, dtype="float16")] * 2)
    with pytest.raises(ConfigError, match="needs 3 different run directories"):
        run_population(members(), [tmp_path / "a", tmp_path / "a", tmp_path / "b"])
    run_population(members()[:2], [tmp_path / "x", tmp_path / "y"])
    with pytest.raises(ValueError, match="not member 0 of this population of 3"):
        run_population(members(), [tmp_path / "x", tmp_path / "y", tmp_path / "z"])


KILLED = """
import sys
from polydl.training import TrainConfig
from polydl.training.population import run_population
base = dict(dataset="digits", hidden=[16], epochs=12, batch_size=8, plot=False, dropout=0.1,
            schedule_unit="step", schedule="inverse_sqrt_step")
configs = [TrainConfig(**base, lr=lr, seed=s) for lr, s in ((0.01, 0), (0.003, 1), (0.02, 2))]
run_population(configs, [sys.argv[1] + f"/m{k}" for k in range(3)])
"""


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, None])
def test_kill_9_then_the_same_call_again_ends_bit_identical(tmp_path, delay):
    script = tmp_path / "pop.py"
    script.write_text(textwrap.dedent(KILLED))
    full = tmp_path / "full"
    assert subprocess.run([sys.executable, str(script), str(full)], capture_output=True).returncode == 0
    part = tmp_path / "part"
    p = subprocess.Popen([sys.executable, str(script), str(part)], stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:  # until epoch 2 is written
        if (part / "m2" / "metrics.jsonl").exists() and len(metrics(part / "m2")) >= 2:
            break
        time.sleep(0.01)
    # at a random moment of the next two epochs (however fast this machine trains), well before the last
    epoch_s = float(np.median([r["seconds"] for r in metrics(full / "m2", drop=())]))
    time.sleep(np.random.default_rng().uniform(0, 2 * epoch_s) if delay is None else delay)
    p.kill()
    p.communicate()
    assert p.returncode == -signal.SIGKILL, "the population finished before it could be killed"
    r = subprocess.run([sys.executable, str(script), str(part)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for k in range(3):
        assert_same_run(full / f"m{k}", part / f"m{k}")


def test_progress_shows_the_best_and_the_worst_member(tmp_path):
    import io

    from polydl.training.population import ProgressReporter

    out = io.StringIO()
    configs = [TrainConfig(**BASE, lr=lr, seed=k, optimizer="sgd", normalizer="none")
               for k, lr in enumerate((0.05, 1e9, 0.2))]
    run_population(configs, [tmp_path / f"m{k}" for k in range(3)], reporter=ProgressReporter(out))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("training a population of 3 mlp 2-8-6-2")
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert len(epochs) == 3 and all("val loss best" in ln and "worst" in ln for ln in epochs)
    assert any(ln.startswith("member 1 stopped: the loss became") for ln in lines)
    assert "2 members, 1 stopped" in epochs[-1]


def test_a_member_stopped_on_request_keeps_its_checkpoint_and_the_rest_resume(tmp_path):
    from polydl.training.population import MemberStopped

    configs = [c.replace(epochs=4) for c in members()]
    outs = [tmp_path / f"m{k}" for k in range(3)]

    class PruneOne(PopulationReporter):
        def epoch_end(self, records, epochs):
            self.epoch = next(iter(records.values()))["epoch"]
            if self.epoch == 2:
                os.kill(os.getpid(), signal.SIGINT)  # and stop the whole population after it

        def stop_members(self):
            return {0} if self.epoch == 1 else set()

    with pytest.raises(TrainingInterrupted):
        run_population(configs, outs, reporter=PruneOne())
    assert meta(outs[0])["epoch"] == 1 and meta(outs[1])["epoch"] == 2
    got = run_population(configs, outs)
    assert isinstance(got[0], MemberStopped) and got[0].epoch == 1
    assert got[1].epochs == got[2].epochs == 4
    run(configs[1], tmp_path / "alone1")
    for name, value in arrays(tmp_path / "alone1").items():
        np.testing.assert_allclose(arrays(outs[1])[name], value, rtol=0, atol=1e-10, err_msg=name)


class _FloatLoss:
    """A plugin loss that passes registration (a batch of 2) and returns a Python float in training."""

    @polydl.hookimpl
    def polydl_register_losses(self, register):
        from polydl import functional as F

        def make():
            return lambda scores, targets: F.softmax_cross_entropy(scores, targets) if len(targets) <= 2 else 2.5
        register("as_float", make)


def test_a_plugin_loss_that_returns_no_tensor_is_one_line_naming_it(tmp_path):
    from polydl.testing import registered_plugin
    from polydl.training import ComponentError

    with registered_plugin(_FloatLoss(), "floaty", distribution="polydl-floaty", version="1.1"):
        with pytest.raises(ComponentError) as info:
            run_population([TrainConfig(**BASE, loss="as_float", seed=k) for k in range(2)],
                           [tmp_path / "m0", tmp_path / "m1"])
    msg = str(info.value)
    assert msg.startswith("training stopped at epoch 1, step 1: loss 'as_float' of plugin 'floaty' (distribution "
                          "polydl-floaty 1.1) returned a Python float (2.5) for a population of 2, not a Tensor of "
                          "shape (2,)"), msg
    assert meta(tmp_path / "m0")["epoch"] == 0
