"""The published image data sets: MNIST, Fashion-MNIST (IDX files) and CIFAR-10 (binary batches).

``load(name, path=None, mirror=None)`` gives their official training and test images as
:class:`ImageArrays`: uint8 pixels flattened to rows (m, C·H·W), int64 labels, and the shape of
one image. The files come from the cache, downloaded once where missing
(:mod:`polydl.datasets.download`), or from the user's folder ``path``.

``SOURCES`` holds each set's published address and the SHA-256 and size of each file (tests
swap in their own entries to serve small generated files).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import cifar, download
from .download import DatasetFileError, RemoteFile, Source
from .idx import read_idx

__all__ = ["ImageArrays", "SOURCES", "IDX_FILES", "load", "read_mnist", "read_cifar10"]

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"

# SHA-256 and sizes as published in TensorFlow Datasets' checksum files
# (github.com/tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt, fashion_mnist.txt and
# cifar10.txt). The MNIST files are the ones torchvision checks by MD5 (f68b3c2d..., d53e105e...,
# 9fb629c4..., ec29112d...).
SOURCES = {
    "mnist": Source("mnist", "https://storage.googleapis.com/cvdf-datasets/mnist/", (
        RemoteFile(IDX_FILES[0], "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        RemoteFile(IDX_FILES[1], "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        RemoteFile(IDX_FILES[2], "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        RemoteFile(IDX_FILES[3], "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542))),
    "fashion_mnist": Source("fashion_mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", (
        RemoteFile(IDX_FILES[0], "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        RemoteFile(IDX_FILES[1], "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        RemoteFile(IDX_FILES[2], "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        RemoteFile(IDX_FILES[3], "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148))),
    "cifar10": Source("cifar10", "https://www.cs.toronto.edu/~kriz/", (
        RemoteFile(CIFAR_ARCHIVE, "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171),)),
}


class ImageArrays(NamedTuple):
    """A data set's official splits: ``X_*`` uint8 (m, prod(input_shape)), ``y_*`` int64 (m,)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple
    num_classes: int


def load(name: str, path=None, mirror=None, progress: bool | None = None) -> ImageArrays:
    """The images of ``name`` (``mnist``, ``fashion_mnist`` or ``cifar10``): from the user's
    folder ``path`` where given, else from the cache (downloaded from ``mirror`` or the published
    address where missing)."""
    source = SOURCES[name]
    if path is not None:
        if mirror is not None:
            raise DatasetFileError(f"dataset {name}: give path (a folder with the files) or mirror (a URL to "
                                   "download them from), not both")
        files = _user_files(source, download.check_user_folder(path))
    else:
        files = download.fetch(source, mirror, progress)
    reader = read_cifar10 if name == "cifar10" else read_mnist
    return reader(files, name)


def _user_files(source: Source, folder) -> dict[str, bytes]:
    """The bytes of the user's copies: each file under its published name, an IDX file also
    without ``.gz``; CIFAR-10 also as its ``.bin`` batches (in the folder or its
    ``cifar-10-batches-bin``)."""
    out, missing = {}, []
    for name in source.names():
        alternatives = (name[:-3],) if name.endswith(".gz") and name != CIFAR_ARCHIVE else ()
        found = download.user_file(folder, name, alternatives)
        batches = _user_batches(folder) if found is None and name == CIFAR_ARCHIVE else None
        if found is not None:
            out[name] = found[1]
        elif batches is not None:
            out.update(batches)
        else:
            missing.append(name)
    if missing:
        extra = " (or its .bin batches)" if CIFAR_ARCHIVE in missing else ""
        raise DatasetFileError(f"dataset {source.dataset}: {folder} has no {', '.join(missing)}{extra}; put the "
                               f"data set's files ({', '.join(source.names())}) there, or leave out path to "
                               "download them")
    return out


def _user_batches(folder) -> dict[str, bytes] | None:
    for where in (folder, folder / "cifar-10-batches-bin"):
        batches = {b: download.user_file(where, b) for b in cifar.TRAIN_BATCHES + cifar.TEST_BATCHES}
        if all(batches.values()):
            return {b: found[1] for b, found in batches.items()}
    return None


def _idx_split(images_raw: bytes, labels_raw: bytes, what: str, split: str):
    images = read_idx(images_raw, f"{what}'s {split} images")
    labels = read_idx(labels_raw, f"{what}'s {split} labels")
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetFileError(f"{what}'s {split} images are {images.dtype} of shape {images.shape}, not uint8 "
                               "images (n, rows, columns)")
    if labels.ndim != 1 or labels.dtype != np.uint8 or len(labels) != len(images):
        raise DatasetFileError(f"{what}'s {split} labels are {labels.dtype} of shape {labels.shape}; they must "
                               f"be {len(images):,} uint8 labels, one per image")
    if len(labels) and labels.max() > 9:
        raise DatasetFileError(f"{what}'s {split} labels include {int(labels.max())}; its classes are 0-9")
    return images.reshape(len(images), -1), labels.astype(np.int64), (1, *images.shape[1:])


def read_mnist(files: dict, what: str = "mnist") -> ImageArrays:
    """MNIST-style IDX files (by their published names) as :class:`ImageArrays`, 10 classes."""
    X_train, y_train, shape = _idx_split(files[IDX_FILES[0]], files[IDX_FILES[1]], what, "training")
    X_test, y_test, test_shape = _idx_split(files[IDX_FILES[2]], files[IDX_FILES[3]], what, "test")
    if shape != test_shape:
        raise DatasetFileError(f"{what}'s training images are {shape[1]}×{shape[2]} but its test images "
                               f"{test_shape[1]}×{test_shape[2]}; they must have one size")
    return ImageArrays(X_train, y_train, X_test, y_test, shape, 10)


def read_cifar10(files: dict, what: str = "cifar10") -> ImageArrays:
    """CIFAR-10's archive (or its batches, by file name) as :class:`ImageArrays`, 10 classes."""
    batches = files if CIFAR_ARCHIVE not in files else cifar.read_archive(files[CIFAR_ARCHIVE], f"{what}'s "
                                                                          f"{CIFAR_ARCHIVE}")
    parts = {}
    for split, names in (("train", cifar.TRAIN_BATCHES), ("test", cifar.TEST_BATCHES)):
        read = [cifar.read_batch(batches[n], f"{what}'s {n}") for n in names]
        parts[split] = (np.concatenate([r[0] for r in read]), np.concatenate([r[1] for r in read]))
    return ImageArrays(*parts["train"], *parts["test"], cifar.IMAGE_SHAPE, cifar.NUM_CLASSES)
