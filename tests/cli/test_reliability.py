"""What a hostile but honest tester tries, with real processes: a full disk, SIGTERM, two processes on
one run, Ctrl-C while polydl is still importing, a plugin that fails mid-training or ends the
process on import, a BatchNorm mini-batch of one sample."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import TINY, assert_one_line_error, cli, invoke, popen
from plugin_fakes import child_env, make_dist
from run_helpers import assert_same_run, meta, metrics

CLI = [sys.executable, "-m", "polydl_cli.main"]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"],
                           capture_output=True)
    return probe.returncode == 0


needs_tmpfs = pytest.mark.skipif(not _unshare_works(), reason="cannot mount a private tmpfs here (unshare -rm)")


def in_full_fs(script: str, size="1m", timeout=120):
    """Run ``script`` (sh) in a private mount namespace where /mnt is a tmpfs of ``size``."""
    return subprocess.run(["unshare", "-rm", "sh", "-ec", f"mount -t tmpfs -o size={size} none /mnt\n{script}"],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@needs_tmpfs
def test_a_full_disk_at_the_start_is_one_line_and_leaves_nothing():
    py = " ".join(CLI)
    r = in_full_fs(f"""
        {py} train --dataset digits --hidden 512 --epochs 1 --no-plot --out /mnt/a/run --quiet || echo "exit=$?"
        ls -A /mnt
    """, size="96k")
    lines = [ln for ln in r.stderr.splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot write /mnt/a/run/"), r.stderr
    assert "No space left on device" in lines[0] and "nothing of it is kept" in lines[0]
    assert "Traceback" not in r.stderr and "exit=1" in r.stdout
    assert r.stdout.splitlines()[-1] == "exit=1"  # /mnt is empty again: no half-created directory


@needs_tmpfs
def test_a_disk_that_fills_mid_run_keeps_the_last_checkpoint_and_resumes(tmp_path):
    py = " ".join(CLI)
    long = "train --dataset moons --dataset-param n_samples=3000 --hidden 16 --epochs 400 --no-plot --checkpoint-interval 0"
    r = in_full_fs(f"""
        {py} {long} --out /mnt/run > {tmp_path}/log 2> {tmp_path}/err &
        pid=$!
        while [ ! -s /mnt/run/metrics.jsonl ] || [ "$(wc -l < /mnt/run/metrics.jsonl)" -lt 3 ]; do sleep 0.02; done
        dd if=/dev/zero of=/mnt/filler bs=4k 2>/dev/null || true
        wait $pid || echo "exit=$?"
        cat {tmp_path}/err
        rm /mnt/filler
        cp -r /mnt/run {tmp_path}/kept
        {py} train --resume /mnt/run --quiet > /dev/null && echo resumed
        cp -r /mnt/run {tmp_path}/resumed
    """, size="2m", timeout=300)
    assert "exit=1" in r.stdout and "resumed" in r.stdout, (r.stdout, r.stderr)
    err = [ln for ln in r.stdout.splitlines() if ln.startswith("Error:")]
    assert len(err) == 1 and "No space left on device" in err[0] and "is intact" in err[0], r.stdout
    assert "--resume /mnt/run" in err[0] and "Traceback" not in r.stdout
    kept = meta(tmp_path / "kept")
    assert 2 <= kept["epoch"] < 400
    assert meta(tmp_path / "resumed")["epoch"] == 400 and len(metrics(tmp_path / "resumed")) == 400


def test_sigterm_saves_exits_143_and_resume_is_bit_exact(tmp_path):
    args = ["train", "--dataset", "digits", "--hidden", "32", "--batch-size", "4", "--epochs", "8", "--dropout",
            "0.1", "--schedule-unit", "step", "--no-plot"]
    full = tmp_path / "full"
    assert cli(*args, "--out", full, "--quiet").returncode == 0
    out = tmp_path / "run"
    p = popen(*args, "--out", out)
    for line in p.stdout:
        if line.startswith("epoch 2/"):
            break
    time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 143, stderr
    assert stderr.startswith("Interrupted: interrupted at epoch ") and "Traceback" not in stderr
    assert cli("train", "--resume", out, "--quiet").returncode == 0
    assert_same_run(full, out)


def test_a_second_process_on_a_running_run_is_told_the_pid(tmp_path):
    out = tmp_path / "run"
    p = popen("train", "--dataset", "digits", "--batch-size", "4", "--epochs", "50", "--no-plot", "--out", out)
    try:
        for line in p.stdout:
            if line.startswith("epoch 1/"):
                break
        r = cli("train", "--resume", out, "--epochs", "60")
        assert_one_line_error(r, 2, f"in use by process {p.pid}")
        r = cli("train", "--out", out, "--overwrite", "--epochs", "1")
        assert_one_line_error(r, 2, f"in use by process {p.pid}")
    finally:
        p.kill()
        p.communicate()
    more = str(meta(out)["epoch"] + 1)
    assert cli("train", "--resume", out, "--epochs", more, "--quiet").returncode == 0  # kill -9 left no stale lock


def test_ctrl_c_while_importing_is_one_line(tmp_path):
    script = shutil.which("polydl", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the polydl console script is not installed beside this Python")
    maps_readable = os.path.exists(f"/proc/{os.getpid()}/maps")
    for delay in (0.0, 0.05):
        p = subprocess.Popen([script, "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if maps_readable:  # the moment NumPy's core is mapped the console script is inside its imports
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and p.poll() is None:
                try:
                    with open(f"/proc/{p.pid}/maps") as fh:
                        if "_multiarray_umath" in fh.read():
                            break
                except OSError:
                    break
                time.sleep(0.001)
        else:
            time.sleep(0.15)  # well after the interpreter's own start
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        if p.returncode == 0:
            continue  # it had finished already
        assert p.returncode == 130 and err.strip() == "Error: interrupted" and "Traceback" not in err, err


def test_batch_size_one_with_batchnorm_is_refused_and_a_last_sample_is_left_out(tmp_path):
    r = invoke("train", *TINY, "--batch-size", "1", "--out", tmp_path / "one")
    assert_one_line_error(r, 2, "batch_size 1 is too small for the batchnorm normalizer", "--batch-size 2")
    assert not (tmp_path / "one").exists()
    assert invoke("train", *TINY, "--batch-size", "1", "--normalizer", "none", "--out", tmp_path / "ok",
                  "-q").exit_code == 0
    # 129 training samples in mini-batches of 64: the last one would hold a single sample
    r = invoke("train", "--dataset", "moons", "--dataset-param", "n_samples=184", "--hidden", "8", "--epochs", "1",
               "--batch-size", "64", "--no-plot", "--out", tmp_path / "drop")
    assert r.exit_code == 0, r.output
    assert "2 mini-batches" in r.stdout.splitlines()[0]
    assert "the last 1 sample of each epoch is left out" in r.stdout.splitlines()[0]
    assert meta(tmp_path / "drop")["step"] == 2


FAILING_LOSS = """
    import polydl
    from polydl import functional as F

    class Flaky:
        calls = 0

        def __call__(self, scores, targets):
            Flaky.calls += 1
            if Flaky.calls == 30:
                raise ValueError("numerically unstable at call 30")
            return F.softmax_cross_entropy(scores, targets)

    @polydl.hookimpl
    def polydl_register_losses(register):
        register("flaky", Flaky)
"""


def test_a_plugin_component_failing_mid_training_is_one_line_naming_it(tmp_path):
    make_dist(tmp_path / "site", "polydl-flaky", "0.3", {"flaky": "flaky_loss"}, {"flaky_loss.py": FAILING_LOSS})
    out = tmp_path / "run"
    env = child_env(tmp_path / "site")
    r = subprocess.run([*CLI, "train", *map(str, TINY), "--batch-size", "16", "--epochs", "4", "--loss", "flaky",
                        "--out", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"Error: training stopped at epoch 3, step \d+: ", lines[0]), r.stderr
    for part in ("loss 'flaky' of plugin 'flaky' (distribution polydl-flaky 0.3)", "ValueError: numerically unstable",
                 "pip install -U polydl-flaky", f"--resume {out}"):
        assert part in lines[0], (part, lines[0])
    assert meta(out)["epoch"] == 2  # the last checkpoint is kept


def test_a_plugin_that_exits_on_import_does_not_silence_polydl(tmp_path):
    make_dist(tmp_path / "site", "polydl-quitter", "1.0", {"quitter": "quitter"},
              {"quitter.py": "import sys\nsys.exit('I refuse')\n"})
    env = child_env(tmp_path / "site")
    r = subprocess.run([*CLI, "schedules"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "inverse_time" in r.stdout
    assert "plugin 'quitter' (distribution polydl-quitter 1.0) failed to load" in r.stderr
    assert "SystemExit: I refuse" in r.stderr
    r = subprocess.run([*CLI, "train", *map(str, TINY), "--out", str(tmp_path / "run"), "-q"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------- files that are not polydl's
def _victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("my own file\n")
    return path


def test_a_lock_linking_outside_the_run_is_one_line_and_its_target_kept(tmp_path):
    out, victim = tmp_path / "run", _victim(tmp_path)
    assert cli("train", *TINY, "--out", out, "--quiet", timeout=120).returncode == 0
    (out / ".polydl-lock").unlink()
    (out / ".polydl-lock").symlink_to(victim)
    lock = f"cannot lock the run directory {out}: {out / '.polydl-lock'} is a symbolic link, not a regular file"
    assert_one_line_error(cli("train", "--resume", out, "--epochs", "3", timeout=120), 2, lock)
    assert_one_line_error(cli("train", *TINY, "--out", out, "--overwrite", timeout=120), 2, lock)
    assert victim.read_text() == "my own file\n" and meta(out)["epoch"] == 2
    (out / ".polydl-lock").unlink()
    (out / ".polydl-lock").symlink_to(tmp_path / "created-elsewhere")
    assert_one_line_error(cli("train", "--resume", out, "--epochs", "3", timeout=120), 2, "is a symbolic link")
    assert_one_line_error(cli("train", *TINY, "--out", out, "--overwrite", timeout=120), 2, "is a symbolic link")
    assert not os.path.lexists(tmp_path / "created-elsewhere")


def test_a_fifo_in_place_of_the_lock_or_checkpoint_is_one_line_not_a_hang(tmp_path):
    out = tmp_path / "run"
    assert cli("train", *TINY, "--out", out, "--quiet", timeout=120).returncode == 0
    (out / ".polydl-lock").unlink()
    os.mkfifo(out / ".polydl-lock")
    assert_one_line_error(cli("train", "--resume", out, "--epochs", "3", timeout=120), 2,
                          f"{out / '.polydl-lock'} is a named pipe (FIFO), not a regular file; remove it")
    (out / ".polydl-lock").unlink()
    (out / "checkpoint.npz").rename(tmp_path / "checkpoint.npz")
    os.mkfifo(out / "checkpoint.npz")
    np.savez(tmp_path / "x.npz", X=np.zeros((2, 2)))
    fifo = f"{out / 'checkpoint.npz'} is a named pipe (FIFO), not a regular file"
    for args in (("train", "--resume", out, "--epochs", "3"), ("evaluate", out), ("predict", out, tmp_path / "x.npz")):
        assert_one_line_error(cli(*args, timeout=120), 2, fifo)


@pytest.mark.parametrize("args", [
    ("train", *TINY, "--out", "{long}"),
    ("train", "--resume", "{long}"),
    ("evaluate", "{long}"),
    ("predict", "{long}", "{x}"),
    ("predict", "{run}", "{x}", "--out", "{long}"),
    ("train", *TINY, "--out", "{file}/run"),
    ("train", "--resume", "{file}/run"),
    ("evaluate", "{loop}/run"),
    ("predict", "{run}", "{x}", "--out", "{loop}/p.csv"),
])
def test_a_path_the_system_refuses_is_one_line(tmp_path, args):
    """A path too long, through a file, or through a loop of links: one line, exit code 2."""
    run = tmp_path / "run"
    assert invoke("train", *TINY, "--out", run, "--quiet").exit_code == 0
    np.savez(tmp_path / "x.npz", X=np.zeros((2, 2)))
    (tmp_path / "file").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    names = {"long": tmp_path / ("y" * 5000), "x": tmp_path / "x.npz", "run": run, "file": tmp_path / "file",
             "loop": tmp_path / "loop"}
    r = invoke(*(a.format(**names) for a in args))
    line = assert_one_line_error(r, 2)
    assert len(line) < 400
    assert re.search(r"File name too long|Not a directory|is a file|Too many levels of symbolic links", line), line


def test_predict_out_is_written_by_atomic_replace_never_through_a_link_or_a_fifo(tmp_path):
    run, victim = tmp_path / "run", _victim(tmp_path)
    assert invoke("train", *TINY, "--out", run, "--quiet").exit_code == 0
    np.savez(tmp_path / "x.npz", X=np.zeros((2, 2)))
    os.mkfifo(tmp_path / "pipe")
    for overwrite in ((), ("--overwrite",)):
        r = cli("predict", run, tmp_path / "x.npz", "--out", tmp_path / "pipe", *overwrite, timeout=120)
        assert_one_line_error(r, 2, f"cannot write {tmp_path / 'pipe'}: it is a named pipe (FIFO), not a regular "
                                    "file; give the path of a file")
    (tmp_path / "to-pipe").symlink_to(tmp_path / "pipe")
    assert_one_line_error(invoke("predict", run, tmp_path / "x.npz", "--out", tmp_path / "to-pipe", "--overwrite"), 2,
                          "it is a link to a named pipe (FIFO)")
    (tmp_path / "p.csv").symlink_to(victim)
    assert_one_line_error(invoke("predict", run, tmp_path / "x.npz", "--out", tmp_path / "p.csv"), 2,
                          "already exists; pass --overwrite")
    (tmp_path / "q.csv").symlink_to(tmp_path / "created-elsewhere.csv")
    assert_one_line_error(invoke("predict", run, tmp_path / "x.npz", "--out", tmp_path / "q.csv"), 2,
                          "already exists; pass --overwrite")
    for name in ("p.csv", "q.csv"):
        r = invoke("predict", run, tmp_path / "x.npz", "--out", tmp_path / name, "--overwrite")
        assert r.exit_code == 0, r.output
        assert not (tmp_path / name).is_symlink() and (tmp_path / name).read_text().startswith("class,p_0,p_1\n")
    assert victim.read_text() == "my own file\n" and not os.path.lexists(tmp_path / "created-elsewhere.csv")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []   # no temporary files left
