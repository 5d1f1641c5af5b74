"""MNIST, Fashion-MNIST and CIFAR-10 from small generated files: the IDX and CIFAR readers, the
loaders through a local HTTP server (their checksums swapped in for the published ones), the
user's own folder (path=DIR), and the one-line error offline."""
from __future__ import annotations

import gzip
import io
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner

from polydl import datasets, memory
from polydl.datasets import cifar, download, images
from polydl.datasets.download import DatasetFileError, RemoteFile, Source
from polydl.datasets.idx import read_idx, write_idx
from polydl_cli.main import main


# ---------------------------------------------------------------------------- generated files
def mnist_like(n_train=24, n_test=7, seed=0, size=28):
    rng = np.random.default_rng(seed)
    X_tr = rng.integers(0, 256, (n_train, size, size), dtype=np.uint8)
    X_te = rng.integers(0, 256, (n_test, size, size), dtype=np.uint8)
    y_tr = (np.arange(n_train) % 10).astype(np.uint8)
    y_te = (np.arange(n_test) % 10).astype(np.uint8)
    files = {images.IDX_FILES[0]: X_tr, images.IDX_FILES[1]: y_tr, images.IDX_FILES[2]: X_te,
             images.IDX_FILES[3]: y_te}
    return {name: gzip.compress(write_idx(a), mtime=0) for name, a in files.items()}, (X_tr, y_tr, X_te, y_te)


def cifar_like(per_batch=2, n_test=3, seed=0, members=None):
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, n in [(b, per_batch) for b in cifar.TRAIN_BATCHES] + [("test_batch.bin", n_test)]:
        arrays[name] = (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, (X, y) in arrays.items():
            _add(tar, f"cifar-10-batches-bin/{name}", cifar.write_batch(X, y))
        _add(tar, "cifar-10-batches-bin/batches.meta.txt", b"airplane\n")
        for member in members or ():
            tar.addfile(*member)
    return buf.getvalue(), arrays


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def use_files(monkeypatch, name, files: dict[str, bytes], url="http://127.0.0.1:9/"):
    """Swap the published checksums of ``name`` for those of ``files`` (served at ``url``)."""
    monkeypatch.setitem(images.SOURCES, name, Source(name, url, tuple(
        RemoteFile(n, download.sha256(files[n]), len(files[n])) for n in images.SOURCES[name].names())))


def serve(server, files, folder):
    for n, data in files.items():
        server.files[f"/{folder}/{n}"] = data
    return f"{server.url}{folder}/"


# ---------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_idx_round_trip(dtype):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    for raw in (write_idx(a), gzip.compress(write_idx(a))):
        got = read_idx(raw)
        assert got.dtype == np.dtype(dtype).newbyteorder("=") and got.shape == (2, 3, 4)
        np.testing.assert_array_equal(got, a)


def test_idx_is_big_endian():
    raw = write_idx(np.array([1, 256], np.int32))
    assert raw == bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 1, 0])


@pytest.mark.parametrize("raw, message", [
    (b"", "not an IDX file: it starts with nothing"),
    (b"PK\x03\x04rest", "not an IDX file: it starts with 504b0304"),
    (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 9]), "not an IDX file"),            # unknown type code
    (bytes([0, 0, 0x08, 2, 0, 0, 0, 1]), "ends inside its header"),
    (bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2]), "has 2 bytes of values, but its header .3 of 1 byte. says 3"),
    (bytes([0, 0, 0x08, 1, 0, 0, 0, 1, 1, 2]), "has more bytes of values"),
    (b"\x1f\x8b\x08\x00broken", "not a valid gzip file"),
])
def test_bad_idx_files(raw, message):
    with pytest.raises(DatasetFileError, match=message):
        read_idx(raw, "the file")


def test_an_idx_beyond_memory_is_refused_before_reading():
    raw = bytes([0, 0, 0x08, 3]) + np.array([100_000, 100_000, 100_000], ">u4").tobytes()
    with pytest.raises(memory.MemoryLimitError, match=r"the file \(100000 × 100000 × 100000 values\) would need"):
        read_idx(raw, "the file")


# ---------------------------------------------------------------------------- MNIST
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_downloads_checks_and_splits(name, file_server, cache, monkeypatch):
    files, (X_tr, y_tr, X_te, y_te) = mnist_like()
    use_files(monkeypatch, name, files, serve(file_server, files, name))
    d = datasets.load(name, seed=3, val_fraction=0.25)
    assert d.input_shape == (1, 28, 28) and d.num_features == 784 and d.num_classes == 10
    assert d.sizes() == {"train": 18, "val": 6, "test": 7}
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    np.testing.assert_array_equal(d.X_test, X_te.reshape(7, 784) / np.float32(255))   # the official test split
    np.testing.assert_array_equal(d.y_test, y_te)
    train, val, _ = datasets.split_indices(24, 3, 0.25, 0)
    np.testing.assert_array_equal(d.X_val, X_tr.reshape(24, -1)[val] / np.float32(255))
    np.testing.assert_array_equal(d.y_train, y_tr[train])
    np.testing.assert_array_equal(datasets.as_images(d.X_test, d.input_shape)[:, 0], X_te / np.float32(255))
    assert sorted(p.name for p in (cache / name).iterdir() if not p.name.endswith(".lock")) == sorted(files)
    datasets.load(name, seed=4)                                  # from the cache
    assert len(file_server.requests) == 4


def test_mnist_from_a_mirror_parameter(file_server, cache, monkeypatch, closed_url):
    files, _ = mnist_like()
    use_files(monkeypatch, "mnist", files, closed_url)
    mirror = serve(file_server, files, "elsewhere")
    assert datasets.load("mnist", mirror=mirror).sizes()["test"] == 7


def test_mnist_checksum_mismatch(file_server, cache, monkeypatch):
    files, _ = mnist_like()
    use_files(monkeypatch, "mnist", files, serve(file_server, mnist_like(seed=1)[0], "mnist"))
    with pytest.raises(DatasetFileError, match="does not match the published SHA-256 of mnist's train-images"):
        datasets.load("mnist")
    assert not (cache / "mnist" / images.IDX_FILES[0]).exists()


def test_mnist_from_the_users_folder(tmp_path, cache):
    files, (X_tr, y_tr, X_te, y_te) = mnist_like(size=12)
    for i, (n, data) in enumerate(files.items()):          # two of them gunzipped, as people keep them
        (tmp_path / (n[:-3] if i % 2 else n)).write_bytes(gzip.decompress(data) if i % 2 else data)
    d = datasets.load("mnist", path=str(tmp_path), val_fraction=0)
    assert d.input_shape == (1, 12, 12) and d.sizes() == {"train": 24, "val": 0, "test": 7}
    np.testing.assert_array_equal(d.y_test, y_te)
    assert not cache.exists()                                   # nothing downloaded, nothing cached


def test_the_users_folder_lacks_files(tmp_path, cache):
    files, _ = mnist_like()
    (tmp_path / images.IDX_FILES[0]).write_bytes(files[images.IDX_FILES[0]])
    with pytest.raises(DatasetFileError, match=rf"dataset mnist: {tmp_path} has no train-labels-idx1-ubyte.gz, "
                                               r"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; put"):
        datasets.load("mnist", path=str(tmp_path))


@pytest.mark.parametrize("params, message", [
    ({"path": "/no/such/folder"}, "path=/no/such/folder is not a folder"),
    ({"path": "x", "mirror": "http://127.0.0.1:9/"}, "give path .* or mirror .*, not both"),
])
def test_bad_parameters(cache, params, message):
    with pytest.raises(DatasetFileError, match=message):
        datasets.load("mnist", **params)


def test_mismatched_mnist_files(tmp_path):
    files, _ = mnist_like()
    files[images.IDX_FILES[1]] = gzip.compress(write_idx(np.zeros(5, np.uint8)))
    with pytest.raises(DatasetFileError, match="training labels are uint8 of shape .5,.; they must be 24 uint8"):
        images.read_mnist(files)
    files, _ = mnist_like()
    files[images.IDX_FILES[2]] = gzip.compress(write_idx(np.zeros((7, 20, 20), np.uint8)))
    with pytest.raises(DatasetFileError, match="training images are 28×28 but its test images 20×20"):
        images.read_mnist(files)
    files, _ = mnist_like()
    files[images.IDX_FILES[3]] = gzip.compress(write_idx(np.full(7, 12, np.uint8)))
    with pytest.raises(DatasetFileError, match="test labels include 12; its classes are 0-9"):
        images.read_mnist(files)


# ---------------------------------------------------------------------------- CIFAR-10
def test_cifar10_downloads_and_reads_the_archive(file_server, cache, monkeypatch):
    archive, arrays = cifar_like()
    use_files(monkeypatch, "cifar10", {images.CIFAR_ARCHIVE: archive},
              serve(file_server, {images.CIFAR_ARCHIVE: archive}, "kriz"))
    d = datasets.load("cifar10", val_fraction=0.2)
    assert d.input_shape == (3, 32, 32) and d.num_features == 3072 and d.num_classes == 10
    assert d.sizes() == {"train": 8, "val": 2, "test": 3}
    X_te, y_te = arrays["test_batch.bin"]
    # channel planes, each row by row: pixel (c, y, x) is feature c·1024 + y·32 + x
    np.testing.assert_array_equal(datasets.as_images(d.X_test, d.input_shape), X_te / np.float32(255))
    np.testing.assert_array_equal(d.y_test, y_te)
    X_all = np.concatenate([arrays[b][0] for b in cifar.TRAIN_BATCHES])
    train, val, _ = datasets.split_indices(10, 0, 0.2, 0)
    np.testing.assert_array_equal(d.X_train, X_all.reshape(10, -1)[train] / np.float32(255))


@pytest.mark.parametrize("inside", [".", "cifar-10-batches-bin"])
def test_cifar10_from_the_users_batches(tmp_path, cache, inside):
    _, arrays = cifar_like()
    (tmp_path / inside).mkdir(exist_ok=True)
    for name, (X, y) in arrays.items():
        (tmp_path / inside / name).write_bytes(cifar.write_batch(X, y))
    d = datasets.load("cifar10", path=tmp_path, val_fraction=0)
    np.testing.assert_array_equal(d.y_test, arrays["test_batch.bin"][1])


def test_cifar10_from_the_users_archive(tmp_path, cache):
    archive, arrays = cifar_like()
    (tmp_path / images.CIFAR_ARCHIVE).write_bytes(archive)
    assert datasets.load("cifar10", path=tmp_path).sizes()["test"] == 3


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return (info,)


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


@pytest.mark.parametrize("member, message", [
    (_file("../../etc/evil"), "unsafe path '../../etc/evil'"),
    (_file("/abs/data_batch_1.bin"), "unsafe path '/abs/data_batch_1.bin'"),
    (_file("a/../../b"), "unsafe path"),
    (_link("other/test_batch.bin", "/etc/passwd"), "has test_batch.bin twice|is a link"),
    (_file("copy/data_batch_2.bin"), "has data_batch_2.bin twice"),
])
def test_archive_members_with_path_tricks_are_refused(member, message):
    archive, _ = cifar_like(members=[member])
    with pytest.raises(DatasetFileError, match=message):
        images.read_cifar10({images.CIFAR_ARCHIVE: archive})


def test_a_link_member_in_place_of_a_batch_is_refused():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(*_link("cifar-10-batches-bin/test_batch.bin", "/etc/passwd"))
    with pytest.raises(DatasetFileError, match="'cifar-10-batches-bin/test_batch.bin' is a link or a special file"):
        cifar.read_archive(buf.getvalue(), "archive")


def test_bad_cifar_files():
    with pytest.raises(DatasetFileError, match="not a valid tar.gz archive"):
        cifar.read_archive(b"\x1f\x8bnot really", "archive")
    with pytest.raises(DatasetFileError, match="has no data_batch_1.bin"):
        cifar.read_archive(_empty_tar(), "archive")
    with pytest.raises(DatasetFileError, match="3,074 bytes, not a whole number of 3,073-byte records"):
        cifar.read_batch(bytes(3074), "a batch")
    with pytest.raises(DatasetFileError, match="record 2 has the label 10"):
        cifar.read_batch(bytes(3073) + bytes([10]) + bytes(3072), "a batch")


def _empty_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz"):
        pass
    return buf.getvalue()


# ---------------------------------------------------------------------------- through the trainer's loader
def test_the_trainers_loader_takes_the_path_parameter(tmp_path, cache):
    from polydl.training.data import load_dataset

    files, _ = mnist_like()
    for n, data in files.items():
        (tmp_path / n).write_bytes(data)
    loaded = load_dataset("mnist", seed=0, val_split=0.25, test_split=0.2, params={"path": str(tmp_path)})
    assert {s: len(y) for s, (_, y) in loaded.splits.items()} == {"train": 18, "val": 6, "test": 7}


def test_offline_the_cli_says_one_error_line(cache, closed_url, monkeypatch, tmp_path):
    monkeypatch.setenv(download.MIRROR_ENV, closed_url)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--dataset", "mnist", "--epochs", "1", "--no-plot", "--out",
                                       str(tmp_path / "runs")], prog_name="polydl")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert lines[0].startswith("Error: cannot download mnist's train-images-idx3-ubyte.gz from "
                               f"{closed_url}mnist/train-images-idx3-ubyte.gz: ")
    assert (f"put {', '.join(images.IDX_FILES)} in {cache / 'mnist'}") in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_cli_trains_on_the_users_mnist_files(tmp_path, cache):
    files, _ = mnist_like(n_train=40, n_test=10)
    (tmp_path / "mnist").mkdir()
    for n, data in files.items():
        (tmp_path / "mnist" / n).write_bytes(data)
    result = CliRunner().invoke(main, ["train", "--dataset", "mnist", "--dataset-param", f"path={tmp_path / 'mnist'}",
                                       "--hidden", "8", "--epochs", "1", "--batch-size", "8", "--no-plot",
                                       "--out", str(tmp_path / "run")], prog_name="polydl")
    assert result.exit_code == 0, result.output
    assert not cache.exists()
