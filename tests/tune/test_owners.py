"""An owner's lock: held while it lives (here or in another process), free or gone after; its
path always derived from OUT, never read from a storage, and never a link or a FIFO."""
import os
import socket
import subprocess
import sys

import pytest

from polydl.tune.owners import Owner, OwnerError, lock_alive, lock_path, owner_alive

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_SH)
print("held", flush=True)
sys.stdin.read()
"""


def test_an_owner_holds_its_lock_until_it_lets_go(tmp_path):
    owner = Owner(tmp_path)
    attr = owner.attr()
    assert attr["host"] == socket.gethostname() and attr["pid"] > 0 and len(attr["token"]) == 8
    assert owner.lock.parent == tmp_path / "owners" and owner.lock.name == f"{attr['pid']}-{attr['token']}.lock"
    assert owner_alive(attr, tmp_path) is True
    worker = subprocess.Popen([sys.executable, "-c", HOLD, str(owner.lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "held"
    os.close(owner._fd)                                   # the owner is gone, its worker still holds the lock
    owner._fd = None
    assert owner_alive(attr, tmp_path) is True
    worker.communicate("")
    assert owner_alive(attr, tmp_path) is False                 # free: nothing trains its trials
    owner.lock.unlink()
    assert owner_alive(attr, tmp_path) is False                 # gone
    assert owner_alive({**attr, "host": "another-machine"}, tmp_path) is None
    assert owner_alive(None, tmp_path) is False


def test_release_removes_the_lock_file(tmp_path):
    owner = Owner(tmp_path)
    owner.release()
    assert not owner.lock.exists() and owner_alive(owner.attr(), tmp_path) is False
    owner.release()


def test_the_lock_path_comes_from_out_never_from_the_attr(tmp_path):
    """A storage from someone else names any ``lock`` it likes: it is never opened; the path is
    OUT/owners/PID-TOKEN.lock, and only plain pids and tokens make one."""
    owner = Owner(tmp_path / "s")
    elsewhere = tmp_path / "user.txt"
    elsewhere.write_text("mine")
    attr = {**owner.attr(), "lock": str(elsewhere)}
    assert lock_path(tmp_path / "s", attr) == tmp_path / "s" / "owners" / owner.lock.name
    assert owner_alive(attr, tmp_path / "s") is True       # the real lock, not the named file
    for bad in ({"pid": "../../x", "token": "ab"}, {"pid": 3, "token": "../../user"}, {"pid": True, "token": "ab"},
                {"pid": -1, "token": "ab"}, {"pid": 3, "token": ""}, {"pid": 3, "token": "a/b"}, {"pid": 3}, []):
        assert lock_path(tmp_path / "s", bad) is None
        assert owner_alive({**bad, "host": socket.gethostname(), "lock": str(elsewhere)} if isinstance(bad, dict)
                           else bad, tmp_path / "s") is False
    assert elsewhere.read_text() == "mine"
    owner.release()


@pytest.mark.parametrize("kind", ["link", "dangling link", "fifo"])
def test_a_lock_that_is_not_a_regular_file_is_refused_and_never_followed(tmp_path, kind):
    out = tmp_path / "s"
    (out / "owners").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    if kind == "link":
        victim.write_text("mine")
    lock = out / "owners" / "123-abcd.lock"
    if kind == "fifo":
        os.mkfifo(lock)
    else:
        os.symlink(victim, lock)
    attr = {"host": socket.gethostname(), "pid": 123, "token": "abcd"}
    assert owner_alive(attr, out) is False and lock_alive(lock) is False     # no hang on the FIFO
    if kind == "link":
        assert victim.read_text() == "mine"
    else:
        assert not victim.exists()


def test_an_owners_directory_that_leads_outside_out_is_refused(tmp_path):
    out, elsewhere = tmp_path / "s", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "owners")
    with pytest.raises(OwnerError, match="is a link that leads outside the study directory"):
        Owner(out)
    assert list(elsewhere.iterdir()) == []
    assert owner_alive({"host": socket.gethostname(), "pid": 1, "token": "ab"}, out) is None


def test_an_owner_of_the_same_storage_in_another_study_directory(tmp_path):
    """Owners of one storage with study directories of their own: the attr's ``lock`` counts only
    where it is OTHER/owners/PID-TOKEN.lock of a study directory that names this storage."""
    from polydl.tune import layout

    url = f"sqlite:///{tmp_path}/shared.db"
    info = {"storage": url, "study_name": "team", "metric": "val_loss", "direction": "minimize", "space": {},
            "rounds": 1, "trials": 2, "sampler": "random", "seed": 0}
    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    owner = Owner(a)
    layout.write_study_json(a, info)
    attr = owner.attr()
    assert owner_alive(attr, b, storage=url) is True
    assert owner_alive(attr, b, storage=f"sqlite:///{tmp_path}/other.db") is False    # not this storage's owner
    assert owner_alive(attr, b) is False
    layout.write_study_json(a, {**info, "storage": f"sqlite:///{tmp_path}/other.db"})
    assert owner_alive(attr, b, storage=url) is False
    layout.write_study_json(a, info)
    for lock in (str(tmp_path / "x" / "owners" / owner.lock.name), str(a / owner.lock.name), "owners/" + owner.lock.name,
                 str(a / "owners" / "1-abc.lock"), str(a / "trials" / ".." / "owners" / "x" / owner.lock.name)):
        assert owner_alive({**attr, "lock": lock}, b, storage=url) is False
    owner.release()
    assert owner_alive(attr, b, storage=url) is False and a.is_dir()
