"""The TensorFlow-family formats: their kinds and names, recognised from content without importing TensorFlow, and `Source`.

SavedModel directories, Keras v3 `.keras` zips, legacy Keras HDF5, frozen GraphDef
protobufs (told apart from Caffe2 NetDefs and Caffe NetParameters by walking the
protobuf wire format), TFLite flatbuffers (file identifier `TFL3`) and TF.js
`model.json` files. A `Source` is one of them once opened (`reader.py`).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecc.inputs import TensorInfo
from edgecc.protowire import WireInvalid, WireTruncated, read_varint

__all__ = [
    "GRAPHDEF",
    "KERAS",
    "KERAS_H5",
    "KIND_NAMES",
    "SAVED_MODEL",
    "TFJS",
    "TFLITE",
    "Source",
    "looks_like_graphdef",
    "sniff",
    "tfjs_json_path",
]

SAVED_MODEL = "saved-model"
KERAS = "keras"
KERAS_H5 = "keras-h5"
GRAPHDEF = "graphdef"
TFLITE = "tflite"
TFJS = "tfjs"

#: human names used in messages ("a truncated TFLite flatbuffer ...")
KIND_NAMES = {
    SAVED_MODEL: "TensorFlow SavedModel",
    KERAS: "Keras v3 (.keras) archive",
    KERAS_H5: "Keras HDF5 (.h5) model",
    GRAPHDEF: "TensorFlow frozen GraphDef",
    TFLITE: "TFLite flatbuffer",
    TFJS: "TF.js model",
}


@dataclass
class Source:
    """A loaded model: its kind, the framework object(s), and its input/output signature."""

    kind: str
    path: str
    inputs: list[TensorInfo]
    outputs: list[str]
    model: Any = None  # keras.Model, the loaded SavedModel signature function, a GraphDef or the tflite path
    extra: dict[str, Any] = field(default_factory=dict)


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_SNIFF_BYTES = 1 << 20


def _head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def tfjs_json_path(path: Path) -> Path | None:
    """The model.json of a TF.js model given as the file itself or its directory."""
    candidate = path / "model.json" if path.is_dir() else path
    if not candidate.is_file() or candidate.suffix.lower() != ".json":
        return None
    head = _head(candidate, 4096).lstrip()
    if not head.startswith(b"{"):
        return None
    text = _head(candidate, 1 << 16)
    if b'"modelTopology"' in text or b'"weightsManifest"' in text or b'"format"' in text and b"graph-model" in text:
        return candidate
    return None


def _keras_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return path.suffix.lower() == ".keras"  # a truncated .keras zip still names itself
    return "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)


def sniff(path_text: str) -> str | None:
    """The kind of TensorFlow artefact at `path_text`, or None when it is not one."""
    path = Path(path_text)
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return SAVED_MODEL
        return TFJS if tfjs_json_path(path) else None
    if not path.is_file():
        return None
    head = _head(path, 16)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return TFLITE
    if head.startswith(_HDF5_MAGIC):
        return KERAS_H5
    if head.startswith(b"PK"):
        return KERAS if _keras_zip(path) else None
    if path.name == "saved_model.pb":
        return SAVED_MODEL
    if path.suffix.lower() == ".json":
        return TFJS if tfjs_json_path(path) else None
    suffix = path.suffix.lower()
    if suffix in (".tflite", ".lite") and head:
        return TFLITE  # not a flatbuffer with our identifier: reported as a broken TFLite file
    data = _head(path, _SNIFF_BYTES)
    if looks_like_graphdef(data, complete=path.stat().st_size <= _SNIFF_BYTES and suffix not in (".pb", ".graphdef")):
        return GRAPHDEF
    return None


# --- protobuf wire format -------------------------------------------------------------------------


_Cut = WireTruncated  # the buffer ends inside a field
_Bad = WireInvalid  # the bytes are not a valid protobuf encoding of the expected message


_varint = read_varint


def _fields(data: bytes):
    """(field number, wire type, payload or int) for each field; raises _Cut or _Bad."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Bad
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                yield number, wire, None  # cut inside this field
                raise _Cut
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
            if pos > len(data):
                raise _Cut
            yield number, wire, None
        elif wire == 5:
            pos += 4
            if pos > len(data):
                raise _Cut
            yield number, wire, None
        else:
            raise _Bad


def _identifier(raw: bytes) -> bool:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return False
    return bool(text) and (text[0].isalpha() or text[0] == "_") and all(c.isalnum() or c in "_." for c in text)


def _node_def(raw: bytes) -> bool:
    """NodeDef: name=1, op=2, input=3, device=4 (strings), attr=5, debug info=6, type=7 (messages)."""
    has_op = False
    for number, wire, value in _fields(raw):
        if number > 8 or wire != 2:
            raise _Bad
        if number == 2:
            if value is None or not _identifier(value):
                raise _Bad
            has_op = True
        elif number == 1 and value is not None:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise _Bad from None
    return has_op


def looks_like_graphdef(data: bytes, *, complete: bool) -> bool:
    """True when `data` begins as a GraphDef: top-level fields node=1, library=2, version=3, versions=4.

    NodeDefs must carry an op name that is an identifier; a Caffe2 NetDef (field 1 = the net's
    name, field 2 = OperatorDefs) or a Caffe NetParameter fails this. With `complete` false a
    buffer cut inside a field is still accepted when at least one whole node came before.
    """
    nodes = 0
    try:
        for number, wire, value in _fields(data):
            if number == 1:
                if wire != 2:
                    return False
                if value is None:
                    raise _Cut
                if not _node_def(value):
                    return False
                nodes += 1
            elif number in (2, 4):
                if wire != 2:
                    return False
            elif number == 3:
                if wire != 0:
                    return False
            else:
                return False
    except _Cut:
        return not complete and nodes > 0
    except _Bad:
        return False
    return nodes > 0


def read_json(path: Path) -> object:
    """Parse a JSON file; ValueError/OSError propagate to the caller."""
    return json.loads(path.read_text(encoding="utf-8"))
