"""Reading Caffe2 nets: binary or text NetDef files, which one is the init_net, and optional value_info.json."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecc.converters.caffe2.schema import Caffe2Files, NetDef, is_text, parse_text
from edgecc.errors import InvalidInputError, UsageError
from edgecc.fileio import check_input_file, resolve_named_path
from edgecc.protowire import parse_message

__all__ = ["FILL_PREFIXES", "is_fill_net", "load_files", "read_netdef"]

log = logging.getLogger(__name__)

#: op types an init_net is made of
FILL_PREFIXES = ("GivenTensor", "Int8GivenTensorFill", "Int8GivenIntTensorFill")
_FILL_TYPES = {"ConstantFill", "XavierFill", "GaussianFill", "UniformFill", "MSRAFill", "RangeFill", "UniqueUniformFill"}


def read_netdef(path: str | Path, *, what: str = "Caffe2 net") -> Any:
    """Parse a binary or text NetDef; corrupt, truncated or foreign files raise InvalidInputError."""

    checked = check_input_file(path, what=what)
    data = checked.read_bytes()
    if is_text(data[:4096]):
        try:
            return parse_text(data.decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 -- protobuf's text parser has no single error type; all are bad input
            message = " ".join(str(exc).split())
            raise InvalidInputError(f"'{path}' is not a valid text NetDef: {message}", path=path) from None
    net = parse_message(NetDef(), data, path=path, what="Caffe2 NetDef", hint="the file is truncated or corrupt")
    if not net.op:
        raise InvalidInputError(f"'{path}' holds no Caffe2 operators", path=path, hint="the file is truncated or not a NetDef")
    for index, op in enumerate(net.op):
        if not op.type:
            raise InvalidInputError(
                f"'{path}': operator #{index} has no type", path=path, hint="the file is truncated or corrupt"
            )
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
    if json_paths:
        json_path = Path(json_paths[0])
    else:  # picked up beside the net: the same rules as a file a model names (no link out of its folder)
        try:
            json_path = resolve_named_path(
                Path(predict[0]).parent, "value_info.json", named_in=predict[0], what="value_info.json beside the net"
            )
        except InvalidInputError as exc:
            exc.hint = "name it on the command line (predict_net init_net value_info.json) if you trust where it points"
            raise
    if json_paths or json_path.is_file():
        value_info = _read_value_info(json_path)
        log.info("input shapes from %s", json_path)
    return Caffe2Files(predict[1], predict[0], init[1] if init else None, init[0] if init else None, value_info)
