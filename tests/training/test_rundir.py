"""Run directories: polydl replaces only what it wrote, in directories it marked as its own, and a
run holds an OS lock on its directory while it trains."""
import fcntl
import os
import re
import subprocess
import sys
import textwrap

import pytest
from run_helpers import meta, tiny

from polydl.training import RunDirError, resume, run
from polydl.training import checkpoint as ck
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


# ---------------------------------------------------------------------------- links and odd files
@pytest.fixture
def victim(tmp_path):
    """A file of the user's, outside any run, with known content."""
    path = tmp_path / "victim.txt"
    path.write_text("my own file\n")
    return path


def test_a_lock_that_links_outside_the_run_is_refused_and_its_target_kept(tmp_path, victim):
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    (out / LOCK).unlink()
    (out / LOCK).symlink_to(victim)
    with pytest.raises(RunDirError, match=r"cannot lock the run directory .*\.polydl-lock is a symbolic link, not a "
                                          r"regular file; remove it"):
        resume(out, {"epochs": 2})
    with pytest.raises(RunDirError, match="is a symbolic link"):
        run(tiny(epochs=1), out, overwrite=True)
    assert victim.read_text() == "my own file\n" and meta(out)["epoch"] == 1
    (out / LOCK).unlink()
    (out / LOCK).symlink_to(tmp_path / "created-elsewhere")   # dangling: its target is never created
    for attempt in (lambda: resume(out, {"epochs": 2}), lambda: run(tiny(epochs=1), out, overwrite=True)):
        with pytest.raises(RunDirError, match="is a symbolic link"):
            attempt()
    assert not os.path.lexists(tmp_path / "created-elsewhere")


def test_a_hard_linked_lock_is_refused(tmp_path, victim):
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    (out / LOCK).unlink()
    os.link(victim, out / LOCK)
    with pytest.raises(RunDirError, match=r"\.polydl-lock has 2 hard links"):
        resume(out, {"epochs": 2})
    assert victim.read_text() == "my own file\n"


def test_a_fifo_as_the_lock_is_refused(tmp_path):
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    (out / LOCK).unlink()
    os.mkfifo(out / LOCK)
    with pytest.raises(RunDirError, match=r"\.polydl-lock is a named pipe \(FIFO\), not a regular file; remove it"):
        RunDir.open(out)


def test_run_files_that_are_links_are_replaced_never_written_through(tmp_path, victim):
    """--overwrite and --resume replace a link in place of a run file; its target is untouched."""
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    for overwrite in (True, False):
        for name in (ck.METRICS, ck.CONFIG, ck.SUMMARY):
            (out / name).unlink()
            (out / name).symlink_to(victim)
        (out / ck.CURVES).unlink(missing_ok=True)
        (out / ck.CURVES).symlink_to(tmp_path / "created-elsewhere.png")
        if overwrite:
            run(tiny(epochs=1, plot=False), out, overwrite=True)
        else:
            resume(out, {"epochs": meta(out)["epoch"] + 1})
        assert victim.read_text() == "my own file\n"
        assert not os.path.lexists(tmp_path / "created-elsewhere.png")
        for name in (ck.METRICS, ck.CONFIG, ck.SUMMARY):
            assert not (out / name).is_symlink() and (out / name).stat().st_nlink == 1, name


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_overwrite_refuses_what_is_not_a_file_in_place_of_a_run_file(tmp_path, kind):
    out = tmp_path / "r"
    run(tiny(epochs=1), out)
    (out / ck.SUMMARY).unlink()
    if kind == "fifo":
        os.mkfifo(out / ck.SUMMARY)
    else:
        (out / ck.SUMMARY).mkdir()
        (out / ck.SUMMARY / "mine.txt").write_text("x")
    what = "a named pipe (FIFO)" if kind == "fifo" else "a directory"
    with pytest.raises(RunDirError, match=rf"cannot replace the run in .*: .*summary\.json is {re.escape(what)}, not "
                                          r"a file polydl wrote; remove it"):
        run(tiny(epochs=1), out, overwrite=True)
    assert meta(out)["epoch"] == 1
    if kind == "dir":
        assert (out / ck.SUMMARY / "mine.txt").read_text() == "x"


def test_a_marker_that_is_a_link_does_not_make_a_run(tmp_path):
    """Only a marker polydl wrote makes a directory its own: a link named .polydl-run to the marker
    of a real run does not let --overwrite delete the files of a directory of the user's."""
    real = tmp_path / "real"
    run(tiny(epochs=1), real)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / MARKER).symlink_to(real / MARKER)
    (mine / ck.CONFIG).write_text("my own configuration\n")
    with pytest.raises(RunDirError, match="polydl did not write"):
        run(tiny(epochs=1), mine, overwrite=True)
    assert (mine / ck.CONFIG).read_text() == "my own configuration\n"
    assert not is_run_dir(mine)


def test_abandon_removes_only_the_directory_it_made(tmp_path):
    """A directory made for a run that could not start is removed only if it is still the one made:
    one put in its place (or a link) is left as it is."""
    rd = RunDir.create(tmp_path / "a" / "b")
    assert rd.created == [tmp_path / "a", tmp_path / "a" / "b"]
    (tmp_path / "a").rename(tmp_path / "moved")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "keep.txt").write_text("mine")
    rd.abandon()
    assert (tmp_path / "a" / "keep.txt").read_text() == "mine"
    rd = RunDir.create(tmp_path / "c")
    (tmp_path / "c").rename(tmp_path / "c-moved")
    (tmp_path / "c").symlink_to(tmp_path / "a")
    rd.abandon()
    assert (tmp_path / "a" / "keep.txt").read_text() == "mine"
    rd = RunDir.create(tmp_path / "d" / "e")
    rd.abandon()
    assert not (tmp_path / "d").exists()


def test_an_out_dir_the_system_refuses_is_one_error(tmp_path):
    too_long = tmp_path / ("x" * 5000)
    with pytest.raises(RunDirError) as err:
        run(tiny(epochs=1), too_long)
    message = str(err.value)
    assert message.startswith(f"cannot use {str(too_long)[:50]}") and "(" in message
    assert "File name too long; choose another with --out DIR" in message and len(message) < 300
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(RunDirError, match="Too many levels of symbolic links"):
        run(tiny(epochs=1), tmp_path / "loop" / "run")
