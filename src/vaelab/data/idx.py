"""Read and write IDX files, the format MNIST and Fashion-MNIST are distributed in.

An IDX file is a 4-byte magic number, then one big-endian uint32 per dimension, then the
array itself in C order, with multi-byte values big-endian. The magic number is two zero
bytes, a dtype code and the number of dimensions:

    00 00 08 03  60000  28  28  <47,040,000 bytes of uint8 pixels>

Files are often gzip-compressed (``train-images-idx3-ubyte.gz``). ``read_idx`` accepts
both and checks every part of the layout, so a truncated download or a wrong file gives a
one-line :class:`~vaelab.errors.VaelabError` naming the file, never a numpy/gzip traceback.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vaelab.errors import VaelabError

# IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"
MAX_NDIM = 4
# The most data read_idx_bytes accepts (MNIST's largest file holds 47 MB), and the most trailing
# bytes it reads past the declared data before giving up on counting them.
MAX_IDX_BYTES = 1 << 31
MAX_TRAILING_BYTES = 1 << 16


def read_idx_bytes(path: str | os.PathLike, expect: tuple[int, str] | None = None) -> bytes:
    """Return the uncompressed contents of an IDX file, gunzipping it if needed.

    A file is treated as gzip when it starts with the gzip magic bytes ``1f 8b``; a file
    named ``*.gz`` that does not is an error ("not gzip"). A damaged gzip stream (for
    example a download that stopped half-way) is reported as a VaelabError too.

    Memory stays bounded by what the header declares: the header is read and checked
    first, then at most the declared data plus :data:`MAX_TRAILING_BYTES` + 1, so a small
    gzip file that inflates to gigabytes (or a header claiming more than
    :data:`MAX_IDX_BYTES`) is rejected without inflating it. expect: (count, what), e.g. (60000, "train
    images for mnist"): a header that declares more items than that is refused before the data are read.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            is_gzip = f.read(2) == GZIP_MAGIC
            f.seek(0)
            if is_gzip:
                try:
                    with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                        return _read_bounded(stream, path, expect)
                except (OSError, EOFError, zlib.error) as e:
                    reason = " ".join(str(e).split()) or type(e).__name__
                    raise VaelabError(
                        f"{path}: corrupt gzip stream ({reason}); the file is damaged or incomplete, re-download it"
                    ) from None
            if path.suffix == ".gz":
                raise VaelabError(
                    f"{path}: not gzip (the name ends in .gz but the file does not start with the gzip "
                    f"magic bytes 1f 8b); re-download it, or rename it without .gz if it is an uncompressed IDX file"
                )
            return _read_bounded(f, path, expect)
    except FileNotFoundError:
        raise VaelabError(f"{path}: no such file; check the path or data directory") from None
    except IsADirectoryError:
        raise VaelabError(f"{path}: is a directory, not an IDX file; pass the file inside it") from None
    except OSError as e:
        raise VaelabError(f"{path}: cannot read file ({e.strerror or e}); check its permissions") from None


def _read_up_to(f: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes from ``f`` (fewer at end of file), in chunks of at most 1 MiB."""
    chunks, left = [], n
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_bounded(f: BinaryIO, path: Path, expect: tuple[int, str] | None = None) -> bytes:
    """Read one IDX file from ``f``: the header, then no more than the header says (plus a little).

    Header errors are raised here (by :func:`_parse_header`); short data and a few trailing
    bytes are left for :func:`parse_idx` to report, with exact counts.
    """
    head = _read_up_to(f, 4)
    if len(head) == 4 and 1 <= head[3] <= MAX_NDIM:
        head += _read_up_to(f, 4 * head[3])
    dtype, shape, header_size = _parse_header(head, path)
    if expect is not None and shape[0] > expect[0]:   # fewer are cheap to read, and reported with more detail
        raise VaelabError(f"{path}: expected {expect[0]} {expect[1]}, found {shape[0]} (its header says so); "
                          f"re-download the file")
    declared = dtype.itemsize * math.prod(shape)
    if declared > MAX_IDX_BYTES:
        shape_text = "x".join(str(d) for d in shape)
        raise VaelabError(
            f"{path}: IDX header claims {declared} bytes of data (shape {shape_text}, {dtype.name}), more than "
            f"the {MAX_IDX_BYTES} vaelab reads; the file is corrupt or not an IDX file, re-download it"
        )
    data = head + _read_up_to(f, declared)
    if len(data) < header_size + declared:
        return data   # truncated: parse_idx says by how much
    extra = _read_up_to(f, MAX_TRAILING_BYTES + 1)
    if len(extra) > MAX_TRAILING_BYTES:
        shape_text = "x".join(str(d) for d in shape)
        raise VaelabError(
            f"{path}: more than {MAX_TRAILING_BYTES} unexpected trailing bytes after the IDX data "
            f"(shape {shape_text}, {dtype.name}); the file is corrupt or not an IDX file, re-download it"
        )
    return data + extra


def _parse_header(data: bytes, path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...], int]:
    """Check the magic number and dimensions at the start of ``data``; return (dtype, shape, header size)."""
    if len(data) < 4:
        raise VaelabError(
            f"{path}: truncated IDX header: expected at least 4 bytes of magic number, "
            f"found {len(data)}; re-download the file"
        )
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise VaelabError(
            f"{path}: not an IDX file (magic number {data[:4].hex()} does not start with 0000); "
            f"check that this is the right file, or re-download it"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise VaelabError(
            f"{path}: unsupported IDX dtype code 0x{code:02X} (known: {known}); "
            f"the file is corrupt or not an IDX file, re-download it"
        )
    if not 1 <= ndim <= MAX_NDIM:
        raise VaelabError(
            f"{path}: unsupported IDX number of dimensions {ndim} (expected 1 to {MAX_NDIM}); "
            f"the file is corrupt or not an IDX file, re-download it"
        )

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise VaelabError(
            f"{path}: truncated IDX header: expected {header_size} bytes for {ndim} dimensions, "
            f"found {len(data)}; re-download the file"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return IDX_DTYPES[code], shape, header_size


def parse_idx(data: bytes, path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Parse the uncompressed bytes of an IDX file into a native-byte-order numpy array.

    ``path`` is only used in error messages. The returned array is a fresh, writable copy.
    """
    dtype, shape, header_size = _parse_header(data, path)
    expected = dtype.itemsize
    for d in shape:
        expected *= d
    found = len(data) - header_size
    shape_text = "x".join(str(d) for d in shape)
    what = f"(shape {shape_text}, {dtype.name})"
    if found < expected:
        raise VaelabError(
            f"{path}: truncated IDX data: expected {expected} bytes of data after the "
            f"{header_size}-byte header {what}, found {found}; re-download the file"
        )
    if found > expected:
        raise VaelabError(
            f"{path}: {found - expected} unexpected trailing bytes after the IDX data {what}; "
            f"the file is corrupt or not an IDX file, re-download it"
        )

    nonzero = 1
    for d in shape:
        nonzero *= max(d, 1)
    if nonzero * dtype.itemsize > np.iinfo(np.intp).max:   # an empty array numpy cannot shape
        raise VaelabError(
            f"{path}: IDX header claims an impossible shape {shape_text}; "
            f"the file is corrupt or not an IDX file, re-download it"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    # astype copies (so the result is writable) and converts to native byte order.
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a numpy array in native byte order.

    Raises VaelabError, with a one-line message naming the file and the problem, when the
    file is missing, not gzip despite a .gz name, a damaged gzip stream, has a bad magic
    number or dtype code, or its data is shorter or longer than its header says.
    """
    return parse_idx(read_idx_bytes(path), path)


def idx_dtype_code(dtype: np.dtype) -> int:
    """Return the IDX dtype code for a numpy dtype, or raise VaelabError if IDX cannot hold it."""
    for code, idx_dtype in IDX_DTYPES.items():
        if np.dtype(dtype).newbyteorder("=") == idx_dtype.newbyteorder("="):
            return code
    known = ", ".join(d.newbyteorder("=").name for d in IDX_DTYPES.values())
    raise VaelabError(f"IDX cannot store dtype {np.dtype(dtype).name}; convert the array to one of {known}")


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip it when ``path`` ends in ``.gz``.

    The array must have 1 to 4 dimensions and one of the IDX dtypes (uint8, int8, int16,
    int32, float32, float64). The gzip header carries no timestamp, so equal arrays give
    byte-identical files.
    """
    array = np.asarray(array)
    code = idx_dtype_code(array.dtype)
    if not 1 <= array.ndim <= MAX_NDIM:
        raise VaelabError(f"IDX stores 1 to {MAX_NDIM} dimensions, got an array of shape {array.shape}; reshape it")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    path.write_bytes(payload)
