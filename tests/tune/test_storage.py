"""Storages by path or URL, opened for real (SQLite files, journal files), the owners' flock
between processes, and retries while SQLite is locked."""
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from tune_helpers import optuna

from polydl.tune import storage
from polydl.tune.storage import FileLock, StorageError, resolve, retrying


def test_resolve_paths_and_urls(tmp_path):
    assert resolve(None, tmp_path) == storage.StorageRef(f"sqlite:///{tmp_path}/study.db", "sqlite",
                                                         tmp_path / "study.db")
    assert resolve(str(tmp_path / "a.db")).kind == "sqlite"
    assert resolve(f"sqlite:///{tmp_path}/b.sqlite").path == tmp_path / "b.sqlite"
    for spec in (f"{tmp_path}/j.log", f"{tmp_path}/j.jsonl", f"journal:{tmp_path}/j.txt"):
        ref = resolve(spec)
        assert ref.kind == "journal" and ref.url == f"journal:{ref.path}" and ref.path.is_absolute()
    server = resolve("postgresql://user@db.example/tune")
    assert server.kind == "server" and server.path is None and not server.local
    assert server.lock_path(tmp_path) == tmp_path / "study.polydl.lock"
    assert resolve(None, tmp_path).lock_path(tmp_path) == tmp_path / "study.db.polydl.lock"
    assert resolve(f"{tmp_path}/j.log").lock_path(tmp_path) == tmp_path / "j.log.polydl.lock"   # not Optuna's j.log.lock


@pytest.mark.parametrize("spec, message", [("sqlite://x.db", "three slashes"), ("sqlite:///:memory:", "not a file"),
                                           ("journal:", "needs a file")])
def test_bad_storage_names(spec, message):
    with pytest.raises(StorageError, match=message):
        resolve(spec)


def test_sqlite_and_journal_storages_hold_studies(tmp_path):
    for spec in (str(tmp_path / "s.db"), str(tmp_path / "s.log")):
        st = resolve(spec).open()
        study = optuna.create_study(storage=st, study_name="x")
        study.enqueue_trial({"a": 1.0})
        t = study.ask()
        study.tell(t, t.suggest_float("a", 0, 2))
        again = optuna.load_study(study_name="x", storage=resolve(spec).open())
        assert again.best_value == 1.0
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("spec, message", [
    ("{tmp}/no/such/dir/s.db", "does not exist"), ("{tmp}/no/such/dir/s.log", "does not exist"),
    ("nosuchdialect://host/db", "cannot open the storage nosuchdialect://host/db"),
    ("{tmp}", "is a directory")])
def test_storages_that_cannot_be_opened(tmp_path, spec, message):
    with pytest.raises(StorageError) as err:
        resolve(spec.format(tmp=tmp_path)).open()
    assert message in str(err.value) and "\n" not in str(err.value)


HOLD = """
import sys, time
from polydl.tune.storage import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


OPEN = """
import sys, time
from pathlib import Path
from polydl.tune.storage import resolve
import optuna
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
resolve(sys.argv[1]).open()
print("opened", flush=True)
"""


@pytest.mark.slow
def test_processes_that_open_a_new_sqlite_file_at_once_all_open_it(tmp_path):
    db, go = tmp_path / "new.db", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(db), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 3    # imported, waiting
    go.write_text("")
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "opened", err    # not "table studies already exists"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="s")


def test_the_file_lock_excludes_another_process(tmp_path):
    lock = tmp_path / "study.db.polydl.lock"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "1.0"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    with FileLock(lock):
        waited = time.monotonic() - t0
    p.wait()
    p.stdout.close()
    assert waited > 0.5   # it waited for the other process to let go


def test_retrying_waits_out_a_locked_database(tmp_path):
    path = tmp_path / "busy.db"
    optuna.storages.RDBStorage(f"sqlite:///{path}")    # create the tables
    quick = optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 0.01}})
    blocker = sqlite3.connect(path, timeout=1, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.6, blocker.rollback).start()
    failures = []

    def create():
        try:
            return quick.create_new_study([optuna.study.StudyDirection.MINIMIZE], "late")
        except Exception as exc:
            failures.append(exc)
            raise

    study_id = retrying(create)
    assert failures and storage._transient(failures[0])       # it was locked at first
    assert quick.get_study_name_from_id(study_id) == "late"
    with pytest.raises(ZeroDivisionError):
        retrying(lambda: 1 / 0)                                  # other errors are not retried
