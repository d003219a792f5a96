"""Reading Caffe2 nets: binary or text NetDef files, which one is the init_net, and optional value_info.json."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecc.converters.caffe2 import proto
from edgecc.errors import InvalidInputError, UsageError
from edgecc.fileio import check_input_file
from edgecc.protowire import parse_message

__all__ = ["FILL_PREFIXES", "Caffe2Files", "is_fill_net", "load_files", "read_netdef", "sniff"]

log = logging.getLogger(__name__)

_SNIFF_BYTES = 4 * 1024 * 1024
_CUT_SNIFF_BYTES = 256 * 1024  # the second file of a pair (usually the big init_net): its beginning is enough
_TEXT_START = ("name:", "name :", "op {", "op{", "external_input", "external_output", "type:", "arg {", "device_option", "#")

#: op types an init_net is made of
FILL_PREFIXES = ("GivenTensor", "Int8GivenTensorFill", "Int8GivenIntTensorFill")
_FILL_TYPES = {"ConstantFill", "XavierFill", "GaussianFill", "UniformFill", "MSRAFill", "RangeFill", "UniqueUniformFill"}


@dataclass
class Caffe2Files:
    """A predict_net, its init_net (None for a net without weights), and the shapes of value_info.json."""

    predict: Any
    predict_path: str
    init: Any | None
    init_path: str | None
    value_info: dict[str, tuple[tuple[int, ...], int | None]]


def _is_text(head: bytes) -> bool:
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
    if _is_text(head[:4096]):
        if allow_cut:
            return "text"  # the second file of a pair whose first is a NetDef: parsed (and reported) by the frontend
        if size > limit:
            return None
        try:
            _parse_text(head.decode("utf-8"))
        except Exception:
            return None
        return "text"
    return "binary" if proto.looks_like_netdef(head, complete=size <= limit and not allow_cut) else None


def _parse_text(text: str) -> Any:
    from google.protobuf import text_format

    net = proto.NetDef()
    text_format.Parse(text, net, allow_unknown_field=False)
    if not net.op:
        raise ValueError("no operators")
    return net


def read_netdef(path: str | Path, *, what: str = "Caffe2 net") -> Any:
    """Parse a binary or text NetDef; corrupt, truncated or foreign files raise InvalidInputError."""

    checked = check_input_file(path, what=what)
    data = checked.read_bytes()
    if _is_text(data[:4096]):
        try:
            return _parse_text(data.decode("utf-8"))
        except Exception as exc:
            message = " ".join(str(exc).split())
            raise InvalidInputError(f"'{path}' is not a valid text NetDef: {message}", path=path) from None
    net = parse_message(proto.NetDef(), data, path=path, what="Caffe2 NetDef", hint="the file is truncated or corrupt")
    if not net.op:
        raise InvalidInputError(f"'{path}' holds no Caffe2 operators", path=path, hint="the file is truncated or not a NetDef")
    for index, op in enumerate(net.op):
        if not op.type:
            raise InvalidInputError(f"'{path}': operator #{index} has no type", path=path, hint="the file is truncated or corrupt")
    return net


def is_fill_net(net: Any) -> bool:
    """True when every operator of `net` is a fill or takes no input (the shape of an init_net)."""
    return all(op.type.startswith(FILL_PREFIXES) or op.type in _FILL_TYPES or not op.input for op in net.op)


def _read_value_info(path: Path) -> dict[str, tuple[tuple[int, ...], int | None]]:
    """value_info.json of the Caffe2 model zoo: {"blob": [onnx_elem_type, [dims...]]}."""
    try:
        data = json.loads(check_input_file(path, what="value_info file").read_text())
        info: dict[str, tuple[tuple[int, ...], int | None]] = {}
        for name, value in data.items():
            elem, dims = (value[0], value[1]) if isinstance(value, list) and len(value) == 2 else (None, value)
            info[str(name)] = (tuple(int(d) for d in dims), int(elem) if elem is not None else None)
        return info
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise InvalidInputError(f"'{path}' is not a valid value_info.json: {exc}", path=path) from None


def load_files(paths: Sequence[str], *, need_init: bool = True) -> Caffe2Files:
    """predict_net [init_net] [value_info.json] in any order, told apart by content."""
    json_paths = [p for p in paths if p.lower().endswith(".json")]
    net_paths = [p for p in paths if p not in json_paths]
    if len(net_paths) > 2 or len(json_paths) > 1:
        raise UsageError("a Caffe2 model is predict_net.pb init_net.pb [value_info.json]", hint=f"got {len(paths)} files")
    nets = [(p, read_netdef(p)) for p in net_paths]
    fills = [is_fill_net(n) for _, n in nets]
    if len(nets) == 1:
        path = nets[0][0]
        if fills[0]:
            raise UsageError(
                f"'{path}' is a Caffe2 init_net (only fill operators); give the predict_net first",
                hint="edgecc convert predict_net.pb init_net.pb -o model.onnx",
            )
        if need_init:
            raise UsageError(
                f"'{path}' is a Caffe2 predict_net; its weights are in an init_net that was not given",
                hint="edgecc convert predict_net.pb init_net.pb -o model.onnx",
            )
        predict, init = nets[0], None
    else:
        if fills[0] and not fills[1]:
            nets.reverse()
        elif not fills[1]:
            raise UsageError(
                f"neither '{net_paths[0]}' nor '{net_paths[1]}' is an init_net made of fill operators",
                hint="edgecc convert predict_net.pb init_net.pb -o model.onnx",
            )
        predict, init = nets[0], nets[1]
    value_info: dict[str, tuple[tuple[int, ...], int | None]] = {}
    json_path = Path(json_paths[0]) if json_paths else Path(predict[0]).with_name("value_info.json")
    if json_paths or json_path.is_file():
        value_info = _read_value_info(json_path)
        log.info("input shapes from %s", json_path)
    return Caffe2Files(predict[1], predict[0], init[1] if init else None, init[0] if init else None, value_info)
