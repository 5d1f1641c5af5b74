"""Checkpoints at most every ``checkpoint_interval`` seconds: the interval honoured, and always a
checkpoint at the end, at the step where SIGTERM arrives, before a pruning decision, at an early
stop and where a member diverges (its last good one, held back); a kill -9 (a real process and
signal) after skipped checkpoints, then resume, ends bit-identical; a kill at any write of a
throttled population; the flag and the key's checks."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from run_helpers import InterruptAt, arrays, assert_same_run, meta, metrics, tiny

from polydl.training import ConfigError, Reporter, TrainConfig, TrainingDiverged, TrainingInterrupted, resume, run
from polydl.training import checkpoint as ck
from polydl.training.build import setup
from polydl.training.member_checkpoints import PENDING, PENDING_BEST
from polydl.training.population import PopulationReporter, run_population
from polydl.training.trainer import Trainer

LONG = 1e6  # seconds: no checkpoint but those a run must write
POP = dict(dataset="moons", dataset_params={"n_samples": 300}, hidden=[8, 6], epochs=5, batch_size=32, plot=False)


def _same_best(a, b):
    """The same best.npz: its arrays bit for bit, its epoch and monitor state."""
    with np.load(a / ck.BEST) as x, np.load(b / ck.BEST) as y:
        assert sorted(x.files) == sorted(y.files)
        for k in x.files:
            if k != "meta":
                assert np.array_equal(x[k], y[k]), k
        mx, my = json.loads(bytes(x["meta"])), json.loads(bytes(y["meta"]))
        assert (mx["epoch"], mx["step"], mx["monitor"]) == (my["epoch"], my["step"], my["monitor"])


def pop_configs(**kw):
    return [TrainConfig(**{**POP, **kw}, lr=lr, seed=k, dropout=0.1 * k) for k, lr in enumerate((0.01, 0.05, 0.002))]


def summary(out) -> dict:
    return json.loads((out / ck.SUMMARY).read_text())


def on_disk(out) -> int:
    """The epoch of the checkpoint in ``out`` now."""
    return meta(out)["epoch"]


class Seen(Reporter):
    """The epoch of the checkpoint on disk when each epoch's record is reported."""

    def __init__(self, out, may_stop=None):
        self.out, self.seen, self.may_stop = out, [], may_stop

    def epoch_end(self, record, epochs):
        self.seen.append(on_disk(self.out))


# ---------------------------------------------------------------------------- the interval
@pytest.mark.parametrize("interval, expected", [(LONG, [0, 0, 0, 0, 5]), (0, [1, 2, 3, 4, 5])])
def test_the_interval_is_honoured(tmp_path, interval, expected):
    spy = Seen(tmp_path / "run")
    run(tiny(epochs=5, checkpoint_interval=interval), tmp_path / "run", reporter=spy)
    assert spy.seen == expected
    assert len(metrics(tmp_path / "run")) == 5 and on_disk(tmp_path / "run") == 5


def test_a_throttled_run_ends_exactly_as_one_checkpointed_every_epoch(tmp_path):
    cfg = tiny(epochs=6, lr=0.05, restore_best=True, plateau_patience=1, min_delta=0.01)  # best: epoch 3, plateaus
    run(cfg.replace(checkpoint_interval=0), tmp_path / "every")
    r = run(cfg.replace(checkpoint_interval=LONG), tmp_path / "throttled")
    assert r.summary["best_epoch"] < 6 and any(x.get("event") == "plateau" for x in r.history)
    assert_same_run(tmp_path / "every", tmp_path / "throttled")
    _same_best(tmp_path / "every", tmp_path / "throttled")
    assert not list((tmp_path / "throttled").glob(".polydl-*-*"))  # nothing staged is left


def test_a_population_writes_its_checkpoints_at_the_interval(tmp_path):
    outs = [tmp_path / f"m{k}" for k in range(3)]

    class PopSeen(PopulationReporter):
        seen = []

        def epoch_end(self, records, epochs):
            self.seen.append([on_disk(o) for o in outs])

    run_population(pop_configs(checkpoint_interval=LONG), outs, reporter=PopSeen())
    assert PopSeen.seen == [[0] * 3] * 4 + [[5] * 3]
    run_population(pop_configs(checkpoint_interval=0), [tmp_path / f"e{k}" for k in range(3)])
    for k in range(3):
        assert_same_run(tmp_path / f"e{k}", outs[k])


# ---------------------------------------------------------------------------- always a checkpoint
def test_sigterm_writes_the_checkpoint_at_the_step_it_arrives(tmp_path):
    cfg = tiny(epochs=5, checkpoint_interval=LONG)
    run(cfg, tmp_path / "full")

    with pytest.raises(TrainingInterrupted) as info:
        run(cfg, tmp_path / "run", reporter=InterruptAt(17, signal.SIGTERM))
    assert info.value.signal == signal.SIGTERM and info.value.step == 17
    m = meta(tmp_path / "run")
    assert m["step"] == 17 and m["batch"] > 0  # mid-epoch, though the interval skipped every epoch before
    resume(tmp_path / "run")
    assert_same_run(tmp_path / "full", tmp_path / "run")


def test_a_reporter_that_may_prune_sees_every_epochs_checkpoint(tmp_path):
    spy = Seen(tmp_path / "run", may_stop=True)
    run(tiny(epochs=4, checkpoint_interval=LONG), tmp_path / "run", reporter=spy)
    assert spy.seen == [1, 2, 3, 4]


def test_a_pruned_trial_keeps_the_checkpoint_of_the_epoch_the_pruner_judged(tmp_path):
    from polydl.tune.executors.base import TrialTask, run_trial

    out = tmp_path / "trial"
    config = tiny(epochs=6, checkpoint_interval=LONG).to_dict()
    seen, answered = [], []

    def wait_decision(epoch):  # the owner judges the epoch: its checkpoint is on disk already
        seen.append(on_disk(out))
        answered.append(epoch)

    events = []
    final = run_trial(TrialTask(0, config, str(out), decide=True), events.append,
                      stop_requested=lambda: len(answered) >= 3, handle_signals=False, wait_decision=wait_decision)
    assert final.kind == "stopped" and final.epoch == 3
    assert seen == [1, 2, 3] and on_disk(out) == 3


def test_a_population_member_pruned_keeps_that_epochs_checkpoint(tmp_path):
    outs = [tmp_path / f"m{k}" for k in range(3)]

    class PruneOne(PopulationReporter):  # its own stop_members: it may prune, said or not
        epoch = 0

        def epoch_end(self, records, epochs):
            self.epoch = next(iter(records.values()))["epoch"]

        def stop_members(self):
            return {1} if self.epoch == 2 else set()

    got = run_population(pop_configs(checkpoint_interval=LONG), outs, reporter=PruneOne())
    assert got[1].epoch == 2 and on_disk(outs[1]) == 2 and on_disk(outs[0]) == 5


def _poisoned(cfg, out, at_epoch, row=None):
    """A trainer of ``cfg`` in ``out`` (its first files written) whose weights become NaN as epoch
    ``at_epoch`` starts (member ``row``'s only, in a population)."""
    trainers = []

    class Poison(Reporter):
        def epoch_start(self, epoch, epochs, n_batches, done):
            if epoch == at_epoch:
                w = next(iter(trainers[0].model.parameters())).data
                w[... if row is None else row] = np.nan

    class PopPoison(Poison, PopulationReporter):
        pass

    if isinstance(cfg, list):
        dev, data = setup(cfg[0])
        tr = Trainer.build_population(cfg, data, dev, out, PopPoison())
    else:
        dev, data = setup(cfg)
        tr = Trainer.build(cfg, data, dev, out, Poison())
    trainers.append(tr)
    for mb in tr.members:
        mb.out_dir.mkdir(parents=True)
        ck.write_metrics(mb.out_dir / ck.METRICS, [])
    tr.save()
    return tr


def _same_arrays(a, b):
    xa, xb = arrays(a), arrays(b)
    assert xa.keys() == xb.keys()
    for k in xa:
        assert np.array_equal(xa[k], xb[k]), k


def test_a_run_that_diverges_keeps_the_checkpoint_of_the_epoch_before(tmp_path):
    for interval in (LONG, 0):
        out = tmp_path / f"run{interval}"
        tr = _poisoned(tiny(epochs=6, checkpoint_interval=interval), out, at_epoch=4)
        with pytest.raises(TrainingDiverged) as info:
            tr.fit(handle_signals=False)
        assert "The last good checkpoint (epoch 3)" in str(info.value)
        assert on_disk(out) == 3 and len(metrics(out)) == 3
    _same_arrays(tmp_path / f"run{LONG}", tmp_path / "run0")


def test_a_member_that_diverges_keeps_its_last_good_checkpoint(tmp_path):
    for interval in (LONG, 0):
        outs = [tmp_path / f"i{interval}" / f"m{k}" for k in range(3)]
        tr = _poisoned(pop_configs(checkpoint_interval=interval), outs, at_epoch=3, row=1)
        got = tr.fit(handle_signals=False)
        assert isinstance(got[1], TrainingDiverged) and "The last good checkpoint (epoch 2)" in str(got[1])
        assert on_disk(outs[1]) == 2 and on_disk(outs[0]) == on_disk(outs[2]) == 5
    for k in range(3):
        _same_arrays(tmp_path / f"i{LONG}" / f"m{k}", tmp_path / "i0" / f"m{k}")


# ---------------------------------------------------------------------------- kill -9, real processes
ALONE = ["--dataset", "digits", "--hidden", "16", "--batch-size", "8", "--epochs", "12", "--dropout", "0.1",
         "--schedule", "inverse_sqrt_step", "--schedule-unit", "step", "--restore-best", "--no-plot"]
POPULATION = """
import sys
from polydl.training import TrainConfig
from polydl.training.population import run_population
base = dict(dataset="digits", hidden=[16], epochs=12, batch_size=8, plot=False, dropout=0.1, restore_best=True,
            schedule_unit="step", schedule="inverse_sqrt_step", checkpoint_interval=float(sys.argv[2]))
configs = [TrainConfig(**base, lr=lr, seed=s) for lr, s in ((0.01, 0), (0.003, 1), (0.02, 2))]
run_population(configs, [sys.argv[1] + f"/m{k}" for k in range(3)])
"""


def _start(kind, out, interval, script):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if kind == "alone":
        cmd = [sys.executable, "-m", "polydl_cli.main", "train", *ALONE, "--checkpoint-interval", str(interval),
               "--out", str(out), "--quiet"]
    else:
        cmd = [sys.executable, str(script), str(out), str(interval)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)




@pytest.mark.slow
@pytest.mark.parametrize("interval", [LONG, 0.4])
@pytest.mark.parametrize("kind", ["alone", "population"])
def test_kill_9_at_a_random_moment_of_a_throttled_run_then_resume_is_bit_identical(tmp_path, kind, interval):
    script = tmp_path / "pop.py"
    script.write_text(textwrap.dedent(POPULATION))
    dirs = (lambda out: [out]) if kind == "alone" else (lambda out: [out / f"m{k}" for k in range(3)])
    full = tmp_path / "full"
    p = _start(kind, full, 0, script)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    part = tmp_path / "part"
    p = _start(kind, part, interval, script)
    watched = dirs(part)[-1]
    deadline = time.time() + 120
    while time.time() < deadline:  # until epoch 2 is recorded
        if (watched / ck.METRICS).exists() and len(metrics(watched)) >= 2:
            break
        time.sleep(0.01)
    epoch_s = float(np.median([r["seconds"] for r in metrics(dirs(full)[-1], drop=())]))
    time.sleep(np.random.default_rng().uniform(0, 4 * epoch_s))
    p.kill()
    p.communicate()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    if interval == LONG:  # the epochs recorded since are lost with the process
        assert on_disk(watched) == 0 and len(metrics(watched)) >= 2
    if kind == "alone":
        r = subprocess.run([sys.executable, "-m", "polydl_cli.main", "train", "--resume", str(part), "--quiet"],
                           capture_output=True, text=True)
    else:
        r = subprocess.run([sys.executable, str(script), str(part), str(interval)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for a, b in zip(dirs(full), dirs(part), strict=True):
        assert_same_run(a, b)
        _same_best(a, b)
        assert summary(a)["best_epoch"] == summary(b)["best_epoch"]


# ---------------------------------------------------------------------------- a kill at any write
class Killed(BaseException):
    """A process killed at once: nothing after it runs, no handler sees it."""


def _killing(monkeypatch, at: int):
    """Kill the run at its ``at``-th step of writing a file (a temporary file written, one moved in
    place, a file written whole, a metrics line)."""
    count = [0]

    def wrap(fn):
        def write(*a, **kw):
            count[0] += 1
            if count[0] == at:
                raise Killed
            return fn(*a, **kw)
        return write

    for name in ("atomic_write", "append_metrics", "write_temporary", "place"):
        monkeypatch.setattr(ck, name, wrap(getattr(ck, name)))
    return count


@pytest.mark.slow
def test_a_throttled_population_killed_at_any_write_and_run_again_ends_as_the_uninterrupted_one(tmp_path, monkeypatch):
    configs = [c.replace(restore_best=True, checkpoint_interval=LONG, epochs=4, min_delta=0.01) for c in pop_configs()]
    full = [tmp_path / f"full{k}" for k in range(3)]
    with monkeypatch.context() as m:
        count = _killing(m, 0)
        run_population(configs, full)
    writes = count[0]
    assert summary(full[2])["best_epoch"] == 2  # a best.npz held back, staged with the last checkpoints
    for at in range(4, writes + 1):
        outs = [tmp_path / f"k{at}_{k}" for k in range(3)]
        with monkeypatch.context() as m:
            _killing(m, at)
            with pytest.raises(Killed):
                run_population(configs, outs)
        if not any((o / ck.CHECKPOINT).exists() or (o / PENDING).exists() for o in outs):
            continue  # killed before its first checkpoints: nothing to continue
        run_population(configs, outs)
        for a, b in zip(full, outs, strict=True):
            assert_same_run(a, b)
            _same_best(a, b)
            assert not (b / PENDING).exists() and not (b / PENDING_BEST).exists()


# ---------------------------------------------------------------------------- staged files on resume
def test_a_staged_best_is_put_in_place_only_where_the_checkpoint_names_its_epoch(tmp_path):
    out = tmp_path / "run"
    r = run(tiny(epochs=6, lr=0.05, restore_best=True, min_delta=0.01, checkpoint_interval=LONG), out)
    best_epoch = r.summary["best_epoch"]
    assert best_epoch < 6
    with np.load(out / ck.BEST) as z:
        kept = {k: np.array(z[k]) for k in z.files}
    os.replace(out / ck.BEST, out / PENDING_BEST)  # killed between the checkpoint and its best.npz
    (out / ck.SUMMARY).unlink()
    resume(out)
    assert not (out / PENDING_BEST).exists()
    with np.load(out / ck.BEST) as z:
        assert all(np.array_equal(z[k], kept[k]) for k in kept)
        assert json.loads(bytes(z["meta"]))["epoch"] == best_epoch
    # one the checkpoint does not name (a best epoch after it) is dropped
    r2 = run(tiny(epochs=6, lr=0.05, restore_best=True, min_delta=0.01, checkpoint_interval=LONG), tmp_path / "other")
    other = tmp_path / "other"
    meta_other = meta(other)
    staged = dict(meta_other, epoch=meta_other["monitor"]["best_epoch"] + 1)
    ck.save_checkpoint(other / PENDING_BEST, staged, arrays(other))
    (other / ck.SUMMARY).unlink()
    resume(other)
    assert not (other / PENDING_BEST).exists()
    with np.load(other / ck.BEST) as z:
        assert json.loads(bytes(z["meta"]))["epoch"] == r2.summary["best_epoch"]


def test_a_save_cut_short_with_a_stopped_member_is_finished(tmp_path):
    """Member 1 stopped before the save (its checkpoint is older): the save is complete without it."""
    configs = pop_configs(checkpoint_interval=0)
    configs[1] = configs[1].replace(lr=1e9, optimizer="sgd", normalizer="none")
    configs = [c.replace(optimizer="sgd", normalizer="none") for c in configs]
    outs = [tmp_path / f"m{k}" for k in range(3)]
    got = run_population(configs, outs)
    assert isinstance(got[1], TrainingDiverged) and on_disk(outs[1]) == 0
    os.replace(outs[0] / ck.CHECKPOINT, outs[0] / PENDING)  # member 0's not yet put in place
    again = run_population(configs, outs)
    assert not (outs[0] / PENDING).exists() and on_disk(outs[0]) == 5
    assert again[0].epochs == 5 and isinstance(again[1], TrainingDiverged)


# ---------------------------------------------------------------------------- the key and the flag
@pytest.mark.parametrize("value, message", [(-1, "checkpoint_interval must be >= 0, not -1"),
                                            (float("inf"), "checkpoint_interval must be a finite number"),
                                            ("5", "checkpoint_interval must be a finite number"),
                                            (True, "checkpoint_interval must be a finite number")])
def test_bad_intervals_are_one_line_errors(value, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig(checkpoint_interval=value).validate()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_interval_is_written_to_config_toml_and_read_back(tmp_path):
    run(tiny(epochs=1, checkpoint_interval=2.5), tmp_path / "run")
    assert "checkpoint_interval = 2.5" in (tmp_path / "run" / ck.CONFIG).read_text()
    assert ck.load_checkpoint(tmp_path / "run" / ck.CHECKPOINT)[0]["config"]["checkpoint_interval"] == 2.5


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "polydl_cli.main", *map(str, args)], capture_output=True, text=True)


def test_the_flag_sets_the_interval_and_a_bad_one_is_one_error_line(tmp_path):
    r = _cli("train", "--checkpoint-interval", "0.5", "--print-config")
    assert r.returncode == 0 and "checkpoint_interval = 0.5" in r.stdout
    for bad, fragment in (("-2", "checkpoint_interval must be >= 0"), ("soon", "--checkpoint-interval"),
                          ("nan", "checkpoint_interval must be a finite number")):
        r = _cli("train", "--checkpoint-interval", bad, "--out", tmp_path / "x")
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
        assert fragment in lines[0] and "Traceback" not in r.stderr
    (tmp_path / "c.toml").write_text('checkpoint_interval = "often"\n')
    r = _cli("train", "--config", tmp_path / "c.toml", "--out", tmp_path / "x")
    assert r.returncode == 2 and r.stderr == "Error: checkpoint_interval must be a finite number, not 'often'\n"
    assert not (tmp_path / "x").exists()


def test_resume_may_change_the_interval(tmp_path):
    out = tmp_path / "run"
    run(tiny(epochs=2, checkpoint_interval=LONG), out)
    r = _cli("train", "--resume", out, "--epochs", "3", "--checkpoint-interval", "0", "--quiet")
    assert r.returncode == 0, r.stderr
    assert meta(out)["config"]["checkpoint_interval"] == 0 and meta(out)["epoch"] == 3
