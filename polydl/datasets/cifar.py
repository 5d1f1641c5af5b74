"""Reading CIFAR-10's binary version: ``cifar-10-binary.tar.gz`` or its ``.bin`` batches.

Each batch file is a sequence of 3,073-byte records: the label (0-9), then the 32×32 image as
1,024 red, 1,024 green and 1,024 blue bytes, each plane row by row, i.e. C-order (3, 32, 32).
The archive is read in memory with :mod:`tarfile`, never extracted; an archive with a member
whose path is absolute or climbs out with '..', or whose batch is a link or a device, is refused.
"""
from __future__ import annotations

import io
import tarfile
import zlib
from pathlib import PurePosixPath, PureWindowsPath

import numpy as np

from .. import memory
from .download import DatasetFileError

__all__ = ["TRAIN_BATCHES", "TEST_BATCHES", "IMAGE_SHAPE", "RECORD", "NUM_CLASSES", "read_archive", "read_batch",
           "write_batch"]

TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCHES = ("test_batch.bin",)
IMAGE_SHAPE = (3, 32, 32)
RECORD = 1 + 3 * 32 * 32
NUM_CLASSES = 10


def _unsafe(name: str) -> bool:
    """Whether an archive member's path is absolute, climbs out with '..' or has a drive."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    return (posix.is_absolute() or windows.is_absolute() or bool(windows.drive) or name.startswith(("/", "\\"))
            or ".." in posix.parts or ".." in windows.parts)


def read_archive(data: bytes, what: str, wanted=TRAIN_BATCHES + TEST_BATCHES) -> dict[str, bytes]:
    """The bytes of each ``wanted`` batch (by file name, in whatever folder of the archive) of a
    tar archive (gzipped or not), read in memory. Refused, naming the member: any member with an
    unsafe path, a wanted batch that is not a regular file or is there twice; a missing batch."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = tar.getmembers()
            found = _wanted_members(members, what, wanted)
            out = {}
            for name, member in found.items():
                memory.check_bytes(f"{what}: {member.name}", member.size, "free some memory")
                out[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DatasetFileError(f"{what} is not a valid tar.gz archive ({exc})") from None
    return out


def _wanted_members(members, what: str, wanted) -> dict:
    found = {}
    for m in members:
        if _unsafe(m.name):
            raise DatasetFileError(f"{what} has a member with an unsafe path {m.name!r} (absolute, or climbing out "
                                   "with '..'); the archive is refused")
        name = PurePosixPath(m.name).name
        if name not in wanted:
            continue
        if not m.isfile():
            raise DatasetFileError(f"{what}: its member {m.name!r} is a link or a special file, not a file; "
                                   "the archive is refused")
        if name in found:
            raise DatasetFileError(f"{what} has {name} twice ({found[name].name!r} and {m.name!r}); the archive "
                                   "is refused")
        found[name] = m
    missing = [n for n in wanted if n not in found]
    if missing:
        raise DatasetFileError(f"{what} has no {', '.join(missing)}: it is not CIFAR-10's binary version")
    return found


def read_batch(raw: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 3·32·32) in C-order (3, 32, 32) per row, labels int64 (n,)) of a batch."""
    if not raw or len(raw) % RECORD:
        raise DatasetFileError(f"{what} has {len(raw):,} bytes, not a whole number of {RECORD:,}-byte records "
                               "(a label byte and a 3×32×32 image)")
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= NUM_CLASSES:
        i = int(np.argmax(labels >= NUM_CLASSES))
        raise DatasetFileError(f"{what}: record {i + 1} has the label {int(labels[i])}; CIFAR-10's labels are 0-9")
    return records[:, 1:].copy(), labels


def write_batch(images, labels) -> bytes:
    """The bytes of a batch file of ``images`` (n, 3, 32, 32) uint8 and ``labels`` (n,) 0-9."""
    images = np.asarray(images, np.uint8).reshape(len(labels), RECORD - 1)
    return np.concatenate([np.asarray(labels, np.uint8)[:, None], images], axis=1).tobytes()
