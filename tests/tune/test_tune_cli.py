"""``polydl tune``, ``tune report`` and ``tune best`` as a person runs them: real processes, one
SQLite study shared by two owners, ``kill -9`` of the owner then the same command again, SIGTERM,
bad input as one ``Error:`` line that changes nothing, and no Optuna at all."""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner
from tune_helpers import LONGER, TINY, cli, load, one_line_error, optuna, popen, snapshot, wait_for_lines

from polydl.training import checkpoint as ckpt
from polydl.tune.report import written_by_report
from polydl_cli.main import main

TrialState = optuna.trial.TrialState


def invoke(*args, cwd=None):
    """``polydl ARGS`` in process."""
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        r = CliRunner().invoke(main, [str(a) for a in args], prog_name="polydl")
    finally:
        os.chdir(old)
    r.returncode = r.exit_code
    return r


@pytest.fixture(scope="module")
def coarse(tmp_path_factory):
    """A finished two-round study of 6 tiny trials, from the command line."""
    out = tmp_path_factory.mktemp("cli") / "c2f"
    r = cli("tune", *TINY, "--trials", 6, "--rounds", 2, "--workers", 2, "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_a_search_from_the_command_line(coarse, tmp_path):
    out, r = coarse
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("tuning lr, beta1, hidden, batch_size over 6 trials (2 rounds, random sampling; "
                               "val_loss minimised) with 2 local workers")
    trial_lines = [x for x in lines if x.startswith("trial ")]
    assert len(trial_lines) == 6
    study = load(out)
    for line in trial_lines:
        m = re.match(r"trial (\d+)  round (\d)/2  lr=\S+ beta1=\S+ hidden=\d+ batch_size=\d+  val_loss (\S+)  "
                     r"best (\S+) \(trial (\d+)\)$", line)
        assert m, line
        t = study.trials[int(m[1])]
        assert int(m[2]) == t.user_attrs["round"] and float(m[3]) == pytest.approx(t.value, rel=1e-3)
    best = study.best_trial
    assert lines[-1].startswith(f"study 'c2f': 6 trials (6 complete, 0 pruned, 0 failed); best val_loss "
                                f"{best.value:.4f} in trial {best.number} (")
    assert lines[-1].endswith(f"see polydl tune report {out}") and r.stderr == ""
    # each trial is an ordinary run directory
    ev = invoke("evaluate", out / "trials" / "0000")
    assert ev.exit_code == 0 and "accuracy" in ev.stdout, ev.output
    shutil.copytree(out / "trials" / "0000", tmp_path / "copy")
    more = invoke("train", "--resume", tmp_path / "copy", "--epochs", 3, "--quiet")
    assert more.exit_code == 0 and "after 3 epochs" in more.stdout, more.output


def test_report_prints_tables_and_writes_tune_png(coarse):
    out, _ = coarse
    r = invoke("tune", "report", out)
    assert r.exit_code == 0, r.output
    text = r.stdout
    assert text.startswith("study 'c2f' in sqlite:///") and "6 trials (6 complete, 0 pruned, 0 failed, 0 running)" in text
    assert "best trials (top 6):" in text and "boxes (the range each round sampled" in text
    box_rows = text.split("boxes (")[1].split("importance")[0].splitlines()[2:]
    assert [row.split()[0] for row in box_rows] == ["1", "2"]
    assert "importance (PED-ANOVA) beside the usual order" in text and "1 (α)" in text
    assert text.rstrip().endswith(f"plot: {out / 'tune.png'}") and written_by_report(out / "tune.png")
    first = (out / "tune.png").read_bytes()
    assert first.startswith(b"\x89PNG")
    r = invoke("tune", "report", out, "--top", 2)                      # its own file: replaced
    assert r.exit_code == 0 and "best trials (top 2):" in r.stdout


def test_report_keeps_files_it_did_not_write(coarse, tmp_path):
    out, _ = coarse
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"not a plot of polydl's")
    r = invoke("tune", "report", out, "--plot", mine)
    one_line_error(r, "exists and was not written by polydl tune report", "--overwrite")
    assert mine.read_bytes() == b"not a plot of polydl's"
    r = invoke("tune", "report", out, "--plot", mine, "--overwrite")
    assert r.exit_code == 0 and written_by_report(mine)


def test_report_on_a_storage_path_or_url_and_a_storage_of_several_studies(coarse, tmp_path):
    out, _ = coarse
    r = invoke("tune", "report", out / "study.db", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "tune.png").is_file() and "plot: tune.png" in r.stdout
    shutil.copy(out / "study.db", tmp_path / "two.db")
    optuna.create_study(storage=f"sqlite:///{tmp_path}/two.db", study_name="other")
    r = invoke("tune", "report", f"sqlite:///{tmp_path}/two.db", "--plot", tmp_path / "p.png")
    one_line_error(r, "holds 2 studies (c2f, other); pass --study-name NAME")
    r = invoke("tune", "report", f"sqlite:///{tmp_path}/two.db", "--study-name", "c2f", "--plot", tmp_path / "p.png")
    assert r.exit_code == 0 and "study 'c2f'" in r.stdout
    one_line_error(invoke("tune", "report", tmp_path / "none.db"), "does not exist")
    one_line_error(invoke("tune", "best", f"sqlite:///{tmp_path}/two.db", "--study-name", "c2"), "no study 'c2'",
                   "did you mean 'c2f'")
    assert not (tmp_path / "none.db").exists()


def test_best_prints_a_configuration_that_trains_the_best_trial_again(coarse, tmp_path):
    out, _ = coarse
    r = invoke("tune", "best", out)
    assert r.exit_code == 0, r.output
    best = load(out).best_trial
    assert r.stdout.startswith(f"# the best trial of the study 'c2f': trial {best.number} (val_loss ")
    (tmp_path / "best.toml").write_text(r.stdout)
    again = cli("train", "--config", tmp_path / "best.toml", "--out", tmp_path / "again", "--quiet")
    assert again.returncode == 0, again.stderr
    summary = json.loads((tmp_path / "again" / ckpt.SUMMARY).read_text())
    assert summary["val_loss"] == best.value                            # bit for bit on the CPU
    trial = json.loads((out / "trials" / f"{best.number:04d}" / ckpt.SUMMARY).read_text())
    assert {k: v for k, v in summary.items() if k != "seconds"} == {k: v for k, v in trial.items() if k != "seconds"}


def test_help_explains_the_form_and_the_tiers():
    r = invoke("tune", "--help")
    assert r.exit_code == 0
    for fragment in ("polydl tune report STUDY", "polydl tune best STUDY", "Tiers of the default space",
                     "1  lr: log-uniform in [1e-4, 1]", "3  tier 2 + layers", "--trials", "--rounds", "--prune",
                     "--storage", "--executor", "Commands:", "Seed of the sampling"):
        assert fragment in r.stdout, fragment


SPACES = {
    "unknown distribution": ('[lr]\ndistribution = "loguniform"\nlow = 1e-4\nhigh = 1.0\n', "did"),
    "unknown key": ('[lrr]\ndistribution = "log_uniform"\nlow = 1e-4\nhigh = 1.0\n', "closest valid key is 'lr'"),
    "low >= high": ('[lr]\ndistribution = "log_uniform"\nlow = 1.0\nhigh = 0.1\n', "must be < high"),
    "log with low <= 0": ('[lr]\ndistribution = "log_uniform"\nlow = 0\nhigh = 1.0\n', "needs low > 0"),
    "beta outside (0, 1)": ('[beta1]\ndistribution = "one_minus_log_uniform"\nlow = 0\nhigh = 0.99\n', "0 < low < high < 1"),
    "pow2": ('[batch_size]\ndistribution = "pow2"\nlow = 10\nhigh = 64\n', "must be a power of two, not 10"),
    "not TOML": ("lr = [", "is not valid TOML"),
}
SPACES["unknown distribution"] = (SPACES["unknown distribution"][0], "the closest valid one is 'log_uniform'")


@pytest.mark.parametrize("case", list(SPACES) + ["--trials 0", "--rounds too large", "storage", "other space",
                                                 "space and tier", "--rounds 0", "--study-name ''"])
def test_bad_input_is_one_line_and_changes_nothing(coarse, tmp_path, case):
    out, _ = coarse
    before = snapshot(out)
    args = ["tune", *TINY, "--trials", 6, "--rounds", 2, "--out", out]
    if case in SPACES:
        text, fragment = SPACES[case]
        (tmp_path / "space.toml").write_text(text)
        args += ["--space", tmp_path / "space.toml"]
    elif case == "--trials 0":
        args[args.index("--trials") + 1], fragment = 0, "--trials must be >= 1"
    elif case == "--rounds 0":
        args[args.index("--rounds") + 1], fragment = 0, "--rounds must be >= 1, not 0"
    elif case == "--study-name ''":
        args, fragment = args + ["--study-name", ""], "--study-name must be a name, not ''"
    elif case == "--rounds too large":
        args[args.index("--rounds") + 1], fragment = 4, "--rounds 4 needs at least 8 trials (2 per round)"
    elif case == "storage":
        args, fragment = ["tune", *TINY, "--trials", 2, "--out", tmp_path / "new", "--storage",
                          "sqlite:////no/such/dir/s.db"], "cannot open the storage"
    elif case == "other space":
        args += ["--tier", 1]
        fragment = "different settings: beta1 only in the study; hidden only in the study; batch_size only in the study"
    else:
        (tmp_path / "space.toml").write_text('[lr]\ndistribution = "uniform"\nlow = 0\nhigh = 1\n')
        args += ["--tier", 1, "--space", tmp_path / "space.toml"]
        fragment = "--space and --tier both choose"
    one_line_error(invoke(*args), fragment)
    assert snapshot(out) == before and not (tmp_path / "new").exists()


def test_usage_errors(coarse):
    out, _ = coarse
    one_line_error(invoke("tune", *TINY, "--out", out), "a search needs --trials N and --out DIR")
    one_line_error(invoke("tune", "reprot", out), "No such command 'reprot'; did you mean 'report'?")
    one_line_error(invoke("tune", "--trials", 3, "report", out), "--trials belongs to a search")
    one_line_error(invoke("tune", *TINY, "--trials", 3, "--out", out, "--executor", "pool"),
                   "Invalid value for '--executor'")


def test_quiet_prints_the_summary_only(tmp_path):
    r = invoke("tune", *TINY, "--tier", 1, "--trials", 2, "--workers", 1, "--out", tmp_path / "q", "--quiet")
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 1 and r.stdout.startswith("study 'q': 2 trials (2 complete")


def test_a_terminal_gets_a_progress_bar(tmp_path):
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    args = ["tune", *TINY, "--tier", 1, "--trials", 2, "--workers", 1, "--out", tmp_path / "bar"]
    p = subprocess.Popen([sys.executable, "-m", "polydl_cli.main", *map(str, args)], stdin=slave, stdout=slave,
                         stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait()
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert p.returncode == 0, text
    assert "] 1/2 trials" in text and "[" + "#" * 30 + "] 2/2 trials" in text and "trial 1  round 1/1" in text


BLOCK = "import sys; sys.modules['optuna'] = None; from polydl_cli.main import main; main(sys.argv[1:])"


def test_without_optuna(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for args in (["tune", *TINY, "--trials", "2", "--out", str(tmp_path / "s")], ["tune", "report", str(tmp_path)]):
        r = subprocess.run([sys.executable, "-c", BLOCK, *map(str, args)], capture_output=True, text=True, env=env)
        assert r.returncode == 2 and r.stderr.strip() == "Error: polydl tune needs Optuna: pip install 'polydl[tune]'", \
            r.stderr
    assert not (tmp_path / "s").exists()
    r = subprocess.run([sys.executable, "-c", BLOCK, "train", *TINY, "--out", str(tmp_path / "run"), "--quiet"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "moons: test accuracy" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-c", BLOCK, "tune", "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "Tiers of the default space" in r.stdout
    code = ("import sys, polydl, polydl.tune, polydl_cli.main; from polydl.tune import space, layout, executors; "
            "print('optuna' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# ---------------------------------------------------------------------------- several processes


@pytest.mark.slow
def test_two_owners_share_one_sqlite_study(tmp_path):
    shared = tmp_path / "shared.db"
    procs = [popen("tune", *LONGER, "--trials", 6, "--workers", 1, "--storage", shared, "--study-name", "team",
                   "--out", tmp_path / name) for name in ("a", "b")]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_stdout, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr
    study = optuna.load_study(study_name="team", storage=f"sqlite:///{shared}")
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    ran = [{int(m) for m in re.findall(r"^trial (\d+) ", stdout, re.M)} for stdout, _ in outs]
    assert ran[0] | ran[1] == set(range(6)) and not ran[0] & ran[1] and ran[0] and ran[1]
    for t in study.trials:
        assert (tmp_path / ("a" if t.number in ran[0] else "b") / "trials" / f"{t.number:04d}" / ckpt.SUMMARY).is_file()
        assert t.user_attrs["run_dir"].startswith(str(tmp_path / ("a" if t.number in ran[0] else "b")))
    assert len({t.user_attrs["owner"]["pid"] for t in study.trials}) == 2
    conn = sqlite3.connect(shared)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for stdout, _ in outs:        # each waited for the other's last trials before ending
        assert "study 'team': 6 trials (6 complete, 0 pruned, 0 failed)" in stdout


@pytest.mark.slow
def test_kill_9_of_the_owner_then_the_same_command_continues_the_study(tmp_path, reference):
    out = tmp_path / "s"
    command = ["tune", *LONGER, "--trials", 3, "--workers", 1, "--out", out, "--checkpoint-interval", 0]
    p = popen(*command)
    second = out / "trials" / "0001" / ckpt.METRICS
    # trial 0 finished, trial 1 past its second epoch's line: its first epoch's checkpoint is saved (a kill
    # between an epoch's line and its checkpoint would have the resume train that epoch again)
    wait_for_lines(second, 2, p)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    first_summary = (out / "trials" / "0000" / ckpt.SUMMARY).stat().st_mtime_ns
    epoch_one = second.read_text().splitlines()[0]
    study = load(out)
    assert study.trials[1].state == TrialState.RUNNING and study.trials[0].state == TrialState.COMPLETE
    r = cli(*command)
    assert r.returncode == 0, r.stderr
    assert "note: trial 1: its owner (pid " in r.stderr and "continuing it from its checkpoint" in r.stderr
    assert sorted(re.findall(r"^trial (\d+) ", r.stdout, re.M)) == ["1", "2"]    # trial 0 is not run again
    study, ref = load(out), load(reference, "s")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert [t.params for t in study.trials] == [t.params for t in ref.trials]
    assert [t.value for t in study.trials] == [t.value for t in ref.trials]     # bit for bit
    assert (out / "trials" / "0000" / ckpt.SUMMARY).stat().st_mtime_ns == first_summary
    assert second.read_text().splitlines()[0] == epoch_one         # continued from the checkpoint, not started over
    assert study.trials[1].intermediate_values == ref.trials[1].intermediate_values
    assert list((out / "owners").iterdir()) == []


@pytest.mark.slow
def test_sigterm_saves_and_the_same_command_continues(tmp_path, reference):
    out = tmp_path / "s"
    command = ["tune", *LONGER, "--trials", 3, "--workers", 1, "--out", out]
    p = popen(*command)
    wait_for_lines(out / "trials" / "0000" / ckpt.METRICS, 1, p)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 143, stderr             # 128 + SIGTERM, as polydl train
    assert stderr.strip().startswith("Interrupted: interrupted with ") and "run the same command again" in stderr
    assert "Traceback" not in stderr and load(out).trials[0].state == TrialState.RUNNING
    r = cli(*command)
    assert r.returncode == 0, r.stderr
    assert [t.value for t in load(out).trials] == [t.value for t in load(reference, "s").trials]


def test_a_study_without_complete_trials(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/f.db", study_name="f")
    study.set_user_attr("polydl_space", {"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1.0}})
    t = study.ask()
    t.suggest_float("lr", 1e-4, 1.0, log=True)
    study.tell(t, state=TrialState.FAIL)
    r = invoke("tune", "report", tmp_path / "f.db", "--plot", tmp_path / "f.png")
    assert r.exit_code == 0, r.output
    assert "1 trials (0 complete, 0 pruned, 1 failed, 0 running)" in r.stdout and "no complete trial yet" in r.stdout
    assert "importance: importances need at least 2 complete trials, the study has 0" in r.stdout
    assert written_by_report(tmp_path / "f.png")
    one_line_error(invoke("tune", "best", tmp_path / "f.db"), "the study 'f' has no complete trial yet")


def test_report_without_matplotlib(coarse, tmp_path):
    code = "import sys; sys.modules['matplotlib'] = None; from polydl_cli.main import main; main(sys.argv[1:])"
    r = subprocess.run([sys.executable, "-c", code, "tune", "report", str(coarse[0]), "--plot", str(tmp_path / "p.png")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "best trials" in r.stdout, r.stderr
    assert r.stderr.strip() == "note: tune.png not written: matplotlib is not installed; pip install 'polydl[plot]' " \
                               "to get the plots" and not (tmp_path / "p.png").exists()


def test_the_flags_reach_the_study(tmp_path):
    (tmp_path / "run.toml").write_text('dataset = "moons"\nhidden = [6]\nepochs = 2\nplot = false\n\n'
                                       '[dataset_params]\nn_samples = 200\n')
    (tmp_path / "space.toml").write_text('[lr]\ndistribution = "log_uniform"\nlow = 1e-3\nhigh = 0.1\n')
    out = tmp_path / "flags"
    r = invoke("tune", "--config", tmp_path / "run.toml", "--batch-size", 16, "--space", tmp_path / "space.toml",
               "--sampler", "tpe", "--metric", "val_accuracy", "--prune", "median", "--executor", "local",
               "--workers", 1, "--trials", 2, "--seed", 4, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "study.json").read_text())
    assert (doc["sampler"], doc["metric"], doc["direction"], doc["seed"]) == ("tpe", "val_accuracy", "maximize", 4)
    assert doc["space"] == {"lr": {"distribution": "log_uniform", "low": 0.001, "high": 0.1}}
    settings = load(out).user_attrs["polydl_settings"]
    assert settings["prune"] == "median" and settings["base"]["hidden"] == [6] and settings["base"]["batch_size"] == 16
    assert settings["base"]["seed"] == 4 and settings["base"]["dataset_params"] == {"n_samples": 200}
    assert all(t.user_attrs["config"]["hidden"] == [6] for t in load(out).trials)


@pytest.mark.parametrize("command", ["best", "report"])
@pytest.mark.parametrize("wal", [False, True])
def test_best_and_report_never_change_a_file_that_is_not_a_study(tmp_path, command, wal):
    path = tmp_path / "mine.db"
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()
    before, names = path.read_bytes(), sorted(os.listdir(tmp_path))
    one_line_error(invoke("tune", command, path, cwd=tmp_path), f"{path} holds no study")
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == names        # no tables, no -wal, no lock
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == ("wal" if wal else "delete")
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]


def test_best_and_report_refuse_a_fifo_and_an_empty_study_name(coarse, tmp_path):
    os.mkfifo(tmp_path / "fifo.db")
    one_line_error(invoke("tune", "best", tmp_path / "fifo.db"), "is a named pipe (FIFO), not a regular file")
    one_line_error(invoke("tune", "report", coarse[0], "--study-name", ""), "--study-name is empty")


def test_report_of_a_study_directory_that_was_moved(coarse, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(coarse[0], moved, ignore=shutil.ignore_patterns("*-wal", "*-shm", "*.png"))
    r = invoke("tune", "report", moved)
    assert r.exit_code == 0 and f"in sqlite:///{moved}/study.db" in r.stdout, r.output


def test_a_closed_stdout_ends_report_quietly(coarse, tmp_path):
    """polydl tune report S | head -1: no message about a broken pipe, the status of a Unix tool."""
    p = subprocess.Popen([sys.executable, "-m", "polydl_cli.main", "tune", "report", str(coarse[0]), "--plot",
                          str(tmp_path / "p.png")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().startswith(b"study 'c2f' in ")
    p.stdout.close()                                # the reader has what it wanted
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert err == "" and p.returncode == 141, err


def test_an_out_that_cannot_be_written_is_one_line(tmp_path):
    from run_helpers import without_file_permission_override

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        for out in (ro / "s", ro):
            r = cli("tune", *TINY, "--trials", 2, "--workers", 1, "--out", out,
                    preexec_fn=without_file_permission_override())
            one_line_error(r, f"cannot write the study directory {out}", "Permission denied", "choose another --out")
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


def _file_size_limit(limit):
    """A ``preexec_fn``: files of this process (and its workers) cannot grow past ``limit`` bytes
    (writes past it fail with EFBIG, as on a full disk; Python ignores SIGXFSZ)."""
    import resource

    def set_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_limit


@pytest.mark.parametrize("limit", [20_000, 400_000])
def test_a_disk_that_fills_during_a_search_is_one_line(tmp_path, limit):
    """A storage that cannot grow, when it is opened or as the trials are told: Optuna's
    StorageInternalError around SQLite's error is one line."""
    out = tmp_path / "s"
    r = cli("tune", *TINY, "--trials", 6, "--workers", 1, "--out", out, preexec_fn=_file_size_limit(limit))
    line = one_line_error(r, "storage")
    assert "disk I/O error" in line or "database or disk is full" in line or "File too large" in line, line


def test_best_reads_a_study_directory_it_may_not_write(coarse, tmp_path):
    from run_helpers import without_file_permission_override

    ro = tmp_path / "ro"
    shutil.copytree(coarse[0], ro, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    names = sorted(os.listdir(ro))
    ro.chmod(0o555)
    try:
        r = cli("tune", "best", ro, preexec_fn=without_file_permission_override())
    finally:
        ro.chmod(0o755)
    assert r.returncode == 0 and r.stdout.startswith("# the best trial of the study 'c2f'"), r.stderr
    assert sorted(os.listdir(ro)) == names
