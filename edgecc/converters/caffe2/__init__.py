"""Caffe2 frontend: NetDef pairs (predict_net + init_net, binary or text) to ONNX, Int8 nets as QDQ.

Parsed with edgecc's own NetDef schema subset (`schema.py`); no Caffe2 runtime is
needed or available, so conversions are not verified against the original
framework (the pipeline says so).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgecc.converters.options import ConvertOptions

if TYPE_CHECKING:
    import onnx

__all__ = ["DESCRIPTION", "EXTRA", "convert", "describe", "detect", "supported_ops"]

DESCRIPTION = "Caffe2: predict_net.pb + init_net.pb (binary or text NetDef), Int8 nets as QDQ"
EXTRA = None


def detect(paths: Sequence[str]) -> bool:
    """The first file parses as a Caffe2 NetDef, and the second (when given, not value_info.json) at least begins as one."""
    from edgecc.converters.caffe2.schema import sniff

    nets = [p for p in paths if not str(p).lower().endswith(".json")]
    if not nets or len(nets) > 2 or sniff(nets[0]) is None:
        return False
    return len(nets) == 1 or sniff(nets[1], allow_cut=True) is not None


def convert(paths: Sequence[str], options: ConvertOptions) -> onnx.ModelProto:
    """predict_net [init_net] [value_info.json] -> ONNX (opset 17); input shapes from --input or value_info.json."""
    from edgecc.converters.caffe2.build import build_model
    from edgecc.converters.caffe2.reader import load_files

    return build_model(load_files(paths), options)


def describe(paths: Sequence[str], options: ConvertOptions) -> dict[str, Any]:
    """What a NetDef says without converting: role, inputs, outputs, operator histogram, weights."""
    from edgecc.converters.caffe2.reader import is_fill_net, read_netdef

    details: dict[str, Any] = {}
    for path in paths:
        if str(path).lower().endswith(".json"):
            continue
        net = read_netdef(path)
        role = "init_net" if is_fill_net(net) else "predict_net"
        histogram = Counter(op.type for op in net.op)
        details[f"{role} {path}"] = f"{len(net.op)} ops"
        details[f"{role} operators"] = [f"{k} x{v}" for k, v in sorted(histogram.items())]
        if role == "predict_net":
            details["external inputs"] = list(net.external_input)
            details["external outputs"] = list(net.external_output)
        else:
            details["filled blobs"] = len({o for op in net.op for o in op.output})
    return details


def supported_ops() -> list[str]:
    """Caffe2 operator types with a converter, for docs."""
    from edgecc.converters.caffe2 import build  # noqa: F401  (fills the registry)
    from edgecc.converters.caffe2.graph import OPS

    return sorted(OPS.names())
