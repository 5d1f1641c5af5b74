"""Running ``polydl`` in process (click's CliRunner) and as a real subprocess."""
import os
import subprocess
import sys

from click.testing import CliRunner

from polydl_cli.main import main

#: a run of a fraction of a second
TINY = ["--dataset", "moons", "--dataset-param", "n_samples=200", "--hidden", "8", "--epochs", "2",
        "--batch-size", "32", "--no-plot"]


def invoke(*args):
    """``polydl ARGS`` in process; returns click's Result (stdout, stderr, exit_code)."""
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="polydl")


def cli(*args, cwd=None, **kw):
    """``polydl ARGS`` as a subprocess of this Python."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "polydl_cli.main", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, **kw)


def popen(*args, cwd=None, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "polydl_cli.main", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def assert_one_line_error(result, code=2, *fragments):
    """One ``Error: ...`` line on stderr, no traceback, the given exit code."""
    err = result.stderr
    assert result.exit_code == code if hasattr(result, "exit_code") else result.returncode == code, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err + result.stdout
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]
