"""Reading and writing IDX files (the MNIST format), gzip-compressed or raw.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the array's data in C order, big-endian. A file that does not follow this
exactly (a bad magic number, too little or too much data, a broken gzip stream) raises a
`ValueError` naming the file and what is wrong; nothing is ever silently truncated or padded.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from fnn.files import atomic_write

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

# code -> big-endian dtype of the data on disk
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[tuple[str, int], int] = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_CODE_NAMES = ", ".join(f"0x{c:02X} {dt.newbyteorder('=').name}" for c, dt in IDX_DTYPES.items())
_GZIP_MAGIC = b"\x1f\x8b"


def _raw_bytes(path: Path) -> bytes:
    """The file's IDX bytes, decompressed if it is gzip (recognised by its magic, not its name)."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:2] != _GZIP_MAGIC:
        return blob
    try:
        return gzip.decompress(blob)
    except EOFError as e:
        raise ValueError(f"{path}: truncated gzip stream ({len(blob)} compressed bytes): {e}") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise ValueError(f"{path}: corrupt gzip data: {e}") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip or raw) into a writeable, native-byte-order NumPy array."""
    path = Path(path)
    data = _raw_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file: only {len(data)} bytes, too short for the 4-byte magic number")
    z0, z1, code, ndim = data[:4]
    if z0 != 0 or z1 != 0:
        raise ValueError(
            f"{path}: not an IDX file: bad magic number 0x{data[:4].hex()} (must start with two zero bytes)"
        )
    if code not in IDX_DTYPES:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{data[:4].hex()}: unknown dtype code 0x{code:02X} "
            f"(known: {_CODE_NAMES})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header} header bytes, the file has {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = dtype.itemsize * int(np.prod(shape, dtype=object))
    got = len(data) - header
    if got != expected:
        what = "truncated data" if got < expected else "trailing data"
        raise ValueError(
            f"{path}: {what}: an IDX array of shape {shape} and dtype {dtype.newbyteorder('=').name} needs "
            f"{expected} data bytes after the {header}-byte header, the file has {got}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # a copy: writeable and native-endian


def write_idx(path: str | os.PathLike, array, compress: bool | None = None) -> Path:
    """Write `array` as an IDX file; gzip it if `compress` (default: when the name ends in '.gz').

    The dtype must be one IDX can hold: uint8, int8, int16, int32, float32 or float64. The file
    is written to a temporary name and renamed into place, so readers never see half a file.
    """
    path = Path(path)
    arr = np.asarray(array)
    code = _CODES.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise TypeError(f"write_idx: IDX cannot hold dtype {arr.dtype}; use one of: {_CODE_NAMES}")
    if arr.ndim > 255:
        raise ValueError(f"write_idx: IDX holds at most 255 dimensions, got {arr.ndim}")
    if any(d >= 2**32 for d in arr.shape):
        raise ValueError(f"write_idx: every dimension must be below 2**32, got shape {arr.shape}")
    if compress is None:
        compress = path.suffix == ".gz"
    payload = (
        bytes([0, 0, code, arr.ndim])
        + np.asarray(arr.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    )
    if compress:
        payload = gzip.compress(payload, mtime=0)
    atomic_write(path, lambda f: f.write(payload))
    return path
