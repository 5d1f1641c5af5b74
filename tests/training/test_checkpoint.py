"""Atomic files, checkpoints and metrics.jsonl."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from run_helpers import without_file_permission_override

from polydl.training import checkpoint as ck


def test_atomic_write_replaces_and_leaves_no_temporaries(tmp_path):
    p = tmp_path / "f.txt"
    ck.atomic_write(p, "one")
    ck.atomic_write(p, b"two")
    assert p.read_text() == "two"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    p = tmp_path / "f.txt"
    ck.atomic_write(p, "old")

    def writer(fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ck.atomic_write(p, writer=writer)
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_fsyncs_and_replaces(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(("replace", os.path.dirname(a))),
                                                      real_replace(a, b)))
    ck.atomic_write(tmp_path / "x", "data")
    assert calls[0] == "fsync"
    assert calls[1] == ("replace", str(tmp_path))  # the temporary file is in the same directory


def test_checkpoint_round_trip(tmp_path):
    meta = {"config": {"a": 1}, "epoch": 2, "step": 40, "rng": {"host": {"state": 2 ** 100}}, "history": [{"x": 1.5}]}
    arrays = {"model/w": np.arange(6, dtype=np.float32).reshape(2, 3), "opt/0/m": np.zeros(4)}
    ck.save_checkpoint(tmp_path / ck.CHECKPOINT, meta, arrays)
    m2, a2 = ck.load_checkpoint(tmp_path / ck.CHECKPOINT)
    assert m2["rng"]["host"]["state"] == 2 ** 100
    assert m2["epoch"] == 2 and m2["history"] == [{"x": 1.5}]
    assert a2.keys() == arrays.keys()
    assert a2["model/w"].dtype == np.float32 and np.array_equal(a2["model/w"], arrays["model/w"])


def test_missing_checkpoint_is_not_a_run(tmp_path):
    with pytest.raises(ck.CheckpointError, match="not a polydl run directory"):
        ck.load_checkpoint(tmp_path / ck.CHECKPOINT)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip"])
def test_damaged_checkpoint(tmp_path, damage):
    p = tmp_path / ck.CHECKPOINT
    meta = {"config": {}, "epoch": 1, "step": 1, "rng": {}, "history": []}
    ck.save_checkpoint(p, meta, {"model/w": np.arange(1000.0)})
    raw = p.read_bytes()
    if damage == "truncate":
        p.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        p.write_bytes(b"\x00garbage" * 50)
    elif damage == "empty":
        p.write_bytes(b"")
    else:  # one flipped byte inside the stored array: the zip CRC catches it
        i = raw.index(np.arange(1000.0)[500:501].tobytes())
        p.write_bytes(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:])
    with pytest.raises(ck.CheckpointError, match="damaged"):
        ck.load_checkpoint(p)


def test_checkpoint_of_another_format(tmp_path):
    p = tmp_path / ck.CHECKPOINT
    np.savez(p, meta=np.frombuffer(json.dumps({"format": "other"}).encode(), np.uint8))
    with pytest.raises(ck.CheckpointError, match="not a polydl checkpoint"):
        ck.load_checkpoint(p)
    ck.save_checkpoint(p, {"config": {}}, {})
    with pytest.raises(ck.CheckpointError, match="has no 'epoch'"):
        ck.load_checkpoint(p)


def test_metrics_write_append_read(tmp_path):
    p = tmp_path / ck.METRICS
    ck.write_metrics(p, [{"epoch": 1}])
    ck.append_metrics(p, {"epoch": 2, "val_loss": None})
    assert ck.read_metrics(p) == [{"epoch": 1}, {"epoch": 2, "val_loss": None}]
    with open(p, "a") as fh:
        fh.write('{"epoch": 3, "tor')  # a line torn by a crash
    assert [r["epoch"] for r in ck.read_metrics(p)] == [1, 2]
    ck.write_metrics(p, [{"epoch": 1}])
    assert p.read_text() == '{"epoch": 1}\n'
    assert ck.read_metrics(tmp_path / "none.jsonl") == []


def test_remove_temporaries(tmp_path):
    (tmp_path / ".polydl-tmp-checkpoint.npz.abc").write_text("x")
    (tmp_path / "keep.txt").write_text("x")
    ck.remove_temporaries(tmp_path)
    assert os.listdir(tmp_path) == ["keep.txt"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    """Files polydl writes get 0o666 less the umask, like any file a program creates, not the
    0600 of a temporary file; checked in a process started with that umask."""
    code = ("import sys; from polydl.training import checkpoint as ck; "
            "ck.atomic_write(sys.argv[1], 'x'); ck.save_checkpoint(sys.argv[2], {}, {})")
    subprocess.run([sys.executable, "-c", code, tmp_path / "a.txt", tmp_path / "c.npz"], check=True,
                   preexec_fn=lambda: os.umask(umask))
    for name in ("a.txt", "c.npz"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == mode, name


def test_an_unreadable_checkpoint_says_so_and_not_that_it_is_damaged(tmp_path):
    """Permission denied is not damage: the message says it cannot be read, why, and to check the
    permissions (run where file permissions apply, also under root)."""
    path = tmp_path / ck.CHECKPOINT
    ck.save_checkpoint(path, {"config": {}, "epoch": 1, "step": 1, "rng": {}, "history": []}, {})
    path.chmod(0)
    code = "import sys; from polydl.training import checkpoint as ck; ck.load_checkpoint(sys.argv[1])"
    try:
        r = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                           preexec_fn=without_file_permission_override())
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot start a process that obeys file permissions here ({exc})")
    finally:
        path.chmod(0o644)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("polydl.training.checkpoint.CheckpointError: cannot read the checkpoint "), last
    assert "Permission denied; check its permissions" in last and "damaged" not in last


# ---------------------------------------------------------------------------- links, FIFOs, damage
def _in_child(code: str, *args, timeout=60):
    """``code`` in a fresh Python (``sys.argv[1:]`` = ``args``): a call that would wait on a FIFO
    fails the test by its timeout instead of hanging it."""
    return subprocess.run([sys.executable, "-c", "import sys; from polydl.training import checkpoint as ck\n" + code,
                           *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_atomic_write_replaces_a_link_and_never_writes_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    run = tmp_path / "run"
    run.mkdir()
    (run / ck.SUMMARY).symlink_to(victim)
    (run / ck.CONFIG).symlink_to(tmp_path / "nowhere.toml")   # dangling: its target is never created
    ck.atomic_write(run / ck.SUMMARY, "{}\n")
    ck.write_metrics(run / ck.CONFIG, [])
    assert victim.read_text() == "mine" and not (tmp_path / "nowhere.toml").exists()
    assert not (run / ck.SUMMARY).is_symlink() and (run / ck.SUMMARY).read_text() == "{}\n"
    assert not (run / ck.CONFIG).is_symlink()


def test_atomic_write_replaces_a_fifo_without_waiting_and_takes_long_names(tmp_path):
    os.mkfifo(tmp_path / ck.SUMMARY)
    r = _in_child("ck.atomic_write(sys.argv[1], 'x')", tmp_path / ck.SUMMARY)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ck.SUMMARY).read_text() == "x"
    long = tmp_path / ("p" * 250 + ".csv")   # a name near the limit: its temporary file's name still fits
    ck.atomic_write(long, "y")
    assert long.read_text() == "y" and sorted(os.listdir(tmp_path)) == sorted([ck.SUMMARY, long.name])


def test_append_metrics_never_writes_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    path = tmp_path / ck.METRICS
    path.symlink_to(victim)
    with pytest.raises(OSError, match="is a symbolic link, not a regular file"):
        ck.append_metrics(path, {"epoch": 1})
    path.unlink()
    os.link(victim, path)   # a hard link: the same file under another name
    with pytest.raises(OSError, match="has 2 hard links"):
        ck.append_metrics(path, {"epoch": 1})
    assert victim.read_text() == "mine\n"
    path.unlink()
    path.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OSError, match="symbolic link"):
        ck.append_metrics(path, {"epoch": 1})
    assert not (tmp_path / "nowhere").exists()


def test_a_fifo_in_place_of_a_run_file_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / ck.METRICS)
    os.mkfifo(tmp_path / ck.CHECKPOINT)
    for call in ("ck.append_metrics(sys.argv[1] + '/metrics.jsonl', {'epoch': 1})",
                 "ck.read_metrics(sys.argv[1] + '/metrics.jsonl')",
                 "ck.load_checkpoint(sys.argv[1] + '/checkpoint.npz')"):
        r = _in_child(call, tmp_path)
        assert r.returncode == 1, (call, r.stderr)
        assert "is a named pipe (FIFO), not a regular file; remove it" in r.stderr.splitlines()[-1], (call, r.stderr)


def test_a_checkpoint_that_is_a_link_is_refused(tmp_path):
    real = tmp_path / "elsewhere.npz"
    ck.save_checkpoint(real, {"config": {}, "epoch": 1, "step": 1, "rng": {}, "history": []}, {})
    run = tmp_path / "run"
    run.mkdir()
    (run / ck.CHECKPOINT).symlink_to(real)
    with pytest.raises(ck.CheckpointError, match=r"checkpoint.npz is a symbolic link, not a regular file"):
        ck.load_checkpoint(run / ck.CHECKPOINT)


@pytest.mark.parametrize("line, says", [
    ('{"epoch": "one", "lr": 0.1}', 'line 2 has "epoch": "one", not a whole number'),
    ('{"epoch": 2, "val_loss": "low"}', 'line 2 has "val_loss": "low", not a number'),
    ('{"epoch": 2, "lr": true}', 'line 2 has "lr": true, not a number'),
    ('{"epoch": 2.5}', 'line 2 has "epoch": 2.5, not a whole number'),
    ('{"epoch": -1}', 'line 2 has "epoch": -1, not a whole number'),
    ('{"epoch": 2, "step": null}', 'line 2 has "step": null, not a whole number'),
    ('{"epoch": 2, "lr_changed": "yes"}', 'line 2 has "lr_changed": "yes", not true or false'),
    ('{"epoch": 2, "event": 5}', 'line 2 has "event": 5, not a text'),
    ('{"lr": 0.1}', 'line 2 has no "epoch"'),
    ('[1, 2]', "line 2 is [1, 2], not a JSON object"),
])
def test_a_damaged_metrics_line_is_named_with_its_field(tmp_path, line, says):
    path = tmp_path / ck.METRICS
    path.write_text('{"epoch": 1, "step": 4, "lr": 0.1, "val_loss": NaN}\n' + line + "\n")
    with pytest.raises(ck.CheckpointError) as err:
        ck.read_metrics(path)
    assert str(err.value) == f"{path} is damaged: {says}; restore the file, or remove that line"


def test_remove_temporaries_removes_links_not_their_targets(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".polydl-tmp-summary.json.x").symlink_to(victim)
    (run / ".polydl-tmp-dir").mkdir()
    (run / ".polydl-tmp-dir" / "keep").write_text("k")
    ck.remove_temporaries(run)
    assert victim.read_text() == "mine"
    assert os.listdir(run) == [".polydl-tmp-dir"] and (run / ".polydl-tmp-dir" / "keep").read_text() == "k"
