"""An owner's lock: held while it lives (here or in another process), free or gone after."""
import os
import socket
import subprocess
import sys

from polydl.tune.owners import Owner, owner_alive

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
    assert owner_alive(attr) is True
    worker = subprocess.Popen([sys.executable, "-c", HOLD, str(owner.lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "held"
    os.close(owner._fd)                                   # the owner is gone, its worker still holds the lock
    owner._fd = None
    assert owner_alive(attr) is True
    worker.communicate("")
    assert owner_alive(attr) is False                        # free: nothing trains its trials
    owner.lock.unlink()
    assert owner_alive(attr) is False                        # gone
    assert owner_alive({**attr, "host": "another-machine"}) is None and owner_alive(None) is False


def test_release_removes_the_lock_file(tmp_path):
    owner = Owner(tmp_path)
    owner.release()
    assert not owner.lock.exists() and owner_alive(owner.attr()) is False
    owner.release()
