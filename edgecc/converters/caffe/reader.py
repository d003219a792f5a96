"""Reading Caffe files: prototxt (text) and caffemodel (binary), V1 `layers` upgraded, inputs found, weights matched.

A caffemodel is a binary NetParameter; only layer names, types and blobs are needed (the
layer parameters come from the prototxt). Its packed float data becomes numpy views into the
file's bytes, so reading costs one copy of the file and no per-value Python objects. Every
length and offset is checked: a truncated or corrupt file is an InvalidInputError.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecc.converters.caffe.schema import ENUMS, V1_TYPES, Blob, CaffeNet, NetInput, TrainedLayer, messages, sniff
from edgecc.errors import InvalidInputError, UsageError
from edgecc.protowire import read_varint

__all__ = ["load_net", "read_caffemodel", "split_paths"]

log = logging.getLogger(__name__)


def split_paths(paths: Sequence[str]) -> tuple[str, str | None]:
    """(prototxt, caffemodel or None) from the command line's files, in either order."""
    if not paths:
        raise UsageError("no Caffe file given")
    if len(paths) > 2:
        raise UsageError(f"a Caffe model is a prototxt and a caffemodel, got {len(paths)} files")
    first = paths[0]
    if len(paths) == 2 and sniff(first) == "caffemodel" and sniff(paths[1]) == "prototxt":
        return paths[1], first
    if sniff(first) == "caffemodel" and len(paths) == 1:
        raise UsageError(
            f"'{first}' is a caffemodel (weights only); Caffe needs the network definition too",
            hint="give the deploy prototxt first: edgecc convert deploy.prototxt weights.caffemodel -o model.onnx",
        )
    return first, (paths[1] if len(paths) == 2 else None)


def _read(path: str, what: str) -> bytes:
    from edgecc.fileio import read_bytes

    return read_bytes(path, what=what)


def _parse_text(path: str) -> Any:
    from google.protobuf import text_format

    data = _read(path, "prototxt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"prototxt '{path}' is not UTF-8 text (byte {exc.start})", path=path) from None
    net = messages()["NetParameter"]()
    try:
        text_format.Parse(text, net)
        return net
    except text_format.ParseError as exc:
        strict_error = exc
    # A field edgecc's schema does not know (a custom layer's parameters): read past it, warn, and let the
    # layer registry report the layer if it matters.
    net = messages()["NetParameter"]()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError:
        pass
    else:
        if "has no field named" in str(strict_error):
            log.warning("%s: %s (ignored)", path, strict_error)
            return net
    line, column = strict_error.GetLine(), strict_error.GetColumn()
    detail = str(strict_error)
    detail = re.sub(r"^\d+:\d+ : ", "", detail)
    raise InvalidInputError(
        f"prototxt '{path}' has a syntax error at line {line}, column {column}: {detail}",
        path=path,
        hint="fix the prototxt at that position",
    ) from None


def _upgrade_v1(v1: Any, layer_cls: type) -> Any:
    """A V1LayerParameter as a LayerParameter (same parameter messages, type enum -> string)."""
    layer = layer_cls()
    layer.name = v1.name
    type_name = v1.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number[v1.type].name
    layer.type = V1_TYPES.get(type_name, type_name)
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    layer.blobs.extend(v1.blobs)
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    for fdesc, value in v1.ListFields():
        if fdesc.name.endswith("_param") and fdesc.name in layer.DESCRIPTOR.fields_by_name:
            getattr(layer, fdesc.name).CopyFrom(value)
    return layer


def _all_layers(net: Any) -> list[Any]:
    layer_cls = messages()["LayerParameter"]
    return list(net.layer) + [_upgrade_v1(v1, layer_cls) for v1 in net.layers]


def _in_test_phase(layer: Any) -> bool:
    """Caffe's NetStateRule check for the TEST phase (level 0, no stages)."""

    def meets(rule: Any) -> bool:
        if rule.HasField("phase") and rule.phase != 1:
            return False
        if rule.HasField("min_level") and rule.min_level > 0:
            return False
        if rule.HasField("max_level") and rule.max_level < 0:
            return False
        return not rule.stage

    if layer.include:
        return any(meets(r) for r in layer.include)
    if layer.exclude:
        return not any(meets(r) for r in layer.exclude)
    return layer.phase != 0 if layer.HasField("phase") else True


def _net_inputs(net: Any, layers: list[Any], path: str) -> list[NetInput]:
    inputs: list[NetInput] = []
    names = list(net.input)
    if names:
        if net.input_shape:
            if len(net.input_shape) != len(names):
                raise InvalidInputError(
                    f"prototxt '{path}' gives {len(names)} input(s) but {len(net.input_shape)} input_shape(s)", path=path
                )
            shapes = [tuple(int(d) for d in s.dim) for s in net.input_shape]
        elif net.input_dim:
            if len(net.input_dim) != 4 * len(names):
                raise InvalidInputError(
                    f"prototxt '{path}' gives {len(names)} input(s) but {len(net.input_dim)} input_dim values (4 per input)",
                    path=path,
                )
            dims = [int(d) for d in net.input_dim]
            shapes = [tuple(dims[4 * i : 4 * i + 4]) for i in range(len(names))]
        else:
            shapes = [None] * len(names)  # type: ignore[list-item]
        inputs.extend(NetInput(n, s) for n, s in zip(names, shapes))
    for layer in layers:
        if layer.type == "Input":
            shapes = [tuple(int(d) for d in s.dim) for s in layer.input_param.shape]
            for index, top in enumerate(layer.top):
                shape = shapes[index] if index < len(shapes) else (shapes[0] if len(shapes) == 1 else None)
                inputs.append(NetInput(top, shape))
    return inputs


def load_net(prototxt: str, caffemodel: str | None) -> CaffeNet:
    """Parse both files; keep TEST-phase layers; attach the caffemodel's blobs by layer name."""
    net = _parse_text(prototxt)
    layers = [layer for layer in _all_layers(net) if _in_test_phase(layer)]
    for index, layer in enumerate(layers):
        if not layer.name:
            layer.name = f"{layer.type or 'layer'}_{index}"
    inputs = _net_inputs(net, layers, prototxt)
    result = CaffeNet(net.name or Path(prototxt).stem, prototxt, caffemodel, inputs, layers)
    if caffemodel is not None:
        for trained in read_caffemodel(caffemodel):
            if trained.blobs:
                result.weights[trained.name] = trained.blobs
                result.weight_types[trained.name] = trained.type
    return result


# --- caffemodel weights, read from the protobuf wire format ------------------------------------------

# NetParameter: layer = 100 (LayerParameter), layers = 2 (V1LayerParameter), name = 1
# LayerParameter: name = 1, type = 2 (string), blobs = 7; V1LayerParameter: name = 4, type = 5 (enum), blobs = 6
# BlobProto: shape = 7 (BlobShape.dim = 1, packed int64), data = 5 (packed float), double_data = 8,
#            num/channels/height/width = 1..4
_MAX_DIMS = 32


class _Corrupt(Exception):
    pass


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
            kind = (
                v1_types.get(value, str(value))
                if v1 and wire == 0
                else (bytes(buf[value[0] : value[1]]).decode("utf-8", errors="replace") if wire == 2 else kind)
            )
        elif number == blobs_field and wire == 2:
            blobs.append(_blob(buf, value))
    return TrainedLayer(name, kind, blobs)


def read_caffemodel(path: str) -> list[TrainedLayer]:
    """Every layer of a caffemodel with its blobs (current and V1 formats)."""
    data = _read(path, "caffemodel")
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
