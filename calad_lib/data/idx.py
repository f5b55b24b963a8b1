"""A small reader (and writer, for test fixtures) of the idx format of (Fashion-)MNIST.

The format (LeCun et al.): a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then
``ndim`` big-endian ``uint32`` dimension sizes, then the data in C order. Files may be
gzip-compressed (``.gz``). Debian's ``dataset-fashion-mnist`` ships the original
``.gz`` files, whose checksums differ from torchvision's list, so calad reads them
directly rather than through ``torchvision.datasets``.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..paths import relative
from .errors import DataCorrupted

__all__ = ["read_idx", "write_idx"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def _open(path: Path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in the idx file ``path`` (gzip-compressed or not)."""
    path = Path(path)
    try:
        with _open(path) as fh:
            raw = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataCorrupted(f"{relative(path)} is truncated or corrupted ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                            "replace it with the original file (Debian: reinstall dataset-fashion-mnist)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataCorrupted(f"{relative(path)} is not an idx file (bad magic number); replace it with the original file")
    dtype = np.dtype(_DTYPES[raw[2]])
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - offset != count * dtype.itemsize:
        raise DataCorrupted(f"{relative(path)} is truncated or corrupted ({len(raw) - offset} data bytes, "
                            f"expected {count * dtype.itemsize}); replace it with the original file")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` in idx format to ``path`` (gzip-compressed if the name ends with ``.gz``)."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype not in _CODES:
        raise ValueError(f"idx cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    header = bytes([0, 0, _CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = array.astype(array.dtype.newbyteorder(">"), copy=False).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + body)
    return path
