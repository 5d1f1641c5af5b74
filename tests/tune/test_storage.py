"""Storages by path or URL, opened for real (SQLite files, journal files), the owners' flock
between processes, and retries while SQLite is locked."""
import os
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


def _user_db(path, wal=False):
    """A user's own SQLite file (not a study)."""
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("wal", [False, True])
def test_opening_read_only_never_changes_a_file_that_holds_no_study(tmp_path, wal):
    path = tmp_path / "mine.db"
    _user_db(path, wal)
    before, names = path.read_bytes(), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(StorageError, match="holds no study"):
        resolve(str(path)).open(readonly=True)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == names   # no lock, -wal, -shm
    mode = sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == ("wal" if wal else "delete")
    (tmp_path / "text.db").write_text("not a database\n")
    with pytest.raises(StorageError, match="is not a study storage: file is not a database"):
        resolve(str(tmp_path / "text.db")).open(readonly=True)
    assert (tmp_path / "text.db").read_text() == "not a database\n"


def test_a_study_opens_read_only(tmp_path):
    path = tmp_path / "s.db"
    optuna.create_study(storage=resolve(str(path)).open(), study_name="x").ask()
    study = optuna.load_study(study_name="x", storage=resolve(str(path)).open(readonly=True))
    assert len(study.trials) == 1
    with pytest.raises(optuna.exceptions.StorageInternalError) as err:
        study.ask()                         # the connection cannot write
    assert storage.first_line(err.value) == "attempt to write a readonly database"


@pytest.mark.parametrize("kind", ["link", "dangling link", "fifo"])
def test_a_lock_or_storage_that_is_not_a_regular_file_is_refused_never_followed(tmp_path, kind):
    victim = tmp_path / "victim.txt"
    if kind == "link":
        victim.write_text("mine")
    lock, db = tmp_path / "s.db.polydl.lock", tmp_path / "s.db"
    for p in (lock, db):
        if kind == "fifo":
            os.mkfifo(p)
        else:
            os.symlink(victim, p)
    with pytest.raises(StorageError, match="not a regular file"):   # no hang on the FIFO
        with FileLock(lock):
            pass
    with pytest.raises(StorageError, match="not a regular file"):
        resolve(str(db)).open()
    with pytest.raises(StorageError, match="not a regular file"):
        resolve(str(db)).open(readonly=True)
    os.unlink(db)
    with pytest.raises(StorageError, match="not a regular file"):
        resolve(str(db)).open()             # the lock around creating the file
    if kind == "link":
        assert victim.read_text() == "mine"
    else:
        assert not victim.exists()
    assert not db.exists()


def test_a_study_directory_that_moved_finds_its_storage_inside(tmp_path):
    old, new = tmp_path / "s", tmp_path / "s2"
    new.mkdir()
    assert storage.of_study_dir(f"sqlite:///{old}/study.db", new).path == old / "study.db"   # nothing there yet
    (new / "study.db").write_bytes(b"")
    (new / "j.log").write_bytes(b"")
    assert storage.of_study_dir(f"sqlite:///{old}/study.db", new) == resolve(str(new / "study.db"))
    assert storage.of_study_dir(f"journal:{old}/j.log", new) == resolve(str(new / "j.log"))
    assert storage.of_study_dir(f"sqlite:///{tmp_path}/other.db", new).path == tmp_path / "other.db"
    assert storage.of_study_dir("postgresql://db.example/tune", new).kind == "server"


def test_a_text_file_named_as_a_journal_is_read_never_written(tmp_path):
    for name, text in (("notes.log", "hello\nworld\n"), ("data.jsonl", '{"a": 1}\n')):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(StorageError, match="holds no study"):
            resolve(str(path)).open(readonly=True)
        assert path.read_text() == text
    assert sorted(os.listdir(tmp_path)) == ["data.jsonl", "notes.log"]
    with pytest.raises(StorageError, match="does not exist"):
        resolve(str(tmp_path / "none.log")).open(readonly=True)
    assert not (tmp_path / "none.log").exists()


def test_a_search_never_writes_its_tables_into_a_database_of_other_tables(tmp_path):
    path = tmp_path / "mine.db"
    _user_db(path)
    before = path.read_bytes()
    with pytest.raises(StorageError, match=r"is an SQLite file with tables of its own \(notes\), not a study"):
        resolve(str(path)).open()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["mine.db"]
    (tmp_path / "empty.db").write_bytes(b"")               # an empty file becomes a study
    optuna.create_study(storage=resolve(str(tmp_path / "empty.db")).open(), study_name="x")
