"""Reader of MXNet's binary NDArray list (`prefix-NNNN.params`), written with numpy alone.

Layout (apache/mxnet src/ndarray/ndarray.cc, NDArray::Save / NDArray::Load), little endian:

    uint64 kMXAPINDArrayListMagic (0x112), uint64 reserved
    uint64 count, then `count` arrays:
        uint32 magic: 0xF993FAC9 (V2, storage type) / 0xF993FACA (V3, numpy shapes)
                      / 0xF993FAC8 (V1, int64 shape) / anything else = legacy ndim
        V2/V3: int32 storage type (0 dense, 1 row sparse, 2 CSR)
        shape: V1/V2/V3 int32 ndim + int64 dims; legacy: the magic is ndim, uint32 dims
        (ndim 0 in V1/V2, or an unknown shape in V3, is an empty array: nothing follows)
        int32 dev_type, int32 dev_id, int32 dtype flag, raw data
    uint64 count, then `count` names: uint64 length + bytes ("arg:NAME" / "aux:NAME")

Arrays are views of a read-only memory map: reading a file costs no copy.
"""

from __future__ import annotations

import logging
import math
import mmap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecc.errors import InvalidInputError, UnsupportedError
from edgecc.fileio import check_input_file

__all__ = ["DTYPE_FLAGS", "LIST_MAGIC", "ParamFile", "read_params"]

log = logging.getLogger(__name__)

LIST_MAGIC = 0x112
_V1_MAGIC = 0xF993FAC8
_V2_MAGIC = 0xF993FAC9
_V3_MAGIC = 0xF993FACA
_MAX_NDIM = 32

#: mshadow type flags -> numpy dtypes
DTYPE_FLAGS: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
}
_STORAGE = {0: "dense", 1: "row_sparse", 2: "csr"}


@dataclass
class ParamFile:
    """The arrays of a `.params` file: `arg` (weights) and `aux` (running statistics) by name."""

    path: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # name -> "arg" / "aux" / ""
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (file offset, bytes)
    buffer: np.memmap | None = None

    def nbytes(self) -> int:
        """Total bytes of all arrays."""
        return sum(int(a.nbytes) for a in self.arrays.values())

    def release(self, name: str) -> None:
        """Drop the mapped pages of one array from memory once copied (they reload from the file if read again)."""
        span = self.spans.get(name)
        handle = getattr(self.buffer, "_mmap", None)
        if span is None or handle is None or not hasattr(handle, "madvise"):
            return
        start, length = span
        first = start - start % mmap.PAGESIZE
        if length < mmap.PAGESIZE:
            return
        try:
            handle.madvise(mmap.MADV_DONTNEED, first, start + length - first)
        except (OSError, ValueError):  # advice only
            pass


class _Reader:
    def __init__(self, path: str, buffer: np.ndarray) -> None:
        self.path = path
        self.buf = buffer
        self.pos = 0
        self.where = "header"

    def _fail(self, what: str) -> InvalidInputError:
        return InvalidInputError(
            f"MXNet params file '{self.path}' is truncated or corrupt: {what} ({self.where}, byte {self.pos})",
            path=self.path,
        )

    def take(self, count: int, what: str) -> np.ndarray:
        if count < 0 or self.pos + count > self.buf.size:
            raise self._fail(f"{what} needs {count} bytes, {self.buf.size - self.pos} left")
        out = self.buf[self.pos : self.pos + count]
        self.pos += count
        return out

    def scalar(self, fmt: str, what: str) -> int:
        dtype = np.dtype(fmt)
        return int(self.take(dtype.itemsize, what).view(dtype)[0])

    def dims(self, count: int, fmt: str, what: str) -> tuple[int, ...]:
        if not 0 <= count <= _MAX_NDIM:
            raise self._fail(f"{what} has {count} dimensions")
        dtype = np.dtype(fmt)
        values = self.take(count * dtype.itemsize, what).view(dtype)
        if (values < 0).any():
            raise self._fail(f"{what} has a negative dimension {tuple(int(v) for v in values)}")
        return tuple(int(v) for v in values)

    def shape(self, magic: int) -> tuple[int, ...] | None:
        """A shape; None for an empty (none) array."""
        if magic in (_V1_MAGIC, _V2_MAGIC, _V3_MAGIC):
            ndim = self.scalar("<i4", "shape rank")
            if magic == _V3_MAGIC and ndim == -1:
                return None
            dims = self.dims(ndim, "<i8", "shape")
            return dims if dims or magic == _V3_MAGIC else None
        dims = self.dims(magic, "<u4", "legacy shape")
        return dims or None


def _skip_sparse(reader: _Reader, magic: int, stype: int) -> None:
    """Read past a sparse array (storage shape, shape, context, dtype, aux types/shapes, data, aux data)."""
    nad = 1 if stype == 1 else 2
    storage_shape = reader.shape(magic) or ()
    reader.shape(magic)
    reader.take(8, "context")
    dtype = DTYPE_FLAGS.get(reader.scalar("<i4", "dtype flag"))
    if dtype is None:
        raise reader._fail("unknown dtype flag")
    aux: list[tuple[np.dtype, tuple[int, ...]]] = []
    for _ in range(nad):
        aux_dtype = DTYPE_FLAGS.get(reader.scalar("<i4", "aux dtype flag"))
        if aux_dtype is None:
            raise reader._fail("unknown aux dtype flag")
        aux.append((aux_dtype, reader.shape(magic) or ()))
    reader.take(math.prod(storage_shape) * dtype.itemsize, "sparse data")
    for aux_dtype, aux_shape in aux:
        reader.take(math.prod(aux_shape) * aux_dtype.itemsize, "sparse aux data")


def _one_array(reader: _Reader, index: int) -> tuple[np.ndarray | None, str, tuple[int, int]]:
    reader.where = f"array #{index}"
    magic = reader.scalar("<u4", "array magic")
    storage = "dense"
    if magic in (_V2_MAGIC, _V3_MAGIC):
        stype = reader.scalar("<i4", "storage type")
        if stype not in _STORAGE:
            raise reader._fail(f"unknown storage type {stype}")
        storage = _STORAGE[stype]
        if stype != 0:
            _skip_sparse(reader, magic, stype)
            return None, storage, (0, 0)
    shape = reader.shape(magic)
    if shape is None:
        return np.zeros((0,), np.float32), storage, (0, 0)
    reader.scalar("<i4", "device type")
    reader.scalar("<i4", "device id")
    flag = reader.scalar("<i4", "dtype flag")
    dtype = DTYPE_FLAGS.get(flag)
    if dtype is None:
        raise reader._fail(f"unknown dtype flag {flag}")
    count = math.prod(shape)
    start = reader.pos
    raw = reader.take(count * dtype.itemsize, f"data of shape {shape}")
    return raw.view(dtype).reshape(shape), storage, (start, count * dtype.itemsize)


def read_params(path: str | Path) -> ParamFile:
    """Read every array of a `.params` file; sparse arrays are an unsupported feature (exit 4)."""
    path = str(check_input_file(path, what="MXNet params file"))
    try:
        buffer = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"MXNet params file '{path}' cannot be read: {exc}", path=path) from None
    reader = _Reader(path, buffer)
    if buffer.size < 16:
        raise reader._fail("shorter than the 16-byte header")
    magic = reader.scalar("<u8", "list magic")
    if magic != LIST_MAGIC:
        raise InvalidInputError(
            f"'{path}' is not an MXNet params file: magic 0x{magic:x}, expected 0x{LIST_MAGIC:x}", path=path
        )
    reader.scalar("<u8", "reserved")
    count = reader.scalar("<u8", "array count")
    if count > buffer.size // 4:
        raise reader._fail(f"array count {count} is larger than the file")
    arrays: list[np.ndarray | None] = []
    storages: list[str] = []
    spans: list[tuple[int, int]] = []
    for index in range(count):
        array, storage, span = _one_array(reader, index)
        arrays.append(array)
        storages.append(storage)
        spans.append(span)
    reader.where = "name list"
    name_count = reader.scalar("<u8", "name count")
    if name_count not in (0, count):
        raise reader._fail(f"{name_count} names for {count} arrays")
    names: list[str] = []
    for index in range(name_count):
        reader.where = f"name #{index}"
        length = reader.scalar("<u8", "name length")
        if length > 4096:
            raise reader._fail(f"name length {length}")
        try:
            names.append(bytes(reader.take(length, "name")).decode("utf-8"))
        except UnicodeDecodeError:
            raise reader._fail("name is not UTF-8") from None
    if not names:
        names = [f"array{i}" for i in range(count)]
    result = ParamFile(path, buffer=buffer)
    sparse: list[str] = []
    for name, array, storage, span in zip(names, arrays, storages, spans):
        kind, sep, bare = name.partition(":")
        if not sep or kind not in ("arg", "aux"):
            kind, bare = "", name
        if array is None:
            sparse.append(f"{bare} ({storage})")
            continue
        if bare in result.arrays:
            raise InvalidInputError(f"MXNet params file '{path}' holds '{bare}' twice", path=path)
        result.arrays[bare] = array
        result.kinds[bare] = kind
        result.spans[bare] = span
    if sparse:
        raise UnsupportedError(
            f"MXNet params file '{path}' holds sparse arrays, which edgecc does not convert: {', '.join(sparse)}",
            path=path,
            hint="save the parameters as dense arrays (tostype('default')) in MXNet",
        )
    log.debug("read %d arrays from %s", len(result.arrays), path)
    return result
