"""``polydl tune --executor ray`` from the command line: against a cluster that this module
starts as a separate process (``ray start --head --block``, stopped by its process id at the
end), on a local instance that the command starts itself, and the bad input that changes
nothing (an address that does not answer, GPUs the cluster lacks, fractions out of range, Ray
not installed)."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from tune_helpers import LONGER, TINY, cli, load, one_line_error, optuna, popen, snapshot, wait_for_lines

from polydl.training import checkpoint as ckpt

TrialState = optuna.trial.TrialState


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head`` as a process of its own, two CPUs, no dashboard: its address."""
    pytest.importorskip("ray")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="polydl-test-head-")
    ray_cli = Path(sys.executable).with_name("ray")
    t0 = time.monotonic()
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                             "--object-store-memory=100000000",
                             f"--temp-dir={temp}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    started = threading.Event()
    lines = []

    def read():
        for line in head.stdout:
            lines.append(line)
            if "Ray runtime started" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert started.wait(120), "".join(lines)
        print(f"ray start --head: {time.monotonic() - t0:.1f} s")
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)      # --block: ray start stops the processes it started, and exits
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        subprocess.run(["rm", "-rf", temp])


def evaluated(run_dir):
    """``polydl evaluate`` on a trial's run directory gives the test loss of its summary."""
    r = cli("evaluate", run_dir)
    assert r.returncode == 0, r.stderr
    loss = float(re.search(r"test split \(\d+ of \d+ samples\): loss ([\d.]+)", r.stdout).group(1))
    assert loss == pytest.approx(json.loads((run_dir / ckpt.SUMMARY).read_text())["test_loss"], abs=1e-4)


def same_study(out, reference):
    study, ref = load(out), load(reference, "s")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert [t.params for t in study.trials] == [t.params for t in ref.trials]
    assert [t.value for t in study.trials] == [t.value for t in ref.trials]     # bit for bit
    assert [t.intermediate_values for t in study.trials] == [t.intermediate_values for t in ref.trials]


@pytest.mark.slow
def test_a_search_on_a_cluster_joined_by_address(cluster, reference, tmp_path):
    out = tmp_path / "s"
    r = cli("tune", *LONGER, "--trials", 3, "--executor", "ray", "--address", cluster, "--out", out)
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^note: Ray: the Ray cluster at {cluster}, 1 node with 2 CPUs and 0 GPUs, ready in [\d.]+ s; 2 "
                     r"trials at once, 1 CPU each$", r.stderr, re.M), r.stderr
    assert "with 2 ray workers (1 CPU each)" in r.stdout and "study 's': 3 trials (3 complete" in r.stdout
    same_study(out, reference)
    assert not (out / "ray").exists() or not list((out / "ray").iterdir())   # the cluster keeps its own logs


@pytest.mark.slow
def test_kill_9_of_the_owner_on_a_cluster_then_the_same_command_continues(cluster, reference, tmp_path):
    out = tmp_path / "s"
    command = ["tune", *LONGER, "--trials", 3, "--workers", 1, "--executor", "ray", "--address", cluster, "--out", out,
               "--checkpoint-interval", 0]  # a checkpoint at every epoch
    p = popen(*command)
    second = out / "trials" / "0001" / ckpt.METRICS
    wait_for_lines(second, 2, p)                     # trial 0 finished, trial 1 past its second epoch
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    first_summary = (out / "trials" / "0000" / ckpt.SUMMARY).stat().st_mtime_ns
    epoch_one = second.read_text().splitlines()[0]
    assert load(out).trials[1].state == TrialState.RUNNING
    r = cli(*command)
    assert r.returncode == 0, r.stderr
    assert "note: trial 1: its owner (pid " in r.stderr and "continuing it from its checkpoint" in r.stderr
    assert sorted(re.findall(r"^trial (\d+) ", r.stdout, re.M)) == ["1", "2"]    # trial 0 is not run again
    same_study(out, reference)
    assert (out / "trials" / "0000" / ckpt.SUMMARY).stat().st_mtime_ns == first_summary
    assert second.read_text().splitlines()[0] == epoch_one      # continued from the checkpoint
    assert list((out / "owners").iterdir()) == []


def ray_processes(marker: str) -> list[int]:
    """Processes whose command line names ``marker`` (the Ray directory of one study)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.mark.slow
def test_a_local_instance_with_its_files_in_OUT_and_run_directories_shipped_back(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "s"
    r = cli("tune", *TINY, "--tier", 1, "--trials", 2, "--executor", "ray", "--out", out, env={"POLYDL_RAY_SHIP": "1"})
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^note: Ray: a local Ray instance \(logs in {re.escape(str(out / 'ray'))}\), 1 node with \d+ "
                     r"CPUs and \d+ GPUs, ready in [\d.]+ s;", r.stderr, re.M), r.stderr
    sessions = list((out / "ray").glob("session_2*"))
    assert len(sessions) == 1 and (sessions[0] / "logs" / "raylet.out").is_file()
    assert all(d.stat().st_mode & 0o002 == 0 for d in [out / "ray", *(out / "ray").rglob("*")] if d.is_dir()
               and not d.is_symlink())
    for n in (0, 1):
        run = out / "trials" / f"{n:04d}"
        assert sorted(p.name for p in run.iterdir()) == [".polydl-run", ckpt.CHECKPOINT, ckpt.CONFIG, ckpt.METRICS,
                                                         ckpt.SUMMARY]
    evaluated(out / "trials" / "0000")
    report = cli("tune", "report", out)
    assert report.returncode == 0 and "2 trials (2 complete, 0 pruned, 0 failed, 0 running)" in report.stdout, \
        report.stderr
    deadline = time.monotonic() + 30
    while ray_processes(str(sessions[0].name)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_processes(str(sessions[0].name)) == []    # the instance ended with the command


BLOCK = "import sys; sys.modules['ray'] = None; from polydl_cli.main import main; main(sys.argv[1:])"


def test_without_ray(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    r = subprocess.run([sys.executable, "-c", BLOCK, "tune", *TINY, "--trials", "2", "--executor", "ray", "--out",
                        str(tmp_path / "s")], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.strip() == "Error: --executor ray needs Ray: pip install 'polydl[ray]'", r.stderr
    assert not (tmp_path / "s").exists()
    r = subprocess.run([sys.executable, "-c", BLOCK, "tune", *TINY, "--tier", "1", "--trials", "1", "--workers", "1",
                        "--out", str(tmp_path / "l"), "--quiet"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "1 trials (1 complete" in r.stdout, r.stderr
    code = ("import sys; sys.modules['ray'] = None; import polydl.tune.executors.ray, polydl.tune.ray_executor, "
            "polydl_cli.main; print('ok')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


#: case: (flags, the error, where: "old" (an existing study), "new" (a new --out) or both)
CASES = {
    "--gpus-per-trial 1.5": (["--gpus-per-trial", 1.5], "--gpus-per-trial must be a fraction in (0, 1]", "old"),
    "--gpus-per-trial 0": (["--gpus-per-trial", 0], "--gpus-per-trial must be a fraction in (0, 1]", "old"),
    "--cpus-per-trial 0": (["--cpus-per-trial", 0], "--cpus-per-trial must be a number > 0", "old"),
    "--address of the local executor": (["--executor", "local", "--address", "127.0.0.1:1"],
                                        "--address belongs to --executor ray", "old"),
    "address refused": (["--address", "CLOSED"], "no Ray cluster answers there", "both"),
    "no GPUs": (["--address", "CLUSTER", "--gpus-per-trial", 0.25], "--gpus-per-trial 0.25: the Ray cluster has no "
                "GPUs", "new"),
    "more CPUs than a node": (["--address", "CLUSTER", "--cpus-per-trial", 4], "no node of the Ray cluster has 4 CPUs",
                              "new"),
    "no GPUs on a local instance": (["--gpus-per-trial", 1], "--gpus-per-trial 1: the Ray cluster has no GPUs", "new"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(cluster, reference, tmp_path, case):
    extra, fragment, where = CASES[case]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))                         # bound, not listening: nothing answers
    extra = [{"CLUSTER": cluster, "CLOSED": f"127.0.0.1:{closed.getsockname()[1]}"}.get(x, x) for x in extra]
    executor = [] if "--executor" in extra else ["--executor", "ray"]
    before = snapshot(reference)
    outs = {"old": [reference], "new": [tmp_path / "new"], "both": [reference, tmp_path / "new"]}[where]
    for out in outs:
        t0 = time.monotonic()
        r = cli("tune", *LONGER, "--trials", 3, *executor, *extra, "--out", out, env={"CUDA_VISIBLE_DEVICES": ""})
        one_line_error(r, fragment)
        assert time.monotonic() - t0 < 60
    closed.close()
    assert snapshot(reference) == before and not (tmp_path / "new").exists()
    assert not (reference / "ray").exists()
