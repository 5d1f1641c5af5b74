"""Real processes: SIGKILL at any moment then ``--resume`` gives the uninterrupted run bit for bit;
Ctrl-C (SIGINT) saves at the next step boundary and exits 130; a terminal gets a progress bar."""
import os
import random
import signal
import time

import pytest
from cli_helpers import TINY, cli, popen
from run_helpers import assert_same_run, meta

# a second or so of training in many small steps (30 epochs of 315), with dropout (RNG state) and a
# per-step schedule, so that a kill a few tenths of a second after an epoch lands mid-run
EPOCHS = 30
LONG = ["train", "--dataset", "digits", "--hidden", "32", "--batch-size", "4", "--epochs", EPOCHS, "--dropout", "0.1",
        "--schedule", "inverse_sqrt_step", "--schedule-unit", "step", "--no-plot"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    r = cli(*LONG, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def start_and_wait_for_epoch(out, epoch):
    """Start the long run and return once it has finished ``epoch`` (so epoch + 1 has started)."""
    p = popen(*LONG, "--out", out)
    for line in p.stdout:
        if line.startswith(f"epoch {epoch}/"):
            return p
    p.wait()
    raise AssertionError(f"the run ended before epoch {epoch}: {p.stderr.read()}")


@pytest.mark.slow
@pytest.mark.parametrize("after_epoch, delay", [(1, 0.0), (1, None), (2, None)])
def test_sigkill_then_resume_is_bit_exact(tmp_path, uninterrupted, after_epoch, delay):
    out = tmp_path / "run"
    p = start_and_wait_for_epoch(out, after_epoch)
    time.sleep(random.uniform(0.0, 0.3) if delay is None else delay)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    p.stderr.close()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert meta(out)["epoch"] < EPOCHS
    r = cli("train", "--resume", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_run(uninterrupted, out)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, None])
def test_sigint_saves_exits_130_and_resume_is_bit_exact(tmp_path, uninterrupted, delay):
    out = tmp_path / "run"
    p = start_and_wait_for_epoch(out, 1)
    time.sleep(random.uniform(0.0, 0.3) if delay is None else delay)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert stderr.startswith("Interrupted: interrupted at epoch ")
    assert f"polydl train --resume {out}" in stderr and "Traceback" not in stderr
    m = meta(out)
    assert 1 <= m["epoch"] < EPOCHS and m["step"] > 0
    r = cli("train", "--resume", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_run(uninterrupted, out)


def test_progress_bar_on_a_terminal(tmp_path):
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-m", "polydl_cli.main", "train", *TINY, "--out", str(tmp_path / "r")],
                         stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    p.wait()
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert p.returncode == 0, text
    assert "epoch 1/2  [" in text and "100%" in text  # click's bar
    assert "epoch 2/2  lr" in text and "moons: test accuracy" in text
