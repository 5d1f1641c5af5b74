"""Usage errors of the ``polydl`` group and of every command are one ``Error:`` line (exit 2) that
names the problem and the fix; ``--help`` and ``--version`` still work."""
import pytest
from cli_helpers import assert_one_line_error, cli, invoke

from polydl_cli.main import main


@pytest.mark.parametrize("args, line", [
    (["trian"], "Error: No such command 'trian'; did you mean 'train'?"),
    (["evalute", "runs/x"], "Error: No such command 'evalute'; did you mean 'evaluate'?"),
    (["xyzzy"], "Error: No such command 'xyzzy' (see 'polydl --help')"),
    (["--bogus"], "Error: No such option '--bogus' (see 'polydl --help')"),
    (["--verison"], "Error: No such option '--verison'; did you mean '--version'?"),
    (["train", "--lss", "mse"], "Error: No such option '--lss'; did you mean '--loss'?"),
    (["train", "--epochs", "ten"],
     "Error: Invalid value for '--epochs': 'ten' is not a valid integer (see 'polydl train --help')"),
    (["train", "extra"], "Error: Got unexpected extra argument (extra) (see 'polydl train --help')"),
    (["schedules", "shwo"], "Error: No such command 'shwo'; did you mean 'show'?"),
    (["schedules", "show"], "Error: Missing argument 'NAME' (see 'polydl schedules show --help')"),
    (["evaluate"], "Error: Missing argument 'DIR' (see 'polydl evaluate --help')"),
    (["predict", "dir"], "Error: Missing argument 'INPUT' (see 'polydl predict --help')"),
    (["plugins", "--jsn"], "Error: No such option '--jsn'; did you mean '--json'?"),
    (["info", "--x"], "Error: No such option '--x' (see 'polydl info --help')"),
])
def test_usage_errors_are_one_line(args, line):
    result = invoke(*args)
    assert assert_one_line_error(result, 2) == line
    assert result.stdout == ""


def test_usage_error_in_a_real_process():
    r = cli("trian")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "Error: No such command 'trian'; did you mean 'train'?\n"


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["train", "--help"], ["schedules", "show", "--help"],
                                  ["plugins", "-h"]])
def test_help_still_works(args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: polydl") and result.stderr == ""


def test_the_bare_group_shows_its_help_as_a_usage_error():
    result = invoke()
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Usage: polydl") and "Error" not in result.stderr
    for name in ("train", "evaluate", "predict", "schedules", "info", "plugins"):
        assert f"  {name} " in result.stderr


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("polydl, version ")


def test_every_command_is_registered_once():
    assert sorted(main.commands) == ["evaluate", "info", "plugins", "predict", "schedules", "train", "tune", "watch"]


def test_a_multi_line_message_is_printed_on_one_line(monkeypatch, tmp_path):
    from polydl import training

    def fail(*args, **kwargs):
        raise training.DataError("the data\n  is bad; fix it")

    monkeypatch.setattr(training, "run", fail)
    assert assert_one_line_error(invoke("train", "--out", tmp_path / "o"), 2) == "Error: the data is bad; fix it"


def test_a_bug_is_not_reported_as_bad_input(monkeypatch, tmp_path):
    from polydl import training

    def bug(*args, **kwargs):
        return {}["missing"]

    monkeypatch.setattr(training, "run", bug)
    result = invoke("train", "--out", tmp_path / "o")
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


# ---------------------------------------------------------------------------- parameter values and input files
@pytest.mark.parametrize("value", ["maybe", "2", "Falsex"])
def test_a_boolean_parameter_that_is_not_one_is_one_line(tmp_path, value):
    result = invoke("train", "--optimizer-param", f"weight_decay_all={value}", "--dataset", "moons",
                    "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "optimizer 'adam': weight_decay_all must be true or false (also yes/no or 1/0, "
                                     "in any case), not ")
    assert not (tmp_path / "run").exists()


def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path):
    p = tmp_path / "bom.toml"
    p.write_bytes("\ufeffepochs = 3\n".encode("utf-8"))
    result = invoke("train", "--config", p, "--print-config")
    assert result.exit_code == 0, result.stderr
    assert "\nepochs = 3\n" in result.stdout


def test_user_files_that_are_fifos_are_refused_without_blocking(tmp_path):
    import os

    from cli_helpers import TINY

    run = tmp_path / "run"
    assert invoke("train", *TINY, "--out", run).exit_code == 0
    for name in ("d.csv", "d.npz", "c.toml"):
        os.mkfifo(tmp_path / name)
    cases = [(("train", "--dataset", "d.csv", "--out", "r1"), "data file d.csv is a named pipe (FIFO)"),
             (("train", "--config", "c.toml", "--out", "r2"), "config file c.toml is a named pipe (FIFO)"),
             (("predict", run, "d.csv"), "input file d.csv is a named pipe (FIFO)"),
             (("evaluate", run, "--dataset", "d.npz"), "data file d.npz is a named pipe (FIFO)")]
    for args, fragment in cases:
        r = cli(*args, cwd=tmp_path, timeout=120)  # a hang is a TimeoutExpired
        assert_one_line_error(r, 2, fragment, "regular file")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


@pytest.mark.parametrize("args", [("train", "--dataset", "{long}"), ("train", "--dataset", "{long}.csv"),
                                  ("train", "--config", "{long}.toml")])
def test_an_overlong_file_name_is_one_line(tmp_path, args):
    long = str(tmp_path / ("x" * 5000))
    result = invoke(*[a.format(long=long) for a in args], "--out", tmp_path / "run")
    assert assert_one_line_error(result, 2, "File name too long").endswith("File name too long")
