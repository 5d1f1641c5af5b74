"""The ``local`` executor's worker processes (BLAS threads, streaming, stop, a killed worker,
Ctrl-C, dying with their owner) and the sizes of this machine they are made for."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from tune_helpers import assert_trials_wait_for_the_owner, tiny

from polydl.training import checkpoint as ckpt
from polydl.tune.executors.base import BLAS_VARIABLES, TrialTask
from polydl.tune.executors.local import LocalExecutor
from polydl.tune.executors.resources import available_cpus, blas_threads, default_workers


def task(tmp_path, number=0, resume=False, **kw):
    cfg = tiny(**kw).to_dict()
    return TrialTask(number, cfg, str(tmp_path / f"{number:04d}"), resume=resume)


def test_sizes():
    cpus = available_cpus()
    assert 1 <= default_workers() <= cpus and default_workers("cuda") == 1
    assert blas_threads(1) == cpus and blas_threads(cpus * 4) == 1
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        LocalExecutor(workers=0)


def drain(ex, until, timeout=120):
    """Events until ``until(events)`` holds."""
    events, deadline = [], time.monotonic() + timeout
    while not until(events):
        assert time.monotonic() < deadline, events
        events += ex.poll(0.2)
    return events


def finals(events):
    return {e.number: e for e in events if e.final}


LONG = {"dataset": "digits", "dataset_params": {}, "hidden": [32], "batch_size": 4, "epochs": 30}


@pytest.mark.slow
def test_local_workers_train_stream_and_stop(tmp_path):
    with LocalExecutor(workers=2) as ex:
        info = ex.worker_info()
        assert len({i["pid"] for i in info}) == 2
        for i in info:
            assert i["threads"] == {v: str(max(1, available_cpus() // 2)) for v in BLAS_VARIABLES}
        ex.submit(task(tmp_path, 0, epochs=3))
        ex.submit(task(tmp_path, 1, **LONG))
        assert ex.free() == 0
        events = drain(ex, lambda ev: 0 in finals(ev) and any(e.number == 1 and e.kind == "epoch" for e in ev))
        assert finals(events)[0].kind == "done"
        assert [e.epoch for e in events if e.number == 0 and e.kind == "epoch"] == [1, 2, 3]
        ex.stop(1)
        events = drain(ex, lambda ev: 1 in finals(ev))
        stopped = finals(events)[1]
        assert stopped.kind == "stopped" and 1 <= stopped.epoch < 30 and ex.free() == 2


@pytest.mark.slow
def test_a_trial_that_decides_waits_for_the_owner_after_each_epoch(tmp_path):
    with LocalExecutor(workers=1) as ex:
        t = TrialTask(0, tiny(epochs=4).to_dict(), str(tmp_path / "0000"), decide=True)
        assert_trials_wait_for_the_owner(ex, [t], epochs=4)
        ex.submit(TrialTask(1, tiny(epochs=2).to_dict(), str(tmp_path / "0001")))  # without decide: no waiting
        assert finals(drain(ex, lambda ev: 1 in finals(ev), timeout=60))[1].kind == "done"


@pytest.mark.slow
def test_a_killed_worker_fails_its_trial_and_is_replaced(tmp_path):
    with LocalExecutor(workers=1) as ex:
        pid = ex.worker_info()[0]["pid"]
        ex.submit(task(tmp_path, 0, **LONG))
        drain(ex, lambda ev: any(e.kind == "epoch" for e in ev))
        os.kill(pid, signal.SIGKILL)
        failed = finals(drain(ex, lambda ev: 0 in finals(ev)))[0]
        assert failed.kind == "failed" and f"pid {pid}" in failed.message and "exit code -9" in failed.message
        ex.submit(task(tmp_path, 1))
        assert finals(drain(ex, lambda ev: 1 in finals(ev)))[1].kind == "done"


@pytest.mark.slow
def test_closing_with_interrupt_saves_the_running_trials(tmp_path):
    ex = LocalExecutor(workers=1)
    ex.start()
    ex.submit(task(tmp_path, 0, **LONG))
    drain(ex, lambda ev: any(e.kind == "epoch" for e in ev))
    events = ex.close(interrupt=True)
    interrupted = finals(events)[0]
    assert interrupted.kind == "interrupted" and "checkpoint is saved" in interrupted.message
    meta = json.loads(bytes(np.load(tmp_path / "0000" / ckpt.CHECKPOINT)["meta"]))
    assert meta["epoch"] >= 1 and meta["epoch"] < 30


OWNER = """
import json, sys, time
from polydl.tune.executors.local import LocalExecutor
from polydl.tune.executors.base import TrialTask
ex = LocalExecutor(workers=1, owner_lock=sys.argv[2])
ex.start()
ex.submit(TrialTask.from_dict(json.loads(sys.argv[1])))
print(ex.worker_info()[0]["pid"], flush=True)
while True:
    for e in ex.poll(0.5):
        print(e.kind, flush=True)
"""


@pytest.mark.slow
def test_workers_die_with_their_owner_and_free_its_lock(tmp_path):
    from polydl.tune.owners import lock_alive

    lock = tmp_path / "owner.lock"
    lock.touch()
    t = task(tmp_path, 0, **LONG)
    owner = subprocess.Popen([sys.executable, "-c", OWNER, json.dumps(t.to_dict()), str(lock)], stdout=subprocess.PIPE,
                             text=True)
    worker = int(owner.stdout.readline())
    assert owner.stdout.readline().strip() == "epoch"        # it trains, holding the owner's lock
    assert lock_alive(lock) is True
    owner.kill()
    owner.wait()
    owner.stdout.close()
    deadline = time.monotonic() + 10       # (the lock is free once the worker's last thread has exited)
    while time.monotonic() < deadline and (_alive(worker) or lock_alive(lock)):
        time.sleep(0.05)
    assert not _alive(worker) and lock_alive(lock) is False


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
