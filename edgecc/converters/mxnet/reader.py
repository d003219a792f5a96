"""Reading MXNet files without MXNet: the symbol JSON, the binary NDArray list (`prefix-NNNN.params`), which goes with which.

Params layout (apache/mxnet src/ndarray/ndarray.cc, NDArray::Save / NDArray::Load), little endian:

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

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgecc.converters.mxnet.schema import (
    LIST_MAGIC,
    PARAMS_RE,
    SYMBOL_SUFFIX,
    Attrs,
    ParamFile,
    Symbol,
    SymNode,
    looks_like_params,
    looks_like_symbol,
)
from edgecc.converters.options import ConvertOptions
from edgecc.errors import InvalidInputError, UnsupportedError, UsageError
from edgecc.fileio import check_input_file, read_bytes

__all__ = ["DTYPE_FLAGS", "load", "read_params", "read_symbol", "resolve_files"]

log = logging.getLogger(__name__)

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
        raise InvalidInputError(f"'{path}' is not an MXNet params file: magic 0x{magic:x}, expected 0x{LIST_MAGIC:x}", path=path)
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


# --- the symbol -------------------------------------------------------------------------------------------


def _entry(value: object, path: str, where: str, count: int) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, int) for v in value[:2]):
        raise InvalidInputError(f"{path}: {where}: an input entry must be [node, index, ...], got {value!r}", path=path)
    node, index = value[0], value[1]
    if not 0 <= node < count or index < 0:
        raise InvalidInputError(f"{path}: {where}: input entry {value!r} refers to no node", path=path)
    return node, index


def read_symbol(path: str | Path) -> Symbol:
    """Parse and validate a symbol JSON file (exit 3 on malformed content)."""
    path = str(path)
    data = read_bytes(path, what="MXNet symbol file")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"MXNet symbol file '{path}' is not valid JSON: {exc}", path=path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or "heads" not in doc:
        raise InvalidInputError(f"'{path}' is not an MXNet symbol file: no 'nodes' list and 'heads'", path=path)
    raw_nodes = doc["nodes"]
    nodes: list[SymNode] = []
    for index, raw in enumerate(raw_nodes):
        if not isinstance(raw, dict) or not isinstance(raw.get("op"), str) or not isinstance(raw.get("name"), str):
            raise InvalidInputError(f"{path}: node #{index} has no 'op' and 'name' strings", path=path)
        name = raw["name"]
        values: dict[str, str] = {}
        for key in ("param", "attr", "attrs"):
            extra = raw.get(key) or {}
            if not isinstance(extra, dict):
                raise InvalidInputError(f"{path}: node '{name}': '{key}' is not an object", path=path)
            values.update(extra)
        raw_inputs = raw.get("inputs", [])
        if not isinstance(raw_inputs, list):
            raise InvalidInputError(f"{path}: node '{name}': 'inputs' is not a list", path=path)
        inputs = [_entry(v, path, f"node '{name}'", len(raw_nodes)) for v in raw_inputs]
        if any(source >= index for source, _ in inputs):
            raise InvalidInputError(f"{path}: node '{name}' uses a node defined after it", path=path)
        nodes.append(SymNode(index, raw["op"], name, inputs, Attrs(values, node=name, path=path)))
    heads_raw = doc["heads"]
    if not isinstance(heads_raw, list) or not heads_raw:
        raise InvalidInputError(f"{path}: 'heads' must be a non-empty list", path=path)
    heads = [_entry(v, path, "heads", len(nodes)) for v in heads_raw]
    arg_nodes = doc.get("arg_nodes", [])
    if not isinstance(arg_nodes, list):
        arg_nodes = []
    attrs = doc.get("attrs") or {}
    version = None
    if isinstance(attrs, dict) and isinstance(attrs.get("mxnet_version"), list) and len(attrs["mxnet_version"]) == 2:
        version = attrs["mxnet_version"][1] if isinstance(attrs["mxnet_version"][1], int) else None
    return Symbol(path, nodes, heads, [a for a in arg_nodes if isinstance(a, int)], version)


# --- which files --------------------------------------------------------------------------------------------


def resolve_files(paths: Sequence[str], options: ConvertOptions) -> tuple[str, str]:
    """(symbol file, params file) from `sym.json params`, `sym.json --epoch N` or `prefix [--epoch N]`."""
    first = paths[0]
    match = PARAMS_RE.match(first)
    if len(paths) == 1 and match and looks_like_params(Path(first)):
        symbol = match.group("prefix") + SYMBOL_SUFFIX
        if not Path(symbol).is_file():
            raise UsageError(
                f"'{first}' holds MXNet parameters; its symbol file '{symbol}' does not exist", hint="give the symbol file first"
            )
        return symbol, first
    if looks_like_params(Path(first)):
        raise UsageError(
            f"'{first}' holds MXNet parameters only",
            hint="give the symbol file first: edgecc convert prefix-symbol.json prefix-NNNN.params",
        )
    if looks_like_symbol(Path(first)):
        symbol = first
        prefix = first[: -len(SYMBOL_SUFFIX)] if first.endswith(SYMBOL_SUFFIX) else first[: -len(".json")]
    else:
        symbol = first + SYMBOL_SUFFIX
        prefix = first
    if len(paths) > 2:
        raise UsageError(
            "MXNet takes a symbol file and one params file", hint="edgecc convert prefix-symbol.json prefix-0000.params"
        )
    if len(paths) == 2:
        if options.epoch is not None and not paths[1].endswith(f"-{options.epoch:04d}.params"):
            raise UsageError(f"--epoch {options.epoch} conflicts with the params file '{paths[1]}'", hint="give one of them")
        return symbol, paths[1]
    if options.epoch is not None:
        params = f"{prefix}-{options.epoch:04d}.params"
        if not Path(params).exists():
            raise UsageError(
                f"params file '{params}' for --epoch {options.epoch} does not exist", hint="check the prefix and epoch"
            )
        return symbol, params
    found = sorted(Path(prefix).parent.glob(Path(prefix).name + "-[0-9][0-9][0-9][0-9].params"))
    if len(found) == 1:
        return symbol, str(found[0])
    listed = ", ".join(p.name for p in found) or "none found"
    raise UsageError(
        f"which params file goes with '{symbol}'? ({listed})",
        hint="give it as the second argument or pick one with --epoch N",
    )


def load(paths: Sequence[str], options: ConvertOptions) -> tuple[Symbol, ParamFile]:
    """The symbol and params files named by the command line, read."""
    symbol_path, params_path = resolve_files(paths, options)
    return read_symbol(symbol_path), read_params(params_path)
