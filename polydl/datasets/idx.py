"""Reading IDX files (the format of MNIST and Fashion-MNIST), plain or gzipped.

An IDX file is: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions d, then d sizes as big-endian uint32,
then the prod(sizes) values, big-endian, in C order. Nothing may follow them.
"""
from __future__ import annotations

import gzip
import io
import math
import zlib

import numpy as np

from .. import memory
from .download import DatasetFileError

__all__ = ["read_idx", "write_idx", "IDX_TYPES"]

IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP = b"\x1f\x8b"


def _stream(data: bytes):
    fh = io.BytesIO(data)
    return gzip.GzipFile(fileobj=fh, mode="rb") if data[:2] == _GZIP else fh


def read_idx(data: bytes, what: str = "IDX file") -> np.ndarray:
    """The array an IDX file holds (native byte order), from its bytes, gzipped or not. A file
    that is not one (bad magic, an unknown type, missing or extra bytes, broken gzip) is a
    :class:`DatasetFileError` naming ``what``; a size beyond this machine's memory is refused
    before it is read."""
    try:
        return _parse(_stream(data), what)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetFileError(f"{what} is not a valid gzip file ({exc})") from None


def _parse(fh, what: str) -> np.ndarray:
    head = fh.read(4)
    if len(head) < 4 or head[0] or head[1] or head[2] not in IDX_TYPES or not head[3]:
        raise DatasetFileError(f"{what} is not an IDX file: it starts with {head.hex() or 'nothing'}, where an "
                               "IDX file has 00 00, a type code (08 for bytes) and its number of dimensions")
    dtype, ndim = IDX_TYPES[head[2]], head[3]
    raw = fh.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DatasetFileError(f"{what} ends inside its header: it declares {ndim} dimensions but is too short "
                               "for their sizes")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4"))
    nbytes = math.prod(dims) * dtype.itemsize
    memory.check_bytes(f"{what} ({' × '.join(map(str, dims))} values)", nbytes, "use a smaller file")
    body = fh.read(nbytes + 1)
    if len(body) != nbytes:
        got = "more" if len(body) > nbytes else f"{len(body):,}"
        raise DatasetFileError(f"{what} has {got} bytes of values, but its header ({' × '.join(map(str, dims))} "
                               f"of {dtype.itemsize} byte{'s' * (dtype.itemsize > 1)}) says {nbytes:,}")
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(array) -> bytes:
    """The IDX bytes of ``array`` (uint8, int8, int16, int32, float32 or float64), uncompressed."""
    array = np.asarray(array)
    code = next((c for c, t in IDX_TYPES.items() if t.kind == array.dtype.kind and t.itemsize == array.dtype.itemsize),
                None)
    if code is None or array.ndim < 1 or array.ndim > 255:
        raise ValueError(f"an IDX file holds 1 to 255 dimensions of uint8, int8, int16, int32, float32 or "
                         f"float64, not {array.ndim} of {array.dtype}")
    head = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return head + np.ascontiguousarray(array, IDX_TYPES[code]).tobytes()
