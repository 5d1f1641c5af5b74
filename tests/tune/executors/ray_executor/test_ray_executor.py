"""The ``ray`` executor against a real local Ray instance that this module starts in the test
process (``ray.init(num_cpus=2)``, shared by the tests): epochs streamed while a trial trains,
stop and interrupt reaching the task, the owner's lock held by tasks that see OUT, run
directories shipped back, workers killed mid-trial, resources the cluster lacks, and ``tune()``
through Ray writing the study the local executor writes."""
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from run_helpers import assert_same_run
from tune_helpers import Recorder, assert_trials_wait_for_the_owner, load, optuna, tiny

import polydl
from polydl import training
from polydl.training import checkpoint as ckpt
from polydl.tune.executors.base import TrialTask, run_trial
from polydl.tune.executors.ray.dirs import scratch_root
from polydl.tune.executors.ray.errors import RayExecutorError, check_cpus, check_gpus
from polydl.tune.executors.ray.executor import RayExecutor
from polydl.tune.space import Space, default_space
from polydl.tune.study import TuneSettings, tune

TrialState = optuna.trial.TrialState
#: trials of a second or so: 2000 moons in mini-batches of 8, 0.1 s an epoch
SLOWER = {"dataset_params": {"n_samples": 6000}, "batch_size": 8}  # epochs long enough for events to arrive mid-run


def test_resources_per_trial_are_checked():
    assert check_gpus(0.25) == 0.25 and check_gpus(1) == 1.0 and check_gpus(2) == 2.0
    for bad in (0, -0.5, 1.5, 2.5, float("nan"), True, "1"):
        with pytest.raises(RayExecutorError, match=r"--gpus-per-trial must be a fraction in \(0, 1\]"):
            check_gpus(bad)
    assert check_cpus(0.5) == 0.5 and check_cpus(3) == 3.0
    for bad in (0, -1, float("inf"), None):
        with pytest.raises(RayExecutorError, match="--cpus-per-trial must be a number > 0"):
            check_cpus(bad)
    assert RayExecutor(device="cuda").gpus == 1.0 and RayExecutor().gpus == 0.0
    assert RayExecutor(cpus_per_trial=2.5).threads == 2 and RayExecutor(gpus_per_trial=0.25).each == "1 CPU and 0.25 GPU"
    with pytest.raises(RayExecutorError, match="--address must be HOST:PORT"):
        RayExecutor(address="head:port")
    with pytest.raises(RayExecutorError, match="--workers must be >= 1"):
        RayExecutor(workers=0)


def test_an_address_that_does_not_answer_as_a_ray_cluster(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))          # bound, not listening: connection refused
    with pytest.raises(RayExecutorError, match=r"--address 127\.0\.0\.1:\d+: no Ray cluster answers there"):
        RayExecutor(address=f"127.0.0.1:{closed.getsockname()[1]}").prepare(tmp_path / "s")
    closed.close()
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen()                          # accepts, never speaks Ray: a connection that would hang
    t0 = time.monotonic()
    with pytest.raises(RayExecutorError, match=r"does not answer as a Ray cluster within 3 s"):
        RayExecutor(address=f"127.0.0.1:{mute.getsockname()[1]}", connect_timeout=3).prepare(tmp_path / "s")
    assert time.monotonic() - t0 < 6
    mute.close()
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------------------- on a local instance
@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (its files in a short temporary directory)."""
    ray = pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="polydl-test-ray-")
    t0 = time.monotonic()
    try:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 << 20, log_to_driver=False,
                 logging_level=logging.ERROR, _temp_dir=temp)
        print(f"ray.init(num_cpus=2): {time.monotonic() - t0:.1f} s")
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def executor(local_ray, tmp_path):
    made = []

    def make(**kw):
        ex = RayExecutor(**kw)
        assert ex.prepare(tmp_path)[0].startswith("Ray: the Ray instance this process is connected to, 1 node with "
                                                  "2 CPUs and ")
        ex.start()
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.close()


def task(tmp_path, number=0, **kw):
    return TrialTask(number, tiny(**kw).to_dict(), str(tmp_path / "trials" / f"{number:04d}"))


def events_until_final(ex, numbers, on_event=lambda ev: None, timeout=120):
    """Poll ``ex`` until every trial in ``numbers`` has its final event; the events by trial."""
    out = {n: [] for n in numbers}
    deadline = time.monotonic() + timeout
    while not all(out[n] and out[n][-1].final for n in numbers):
        assert time.monotonic() < deadline, out
        for ev in ex.poll(0.2):
            out[ev.number].append(ev)
            on_event(ev)
    return out


def locked(path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@pytest.mark.slow
def test_epochs_stream_back_while_the_task_trains_in_OUT_and_holds_the_owner_lock(executor, tmp_path):
    lock = tmp_path / "owner.lock"
    lock.touch()
    ex = executor(owner_lock=lock)
    assert ex.free() == 2
    t = task(tmp_path, 0, epochs=10, **SLOWER)   # long enough that epoch 1's event arrives while it trains
    ex.submit(t)
    assert ex.free() == 1
    seen = []

    def on_event(ev):
        if ev.kind == "epoch" and ev.epoch == 1:   # the trial is still training: its files grow as it goes
            seen.append((ckpt.SUMMARY in os.listdir(t.run_dir), locked(lock)))

    events = events_until_final(ex, [0], on_event)[0]
    assert [e.kind for e in events] == ["epoch"] * 10 + ["done"] and seen == [(False, True)]
    assert not locked(lock) and ex.free() == 2
    run_dir = tmp_path / "trials" / "0000"
    lines = [json.loads(x) for x in (run_dir / ckpt.METRICS).read_text().splitlines()]
    assert [e.record for e in events[:10]] == lines and events[-1].record == json.loads((run_dir / ckpt.SUMMARY).read_text())
    assert all(e.extra["shared"] and e.extra["host"] == socket.gethostname() and e.extra["pid"] != os.getpid()
               and e.extra["gpus"] == [] for e in events)
    assert training.load_toml(run_dir / ckpt.CONFIG)["device"] == "cpu"


@pytest.mark.slow
def test_stop_reaches_the_task_and_two_trials_train_at_once(executor, tmp_path):
    ex = executor()
    for n in (0, 1):
        ex.submit(task(tmp_path, n, epochs=8, **SLOWER))
    assert ex.free() == 0

    def on_event(ev):
        if ev.kind == "epoch" and ev.number == 1 and ev.epoch == 1:
            ex.stop(1)

    events = events_until_final(ex, [0, 1], on_event)
    assert events[0][-1].kind == "done" and events[0][-1].epoch == 8
    stopped = events[1][-1]
    assert stopped.kind == "stopped" and 1 <= stopped.epoch < 8
    assert len((tmp_path / "trials" / "0001" / ckpt.METRICS).read_text().splitlines()) == stopped.epoch
    assert events[0][0].extra["pid"] != events[1][0].extra["pid"]


@pytest.mark.slow
def test_shipped_run_directories_are_written_by_the_owner_and_continue_from_its_copy(executor, tmp_path):
    ex = executor(ship=True)
    t = task(tmp_path, 0, epochs=6, **SLOWER)
    ex.submit(t)
    early = []

    def on_event(ev):
        if ev.kind == "epoch" and ev.epoch == 2:
            early.append(os.path.exists(t.run_dir))
            ex.stop(0)

    events = events_until_final(ex, [0], on_event)[0]
    assert early == [False] and events[-1].kind == "stopped" and not events[-1].extra["shared"]
    run_dir = tmp_path / "trials" / "0000"
    stopped_at = events[-1].epoch
    assert sorted(os.listdir(run_dir)) == [".polydl-run", ckpt.CHECKPOINT, ckpt.CONFIG, ckpt.METRICS]
    assert training.load_toml(run_dir / ckpt.CONFIG)["out"] == str(run_dir)      # not the worker's scratch
    first = (run_dir / ckpt.METRICS).read_text().splitlines()
    assert len(first) == stopped_at
    assert not list((tmp_path / "trials").glob(".polydl-*")) and not os.path.exists(
        scratch_root() / f"{ex.token}-0000")
    ex.submit(TrialTask(0, t.config, t.run_dir, resume=True))    # the owner's copy travels to the task
    events = events_until_final(ex, [0], lambda ev: None)[0]
    assert events[-1].kind == "done" and [e.epoch for e in events[:-1]] == list(range(stopped_at + 1, 7))
    assert (run_dir / ckpt.METRICS).read_text().splitlines()[:stopped_at] == first
    assert events[-1].record == json.loads((run_dir / ckpt.SUMMARY).read_text())
    assert training.evaluate(run_dir)["loss"] == pytest.approx(events[-1].record["test_loss"], rel=1e-6)
    ref = tmp_path / "ref"
    run_trial(TrialTask(9, tiny(epochs=6, **SLOWER).to_dict(), str(ref)), lambda ev: None, handle_signals=False)
    assert_same_run(ref, run_dir)


@pytest.mark.slow
def test_a_trial_that_decides_waits_for_the_owner_through_the_hub(executor, tmp_path):
    ex = executor()
    tasks = [TrialTask(n, tiny(epochs=3).to_dict(), str(tmp_path / "trials" / f"{n:04d}"), decide=True)
             for n in (0, 1)]
    assert_trials_wait_for_the_owner(ex, tasks, epochs=3)


@pytest.mark.slow
@pytest.mark.parametrize("ship", [False, True], ids=["shared", "shipped"])
def test_a_killed_worker_is_run_again_from_its_checkpoint(executor, tmp_path, ship):
    ex = executor(ship=ship)
    ex.submit(task(tmp_path, 0, epochs=6, checkpoint_interval=0, **SLOWER))  # a checkpoint at every epoch
    killed = []

    def on_event(ev):
        if ev.kind == "epoch" and ev.epoch == 2 and not killed:
            killed.append(ev.extra["pid"])
            os.kill(ev.extra["pid"], signal.SIGKILL)

    events = events_until_final(ex, [0], on_event)[0]
    notes = [e.message for e in events if e.kind == "note"]
    assert len(notes) == 1 and notes[0].startswith("trial 0: its Ray worker died (WorkerCrashedError") and \
        "(attempt 2 of 3)" in notes[0]
    retried = next(i for i, e in enumerate(events) if e.kind == "note")
    after = [e for e in events[retried:] if e.kind == "epoch"]
    # not from epoch 1: from the last checkpoint the worker wrote before the kill reached it (the event that
    # triggered the kill streams back while the worker goes on, so that may be epoch 2, 3, 4 or later)
    assert events[-1].kind == "done" and after[0].epoch >= 3 and after[-1].epoch == 6
    assert after[0].extra["pid"] != killed[0]
    ref = tmp_path / "ref"
    run_trial(TrialTask(9, tiny(epochs=6, checkpoint_interval=0, **SLOWER).to_dict(), str(ref)), lambda ev: None,
              handle_signals=False)
    assert_same_run(ref, tmp_path / "trials" / "0000")


@pytest.mark.slow
def test_a_worker_that_dies_more_often_than_its_retries_fails_the_trial(executor, tmp_path):
    ex = executor(retries=0)
    ex.submit(task(tmp_path, 0, epochs=6, **SLOWER))

    def on_event(ev):
        if ev.kind == "epoch" and ev.epoch == 1:
            os.kill(ev.extra["pid"], signal.SIGKILL)

    final = events_until_final(ex, [0], on_event)[0][-1]
    assert final.kind == "failed" and final.message.startswith("its Ray worker died (WorkerCrashedError")
    assert ex.free() == 2 and "\n" not in final.message


@pytest.mark.slow
def test_closing_with_interrupt_saves_the_checkpoint(local_ray, tmp_path):
    ex = RayExecutor()
    ex.prepare(tmp_path)
    ex.start()
    t = task(tmp_path, 0, epochs=8, **SLOWER)
    ex.submit(t)
    deadline = time.monotonic() + 120
    while not any(ev.kind == "epoch" for ev in ex.poll(0.2)):
        assert time.monotonic() < deadline
    closing = ex.close(interrupt=True)
    final = [e for e in closing if e.final]
    assert len(final) == 1 and final[0].kind == "interrupted" and "the checkpoint is saved" in final[0].message
    assert ckpt.load_checkpoint(tmp_path / "trials" / "0000" / ckpt.CHECKPOINT)[0]["epoch"] == final[0].epoch >= 1
    assert not list((tmp_path / "ray").glob("visible-*"))
    assert local_ray.is_initialized()     # a connection the executor did not make stays open
    done = run_trial(TrialTask(0, t.config, t.run_dir, resume=True), lambda ev: None, handle_signals=False)
    assert done.kind == "done" and done.epoch == 8


@pytest.mark.slow
def test_resources_the_cluster_lacks_are_refused_before_anything_runs(local_ray, tmp_path):
    if local_ray.cluster_resources().get("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(RayExecutorError, match=r"--gpus-per-trial 0\.25: the Ray cluster has no GPUs; leave out "):
        RayExecutor(gpus_per_trial=0.25).prepare(tmp_path / "s")
    with pytest.raises(RayExecutorError, match="no node of the Ray cluster has 3 CPUs for one trial"):
        RayExecutor(cpus_per_trial=3).prepare(tmp_path / "s")
    assert not (tmp_path / "s").exists() and local_ray.is_initialized()
    assert RayExecutor(workers=5).prepare(tmp_path / "s") and RayExecutor(cpus_per_trial=0.5).prepare(tmp_path)


@pytest.mark.slow
@pytest.mark.cuda
def test_four_trials_share_one_gpu_and_train_on_it(local_ray, executor, tmp_path):
    if not local_ray.cluster_resources().get("GPU") or "cuda" not in polydl.testing.devices():
        pytest.skip("needs a GPU that Ray and CuPy see")
    ex = executor(gpus_per_trial=0.25, cpus_per_trial=0.5)
    assert ex.slots >= 4 and ex.each == "0.5 CPUs and 0.25 GPU"
    for n in range(4):
        ex.submit(task(tmp_path, n, epochs=2))
    events = events_until_final(ex, range(4))
    for n in range(4):
        assert events[n][-1].kind == "done" and events[n][-1].extra["gpus"], events[n][-1]
        assert training.load_toml(tmp_path / "trials" / f"{n:04d}" / ckpt.CONFIG)["device"] == "cuda"


# ---------------------------------------------------------------------------- tune() through Ray
def search(out, executor, **kw):
    base = kw.pop("base", tiny())
    space = kw.pop("space", None) or default_space(2, base, train_size=140)[0]
    rec = Recorder()
    result = tune(TuneSettings(base=base, space=space, out=out, executor=executor, **kw), reporter=rec,
                  handle_signals=False)
    return result, rec


@pytest.mark.slow
def test_a_search_through_ray_writes_the_study_of_the_local_executor(local_ray, tmp_path):
    result, rec = search(tmp_path / "r", "ray", trials=6, rounds=2, seed=5)
    _, _ = search(tmp_path / "l", "local", trials=6, rounds=2, seed=5, workers=2)
    assert rec.info["executor"] == "ray" and rec.info["workers"] == 2 and rec.info["each"] == "1 CPU"
    assert rec.notes[0].startswith("Ray: the Ray instance this process is connected to")
    ray_study, local_study = load(tmp_path / "r"), load(tmp_path / "l")
    assert [t.state for t in ray_study.trials] == [TrialState.COMPLETE] * 6
    for a, b in zip(ray_study.trials, local_study.trials, strict=True):
        assert (a.number, a.params, a.value, a.intermediate_values) == (b.number, b.params, b.value,
                                                                        b.intermediate_values)
        assert a.user_attrs["round"] == b.user_attrs["round"]
        assert {**a.user_attrs["config"], "out": None} == {**b.user_attrs["config"], "out": None}
        assert (tmp_path / "r" / "trials" / f"{a.number:04d}" / ckpt.SUMMARY).is_file()
    assert ray_study.user_attrs["boxes"] == local_study.user_attrs["boxes"]
    assert result.counts == {"complete": 6, "pruned": 0, "failed": 0, "running": 0}
    assert list((tmp_path / "r" / "ray").iterdir()) == []       # the token file is gone with the executor


@pytest.mark.slow
def test_median_pruning_through_ray(local_ray, tmp_path):
    space = Space.from_dict({"lr": {"distribution": "choice", "choices": [0.1, 1e-6]}})
    base = tiny(epochs=3, **SLOWER)
    result, rec = search(tmp_path / "p", "ray", space=space, base=base, trials=10, workers=1, prune="median", seed=2)
    study = load(tmp_path / "p")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.params["lr"] == 1e-6 for t in pruned)
    for t in pruned:
        assert len(t.intermediate_values) < 3 and t.value == t.intermediate_values[max(t.intermediate_values)]
    assert {i.number for i in rec.trials if i.state == "pruned"} == {t.number for t in pruned}
    assert result.counts["pruned"] == len(pruned) and result.counts["complete"] == 10 - len(pruned)
    local, _ = search(tmp_path / "l", "local", space=space, base=base, trials=10, workers=1, prune="median", seed=2)
    assert [(t.state, sorted(t.intermediate_values)) for t in load(tmp_path / "l").trials] == \
        [(t.state, sorted(t.intermediate_values)) for t in study.trials]    # the same study as the local executor's


@pytest.mark.slow
def test_watch_follows_a_trial_whose_run_directory_comes_back_at_the_end(local_ray, tmp_path):
    from polydl.tune import watch

    out = tmp_path / "w"
    space = Space.from_dict({"lr": {"distribution": "log_uniform", "low": 0.01, "high": 0.1}})
    settings = TuneSettings(base=tiny(epochs=12, **SLOWER), space=space, trials=1, out=out, executor="ray",
                            executor_options={"ship": True})
    done = []
    thread = threading.Thread(target=lambda: done.append(tune(settings, handle_signals=False)))
    thread.start()
    seen = None
    deadline = time.monotonic() + 120
    while thread.is_alive() and seen is None and time.monotonic() < deadline:
        if (out / "study.json").is_file():
            rows = [r for r in watch.StudyWatch(out).read().rows if r.status == "running" and r.epoch]
            if rows and not (out / "trials" / "0000").exists():
                seen = rows[0]
        time.sleep(0.05)
    thread.join(120)
    assert seen is not None and 1 <= seen.epoch < 12 and seen.value > 0
    assert done[0].counts["complete"] == 1 and (out / "trials" / "0000" / ckpt.SUMMARY).is_file()
    assert watch.StudyWatch(out).read().status == "finished"


# ---------------------------------------------------------------------------- populations as Ray tasks
@pytest.mark.slow
@pytest.mark.parametrize("ship", [False, True], ids=["shared", "shipped"])
def test_a_population_group_is_one_ray_task_and_each_member_is_its_trial_alone(executor, tmp_path, ship):
    ex = executor(ship=ship, population_size=3)
    assert ex.slots == 6 and ex.tasks_at_once == 2   # two groups of up to 3 on 2 CPUs
    tasks = [TrialTask(n, tiny(epochs=3, lr=lr).to_dict(), str(tmp_path / "trials" / f"{n:04d}"))
             for n, lr in enumerate((0.01, 0.03, 0.1))]
    for t in tasks:
        ex.submit(t)
    assert ex.free() == 3
    events = events_until_final(ex, [0, 1, 2])
    pids = {e.extra["pid"] for n in events for e in events[n]}
    assert len(pids) == 1 and pids != {os.getpid()}          # the three trained in one Ray task
    for t in tasks:
        evs = events[t.number]
        assert [e.kind for e in evs] == ["epoch"] * 3 + ["done"] and evs[-1].extra["shared"] is not ship
        ref = tmp_path / f"alone{t.number}"
        run_trial(TrialTask(9, t.config, str(ref)), lambda ev: None, handle_signals=False)
        assert_same_run(ref, Path(t.run_dir))       # the member is the trial trained alone
        assert evs[-1].record == json.loads((Path(t.run_dir) / ckpt.SUMMARY).read_text())
    assert ex.free() == 6


@pytest.mark.slow
def test_members_of_a_ray_population_wait_for_the_owner_and_one_stops_alone(executor, tmp_path):
    ex = executor(population_size=2)
    tasks = [TrialTask(n, tiny(epochs=3, lr=lr).to_dict(), str(tmp_path / "trials" / f"{n:04d}"), decide=True)
             for n, lr in ((0, 0.01), (1, 0.05))]
    events = assert_trials_wait_for_the_owner(ex, tasks, epochs=3)
    assert len({e.extra["pid"] for n in events for e in events[n] if e.kind == "epoch"}) == 1


@pytest.mark.slow
def test_a_search_of_ray_populations_is_the_local_executor_s_study(local_ray, tmp_path):
    space = Space.from_dict({"lr": {"distribution": "log_uniform", "low": 1e-3, "high": 0.3}})
    result, rec = search(tmp_path / "r", "ray", space=space, trials=6, seed=4,
                         executor_options={"population_size": 4})
    search(tmp_path / "l", "local", space=space, trials=6, seed=4, workers=1)
    assert any("populations of up to 4 trials at once" in n for n in rec.notes), rec.notes
    ray_study, local_study = load(tmp_path / "r"), load(tmp_path / "l")
    assert result.counts == {"complete": 6, "pruned": 0, "failed": 0, "running": 0}
    for a, b in zip(ray_study.trials, local_study.trials, strict=True):
        assert (a.number, a.params, a.intermediate_values) == (b.number, b.params, b.intermediate_values)
        assert a.value == pytest.approx(b.value, rel=1e-6)


@pytest.mark.slow
def test_a_killed_population_task_is_run_again_and_its_members_continue_alone(executor, tmp_path):
    ex = executor(population_size=2)
    tasks = [TrialTask(n, tiny(epochs=6, lr=lr, **SLOWER).to_dict(), str(tmp_path / "trials" / f"{n:04d}"))
             for n, lr in ((0, 0.01), (1, 0.05))]
    for t in tasks:
        ex.submit(t)
    killed = []

    def on_event(ev):
        if ev.kind == "epoch" and ev.epoch == 2 and not killed:
            killed.append(ev.extra["pid"])
            os.kill(ev.extra["pid"], signal.SIGKILL)

    events = events_until_final(ex, [0, 1], on_event)
    for t in tasks:
        evs = events[t.number]
        notes = [e.message for e in evs if e.kind == "note"]
        assert len(notes) == 1 and notes[0].startswith(f"trial {t.number}: its Ray worker died") and evs[-1].kind == "done"
        ref = tmp_path / f"alone{t.number}"
        run_trial(TrialTask(9, t.config, str(ref)), lambda ev: None, handle_signals=False)
        assert_same_run(ref, Path(t.run_dir))


def test_population_size_for_ray_is_checked():
    with pytest.raises(RayExecutorError, match="--population-size must be a whole number >= 1, not 0"):
        RayExecutor(population_size=0)


def test_scratch_directories_are_the_users_own(tmp_path, monkeypatch):
    """``$TMPDIR/polydl-ray-UID``, made 0700: one that is a link, or open to others, is refused, so
    that nothing of another user's is deleted through it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = scratch_root()
    assert root == tmp_path / f"polydl-ray-{os.getuid()}" and root.stat().st_mode & 0o777 == 0o700
    assert scratch_root() == root
    root.rmdir()
    (tmp_path / "victim").mkdir()
    os.symlink(tmp_path / "victim", root)
    with pytest.raises(RayExecutorError, match="is not this user's own directory"):
        scratch_root()
    os.unlink(root)
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    with pytest.raises(RayExecutorError, match="writable by others"):
        scratch_root()


def test_a_shipped_run_directory_is_written_only_where_it_belongs(tmp_path):
    from polydl.tune.executors.ray.shipping import install_run

    target = tmp_path / "s" / "trials" / "0000"
    for bad in ("../escape", "/abs", "..", "a/b"):
        with pytest.raises(RayExecutorError, match="not a file name of a run directory"):
            install_run(target, {bad: b"x"})
    assert not (tmp_path / "escape").exists() and not target.exists()
    (tmp_path / "elsewhere").mkdir()
    target.parent.mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere", target)
    with pytest.raises(RayExecutorError, match="is a link"):
        install_run(target, {"summary.json": b"{}"})
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_run_files_and_the_ray_folder_follow_no_link(tmp_path):
    from polydl.tune.executors.ray.dirs import close_to_others
    from polydl.tune.executors.ray.shipping import run_files

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text("{}")
    (tmp_path / "secret").write_text("not the run's")
    os.symlink(tmp_path / "secret", run_dir / "metrics.jsonl")
    os.mkfifo(run_dir / "curves.png")                  # no hang
    assert run_files(run_dir) == {"summary.json": b"{}"}
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    outside.chmod(0o700)
    (tmp_path / "ray").mkdir()
    os.symlink(outside, tmp_path / "ray" / "session_link")
    close_to_others(tmp_path / "ray")
    assert outside.stat().st_mode & 0o777 == 0o700        # what a link leads to keeps its mode
