"""Reading a caffemodel's weights straight from the protobuf wire format, without copying the float data.

A caffemodel is a binary NetParameter; only layer names, types and blobs are needed (the
layer parameters come from the prototxt). Packed float data becomes numpy views into the
file's bytes, so reading costs one copy of the file and no per-value Python objects. Every
length and offset is checked: a truncated or corrupt file is an InvalidInputError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecc.errors import InvalidInputError
from edgecc.protowire import read_varint

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Blob", "TrainedLayer", "read_caffemodel"]

# NetParameter: layer = 100 (LayerParameter), layers = 2 (V1LayerParameter), name = 1
# LayerParameter: name = 1, type = 2 (string), blobs = 7; V1LayerParameter: name = 4, type = 5 (enum), blobs = 6
# BlobProto: shape = 7 (BlobShape.dim = 1, packed int64), data = 5 (packed float), double_data = 8,
#            num/channels/height/width = 1..4
_MAX_DIMS = 32


class _Corrupt(Exception):
    pass


@dataclass
class Blob:
    """One blob: its declared shape and its values (a float32 or float64 view, or a list for unpacked data)."""

    shape: tuple[int, ...]
    data: np.ndarray

    def array(self) -> np.ndarray:
        """The values as float32 in the declared shape (checked)."""
        import numpy as np

        count = int(np.prod(self.shape)) if self.shape else 1
        if self.data.size != count:
            raise ValueError(f"a blob of shape {'x'.join(map(str, self.shape)) or 'scalar'} holds {self.data.size} values instead of {count}")
        return self.data.astype(np.float32, copy=False).reshape(self.shape)


@dataclass
class TrainedLayer:
    """A caffemodel layer: name, type and blobs."""

    name: str
    type: str
    blobs: list[Blob]


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    try:
        return read_varint(buf, pos, end)
    except ValueError as exc:  # WireTruncated / WireInvalid
        raise _Corrupt(str(exc)) from None


def _fields(buf: memoryview, pos: int, end: int):  # type: ignore[no-untyped-def]
    """Yield (field number, wire type, value) where value is an int or a (start, end) span."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Corrupt("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise _Corrupt(f"field {number} claims {length} bytes, {end - pos} are left")
            yield number, wire, (pos, pos + length)
            pos += length
        elif wire == 5:
            if pos + 4 > end:
                raise _Corrupt("a 32-bit field runs past the end")
            yield number, wire, (pos, pos + 4)
            pos += 4
        elif wire == 1:
            if pos + 8 > end:
                raise _Corrupt("a 64-bit field runs past the end")
            yield number, wire, (pos, pos + 8)
            pos += 8
        else:
            raise _Corrupt(f"unsupported wire type {wire} in field {number}")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(buf: memoryview, span: tuple[int, int]) -> list[int]:
    values, pos = [], span[0]
    while pos < span[1]:
        value, pos = _varint(buf, pos, span[1])
        values.append(_signed64(value))
        if len(values) > _MAX_DIMS:
            raise _Corrupt("a blob shape with more than 32 dimensions")
    return values


def _blob(buf: memoryview, span: tuple[int, int]) -> Blob:
    import numpy as np

    shape: list[int] | None = None
    legacy = [0, 0, 0, 0]
    has_legacy = False
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    for number, wire, value in _fields(buf, *span):
        if number == 7 and wire == 2:
            shape = []
            for dim_number, dim_wire, dim_value in _fields(buf, *value):
                if dim_number != 1:
                    continue
                if dim_wire == 2:
                    shape.extend(_packed_varints(buf, dim_value))
                elif dim_wire == 0:
                    shape.append(_signed64(dim_value))
        elif number in (5, 8):
            item = 4 if number == 5 else 8
            if wire == 2 and (value[1] - value[0]) % item:
                raise _Corrupt(f"packed {'float' if item == 4 else 'double'} data of {value[1] - value[0]} bytes")
            if wire not in (2, 5 if item == 4 else 1):
                raise _Corrupt(f"blob data with wire type {wire}")
            array = np.frombuffer(buf[value[0] : value[1]], dtype="<f4" if item == 4 else "<f8")
            (floats if item == 4 else doubles).append(array)
        elif number in (1, 2, 3, 4) and wire == 0:
            legacy[number - 1] = _signed64(value)
            has_legacy = True
    if shape is None:
        shape = legacy if has_legacy else []
    if any(d < 0 for d in shape):
        raise _Corrupt(f"negative blob dimension in {shape}")
    parts = doubles or floats
    data = parts[0] if len(parts) == 1 else (np.concatenate(parts) if parts else np.zeros(0, np.float32))
    return Blob(tuple(int(d) for d in shape), data)


def _layer(buf: memoryview, span: tuple[int, int], v1: bool, v1_types: dict[int, str]) -> TrainedLayer:
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    name, kind, blobs = "", "", []
    for number, wire, value in _fields(buf, *span):
        if number == name_field and wire == 2:
            name = bytes(buf[value[0] : value[1]]).decode("utf-8", errors="replace")
        elif number == type_field:
            kind = v1_types.get(value, str(value)) if v1 and wire == 0 else (bytes(buf[value[0] : value[1]]).decode("utf-8", errors="replace") if wire == 2 else kind)
        elif number == blobs_field and wire == 2:
            blobs.append(_blob(buf, value))
    return TrainedLayer(name, kind, blobs)


def read_caffemodel(path: str) -> list[TrainedLayer]:
    """Every layer of a caffemodel with its blobs (current and V1 formats)."""
    from edgecc.converters.caffe.parse import V1_TYPES
    from edgecc.converters.caffe.schema import ENUMS
    from edgecc.fileio import read_bytes

    data = read_bytes(path, what="caffemodel")
    buf = memoryview(data)
    v1_types = {number: V1_TYPES.get(name, name) for name, number in ENUMS["V1LayerParameter.LayerType"]}
    layers: list[TrainedLayer] = []
    seen_any = False
    try:
        for number, wire, value in _fields(buf, 0, len(buf)):
            seen_any = True
            if number in (100, 2) and wire == 2:
                layers.append(_layer(buf, value, number == 2, v1_types))
    except _Corrupt as exc:
        raise InvalidInputError(
            f"caffemodel '{path}' ({len(data)} bytes) is truncated or corrupt: {exc}",
            path=path,
            hint="download or copy the weights again",
        ) from None
    if not seen_any:
        raise InvalidInputError(f"caffemodel '{path}' holds no fields", path=path)
    return layers
