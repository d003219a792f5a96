"""Reading Caffe files: prototxt (text) and caffemodel (binary), V1 `layers` upgraded, inputs found, weights matched."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecc.errors import InvalidInputError, UsageError

__all__ = ["V1_TYPES", "CaffeNet", "NetInput", "load_net", "sniff", "split_paths"]

log = logging.getLogger(__name__)

#: V1LayerParameter.LayerType names -> the type strings of the current format
V1_TYPES: dict[str, str] = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "DATA": "Data",
    "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold", "NONE": "",
}

_TEXT_HINT = re.compile(rb"^\s*(layers?\s*\{|input\s*:|input_shape\s*\{|input_dim\s*:|name\s*:\s*\")", re.MULTILINE)
_PROTOTXT_HINT = re.compile(rb"\btype\s*:|^\s*input\s*:", re.MULTILINE)
#: text protobufs of other frameworks: TensorFlow GraphDef (node, versions, library), Caffe2 NetDef (op, external_input)
_OTHER_HINT = re.compile(rb"^\s*(node\s*\{|versions\s*\{|library\s*\{|op\s*\{|external_input\s*:)", re.MULTILINE)


def sniff(path: str) -> str | None:
    """'prototxt', 'caffemodel' or None, from the first bytes of the file (cheap, no protobuf)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return None
    if not head:
        return None
    suffix = Path(path).suffix.lower()
    text = b"\x00" not in head[:4096]
    if text and _TEXT_HINT.search(head) and not _OTHER_HINT.search(head) and _PROTOTXT_HINT.search(head):
        return "prototxt"
    if suffix == ".caffemodel":
        return "caffemodel"
    if suffix == ".prototxt" and text:
        return "prototxt"
    return None


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


@dataclass(frozen=True)
class NetInput:
    """One network input: blob name and shape (None when the prototxt gives none)."""

    name: str
    shape: tuple[int, ...] | None


@dataclass
class CaffeNet:
    """A parsed network: its layers in the current format, inputs, and weights by layer name."""

    name: str
    prototxt: str
    caffemodel: str | None
    inputs: list[NetInput]
    layers: list[Any]  # LayerParameter messages (Input layers kept; they are skipped when building)
    weights: dict[str, list[Any]] = field(default_factory=dict)  # layer name -> weights.Blob list
    weight_types: dict[str, str] = field(default_factory=dict)


def _read(path: str, what: str) -> bytes:
    from edgecc.fileio import read_bytes

    return read_bytes(path, what=what)


def _parse_text(path: str) -> Any:
    from google.protobuf import text_format

    from edgecc.converters.caffe.schema import messages

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
    from edgecc.converters.caffe.schema import messages

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
        from edgecc.converters.caffe.weights import read_caffemodel

        for trained in read_caffemodel(caffemodel):
            if trained.blobs:
                result.weights[trained.name] = trained.blobs
                result.weight_types[trained.name] = trained.type
    return result
