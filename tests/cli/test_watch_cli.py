"""``polydl watch`` for real: a finished run drawn once, a ``polydl train`` process followed by a
``polydl watch`` process that ends when the run ends, Ctrl-C, a pseudo-terminal, and bad input."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import TINY, assert_one_line_error, invoke, popen

from polydl.training import watch
from polydl.training.rundir import MARKER

pytest.importorskip("plotext")
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: a run of a few seconds: 28,000 moons in mini-batches of 8, about a second an epoch
SLOW = ["--dataset", "moons", "--dataset-param", "n_samples=40000", "--hidden", "16", "--batch-size", "8",
        "--epochs", "5", "--no-plot"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("w") / "run"
    result = invoke("train", *TINY, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


def polydl(*args, columns=110, lines=28, timeout=300):
    """``polydl ARGS`` as a subprocess whose output is not a terminal, frames of columns × lines."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": str(columns), "LINES": str(lines)}
    return subprocess.run([sys.executable, "-m", "polydl_cli.main", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_once_draws_a_finished_run(run):
    result = polydl("watch", "--once", run)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "\x1b" not in result.stdout
    expected = watch.run_frame(watch.read_run(run), 110, 28)
    assert result.stdout == expected + "\n\n"
    assert result.stdout.splitlines()[0].startswith(f"{run}: moons, hidden [8]")
    assert "finished: test accuracy" in result.stdout
    # without --once it ends by itself at once: the run has finished
    again = polydl("watch", "--interval", "0.1", run)
    assert again.returncode == 0 and again.stdout == result.stdout


def _wait(predicate, bound, what):
    end = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"waited {bound} s for {what}")
        time.sleep(0.01)


@pytest.mark.slow
def test_watch_follows_a_training_run_and_ends_with_it(tmp_path):
    out = tmp_path / "panda"
    train = popen("train", *SLOW, "--out", out, "--quiet")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100", "LINES": "30"}
    command = [sys.executable, "-m", "polydl_cli.main", "watch", "--interval", "0.1", str(out)]
    follower = quitter = None
    try:
        _wait(lambda: (out / MARKER).exists(), 60, "the run to start")
        with open(tmp_path / "watch.txt", "w") as log:
            follower = subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE, text=True, env=env)
        quitter = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert quitter.stdout.readline().startswith(f"{out}: ")        # its first frame is drawn
        quitter.send_signal(signal.SIGINT)                              # Ctrl-C leaves the watch, not the run
        _, err = quitter.communicate(timeout=30)
        assert quitter.returncode == 130 and "Traceback" not in err and train.poll() is None
        assert train.wait(timeout=300) == 0
        ended = time.monotonic()
        assert follower.wait(timeout=20) == 0, follower.stderr.read()
        assert time.monotonic() - ended < 20
    finally:
        for p in (train, follower, quitter):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    text = (tmp_path / "watch.txt").read_text()
    assert "\x1b" not in text
    frames = [f for f in text.split("\n\n") if f.strip()]
    epochs = [int(m) for f in frames for m in re.findall(r"^epoch (\d+)/5 ", f, re.M)]
    assert len(set(epochs) - {0}) >= 2 and epochs == sorted(epochs) and epochs[-1] == 5   # it redrew as epochs came
    assert len(frames) == len(epochs) and all("running (pid " in f for f in frames[:-1])
    assert "finished: test accuracy" in frames[-1]


def test_on_a_terminal_it_redraws_in_place(run):
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    p = subprocess.Popen([sys.executable, "-m", "polydl_cli.main", "watch", "--once", str(run)], stdin=slave,
                         stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:       # the terminal closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert p.wait(timeout=60) == 0
    out = b"".join(chunks).decode().replace("\r\n", "\n")
    assert out.startswith("\x1b[?25l\x1b[2J\x1b[H") and out.endswith("\x1b[J\x1b[?25h")   # the cursor comes back
    assert "\x1b[38;5;" in out                                                           # in colour
    lines = ESCAPE.sub("", out).rstrip("\n").split("\n")
    assert len(lines) <= 29 and max(map(len, lines)) <= 100                              # it fits the terminal
    assert lines == watch.run_frame(watch.read_run(run), 100, 29).split("\n")


def test_bad_input_is_one_line(run, tmp_path):
    what = "give a run directory (polydl train --out DIR) or a study directory (polydl tune --out DIR)"
    assert_one_line_error(invoke("watch", tmp_path / "nowhere"), 2, f"{tmp_path / 'nowhere'} does not exist; {what}")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(invoke("watch", tmp_path / "file"), 2, "is a file, not a directory")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(invoke("watch", tmp_path / "empty"), 2,
                          f"{tmp_path / 'empty'} is neither a polydl run (it has no .polydl-run) nor a polydl study (it "
                          f"has no study.json); {what}")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.json").write_text("{not json")
    assert_one_line_error(invoke("watch", tmp_path / "study"), 2, "study.json is damaged and cannot be read")
    assert_one_line_error(invoke("watch", "--interval", "0", run), 2, "Invalid value for '--interval'")
    assert_one_line_error(invoke("watch"), 2, "Missing argument 'DIR'")


BLOCK = "import sys; sys.modules[{!r}] = None; from polydl_cli.main import main; main(sys.argv[1:])"


def test_a_run_needs_plotext_and_not_optuna(run):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    r = subprocess.run([sys.executable, "-c", BLOCK.format("plotext"), "watch", "--once", str(run)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"Error: {watch.PLOTEXT_MISSING}"
    assert "pip install 'polydl[watch]'" in r.stderr
    r = subprocess.run([sys.executable, "-c", BLOCK.format("optuna"), "watch", "--once", str(run)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "finished: test accuracy" in r.stdout, r.stderr


def test_the_readme_shows_a_frame_of_the_form_polydl_watch_prints():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Two ways of working"):readme.index("## Hyperparameter search")]
    (block,) = re.findall(r"```console\n\$ polydl watch --once runs/panda\n(.*?)```", section, re.S)
    lines = block.rstrip("\n").split("\n")
    assert lines[0] == "runs/panda: digits, hidden [128, 64], adam, α0 0.0024 (inverse_time), batch 64, 15 epochs"
    assert re.fullmatch(r"\s+loss\s+accuracy\s+α\s*", lines[1])
    assert re.fullmatch(r"α 0\.0008333 → 0\.0002 at epoch 11 \(lr changed from inverse_time\(lr0=0\.01\) .*", lines[-3])
    assert re.fullmatch(r"epoch 15/15  train loss \S+  val loss \S+  val accuracy \S+%  α 0\.00015", lines[-2])
    assert re.fullmatch(r"finished: test accuracy \S+% \(loss \S+\)", lines[-1])
    assert max(map(len, lines)) <= 100 and len(lines) <= 24      # COLUMNS=100 LINES=24
    assert "polydl train --resume runs/panda --lr 0.0002 --epochs 15" in section


def test_a_non_finite_interval_is_refused(run):
    for value in ("nan", "NaN", "-nan", "inf"):
        assert_one_line_error(invoke("watch", "--interval", value, run), 2, "Invalid value for '--interval'")


@pytest.mark.parametrize("name", [".polydl-lock", "metrics.jsonl", "config.toml", "summary.json"])
def test_a_fifo_in_place_of_a_run_file_is_one_line_not_a_hang(run, tmp_path, name):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / name).unlink()
    os.mkfifo(copy / name)
    result = polydl("watch", "--once", copy, timeout=60)   # a timeout, not a hang, if it waited on the FIFO
    assert_one_line_error(result, 2, f"cannot read the run: {copy / name} is a named pipe (FIFO), not a regular "
                                     "file; remove it")


def test_a_damaged_metrics_line_is_one_line_naming_it(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    first, *rest = (copy / "metrics.jsonl").read_text().splitlines()
    (copy / "metrics.jsonl").write_text("\n".join([first.replace('"epoch": 1', '"epoch": "one"'), *rest]) + "\n")
    assert_one_line_error(invoke("watch", "--once", copy), 2,
                          'metrics.jsonl is damaged: line 1 has "epoch": "one", not a whole number')


def test_a_path_the_system_refuses_is_one_line(tmp_path):
    assert_one_line_error(invoke("watch", "--once", tmp_path / ("x" * 5000)), 2, "File name too long")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(invoke("watch", "--once", tmp_path / "file" / "run"), 2,
                          f"cannot use {tmp_path / 'file' / 'run'} as a run or study directory: Not a directory")
