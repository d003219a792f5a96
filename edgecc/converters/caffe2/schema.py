"""edgecc's own protobuf schema for the Caffe2 NetDef subset it reads, built in Python (no protoc, no caffe2).

Field numbers are those of caffe2/proto/caffe2.proto (package `caffe2`, proto2).
The descriptor is assembled with `descriptor_pb2` at import time, so it loads
with whatever protobuf runtime is installed (7.x here). Fields edgecc does not
model (partition info, device details, ...) are kept as unknown fields and ignored.

Also here: a cheap wire-format sniffer that tells a NetDef apart from other
protobuf files (Caffe NetParameter, TensorFlow GraphDef, ONNX ModelProto) from
the first bytes of a file, without parsing it completely, and `Caffe2Files`, the
nets of one model once read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from edgecc.protowire import WireTruncated, read_varint

__all__ = [
    "DATA_TYPES",
    "Argument",
    "Caffe2Files",
    "NetDef",
    "OperatorDef",
    "TensorProto",
    "is_text",
    "looks_like_netdef",
    "parse_text",
    "sniff",
]

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (name, number, label, type, type_name or None, packed)
_FIELDS: dict[str, list[tuple[str, int, int, int, str | None, bool]]] = {
    "TensorProto": [
        ("dims", 1, _REP, _F.TYPE_INT64, None, False),
        ("data_type", 2, _OPT, _F.TYPE_INT32, None, False),
        ("float_data", 3, _REP, _F.TYPE_FLOAT, None, True),
        ("int32_data", 4, _REP, _F.TYPE_INT32, None, True),
        ("byte_data", 5, _OPT, _F.TYPE_BYTES, None, False),
        ("string_data", 6, _REP, _F.TYPE_BYTES, None, False),
        ("name", 7, _OPT, _F.TYPE_STRING, None, False),
        ("double_data", 9, _REP, _F.TYPE_DOUBLE, None, True),
        ("int64_data", 10, _REP, _F.TYPE_INT64, None, True),
        ("raw_data", 13, _OPT, _F.TYPE_BYTES, None, False),
    ],
    "DeviceOption": [
        ("device_type", 1, _OPT, _F.TYPE_INT32, None, False),
        ("device_id", 2, _OPT, _F.TYPE_INT32, None, False),
        ("random_seed", 3, _OPT, _F.TYPE_UINT32, None, False),
        ("node_name", 4, _OPT, _F.TYPE_STRING, None, False),
    ],
    "Argument": [
        ("name", 1, _OPT, _F.TYPE_STRING, None, False),
        ("f", 2, _OPT, _F.TYPE_FLOAT, None, False),
        ("i", 3, _OPT, _F.TYPE_INT64, None, False),
        ("s", 4, _OPT, _F.TYPE_BYTES, None, False),
        ("floats", 5, _REP, _F.TYPE_FLOAT, None, False),
        ("ints", 6, _REP, _F.TYPE_INT64, None, False),
        ("strings", 7, _REP, _F.TYPE_BYTES, None, False),
        ("n", 8, _OPT, _F.TYPE_MESSAGE, ".caffe2.NetDef", False),
        ("nets", 9, _REP, _F.TYPE_MESSAGE, ".caffe2.NetDef", False),
        ("t", 10, _OPT, _F.TYPE_MESSAGE, ".caffe2.TensorProto", False),
        ("tensors", 11, _REP, _F.TYPE_MESSAGE, ".caffe2.TensorProto", False),
    ],
    "OperatorDef": [
        ("input", 1, _REP, _F.TYPE_STRING, None, False),
        ("output", 2, _REP, _F.TYPE_STRING, None, False),
        ("name", 3, _OPT, _F.TYPE_STRING, None, False),
        ("type", 4, _OPT, _F.TYPE_STRING, None, False),
        ("arg", 5, _REP, _F.TYPE_MESSAGE, ".caffe2.Argument", False),
        ("device_option", 6, _OPT, _F.TYPE_MESSAGE, ".caffe2.DeviceOption", False),
        ("engine", 7, _OPT, _F.TYPE_STRING, None, False),
        ("control_input", 8, _REP, _F.TYPE_STRING, None, False),
        ("is_gradient_op", 9, _OPT, _F.TYPE_BOOL, None, False),
        ("debug_info", 10, _OPT, _F.TYPE_STRING, None, False),
        ("domain", 11, _OPT, _F.TYPE_STRING, None, False),
        ("op_version", 12, _OPT, _F.TYPE_INT64, None, False),
    ],
    "NetDef": [
        ("name", 1, _OPT, _F.TYPE_STRING, None, False),
        ("op", 2, _REP, _F.TYPE_MESSAGE, ".caffe2.OperatorDef", False),
        ("type", 3, _OPT, _F.TYPE_STRING, None, False),
        ("num_workers", 4, _OPT, _F.TYPE_INT32, None, False),
        ("device_option", 5, _OPT, _F.TYPE_MESSAGE, ".caffe2.DeviceOption", False),
        ("arg", 6, _REP, _F.TYPE_MESSAGE, ".caffe2.Argument", False),
        ("external_input", 7, _REP, _F.TYPE_STRING, None, False),
        ("external_output", 8, _REP, _F.TYPE_STRING, None, False),
    ],
}

#: caffe2 TensorProto.DataType -> numpy dtype name (as used by ConstantFill's `dtype` argument)
DATA_TYPES: dict[int, str] = {
    1: "float32",
    2: "int32",
    3: "uint8",
    4: "object",
    5: "bool",
    6: "uint8",
    7: "int8",
    8: "uint16",
    9: "int16",
    10: "int64",
    12: "float16",
    13: "float64",
}


def _build() -> dict[str, Any]:
    file_proto = descriptor_pb2.FileDescriptorProto(name="edgecc/caffe2_subset.proto", package="caffe2", syntax="proto2")
    for message_name, fields in _FIELDS.items():
        message = file_proto.message_type.add(name=message_name)
        for name, number, label, ftype, type_name, packed in fields:
            field = message.field.add(name=name, number=number, label=label, type=ftype)
            if type_name:
                field.type_name = type_name
            if packed:
                field.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe2.{name}")) for name in _FIELDS}


_CLASSES = _build()
NetDef = _CLASSES["NetDef"]
OperatorDef = _CLASSES["OperatorDef"]
Argument = _CLASSES["Argument"]
TensorProto = _CLASSES["TensorProto"]

# ---------------------------------------------------------------- wire-format sniffing

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_NETDEF_WIRE = {1: _LEN, 2: _LEN, 3: _LEN, 4: _VARINT, 5: _LEN, 6: _LEN, 7: _LEN, 8: _LEN, 9: _LEN}
_OP_WIRE = {1: _LEN, 2: _LEN, 3: _LEN, 4: _LEN, 5: _LEN, 6: _LEN, 7: _LEN, 8: _LEN, 9: _VARINT, 10: _LEN, 11: _LEN, 12: _VARINT}
_TEXT_FIELDS = {1, 3, 7, 8}  # NetDef fields holding text


_Truncated = WireTruncated


_varint = read_varint


def _fields(data: bytes, *, complete: bool) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field; stops quietly at a cut if not `complete`."""
    out: list[tuple[int, int, int, int]] = []
    pos = 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise ValueError("field number 0")
            start = pos
            if wire == _VARINT:
                _, pos = _varint(data, pos)
            elif wire == _I64:
                pos += 8
            elif wire == _I32:
                pos += 4
            elif wire == _LEN:
                length, pos = _varint(data, pos)
                start = pos
                pos += length
                if pos > len(data) and not complete:
                    out.append((number, wire, start, len(data)))  # cut by the prefix: keep what is there
                    break
            else:
                raise ValueError(f"wire type {wire}")
            if pos > len(data):
                raise _Truncated
            out.append((number, wire, start, pos))
    except _Truncated:
        if complete:
            raise ValueError("truncated") from None
    return out


def _is_identifier(raw: bytes) -> bool:
    return 0 < len(raw) <= 256 and all(c == 0x5F or 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A for c in raw)


def _looks_like_op(raw: bytes, *, complete: bool = True) -> bool:
    fields = _fields(raw, complete=complete)
    op_type = None
    for number, wire, start, end in fields:
        expected = _OP_WIRE.get(number)
        if expected is not None and expected != wire:
            return False
        if number == 4:
            op_type = raw[start:end]
        elif number in (1, 2, 3):
            raw[start:end].decode("utf-8")
        elif number == 5 and raw[start : start + 1] != b"\x0a":
            return False  # an Argument starts with its name (field 1); its values are not walked (cheap on big fills)
    return op_type is not None and _is_identifier(op_type)


def looks_like_netdef(prefix: bytes, *, complete: bool) -> bool:
    """True when `prefix` (a file's first bytes, or all of it) parses as a NetDef with at least one typed op.

    Caffe NetParameter files use field 100 (`layer`) or V1 layers whose `type` is
    an enum; TensorFlow GraphDefs have `versions` (field 4) as a message; ONNX
    starts with `ir_version` (field 1) as a varint: all fail these checks.
    """
    try:
        fields = _fields(prefix, complete=complete)
        ops = 0
        for index, (number, wire, start, end) in enumerate(fields):
            expected = _NETDEF_WIRE.get(number)
            if expected is None or expected != wire:
                return False
            if number in _TEXT_FIELDS and end < len(prefix):
                prefix[start:end].decode("utf-8")
            if number == 2:
                cut = not complete and index == len(fields) - 1 and end >= len(prefix)
                if not _looks_like_op(prefix[start:end], complete=not cut):
                    return False
                ops += 1
        return ops > 0
    except (ValueError, UnicodeDecodeError):
        return False


# --- recognising NetDef files -------------------------------------------------------------------------

_SNIFF_BYTES = 4 * 1024 * 1024
_CUT_SNIFF_BYTES = 256 * 1024  # the second file of a pair (usually the big init_net): its beginning is enough
_TEXT_START = ("name:", "name :", "op {", "op{", "external_input", "external_output", "type:", "arg {", "device_option", "#")


@dataclass
class Caffe2Files:
    """A predict_net, its init_net (None for a net without weights), and the shapes of value_info.json."""

    predict: Any
    predict_path: str
    init: Any | None
    init_path: str | None
    value_info: dict[str, tuple[tuple[int, ...], int | None]]


def is_text(head: bytes) -> bool:
    """True when the first bytes of a file read as the start of a text NetDef."""
    try:
        text = head.decode("utf-8").lstrip()
    except UnicodeDecodeError:
        return False
    return text.startswith(_TEXT_START)


def sniff(path: str | Path, *, allow_cut: bool = False) -> str | None:
    """'binary' or 'text' when the file looks like a Caffe2 NetDef, else None; reads at most a few MiB.

    `allow_cut` also accepts a binary NetDef whose end is missing (a truncated init_net is then
    reported by the frontend, naming the file, instead of being an unrecognised format).
    """
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return None
        size = path.stat().st_size
        limit = _CUT_SNIFF_BYTES if allow_cut else _SNIFF_BYTES
        with open(path, "rb") as handle:
            head = handle.read(limit)
    except OSError:
        return None
    if is_text(head[:4096]):
        if allow_cut:
            return "text"  # the second file of a pair whose first is a NetDef: parsed (and reported) by the frontend
        if size > limit:
            return None
        try:
            parse_text(head.decode("utf-8"))
        except Exception:  # noqa: BLE001 -- sniffing: whatever the text parser raises means 'not a text NetDef'
            return None
        return "text"
    return "binary" if looks_like_netdef(head, complete=size <= limit and not allow_cut) else None


def parse_text(text: str) -> Any:
    """A text NetDef; ValueError (or a protobuf ParseError) when it is not one, or has no operators."""
    from google.protobuf import text_format

    net = NetDef()
    text_format.Parse(text, net, allow_unknown_field=False)
    if not net.op:
        raise ValueError("no operators")
    return net
