"""Run directories: polydl replaces only what it wrote, in directories it marked as its own, and a
run holds an OS lock on its directory while it trains."""
import fcntl
import os
import subprocess
import sys
import textwrap

import pytest
from run_helpers import meta, tiny

from polydl.training import RunDirError, resume, run
from polydl.training.rundir import LOCK, MARKER, RunDir, check_out_dir, is_run_dir, missing_dirs


def test_overwrite_refuses_a_directory_polydl_did_not_write(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.toml").write_text("my own configuration\n")
    (mine / "summary.json").write_text("{}\n")
    for overwrite in (False, True):
        with pytest.raises(RunDirError) as err:
            run(tiny(epochs=1), mine, overwrite=overwrite)
        assert "polydl did not write" in str(err.value) and "--overwrite" not in str(err.value)
    assert (mine / "config.toml").read_text() == "my own configuration\n"
    assert sorted(p.name for p in mine.iterdir()) == ["config.toml", "summary.json"]


def test_the_marker_is_written_and_overwrite_replaces_only_run_files(tmp_path):
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    assert is_run_dir(out) and (out / MARKER).read_text().startswith('{"format": "polydl-run"')
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="already holds a polydl run; pass --overwrite"):
        check_out_dir(out, overwrite=False)
    run(tiny(epochs=2), out, overwrite=True)
    assert meta(out)["epoch"] == 2 and (out / "notes.txt").read_text() == "mine"


def test_a_run_in_use_is_refused_with_the_pid(tmp_path):
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    with RunDir.open(out):  # as if another process trained in it
        with pytest.raises(RunDirError, match=rf"in use by process {os.getpid()}"):
            resume(out, {"epochs": 2})
        with pytest.raises(RunDirError, match="in use by process"):
            run(tiny(epochs=1), out, overwrite=True)
    assert meta(out)["epoch"] == 1
    resume(out, {"epochs": 2})  # released
    assert meta(out)["epoch"] == 2


def test_the_lock_dies_with_its_process(tmp_path):
    """An OS lock: a process killed with SIGKILL while holding it leaves no stale lock."""
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from polydl.training.rundir import RunDir
        RunDir.open({str(out)!r})
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"in use by process {holder.pid}"):
            resume(out, {"epochs": 2})
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    resume(out, {"epochs": 2})
    fd = os.open(out / LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        os.close(fd)


def test_a_run_that_cannot_start_leaves_nothing(tmp_path, monkeypatch):
    from polydl.training import RunWriteError
    from polydl.training import checkpoint as ck

    real = ck.save_checkpoint

    def full(path, meta, arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "save_checkpoint", full)
    with pytest.raises(RunWriteError, match=r"cannot write .*checkpoint.npz: No space left on device; the run in "
                                            r".* could not start, and nothing of it is kept"):
        run(tiny(epochs=1), tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunWriteError):
        run(tiny(epochs=1), tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    monkeypatch.setattr(ck, "save_checkpoint", real)
    run(tiny(epochs=1), tmp_path / "empty")


def test_missing_dirs_are_what_mkdir_would_make_outermost_first(tmp_path):
    assert missing_dirs(tmp_path) == []
    assert missing_dirs(tmp_path / "a" / "b" / "c") == [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"]
    (tmp_path / "a").mkdir()
    assert missing_dirs(tmp_path / "a" / "b") == [tmp_path / "a" / "b"]
