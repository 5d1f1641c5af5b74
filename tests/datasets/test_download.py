"""Downloading into the cache from a local HTTP server: checksums, resume, mirrors, offline
errors, the lock between processes, links refused. No test reaches the network."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from polydl.datasets import download
from polydl.datasets.download import DatasetFileError, RemoteFile, Source

REPO = Path(__file__).resolve().parents[2]


def payload(n=50_000, seed=0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def source_for(url, files: dict[str, bytes], dataset="toy", sizes=True) -> Source:
    return Source(dataset, url, tuple(RemoteFile(n, download.sha256(d), len(d) if sizes else None)
                                      for n, d in files.items()))


def serve(server, files, folder="/pub/"):
    for name, data in files.items():
        server.files[folder + name] = data
    return server.url + folder.lstrip("/")


def test_download_into_the_cache_then_from_it(file_server, cache):
    files = {"a.bin": payload(30_000, 1), "b.gz": payload(2_000, 2)}
    src = source_for(serve(file_server, files), files)
    got = download.fetch(src)
    assert got == files
    for name, data in files.items():
        assert (cache / "toy" / name).read_bytes() == data
    assert sorted(p.name for p in (cache / "toy").iterdir()) == ["a.bin", "a.bin.lock", "b.gz", "b.gz.lock"]
    assert len(file_server.requests) == 2 and all(r is None for _, r in file_server.requests)
    assert download.fetch(src) == files                # from the cache: nothing asked again
    assert len(file_server.requests) == 2


def test_size_unknown_is_fine(file_server, cache):
    files = {"a.bin": payload(5_000)}
    assert download.fetch(source_for(serve(file_server, files), files, sizes=False)) == files


def test_a_checksum_mismatch_is_refused_and_nothing_kept(file_server, cache):
    files = {"a.bin": payload(10_000)}
    url = serve(file_server, {"a.bin": payload(10_000, seed=9)})    # same size, other bytes
    with pytest.raises(DatasetFileError, match=r"does not match the published SHA-256 of toy's a\.bin.*not kept"):
        download.fetch(source_for(url, files))
    assert sorted(p.name for p in (cache / "toy").iterdir()) == ["a.bin.lock"]


def test_a_wrong_cached_file_is_downloaded_again(file_server, cache, capsys):
    files = {"a.bin": payload(10_000)}
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "a.bin").write_bytes(b"damaged")
    assert download.fetch(source_for(serve(file_server, files), files)) == files
    assert "does not match its published SHA-256; downloading it again" in capsys.readouterr().err


def test_an_interrupted_download_resumes_with_a_range_request(file_server, cache):
    data = payload(40_000)
    url = serve(file_server, {"a.bin": data})
    file_server.cut_after["/pub/a.bin"] = 15_000            # the connection drops after 15,000 bytes
    src = source_for(url, {"a.bin": data})
    with pytest.raises(DatasetFileError, match=r"cannot download toy's a\.bin .*15,000 bytes are kept in a\.bin"
                                               r"\.part: run again to continue"):
        download.fetch(src)
    part = cache / "toy" / "a.bin.part"
    assert part.read_bytes() == data[:15_000] and not (cache / "toy" / "a.bin").exists()
    assert download.fetch(src) == {"a.bin": data}
    assert file_server.requests == [("/pub/a.bin", None), ("/pub/a.bin", "bytes=15000-")]
    assert file_server.sent["/pub/a.bin"] == len(data)     # every byte served once
    assert not part.exists()


def test_a_server_that_ignores_the_range_sends_everything_again(file_server, cache):
    data = payload(20_000)
    url = serve(file_server, {"a.bin": data})
    file_server.ignore_range = True
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "a.bin.part").write_bytes(data[:5_000])
    assert download.fetch(source_for(url, {"a.bin": data})) == {"a.bin": data}
    assert file_server.sent["/pub/a.bin"] == len(data)


@pytest.mark.parametrize("stale", [b"x" * 5_000, b"y" * 20_000], ids=["short", "complete-size"])
def test_a_stale_partial_file_is_started_over(file_server, cache, stale):
    data = payload(20_000)
    url = serve(file_server, {"a.bin": data})
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "a.bin.part").write_bytes(stale)
    assert download.fetch(source_for(url, {"a.bin": data})) == {"a.bin": data}
    assert file_server.requests[-1] == ("/pub/a.bin", None)


def test_mirror_parameter_and_environment(file_server, cache, closed_url, monkeypatch):
    files = {"a.bin": payload(3_000)}
    src = source_for(closed_url, files)                      # the published address is down
    mirror = serve(file_server, files, "/mirror/")
    assert download.fetch(src, mirror=mirror.rstrip("/")) == files
    assert file_server.requests == [("/mirror/a.bin", None)]
    # the environment's mirror is laid out like the cache: URL/DATASET/FILE
    serve(file_server, files, "/all/toy2/")
    monkeypatch.setenv(download.MIRROR_ENV, file_server.url + "all")
    assert download.fetch(source_for(closed_url, files, dataset="toy2")) == files
    assert file_server.requests[-1] == ("/all/toy2/a.bin", None)


def test_a_file_url_mirror(tmp_path, cache, closed_url):
    files = {"a.bin": payload(3_000)}
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.bin").write_bytes(files["a.bin"])
    assert download.fetch(source_for(closed_url, files), mirror=(tmp_path / "m").as_uri()) == files


@pytest.mark.parametrize("mirror", ["ftp://example.org/x", "127.0.0.1/x", 5])
def test_a_mirror_must_be_a_url(cache, mirror):
    with pytest.raises(DatasetFileError, match="mirror must be an http://, https:// or file: URL"):
        download.fetch(source_for("http://127.0.0.1:9/", {"a": b"a"}), mirror=mirror)


def test_offline_is_one_error_naming_the_files_and_where_to_put_them(cache, closed_url):
    files = {"one.gz": b"1", "two.gz": b"2"}
    with pytest.raises(DatasetFileError) as info:
        download.fetch(source_for(closed_url, files))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"cannot download toy's one.gz from {closed_url}one.gz: ")
    assert "refused" in msg.lower()
    assert f"put one.gz, two.gz in {cache / 'toy'}" in msg and "path=DIR" in msg and "mirror=URL" in msg
    assert sorted(p.name for p in (cache / "toy").iterdir()) == ["one.gz.lock"]     # no empty partial file


def test_a_missing_file_on_the_server(file_server, cache):
    with pytest.raises(DatasetFileError, match=r"from .*a\.bin: HTTP 404"):
        download.fetch(source_for(file_server.url, {"a.bin": b"abc"}))


@pytest.mark.parametrize("suffix", ["", ".part", ".lock"])
def test_a_link_in_the_cache_is_never_followed(file_server, cache, tmp_path, suffix):
    data = payload(4_000)
    url = serve(file_server, {"a.bin": data})
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / f"a.bin{suffix}").symlink_to(victim)
    with pytest.raises(DatasetFileError, match=r"a\.bin" + suffix.replace(".", r"\.") + " is a symbolic link"):
        download.fetch(source_for(url, {"a.bin": data}))
    assert victim.read_bytes() == b"keep me"
    assert (cache / "toy" / f"a.bin{suffix}").is_symlink()


def test_the_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(download.DATA_DIR_ENV, str(tmp_path / "own"))
    assert download.cache_dir("mnist") == tmp_path / "own" / "mnist"
    monkeypatch.delenv(download.DATA_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.data_root() == tmp_path / "xdg" / "polydl"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")             # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.data_root() == tmp_path / "home" / ".cache" / "polydl"


def test_a_cache_folder_that_is_a_file(monkeypatch, tmp_path):
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv(download.DATA_DIR_ENV, str(tmp_path / "f"))
    with pytest.raises(DatasetFileError, match="cannot (keep|create)"):
        download.cache_dir("toy", create=True)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_only_on_a_terminal():
    tty = _Tty()
    bar = download.Progress("toy/a.bin", 2_000_000, 0, stream=tty)
    bar.update(1_000_000)
    bar.shown_at = 0.0
    bar.update(2_000_000)
    bar.close()
    out = tty.getvalue()
    assert out.startswith("\rtoy/a.bin    0%  0.0/2.0 MB") and "\rtoy/a.bin  100%  2.0/2.0 MB\n" in out
    plain = io.StringIO()
    bar = download.Progress("toy/a.bin", 10, 0, stream=plain)
    bar.update(10)
    bar.close()
    assert plain.getvalue() == ""


def test_no_progress_bar_when_stderr_is_not_a_terminal(file_server, cache, capsys):
    files = {"a.bin": payload(200_000)}
    download.fetch(source_for(serve(file_server, files), files))
    assert capsys.readouterr().err == ""


_CHILD = textwrap.dedent("""
    import sys
    from polydl.datasets import download
    src = download.Source("toy", sys.argv[1], (download.RemoteFile("a.bin", sys.argv[2], int(sys.argv[3])),))
    data = download.fetch(src)["a.bin"]
    print(len(data), download.sha256(data) == sys.argv[2])
""")


def test_two_processes_download_a_file_once(file_server, cache):
    data = payload(60_000)
    url = serve(file_server, {"a.bin": data})
    file_server.gate = threading.Event()                      # the first download stalls after 1 KiB
    args = [sys.executable, "-c", _CHILD, url, download.sha256(data), str(len(data))]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = []
    try:
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        assert file_server.started.wait(60), "the first process never started its download"
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        waiting = procs[1].stderr.readline()                  # the second waits for the first's lock
        file_server.gate.set()
        (out1, err1), (out2, err2) = (p.communicate(timeout=60) for p in procs)
    finally:
        file_server.gate.set()
        for p in procs:
            p.kill()
    assert waiting == "polydl: waiting for another process downloading toy/a.bin\n", (waiting, err2)
    assert procs[0].returncode == 0 and procs[1].returncode == 0, (err1, err2)
    assert out1.split() == out2.split() == [str(len(data)), "True"]
    assert file_server.requests == [("/pub/a.bin", None)]      # one download, the other waited for it
    assert file_server.sent["/pub/a.bin"] == len(data)


def test_a_progress_bar_when_asked(file_server, cache, capsys):
    files = {"a.bin": payload(100_000)}
    download.fetch(source_for(serve(file_server, files), files), progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rtoy/a.bin    0%  0.0/0.1 MB") and err.endswith("\rtoy/a.bin  100%  0.1/0.1 MB\n")
